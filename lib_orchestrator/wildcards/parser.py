"""A hand-written parser for the dynamicprompts 0.31 template grammar, with its bugs fixed.

Differences from dynamicprompts, all deliberate (see README):
- `\\{ \\} \\| \\$ \\# \\% \\_` are escapes for the literal character; other backslashes pass through
  untouched, so A1111's `\\(` `\\)` `\\[` `\\]` survive.
- `$` and `%` are text unless they open `${` / `%{`; a lone `__` with no closing `__` on its line is text.
- `#` starts a comment only at the start of a line, or after whitespace when followed by whitespace or
  the end of the line: `#ff0000` and `#hashtag` are text.
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from ..errors import TemplateError
from .ast import (
    COMBINATORIAL,
    CYCLICAL,
    RANDOM,
    AnyNode,
    Option,
    Seq,
    Source,
    Text,
    VarGet,
    Variant,
    VarSet,
    Wildcard,
    Wrap,
)
from .options import MAX_WEIGHT, weight_problem

MAX_TEMPLATE_CHARS = 1_000_000
MAX_NESTING = 100

# Parsing contexts: which characters end the current sequence.
TOP, OPTION, VALUE, WRAPPER, PATH, PARAM = range(6)

_SPECIAL = {
    TOP: re.compile(r"[{$%_#\\/]"),
    OPTION: re.compile(r"[{}|$%_#\\/]"),
    VALUE: re.compile(r"[{}$%_#\\/]"),
    WRAPPER: re.compile(r"[{}$%_#\\/]"),
    PATH: re.compile(r"[{}$_#(\\\n]"),
    PARAM: re.compile(r"[{}$%_#\\/,)]"),
}
_ESCAPABLE = frozenset("{}|$#%_")
_SAMPLERS = frozenset((RANDOM, CYCLICAL, COMBINATORIAL))
_BOUND = re.compile(r"(\d+)?(-)?(\d+)?\$\$(?:([^${}\t\n\r\x0b\x0c]+)\$\$)?")
_WEIGHT = re.compile(r"([+-]?(?:\d+\.\d*|\.\d+|\d+))::")
_NAME = re.compile(r"[A-Za-z_-][A-Za-z0-9_-]*")
_WS = re.compile(r"[ \t\r\n]*")
_BOUNDARY_COMMENT = re.compile(r"[ \t\r\n]*(?://[^\n]*|/\*.*?\*/)", re.S)
_PARAMS = re.compile(r"[ \t]*\(([^)]*)\)")


def parse(text: str, source: str = "<template>", first_line: int = 1) -> AnyNode:
    """Parse template text into an AST; raises TemplateError with the location of the problem."""
    src = Source(source, text, first_line)
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"template is {len(text):,} characters, over the {MAX_TEMPLATE_CHARS:,} limit",
            src.location(0), "split it into wildcard files")
    return _Parser(src).parse_all()


def needs_parsing(text: str) -> bool:
    """False for plain text that parses to itself: the fast path for most wildcard lines."""
    return any(c in text for c in "{$%_#\\/")


class _Parser:
    def __init__(self, src: Source) -> None:
        self.src = src
        self.text = src.text
        self.depth = 0

    def error(self, message: str, pos: int, hint: str = "") -> TemplateError:
        return TemplateError(message, self.src.location(pos), hint)

    def parse_all(self) -> AnyNode:
        node, i = self.sequence(0, TOP)
        return node

    # A sequence: literal runs and constructs up to the character that ends `ctx`.
    def sequence(self, i: int, ctx: int) -> Tuple[AnyNode, int]:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nesting deeper than {MAX_NESTING} levels", i, "simplify the template")
        text, n, special = self.text, len(self.text), _SPECIAL[ctx]
        items: List[AnyNode] = []
        buf: List[str] = []
        buf_start = i
        at_boundary = True  # where dynamicprompts accepts `//` and `/* */` comments

        def add(piece: str, at: int) -> None:
            nonlocal buf_start
            if not buf:
                buf_start = at
            buf.append(piece)

        def flush() -> None:
            if buf:
                items.append(Text("".join(buf), src=self.src, pos=buf_start))
                buf.clear()

        while i < n:
            if at_boundary and ctx != PATH:
                m = _BOUNDARY_COMMENT.match(text, i)
                if m:
                    i = m.end()
                    continue
            m = special.search(text, i)
            if m is None:
                add(text[i:], i)
                i = n
                break
            j = m.start()
            if j > i:
                add(text[i:j], i)
                at_boundary = False
                i = j
            c = text[i]
            nxt = text[i + 1] if i + 1 < n else ""
            if c == "\\":
                add(nxt if nxt and nxt in _ESCAPABLE else text[i:i + 2], i)
                i += 2
                at_boundary = False
                continue
            if c == "|" or c == "}" or (c == "," and ctx == PARAM) or (c == ")" and ctx == PARAM):
                break
            if c == "(" and ctx == PATH:
                break
            if c == "\n":  # only special in PATH: a wildcard name never spans lines
                break
            if c == "{":
                flush()
                node, i = self.variant(i)
                items.append(node)
                at_boundary = True
                continue
            if c == "$":
                if nxt == "{":
                    flush()
                    node, i = self.variable(i, ctx)
                    items.append(node)
                    at_boundary = True
                    continue
                if nxt == "$" and ctx == WRAPPER:
                    break
            elif c == "%" and nxt == "{" and ctx != PATH:
                flush()
                node, i = self.wrap(i)
                items.append(node)
                at_boundary = True
                continue
            elif c == "_" and nxt == "_":
                if ctx == PATH:
                    break
                end = self.wildcard_end(i)
                if end is not None:
                    flush()
                    node, i = self.wildcard(i)
                    items.append(node)
                    at_boundary = True
                    continue
                add("__", i)
                i += 2
                at_boundary = False
                continue
            elif c == "#":
                if self.is_comment(i):
                    eol = text.find("\n", i)
                    i = n if eol < 0 else eol
                    continue
                if ctx == PATH:
                    raise self.error("'#' in a wildcard name", i, "write it as \\#")
            add(c, i)
            i += 1
            at_boundary = False
        flush()
        self.depth -= 1
        if len(items) == 1:
            return items[0], i
        if not items:
            return Text("", src=self.src, pos=i), i
        return Seq(tuple(items), src=self.src, pos=items[0].pos), i

    def is_comment(self, i: int) -> bool:
        text = self.text
        line_start = text.rfind("\n", 0, i) + 1
        if not text[line_start:i].strip():
            return True
        before, after = text[i - 1], text[i + 1:i + 2]
        return before in " \t" and (after == "" or after in " \t\r\n#")

    def wildcard_end(self, i: int) -> Optional[int]:
        """Where the `__` closing the wildcard opened at i is, if it is on the same line and a name
        stands between; otherwise the `__` is text (`a_b __c`, `_____` separators)."""
        close = self.text.find("__", i + 2)
        eol = self.text.find("\n", i + 2)
        if close < 0 or (0 <= eol < close) or not self.text[i + 2:close].strip():
            return None
        return close

    def variant(self, start: int) -> Tuple[AnyNode, int]:
        text = self.text
        i = _WS.match(text, start + 1).end()
        sampler = None
        if i < len(text) and text[i] in _SAMPLERS:
            sampler, i = text[i], i + 1
        lo, hi, sep, bounded = 1, 1, ",", False
        m = _BOUND.match(text, i)
        if m and (m.group(1) or m.group(3)):
            lower, dash, upper, sep_text = m.groups()
            bounded = True
            if sep_text is not None:
                sep = sep_text
            i = _WS.match(text, m.end()).end()
            if not dash:
                lo = hi = int(lower)
            else:
                lo = int(lower) if lower else 1
                hi = int(upper) if upper else -1  # -1: "all options", fixed below
        options: List[Option] = []
        while True:
            opt_start = i = _WS.match(text, i).end()
            weight = 1.0
            w = _WEIGHT.match(text, i)
            if w:
                weight = float(w.group(1))
                if weight < 0:
                    raise self.error(f"negative weight {w.group(1)}", i, "weights are 0 or more")
                problem = weight_problem(weight)  # 400 digits are a float of inf
                if problem:
                    raise self.error(f"weight {w.group(1)[:40]} {problem}", i,
                                     f"weights are relative: numbers from 0 to {MAX_WEIGHT:,.0f}")
                i = w.end()
            body, i = self.sequence(i, OPTION)
            options.append(Option(body, weight, src=self.src, pos=opt_start))
            if i >= len(text):
                raise self.error("'{' is never closed", start, "add '}' or write a literal brace as \\{")
            if text[i] == "}":
                i += 1
                break
            i += 1  # '|'
        if bounded and hi == -1:
            hi = len(options)
        lo, hi = sorted((lo, hi))
        return Variant(tuple(options), max(lo, 0), hi, sep, sampler, src=self.src, pos=start), i

    def variable(self, start: int, ctx: int) -> Tuple[AnyNode, int]:
        text = self.text
        i = _WS.match(text, start + 2).end()
        m = _NAME.match(text, i)
        if not m:
            raise self.error("expected a variable name after '${'", i,
                             "names are letters, digits, '_' and '-'; write a literal $ as \\$")
        name = m.group()
        i = _WS.match(text, m.end()).end()
        c = text[i:i + 1]
        if c == "}":
            default = Text(name, src=self.src, pos=start) if ctx == PATH else None
            return VarGet(name, default, src=self.src, pos=start), i + 1
        if c == ":":
            i = _WS.match(text, i + 1).end()
            default, i = self.sequence(i, VALUE)
            return VarGet(name, default, src=self.src, pos=start), self.expect_close(i, start)
        keep = False
        if c == "?" and text[i + 1:i + 2] == "=":
            keep, i, c = True, i + 1, "="
        if c == "=" and ctx != PATH:
            i += 1
            immediate = text[i:i + 1] == "!"
            if immediate:
                i += 1
            i = _WS.match(text, i).end()
            value, i = self.sequence(i, VALUE)
            return (VarSet(name, value, immediate, keep, src=self.src, pos=start),
                    self.expect_close(i, start))
        raise self.error(f"unexpected {c!r} in variable '{name}'" if c else "'${' is never closed", i,
                         "use ${name}, ${name:default}, ${name=value} or ${name=!value}")

    def expect_close(self, i: int, start: int) -> int:
        if i >= len(self.text) or self.text[i] != "}":
            raise self.error("'{' is never closed", start, "add '}'")
        return i + 1

    def wrap(self, start: int) -> Tuple[AnyNode, int]:
        text = self.text
        i = _WS.match(text, start + 2).end()
        wrapper, i = self.sequence(i, WRAPPER)
        if text[i:i + 2] != "$$":
            raise self.error("wrap needs '$$' between the wrapper and the text", start,
                             "write %{prefix ... suffix$$text}; a literal % needs no escape")
        i = _WS.match(text, i + 2).end()
        inner, i = self.sequence(i, VALUE)
        return Wrap(wrapper, inner, src=self.src, pos=start), self.expect_close(i, start)

    def wildcard(self, start: int) -> Tuple[AnyNode, int]:
        text = self.text
        i = start + 2
        sampler = None
        if text[i:i + 1] in _SAMPLERS and text[i:i + 1]:
            sampler, i = text[i], i + 1
        path, i = self.sequence(i, PATH)
        if isinstance(path, Text) and not path.text.strip():
            raise self.error("empty wildcard name", start, "write __name__; a literal __ is \\_\\_")
        params: Tuple[Tuple[str, AnyNode], ...] = ()
        m = _PARAMS.match(text, i)
        if m:
            params = self.params(m.start(1), m.end(1))
            i = m.end()
        if text[i:i + 2] != "__":
            raise self.error("wildcard is never closed", start, "close it with __")
        return Wildcard(path, sampler, params, src=self.src, pos=start), i + 2

    def params(self, i: int, end: int) -> Tuple[Tuple[str, AnyNode], ...]:
        out = []
        text = self.text
        while i < end:
            eq = text.find("=", i, end)
            comma = text.find(",", i, end)
            if eq < 0 or (0 <= comma < eq):
                raise self.error("wildcard parameter without '='", i, "write __name(key=value)__")
            key = text[i:eq].strip()
            if not _NAME.fullmatch(key):
                raise self.error(f"bad parameter name {key!r}", i, "names are letters, digits, '_', '-'")
            j = _WS.match(text, eq + 1).end()
            value, j = self.sequence(j, PARAM)
            if isinstance(value, Text):
                value = Text(value.text.rstrip(), src=value.src, pos=value.pos)
            out.append((key, value))
            i = j + 1 if j < end and text[j] == "," else j
            if j < end and text[j] not in ",)":
                raise self.error("unexpected text in wildcard parameters", j)
            if j >= end:
                break
        return tuple(out)
