"""YAML and JSON wildcard files as plain trees, read within fixed bounds.

Wildcard folders are shared and downloaded, so a file may be hostile: a 15-byte YAML alias that contains
itself (`r: &r [*r, *r]`) makes any recursive walk endless, 500 bytes of nested aliases ("billion
laughs") expand to billions of values, and 100,000 nested JSON brackets exhaust Python's stack inside
json.loads. So YAML is read here from the parser's events, without recursion: an alias used inside the
node it names is refused, what aliases add is counted against MAX_ALIAS_VALUES, and nesting is capped at
MAX_DEPTH; JSON's nesting is measured before json.loads sees the text. Every refusal is a
WildcardFileError at the place in the file, with what to do.

Trees are `Marked` triples (value, line, column), 1-based; values are dicts, lists, strings (YAML keeps
each scalar's source text: `1990` stays "1990"), JSON numbers, or None for null.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Tuple

from ..bounded_json import MAX_DEPTH, JsonLimitError, check_bounds
from ..errors import Location, WildcardFileError, yaml_error

# MAX_DEPTH, 64 levels for YAML and JSON alike: the old reader's silent cut-off, now an error. Real packs use a
# handful; nothing a prompt can name needs more, since every level becomes one `/` of a wildcard name.
# What YAML aliases may add to a file, in values (scalars and containers). A pack that reuses a list of
# 200 colours in 50 places adds 10,000; the 531-byte billion-laughs file is refused after 100,000
# values, in milliseconds and a few megabytes, instead of 10^9 values and gigabytes.
MAX_ALIAS_VALUES = 100_000
# Values (scalars and containers, aliases expanded) in one file: each costs ~200 bytes as a tree and an
# entry, so a million stay within a few hundred MB; files.MAX_STRUCTURED_BYTES of `[],` would be five
# million.
MAX_VALUES = 1_000_000

Marked = Tuple[Any, int, int]
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class YamlNumber(str):
    """A scalar YAML reads as a number (`3`, `0.5`, unquoted): its text wherever text is wanted (a list
    item `- 1990`), a weight where a number is (`red: 3` in an entry → weight map)."""

    __slots__ = ()

_DEPTH_HINT = "flatten the file: wildcard names are at most a few folders deep"


def too_deep(display: str, line: int, column: int) -> WildcardFileError:
    return WildcardFileError(f"nested deeper than {MAX_DEPTH} levels", Location(display, line, column), _DEPTH_HINT)


def too_many(display: str, line: int, column: int) -> WildcardFileError:
    return WildcardFileError(f"holds over {MAX_VALUES:,} values", Location(display, line, column),
                             "split it into smaller files")


# -- YAML ------------------------------------------------------------------------------------------


def yaml_tree(text: str, display: str) -> Marked:
    """The single document of a YAML file; (None, 1, 1) when it is empty."""
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - Forge and the test suite ship PyYAML
        raise WildcardFileError("YAML wildcards need PyYAML", Location(display, 1, 1), "pip install pyyaml") from exc
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        return _YamlTree(display).build(loader)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, display, "fix the YAML syntax", WildcardFileError) from None
    finally:
        loader.dispose()


class _Open:
    """A mapping or sequence whose end event has not come yet."""

    __slots__ = ("value", "line", "column", "anchor", "is_map", "key", "size", "height")

    def __init__(self, is_map: bool, line: int, column: int, anchor: Optional[str]) -> None:
        self.is_map = is_map
        self.value: Any = {} if is_map else []
        self.line, self.column, self.anchor = line, column, anchor
        self.key: Any = _NO_KEY
        self.size = 1  # values in the expanded subtree, itself included
        self.height = 1  # levels of containers, itself included


_NO_KEY = object()  # a mapping waiting for its next key
_SKIP = object()  # a key that is not a scalar: the old reader dropped such pairs, and so do we
_OPEN = object()  # an anchor whose node is still being read


class _YamlTree:
    def __init__(self, display: str) -> None:
        self.display = display
        # anchor -> (tree, the scalar's source text or None, size, height), or _OPEN
        self.anchors: Dict[str, Any] = {}
        self.stack: List[_Open] = []
        self.root: Marked = (None, 1, 1)
        self.aliased = 0
        self.values = 0

    def build(self, loader: Any) -> Marked:
        import yaml
        from yaml.resolver import Resolver

        resolver = Resolver()  # the composer's implicit tags: only null matters here
        first_document = None
        while loader.check_event():
            event = loader.get_event()
            kind = event.__class__
            mark = event.start_mark
            if kind is yaml.ScalarEvent:
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
                line = mark.line + 1 + (1 if event.style in ("|", ">") else 0)  # a block's text starts below
                value = None if tag == "tag:yaml.org,2002:null" else \
                    YamlNumber(event.value) if tag in _NUMBER_TAGS else event.value
                self._anchor(event.anchor, mark)
                done = ((value, line, mark.column + 1), event.value, 1, 0)
                if event.anchor:
                    self.anchors[event.anchor] = done
                self._add(*done)
            elif kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                if len(self.stack) >= MAX_DEPTH:
                    raise too_deep(self.display, mark.line + 1, mark.column + 1)
                self._anchor(event.anchor, mark)
                if event.anchor:
                    self.anchors[event.anchor] = _OPEN
                self.stack.append(_Open(kind is yaml.MappingStartEvent, mark.line + 1, mark.column + 1, event.anchor))
            elif kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                node = self.stack.pop()
                done = ((node.value, node.line, node.column), None, node.size, node.height)
                if node.anchor:
                    self.anchors[node.anchor] = done
                self._add(*done)
            elif kind is yaml.AliasEvent:
                self._alias(event.anchor, mark)
            elif kind is yaml.DocumentStartEvent:
                if first_document is not None:  # what yaml.compose says about a second document
                    raise yaml.composer.ComposerError("expected a single document in the stream", first_document,
                                                      "but found another document", mark)
                first_document = mark
                self.anchors = {}
        return self.root

    def _anchor(self, anchor: Optional[str], mark: Any) -> None:
        if anchor and anchor in self.anchors:  # as the composer refuses it
            import yaml

            raise yaml.composer.ComposerError(None, None, f"found duplicate anchor {anchor!r}", mark)

    def _alias(self, anchor: str, mark: Any) -> None:
        import yaml

        found = self.anchors.get(anchor)
        where = Location(self.display, mark.line + 1, mark.column + 1)
        if found is None:
            raise yaml.composer.ComposerError(None, None, f"found undefined alias {anchor!r}", mark)
        if found is _OPEN:
            raise WildcardFileError(f"alias *{anchor} is used inside the node it names (a recursive alias)", where,
                                    f"an alias may only repeat a node that is complete; remove *{anchor} there")
        tree, text, size, height = found
        self.aliased += size
        if self.aliased > MAX_ALIAS_VALUES:
            raise WildcardFileError(f"aliases expand to over {MAX_ALIAS_VALUES:,} values", where,
                                    "write the lists out, or use a wildcard (__name__) to reuse one")
        if len(self.stack) + height > MAX_DEPTH:
            raise too_deep(self.display, where.line, where.column)
        self._add(tree, text, size, height, size)

    def _add(self, tree: Marked, key_text: Optional[str], size: int, height: int, new: int = 1) -> None:
        """Put a finished value into the open container (or make it the document); `new` values are
        counted against MAX_VALUES: 1, or for an alias every value it repeats."""
        self.values += new
        if self.values > MAX_VALUES:
            raise too_many(self.display, tree[1], tree[2])
        if not self.stack:
            self.root = tree
            return
        top = self.stack[-1]
        top.size += size
        if height + 1 > top.height:
            top.height = height + 1
        if not top.is_map:
            top.value.append(tree)
        elif top.key is _NO_KEY:
            top.key = key_text if key_text is not None else _SKIP
        else:
            if top.key is not _SKIP:
                top.value[top.key] = tree
            top.key = _NO_KEY


# -- JSON ------------------------------------------------------------------------------------------

_JSON_NUMBER = re.compile(r"-?(?:Infinity|NaN|\d[\d.eE+-]*)")


def json_tree(text: str, display: str) -> Marked:
    _check_json_depth(text, display)
    try:
        obj = json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise WildcardFileError(f"invalid JSON: {exc.msg}", Location(display, exc.lineno, exc.colno),
                                "fix the JSON syntax (trailing commas and comments are not allowed)") from None
    return _plain(obj, _Positions(text))


def _json_int(digits: str) -> Any:
    # Python refuses to convert ints of over 4,300 digits (a ValueError, not a JSONDecodeError); the
    # text is what a wildcard wants anyway.
    return int(digits) if len(digits) < 100 else digits


def _check_json_depth(text: str, display: str) -> None:
    """json.loads recurses once per bracket and builds every value before we see one: the nesting and the
    number of values are measured first (bounded_json), a refusal placed at its bracket."""
    try:
        check_bounds(text, len(text.encode("utf-8", "surrogatepass")) + 1, MAX_VALUES)
    except JsonLimitError as exc:
        if exc.offset is None:
            raise too_many(display, 1, 1) from None
        raw = text.encode("utf-8", "surrogatepass")
        start = raw.rfind(b"\n", 0, exc.offset) + 1
        column = len(raw[start:exc.offset].decode("utf-8", "replace")) + 1
        raise too_deep(display, raw.count(b"\n", 0, exc.offset) + 1, column) from None
    except ValueError:
        return  # brackets that cannot be JSON: json.loads says where


class _Positions:
    """Where JSON values are: the json module gives no positions, so each is found after the last one."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.cursor = 0
        self.line = 1  # the line at the cursor, kept as it moves: counting from the start is quadratic
        self.line_start = 0

    def of(self, value: object) -> Tuple[int, int]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # 1e999 is inf, dumped "Infinity"
            m = _JSON_NUMBER.search(self.text, self.cursor)
            if m:
                self._move(m.start())
                self.cursor = m.end()
                return self.line, m.start() - self.line_start + 1
        for encoded in (json.dumps(value, ensure_ascii=False), json.dumps(value)):
            found = self.text.find(encoded, self.cursor)
            if found >= 0:
                self._move(found)
                self.cursor = found + len(encoded)
                return self.line, found - self.line_start + 1
        return self.line, self.cursor - self.line_start + 1

    def _move(self, pos: int) -> None:
        newlines = self.text.count("\n", self.cursor, pos)
        if newlines:
            self.line += newlines
            self.line_start = self.text.rfind("\n", self.cursor, pos) + 1


def _plain(obj: object, where: _Positions) -> Marked:
    """Nesting is at most MAX_DEPTH here, so recursion is bounded."""
    if isinstance(obj, dict):
        out: Dict[str, Marked] = {}
        first: Optional[Tuple[int, int]] = None
        for k, v in obj.items():
            at = where.of(k)
            first = first or at
            value, line, column = _plain(v, where)
            out[str(k)] = (value, line, column) if isinstance(value, (str, int, float)) else (value, *at)
        return (out, *(first or (1, 1)))
    if isinstance(obj, list):
        items = [_plain(v, where) for v in obj]
        return (items, *(items[0][1:] if items else (1, 1)))
    return (obj, *where.of(obj))
