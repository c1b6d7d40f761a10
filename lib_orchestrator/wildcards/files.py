"""Reading wildcard files (.txt, .yaml/.yml, .json) into named lists of entries.

Reading never drops bytes silently: UTF-8 (with or without BOM) and UTF-16 with a BOM are decoded;
anything else is decoded as cp1252/latin-1 with a warning. Structure follows dynamicprompts: nested
maps become `a/b/c` names, top-level keys are not prefixed by the file name, a flat top-level list is
named after the file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import Location, WildcardFileError
from .diagnostics import WARNING, Finding
from .options import MAX_WEIGHT, weight_problem
from .structured import Marked, YamlNumber, json_tree, yaml_tree

WILDCARD_SUFFIXES = (".txt", ".yaml", ".yml", ".json")
# Caps that keep one file's cost in time and memory bounded (a few seconds and a few hundred MB at
# worst), far above real packs, whose largest lists are tens of thousands of lines in a few MB.
MAX_FILE_BYTES = 32 * 1024 * 1024  # a .txt
MAX_STRUCTURED_BYTES = 16 * 1024 * 1024  # YAML and JSON: parsed into a tree first, several times the bytes
MAX_LINES = 1_000_000  # lines of a .txt: each entry costs ~100 bytes more than its text


@dataclass(frozen=True, slots=True)  # slots: a big pack holds a million of these
class Entry:
    """One line of a wildcard list: its text, relative weight and the line it was written on."""

    text: str
    weight: float = 1.0
    line: int = 0
    source: str = field(default="", compare=False)
    column: int = field(default=1, compare=False)  # where the text starts on its line


@dataclass(frozen=True)
class ReadResult:
    collections: Dict[str, List[Entry]]
    warnings: Tuple[Finding, ...] = ()


def decode(data: bytes, path: str) -> Tuple[str, Optional[str]]:
    """Text of a file and, when it was not clean UTF-8, a warning saying how it was read."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError as exc:
            return (data.decode("utf-16", errors="replace"),
                    f"broken UTF-16 (byte {exc.start}); undecodable bytes shown as \ufffd, save it as UTF-8")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        return text, f"not valid UTF-8 (byte {exc.start}); read as cp1252/latin-1, save it as UTF-8"


def read_file(path: str, display: str) -> ReadResult:
    """Every named list the file defines, names relative to the file's folder."""
    suffix = os.path.splitext(path)[1]
    limit = MAX_FILE_BYTES if suffix == ".txt" else MAX_STRUCTURED_BYTES
    try:
        size = os.path.getsize(path)
        if size > limit:
            raise WildcardFileError(f"wildcard file is {size:,} bytes, over the {limit:,} limit",
                                    Location(display, 1, 1), "split it into smaller files")
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)  # it may have grown since
    except OSError as exc:  # gone or locked since the folder was listed
        raise WildcardFileError(f"cannot read the wildcard file: {exc.strerror or exc}", Location(display, 0, 0),
                                "check that it exists and can be read") from None
    looks_like = binary_kind(data)
    if looks_like:
        raise WildcardFileError(f"not a text file: it looks like {looks_like}", _first_nul(data, display),
                                "wildcard files are text (.txt, .yaml, .json) saved as UTF-8; "
                                "move this file out of the wildcard folder")
    text, problem = decode(data, path)
    warnings: List[Finding] = []
    if problem:
        warnings.append(Finding(Location(display, 1, 1), WARNING, problem))
    if "\x00" in text:  # UTF-16 that decodes to NULs: not text either
        raise WildcardFileError("not a text file: it contains NUL characters", Location(display, 1, 1),
                                "save it as UTF-8 text")
    stem = os.path.splitext(os.path.basename(path))[0]
    lines = max(text.count("\n"), text.count("\r")) + 1
    if lines > MAX_LINES:  # counted before the text is split into a list of them
        raise WildcardFileError(f"wildcard file has {lines:,} lines, over the {MAX_LINES:,} limit",
                                Location(display, 1, 1), "split it into smaller files")
    if suffix == ".txt":
        entries = list(read_text_lines(text, display, warnings))
        return ReadResult({stem: entries}, tuple(warnings))
    tree = json_tree(text, display) if suffix == ".json" else yaml_tree(text, display)
    lists = dict(structured_lists(tree, stem, display, warnings))
    return ReadResult(lists, tuple(warnings))


# Files that are not text, by their first bytes: what to call them in the message.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF file (WebP image, WAV or AVI)"), (b"PK\x03\x04", "a ZIP archive"),
    (b"%PDF-", "a PDF document"), (b"\x1f\x8b", "a gzip archive"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"), (b"\x7fELF", "a program (ELF)"), (b"MZ", "a Windows program"),
    (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
)
_CONTROL = bytes(c for c in range(32) if c not in b"\t\n\r\x0c\x0b\x1b")


def binary_kind(data: bytes) -> str:
    """What a file looks like when it is not text, or "" for text.

    Read as text, an image or archive becomes lines of garbage that still make prompts; so: a known
    signature, a NUL byte (which no UTF-8 or cp1252 text has, and UTF-16 text starts with a BOM), or
    mostly control characters means binary.
    """
    if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):  # text with a byte-order mark
        return ""
    for magic, name in _SIGNATURES:
        if data.startswith(magic) and (magic not in (b"MZ", b"BM", b"GIF8") or b"\x00" in data[:512]):
            return name
    if data[4:8] == b"ftyp":
        return "an MP4/MOV video or HEIC image"
    if data[8:10] == b'{"' and b"\x00" in data[:8]:  # an 8-byte header length, then JSON
        return "a .safetensors model (a LoRA or checkpoint?)"
    head = data[:65536]
    if b"\x00" in head or b"\x00" in data:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        half = len(head) // 2
        if half >= 2 and (odd > 0.9 * half > 9 * even or even > 0.9 * half > 9 * odd):  # ASCII as UTF-16
            return "UTF-16 text without a byte-order mark"
        return "a binary file (it contains NUL bytes)"
    if head and len(head.translate(None, _CONTROL)) < len(head) * 0.9:
        return "a binary file (it is mostly control characters)"
    return ""


def _first_nul(data: bytes, display: str) -> Location:
    at = data.find(b"\x00")
    if at < 0:
        return Location(display, 1, 1)
    return Location(display, data.count(b"\n", 0, at) + 1, at - (data.rfind(b"\n", 0, at) + 1) + 1)


# `2::entry`, `0.5 :: entry`: the weight syntax of `{2::a|b}` at the start of a .txt line. No published
# pack has a line starting so (checked over sd-dynamic-prompts' collections), so packs read as before.
_TXT_WEIGHT = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)[ \t]*::")
# What a weight was probably meant to be but cannot be: `-1::`, `1,5::`, `1.2.3::`. Kept as text, as
# dynamicprompts reads them, and said.
_TXT_WEIGHT_LIKE = re.compile(r"([-+]?[\d.,_]*\d[\d.,_eE+-]*)[ \t]*::")


def read_text_lines(text: str, display: str = "", warnings: Optional[List[Finding]] = None) -> Iterator[Entry]:
    """A .txt list: one entry per line, stripped; blank lines and `#` lines skipped; a line may start
    with a weight, `3::entry`. A weight over the limit is the file's error; one that is not a number
    (`-1::`, `1,5::`) leaves the line as text, with a warning in `warnings`."""
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        column = len(raw) - len(raw.lstrip()) + 1
        if "::" in line and (line[0].isdigit() or line[0] in ".-+"):
            weighted = _TXT_WEIGHT.match(line)
            if weighted:
                content = line[weighted.end():].lstrip()
                weight = _checked(float(weighted.group(1)), weighted.group(1), display, number, column)
                at = column + len(line) - len(content)
                yield Entry(content.rstrip(), weight, number, display, at)  # `3::` alone: a weighted "nothing"
                continue
            odd = _TXT_WEIGHT_LIKE.match(line)
            if odd and warnings is not None:
                problem = "is negative" if _negative(odd.group(1)) else "is not a number"
                warnings.append(Finding(Location(display, number, column), WARNING,
                                        f"weight {odd.group(1)!r} {problem}; the line is read as text "
                                        f"({_WEIGHT_HINT}, written like 2 or 0.5)"))
        yield Entry(line, 1.0, number, display, column)


def _negative(text: str) -> bool:
    try:
        return float(text) < 0
    except ValueError:
        return False


def structured_lists(root: Marked, stem: str, display: str,
                     warnings: List[Finding]) -> Iterator[Tuple[str, List[Entry]]]:
    value, line, _ = root
    if isinstance(value, dict) and _is_weight_map(value):
        yield stem, _weighted_entries(value, display)
    elif isinstance(value, dict):
        yield from _walk_map(value, (), display, warnings)
    elif isinstance(value, list):
        yield stem, list(_list_entries(value, display, warnings))
    elif value is not None:
        warnings.append(Finding(Location(display, line, 1), WARNING, "top level is neither a map nor a list; ignored"))


def _walk_map(mapping: Dict[str, Marked], prefix: Tuple[str, ...], display: str,
              warnings: List[Finding]) -> Iterator[Tuple[str, List[Entry]]]:
    """Recursive, but over at most structured.MAX_DEPTH levels."""
    for key, (value, line, column) in mapping.items():
        if value is None or value == [] or value == {} or value == "":
            continue
        name = "/".join(prefix + (key,))
        if isinstance(value, dict) and _is_weight_map(value):
            yield name, _weighted_entries(value, display)
            continue
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [(value, line, column)]
        if isinstance(value, list):
            yield name, list(_list_entries(value, display, warnings))
        elif isinstance(value, dict):
            yield from _walk_map(value, prefix + (key,), display, warnings)
        else:
            warnings.append(Finding(Location(display, line, 1), WARNING, f"key {name!r} has an unsupported value"))


def _is_weight_map(mapping: Dict[str, Marked]) -> bool:
    """`{red: 3, blue: 0.5}`: a list whose entries are the keys, weighted by the values. dynamicprompts
    ignores a number as a value, so no pack it reads means anything else by such a map."""
    return bool(mapping) and all(_is_number(v) for v, _, _ in mapping.values())


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, YamlNumber)) and not isinstance(value, bool)


def _weighted_entries(mapping: Dict[str, Marked], display: str) -> List[Entry]:
    return [Entry(str(key), _checked(_number(weight, display, line, column), str(weight), display, line, column),
                  line, display) for key, (weight, line, column) in mapping.items()]


def _number(value: object, display: str, line: int, column: int) -> float:
    """A JSON number, or the number a YAML 1.1 scalar stands for (`1_000`, `0x10`, `.inf`)."""
    if not isinstance(value, YamlNumber):
        return float(value)  # type: ignore[arg-type]
    text = value.replace("_", "").lower()
    special = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}
    try:
        return float(special.get(text, text))
    except ValueError:
        try:
            return float(int(text, 0))
        except ValueError:  # sexagesimal `1:30` and the like
            raise WildcardFileError(f"weight {value[:40]!r} is not a number", Location(display, line, column),
                                    _WEIGHT_HINT) from None


def _list_entries(items: List[Marked], display: str, warnings: List[Finding]) -> Iterator[Entry]:
    for item, line, column in items:
        if isinstance(item, bool) or item is None or item == "":
            continue
        if isinstance(item, (int, float, YamlNumber)):
            item = str(item)  # a plain str: the compiled sampler tells text from code by `type(x) is str`
        if isinstance(item, str):
            # dynamicprompts' shorthand: only when the item starts with a digit; the last `::` splits.
            if item[0].isdigit() and "::" in item:
                weight_text, _, content = item.rpartition("::")
                try:
                    weight = float(weight_text)
                except ValueError:  # "2::3::x": not a weight, the item is literal text
                    pass
                else:
                    yield Entry(content, _checked(weight, weight_text, display, line, column), line, display,
                                column + len(weight_text) + 2)
                    continue
            yield Entry(item, 1.0, line, display, column)
        elif isinstance(item, dict):
            content = item.get("text") or item.get("content") or (None, 0, 0)
            if isinstance(content[0], str) and content[0]:
                weight, w_line, w_column = item.get("weight", (1.0, line, column))
                try:
                    if isinstance(weight, bool):  # JSON true is no weight, though float(True) is 1
                        raise TypeError(weight)
                    number = float(weight)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise WildcardFileError(f"weight {str(weight)[:40]!r} is not a number",
                                            Location(display, w_line, w_column), _WEIGHT_HINT) from None
                yield Entry(str(content[0]), _checked(number, str(weight), display, w_line, w_column), line,
                            display, content[2] or 1)
                continue
            warnings.append(Finding(Location(display, line, 1), WARNING, "list item without text/content; ignored"))
        else:
            warnings.append(Finding(Location(display, line, 1), WARNING, "nested list inside a list; ignored"))


_WEIGHT_HINT = f"weights are numbers from 0 to {MAX_WEIGHT:,.0f}, relative to each other"


def _checked(weight: float, text: str, display: str, line: int, column: int) -> float:
    """A weight as read, or the error saying why not: an overflowing or NaN weight would reach the
    random sampler, whose sums must stay finite."""
    problem = weight_problem(weight)
    if problem:
        raise WildcardFileError(f"weight {text[:40]} {problem}", Location(display, line, column), _WEIGHT_HINT)
    return weight
