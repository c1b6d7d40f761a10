"""Where each value of a JSON document starts, by its path (`("images", 5, "seed")`), so an error in a
hand-edited file points at the line and column of the very value that is wrong, not at the first key of
that name. Iterative, so nesting costs no Python stack; past MAX_DEPTH it stops (the document itself is
parsed, and refused, elsewhere)."""
from __future__ import annotations

import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Dict, List, Tuple, Union

Path = Tuple[Union[str, int], ...]
MAX_DEPTH = 64

_SPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null|NaN|-?Infinity")


def value_positions(text: str) -> Dict[Path, int]:
    """Offset of the first character of every value, by path. Stops quietly at the first thing that is
    not JSON: the positions found so far are still right."""
    found: Dict[Path, int] = {}
    # each frame: [path, kind ("{" or "["), next array index]
    stack: List[list] = []
    pos = _skip(text, 0)
    path: Path = ()
    try:
        while pos < len(text) and len(stack) <= MAX_DEPTH:
            found.setdefault(path, pos)
            ch = text[pos]
            if ch in "{[":
                stack.append([path, ch, 0])
                pos = _skip(text, pos + 1)
                if text[pos] in "}]":
                    pos = _close(text, pos, stack)
                else:
                    pos, path = _next_member(text, pos, stack)
                    continue
            elif ch == '"':
                _, pos = scanstring(text, pos + 1)
            else:
                match = _SCALAR.match(text, pos)
                if not match:
                    return found
                pos = match.end()
            pos = _skip(text, pos)
            while stack and pos < len(text) and text[pos] in "}]":
                pos = _close(text, pos, stack)
            if not stack:
                return found
            if text[pos] != ",":
                return found
            pos, path = _next_member(text, _skip(text, pos + 1), stack)
    except (IndexError, ValueError):
        pass
    return found


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()  # type: ignore[union-attr]


def _close(text: str, pos: int, stack: List[list]) -> int:
    stack.pop()
    return _skip(text, pos + 1)


def _next_member(text: str, pos: int, stack: List[list]) -> Tuple[int, Path]:
    """The path and position of the next value in the innermost container (after a key, for an object)."""
    frame = stack[-1]
    if frame[1] == "[":
        path = frame[0] + (frame[2],)
        frame[2] += 1
        return pos, path
    key, pos = scanstring(text, pos + 1)
    pos = _skip(text, pos)
    if text[pos] != ":":
        raise ValueError("expected ':'")
    return _skip(text, pos + 1), frame[0] + (key,)


def line_and_column(text: str, offset: int) -> Tuple[int, int]:
    """1-based line and column of an offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
