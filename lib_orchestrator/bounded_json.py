"""JSON from files other people and tools wrote (LoRA headers and sidecars, overrides, wildcard packs),
parsed with limits: such a file is untrusted input.

`json.loads` alone lets one file stop a whole scan or every prompt: brackets nested a few thousand deep
raise RecursionError (not a ValueError, so no reader caught it), and 64 MiB of `[],[],…` builds tens of
millions of lists. The caps are checked on the raw bytes before parsing, in C-speed passes, so a hostile
file costs about as much as a valid one of the same size. Every failure is a ValueError whose message
says which cap was hit (a JsonLimitError also says where, for the caller's file:line:col).
"""
from __future__ import annotations

import itertools
import json
import re
from typing import Any, Optional, Tuple, Union

MAX_DEPTH = 64  # real headers nest 3 deep, Civitai's model-version objects about 6
MAX_CONTAINERS = 1_000_000  # arrays plus objects: a LoRA header has about 3 per tensor, so 300,000 tensors

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: linear time, no backtracking
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"(())")
_STEP = {ord("("): 1, ord(")"): -1}
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # \ud800-\udfff: only these can decode to a lone surrogate
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonLimitError(ValueError):
    """Valid-looking JSON past what we read: too big, nested too deep, or too many values. `offset`: the
    byte where the nesting went past the cap (None for the other caps)."""

    def __init__(self, message: str, offset: Optional[int] = None) -> None:
        super().__init__(message)
        self.offset = offset


def check_bounds(data: Union[bytes, str], max_bytes: int, max_values: Optional[int] = None) -> None:
    """Raise JsonLimitError when `data` is over `max_bytes`, nests deeper than MAX_DEPTH, or holds more than
    MAX_CONTAINERS arrays and objects (or, given `max_values`, more values: at most one per comma or
    opening bracket); ValueError when its brackets cannot be JSON. Strings are left out of the counts."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise JsonLimitError(f"{len(raw):,} bytes of JSON, over the {max_bytes:,}-byte cap")
    bare = _STRING.sub(b"", raw)
    # The brackets outside strings, as "(" and ")". For valid JSON this is exactly its structure.
    skeleton = bare.translate(_OPEN_CLOSE, _NOT_BRACKET)
    opens = skeleton.count(b"(")
    if opens > MAX_CONTAINERS:
        raise JsonLimitError(f"{opens:,} JSON arrays and objects, over the cap of {MAX_CONTAINERS:,}")
    if max_values is not None and opens + bare.count(b",") > max_values:
        raise JsonLimitError(f"over {max_values:,} JSON values, the cap")
    if len(skeleton) - opens > MAX_CONTAINERS:  # more closers than the cap allows openers: not JSON
        raise ValueError(f"invalid JSON: {len(skeleton) - opens:,} closing brackets for {opens:,} opening ones")
    # The deepest point of the running count; broken JSON included, so a truncated deep file is caught here.
    depth = max(itertools.accumulate(map(_STEP.__getitem__, skeleton)), default=0)
    if depth > MAX_DEPTH:
        raise JsonLimitError(f"JSON nested {depth:,} deep, over the cap of {MAX_DEPTH}", _too_deep_at(raw))


def _too_deep_at(raw: bytes) -> Optional[int]:
    """The offset of the first bracket past MAX_DEPTH: slower than the counts, and only for a refused file."""
    depth = 0
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif token in (b"]", b"}"):
            depth -= 1
    return None


def parse_bounded(data: Union[bytes, str], max_bytes: int) -> Any:
    """`json.loads(data)` after checking the caps. Raises ValueError (JSONDecodeError or JsonLimitError)
    for anything that is not JSON within them; never RecursionError."""
    check_bounds(data, max_bytes)
    try:
        return json.loads(data)
    except RecursionError:  # cannot happen within MAX_DEPTH; kept so it can never escape a reader
        raise JsonLimitError(f"JSON nested too deep to read (the cap is {MAX_DEPTH})") from None


def may_hold_lone_surrogates(data: Union[bytes, str]) -> bool:
    """Whether the JSON text has a `\\udXXX` escape, the only way JSON gets a lone surrogate into a str:
    such text cannot be written as UTF-8 (a cache row, an infotext, a page) until it is replaced."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return _SURROGATE_ESCAPE.search(raw) is not None


def replace_lone_surrogates(value: Any) -> Tuple[Any, bool]:
    """The parsed value with every lone surrogate in its strings (keys too) replaced by U+FFFD, and
    whether any was. Valid pairs were already joined by the parser. Depth is bounded by MAX_DEPTH."""
    if isinstance(value, str):
        fixed = _SURROGATE.sub("\ufffd", value)
        return fixed, fixed != value
    if isinstance(value, list):
        items = [replace_lone_surrogates(v) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            k2, c1 = replace_lone_surrogates(k)
            v2, c2 = replace_lone_surrogates(v)
            out[k2] = v2
            changed = changed or c1 or c2
        return out, changed
    return value, False
