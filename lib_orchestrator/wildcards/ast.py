"""The template AST: small frozen records, each knowing where it came from.

Positions (`src`, `pos`) take no part in equality, so two options that read the same are equal
wherever they were written; that is what combinatorial de-duplication compares.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

from ..errors import Location

# Sampler prefixes, as dynamicprompts spells them.
RANDOM = "~"
CYCLICAL = "@"
COMBINATORIAL = "!"


@dataclass(frozen=True)
class Source:
    """Where a piece of template text lives: a file (with the line it starts on) or the prompt box."""

    name: str
    text: str = field(repr=False)
    first_line: int = 1

    def location(self, pos: int) -> Location:
        line_start = self.text.rfind("\n", 0, pos) + 1
        line_end = self.text.find("\n", pos)
        if line_end < 0:
            line_end = len(self.text)
        line = self.first_line + self.text.count("\n", 0, pos)
        return Location(self.name, line, pos - line_start + 1, self.text[line_start:line_end].rstrip("\r"))


@dataclass(frozen=True)
class Node:
    src: Optional[Source] = field(default=None, compare=False, repr=False, kw_only=True)
    pos: int = field(default=0, compare=False, repr=False, kw_only=True)

    def location(self) -> Optional[Location]:
        return self.src.location(self.pos) if self.src else None


@dataclass(frozen=True)
class Text(Node):
    text: str


@dataclass(frozen=True)
class Seq(Node):
    items: Tuple["AnyNode", ...]


@dataclass(frozen=True)
class Option(Node):
    body: "AnyNode"
    weight: float = 1.0


@dataclass(frozen=True)
class Variant(Node):
    """`{lo-hi$$sep$$a|b|c}`: bounds are as written, clamped to the option count when sampled."""

    options: Tuple[Option, ...]
    lo: int = 1
    hi: int = 1
    sep: str = ","
    sampler: Optional[str] = None


@dataclass(frozen=True)
class Wildcard(Node):
    """`__path(k=v)__`; the path may itself hold variants and variables."""

    path: "AnyNode"
    sampler: Optional[str] = None
    params: Tuple[Tuple[str, "AnyNode"], ...] = ()


@dataclass(frozen=True)
class VarSet(Node):
    """`${name=value}`, `${name=!value}` (immediate), `${name?=value}` (keep an existing value)."""

    name: str
    value: "AnyNode"
    immediate: bool = False
    keep_existing: bool = False


@dataclass(frozen=True)
class VarGet(Node):
    """`${name}` or `${name:default}`."""

    name: str
    default: Optional["AnyNode"] = None


@dataclass(frozen=True)
class Wrap(Node):
    """`%{prefix ... suffix $$ inner}`."""

    wrapper: "AnyNode"
    inner: "AnyNode"


AnyNode = Union[Text, Seq, Variant, Wildcard, VarSet, VarGet, Wrap]

EMPTY = Text("")


def static_text(node: AnyNode) -> Optional[str]:
    """The node's text when it has no syntax at all, else None."""
    if isinstance(node, Text):
        return node.text
    return None
