"""The safetensors header: 8-byte little-endian length N, then N bytes of JSON. Nothing else is read."""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
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
    return parse_header(fh.read(length))


def parse_header(raw: bytes) -> Header:
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
    return Header(metadata, tuple(data), 8 + len(raw), notes)


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
