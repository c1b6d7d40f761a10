"""The safetensors header: 8-byte little-endian length N, then N bytes of JSON. Nothing else is read."""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from operator import itemgetter, sub
from typing import Dict, Optional, Tuple

from ..bounded_json import JsonLimitError, may_hold_lone_surrogates, parse_bounded, replace_lone_surrogates

MAX_HEADER_BYTES = 64 * 1024 * 1024
PICKLE_MAGIC = b"\x80"
ZIP_MAGIC = b"PK\x03\x04"


class HeaderError(Exception):
    """The header cannot be read; `not_safetensors` tells a pickle or zip file apart from a broken one."""

    def __init__(self, message: str, not_safetensors: bool = False) -> None:
        super().__init__(message)
        self.not_safetensors = not_safetensors


@dataclass(frozen=True)
class Header:
    metadata: Dict[str, str] = field(default_factory=dict)
    keys: Tuple[str, ...] = ()  # tensor names, for telling the architecture
    data_offset: int = 0  # where the tensor bytes start: 8 + N
    notes: Tuple[str, ...] = ()  # what was wrong but read anyway (the scan reports it as corrupt_header)
    # Why the tensor data cannot all be loaded (offsets past the end of the file: an unfinished download),
    # or None. Known only when the file's size was; the metadata is still good.
    data_problem: Optional[str] = None


def read_header(path: str, size: Optional[int] = None) -> Header:
    with open(path, "rb") as fh:
        head = fh.read(8)
        try:
            return _read(fh, head, size)
        except HeaderError:
            # Only a file that is not a valid safetensors can be a renamed pickle or zip: a valid
            # header length may well start with the byte 0x80.
            if head.startswith(ZIP_MAGIC):
                raise HeaderError("a zip file, not safetensors (a renamed .ckpt?)", not_safetensors=True) from None
            if head[:1] == PICKLE_MAGIC and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
                raise HeaderError("a pickle file, not safetensors (a renamed .pt/.ckpt?)",
                                  not_safetensors=True) from None
            raise


def _read(fh, head: bytes, size: Optional[int]) -> Header:  # type: ignore[no-untyped-def]
    if not head:
        raise HeaderError("empty file (0 bytes)")
    if len(head) < 8:
        raise HeaderError(f"file too short for a header ({len(head)} bytes)")
    (length,) = struct.unpack("<Q", head)
    if size is None:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(8)
    if length > MAX_HEADER_BYTES:
        raise HeaderError(f"header length {length:,} is over the {MAX_HEADER_BYTES:,}-byte cap")
    if 8 + length > size:
        raise HeaderError(f"header length {length:,} runs past the end of the {size:,}-byte file")
    return parse_header(fh.read(length), size - 8 - length)


def parse_header(raw: bytes, data_size: Optional[int] = None) -> Header:
    """The header's JSON. With `data_size` (the bytes after the header), every tensor's `data_offsets`
    is checked against it as well."""
    try:
        data = parse_bounded(raw, MAX_HEADER_BYTES)
    except JsonLimitError as exc:
        raise HeaderError(f"header is not readable: {exc}") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise HeaderError(f"header is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HeaderError("header JSON is not an object")
    notes: Tuple[str, ...] = ()
    if may_hold_lone_surrogates(raw):
        # Text that is not Unicode cannot be written anywhere as UTF-8 (the cache, an infotext, the page):
        # it is replaced once here, so nothing downstream has to care.
        data, changed = replace_lone_surrogates(data)
        if changed:
            notes = ("header text holds invalid Unicode (lone surrogate escapes such as \\ud800); "
                     "read with U+FFFD in their place",)
    meta = data.pop("__metadata__", None)
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()} \
        if isinstance(meta, dict) else {}
    problem = tensor_data_problem(data, data_size) if data_size is not None and data else None
    return Header(metadata, tuple(data), 8 + len(raw), notes, problem)


_OFFSETS, _FIRST, _SECOND = itemgetter("data_offsets"), itemgetter(0), itemgetter(1)


def tensor_data_problem(tensors: Dict[str, object], data_size: int) -> Optional[str]:
    """Why safetensors would refuse the tensor data, or None: every tensor needs `data_offsets` of two
    ints 0 <= begin <= end, and the last end must fit in the `data_size` bytes after the header.

    A LoRA holds hundreds to thousands of tensors and a scan reads thousands of headers, so each check is
    one pass in C (map, min, max) over the offsets, not a Python loop per tensor."""
    try:
        pairs = list(map(_OFFSETS, tensors.values()))  # type: ignore[arg-type]
        if set(map(len, pairs)) != {2}:  # a number or null has no len; two chars or keys fail below
            raise TypeError
        begins, ends = list(map(_FIRST, pairs)), list(map(_SECOND, pairs))
        if set(map(type, begins)) | set(map(type, ends)) != {int}:  # bool, float and str are not offsets
            raise TypeError
        if min(begins) < 0 or min(map(sub, ends, begins)) < 0:
            raise TypeError
    except (TypeError, KeyError, AttributeError):
        name, offsets = _first_bad_offsets(tensors)
        return (f"tensor {name!r} has data_offsets {json.dumps(offsets)[:80]}, not two whole numbers "
                "0 <= begin <= end; safetensors (and Forge) cannot load this file")
    end = max(ends)
    if end > data_size:
        return (f"the tensor data is truncated: the header needs {end:,} bytes of tensor data, the file holds "
                f"{data_size:,} (an unfinished download?); Forge cannot load it, download it again")
    return None


def _first_bad_offsets(tensors: Dict[str, object]) -> Tuple[str, object]:
    """The first tensor whose offsets fail the check above: only to name it in the message."""
    for name, info in tensors.items():
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (type(offsets) is list and len(offsets) == 2 and all(type(x) is int for x in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            return name, offsets
    return "?", None


def json_value(metadata: Dict[str, str], key: str) -> object:
    """A header value that holds JSON (kohya stores nested data as JSON strings); None if it does not."""
    text = metadata.get(key)
    if not text or text[0] not in "{[":
        return None
    try:
        value = parse_bounded(text, MAX_HEADER_BYTES)
    except ValueError:
        return None
    return replace_lone_surrogates(value)[0] if may_hold_lone_surrogates(text) else value
