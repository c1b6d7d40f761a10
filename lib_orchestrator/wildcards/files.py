"""Reading wildcard files (.txt, .yaml/.yml, .json) into named lists of entries.

Reading never drops bytes silently: UTF-8 (with or without BOM) and UTF-16 with a BOM are decoded;
anything else is decoded as cp1252/latin-1 with a warning. Structure follows dynamicprompts: nested
maps become `a/b/c` names, top-level keys are not prefixed by the file name, a flat top-level list is
named after the file.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from ..errors import Location, WildcardFileError, yaml_error
from .diagnostics import WARNING, Finding

WILDCARD_SUFFIXES = (".txt", ".yaml", ".yml", ".json")
MAX_FILE_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One line of a wildcard list: its text, relative weight and the line it was written on."""

    text: str
    weight: float = 1.0
    line: int = 0
    source: str = field(default="", compare=False)


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
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise WildcardFileError(f"wildcard file is {size:,} bytes, over the {MAX_FILE_BYTES:,} limit",
                                Location(display, 1, 1), "split it into smaller files")
    with open(path, "rb") as fh:
        data = fh.read()
    text, problem = decode(data, path)
    warnings: List[Finding] = []
    if problem:
        warnings.append(Finding(Location(display, 1, 1), WARNING, problem))
    if "\x00" in text:
        warnings.append(Finding(Location(display, 1, 1), WARNING, "contains NUL characters; they were removed"))
        text = text.replace("\x00", "")
    stem, suffix = os.path.splitext(os.path.basename(path))
    if suffix == ".txt":
        return ReadResult({stem: list(read_text_lines(text, display))}, tuple(warnings))
    if suffix == ".json":
        try:
            data_obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WildcardFileError(f"invalid JSON: {exc.msg}", Location(display, exc.lineno, exc.colno),
                                    "fix the JSON syntax (trailing commas and comments are not allowed)") from None
        lists = dict(structured_lists(_plain(data_obj, _LineFinder(text)), stem, display, warnings))
    else:
        lists = dict(structured_lists(_yaml_tree(text, display), stem, display, warnings))
    return ReadResult(lists, tuple(warnings))


def read_text_lines(text: str, display: str = "") -> Iterator[Entry]:
    """A .txt list: one entry per line, stripped; blank lines and `#` lines skipped."""
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield Entry(line, 1.0, number, display)


# A structured value with the line it started on: (value, line).
Marked = Tuple[object, int]


class _LineFinder:
    """Lines of JSON values: the json module gives none, so each string is found after the last one."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.cursor = 0

    def line_of(self, value: object) -> int:
        for encoded in (json.dumps(value, ensure_ascii=False), json.dumps(value)):
            found = self.text.find(encoded, self.cursor)
            if found >= 0:
                self.cursor = found + len(encoded)
                return self.text.count("\n", 0, found) + 1
        return self.text.count("\n", 0, self.cursor) + 1


def _plain(obj: object, lines: _LineFinder) -> Marked:
    if isinstance(obj, dict):
        out: Dict[str, Marked] = {}
        first = 0
        for k, v in obj.items():
            line = lines.line_of(k)
            first = first or line
            value, inner = _plain(v, lines)
            out[str(k)] = (value, inner if isinstance(value, (str, int, float)) else line)
        return out, first or 1
    if isinstance(obj, list):
        items = [_plain(v, lines) for v in obj]
        return items, items[0][1] if items else 1
    return obj, lines.line_of(obj)


def _yaml_tree(text: str, display: str) -> Marked:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - Forge and the test suite ship PyYAML
        raise WildcardFileError("YAML wildcards need PyYAML", Location(display, 1, 1),
                                "pip install pyyaml") from exc
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        root = yaml.compose(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, display, "fix the YAML syntax", WildcardFileError) from None
    if root is None:
        return None, 1
    return _from_yaml_node(root, 0)


def _from_yaml_node(node: object, depth: int) -> Marked:
    """Values keep their source text: `1990` stays "1990" and `1.10` stays "1.10"."""
    import yaml

    line = node.start_mark.line + 1  # type: ignore[attr-defined]
    if depth > 64:
        return None, line
    if isinstance(node, yaml.MappingNode):
        out: Dict[str, Marked] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                out[key.value] = _from_yaml_node(value, depth + 1)
        return out, line
    if isinstance(node, yaml.SequenceNode):
        return [_from_yaml_node(v, depth + 1) for v in node.value], line
    if node.tag == "tag:yaml.org,2002:null":  # type: ignore[attr-defined]
        return None, line
    if getattr(node, "style", None) in ("|", ">"):
        line += 1  # a block scalar's text starts on the next line
    return node.value, line  # type: ignore[attr-defined]


def structured_lists(root: Marked, stem: str, display: str,
                     warnings: List[Finding]) -> Iterator[Tuple[str, List[Entry]]]:
    value, line = root
    if isinstance(value, dict):
        yield from _walk_map(value, (), display, warnings)
    elif isinstance(value, list):
        yield stem, list(_list_entries(value, display, warnings))
    elif value is not None:
        warnings.append(Finding(Location(display, line, 1), WARNING, "top level is neither a map nor a list; ignored"))


def _walk_map(mapping: Dict[str, Marked], prefix: Tuple[str, ...], display: str,
              warnings: List[Finding]) -> Iterator[Tuple[str, List[Entry]]]:
    for key, (value, line) in mapping.items():
        if value is None or value == [] or value == {} or value == "":
            continue
        name = "/".join(prefix + (key,))
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [(value, line)]
        if isinstance(value, list):
            yield name, list(_list_entries(value, display, warnings))
        elif isinstance(value, dict):
            yield from _walk_map(value, prefix + (key,), display, warnings)
        else:
            warnings.append(Finding(Location(display, line, 1), WARNING, f"key {name!r} has an unsupported value"))


def _list_entries(items: List[Marked], display: str, warnings: List[Finding]) -> Iterator[Entry]:
    for item, line in items:
        if isinstance(item, bool) or item is None or item == "":
            continue
        if isinstance(item, (int, float)):
            item = str(item)
        if isinstance(item, str):
            # dynamicprompts' shorthand: only when the item starts with a digit; the last `::` splits.
            if item[0].isdigit() and "::" in item:
                weight_text, _, content = item.rpartition("::")
                try:
                    yield Entry(content, _weight(weight_text), line, display)
                    continue
                except ValueError:
                    pass
            yield Entry(item, 1.0, line, display)
        elif isinstance(item, dict):
            content = item.get("text") or item.get("content") or (None, 0)
            weight = item.get("weight", (1, 0))[0]
            if isinstance(content[0], str) and content[0]:
                try:
                    yield Entry(content[0], _weight(str(weight)), line, display)
                    continue
                except ValueError:
                    pass
            warnings.append(Finding(Location(display, line, 1), WARNING, "list item without text/content; ignored"))
        else:
            warnings.append(Finding(Location(display, line, 1), WARNING, "nested list inside a list; ignored"))


def _weight(text: str) -> float:
    weight = float(text)
    if not weight >= 0 or weight == float("inf"):
        raise ValueError(text)
    return weight
