"""The template AST: small frozen records, each knowing where it came from.

Positions (`src`, `pos`) take no part in equality, so two options that read the same are equal
wherever they were written; that is what combinatorial de-duplication compares.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
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


def record(cls: type) -> type:
    """@dataclass(frozen=True) for AST nodes, with Node's equality and hash instead of the generated ones."""
    cls = dataclass(frozen=True, eq=False)(cls)
    cls._keys = tuple(f.name for f in fields(cls) if f.compare)  # type: ignore[attr-defined]
    return cls


@dataclass(frozen=True, eq=False)
class Node:
    """Equal when they read the same. The hash is computed once, when the node is made: its children
    exist by then and hold theirs, so neither hashing nor comparing walks down a deep tree recursively
    (the generated methods did: a template nested a few hundred levels was a RecursionError)."""

    src: Optional[Source] = field(default=None, compare=False, repr=False, kw_only=True)
    pos: int = field(default=0, compare=False, repr=False, kw_only=True)
    _keys = ()  # the fields that take part in equality, set by @record

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((type(self).__name__,) + tuple(getattr(self, k) for k in self._keys)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined,no-any-return]

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, Node):
            return NotImplemented
        pending: list = [(self, other)]
        while pending:
            a, b = pending.pop()
            if a is b:
                continue
            if isinstance(a, Node):
                if b.__class__ is not a.__class__ or a._hash != b._hash:  # type: ignore[attr-defined]
                    return False
                pending.extend((getattr(a, k), getattr(b, k)) for k in a._keys)
            elif isinstance(a, tuple):
                if not isinstance(b, tuple) or len(a) != len(b):
                    return False
                pending.extend(zip(a, b))
            elif a != b:
                return False
        return True

    def location(self) -> Optional[Location]:
        return self.src.location(self.pos) if self.src else None


@record
class Text(Node):
    text: str


@record
class Seq(Node):
    items: Tuple["AnyNode", ...]


@record
class Option(Node):
    body: "AnyNode"
    weight: float = 1.0


@record
class Variant(Node):
    """`{lo-hi$$sep$$a|b|c}`: bounds are as written, clamped to the option count when sampled."""

    options: Tuple[Option, ...]
    lo: int = 1
    hi: int = 1
    sep: str = ","
    sampler: Optional[str] = None


@record
class Wildcard(Node):
    """`__path(k=v)__`; the path may itself hold variants and variables."""

    path: "AnyNode"
    sampler: Optional[str] = None
    params: Tuple[Tuple[str, "AnyNode"], ...] = ()


@record
class VarSet(Node):
    """`${name=value}`, `${name=!value}` (immediate), `${name?=value}` (keep an existing value)."""

    name: str
    value: "AnyNode"
    immediate: bool = False
    keep_existing: bool = False


@record
class VarGet(Node):
    """`${name}` or `${name:default}`."""

    name: str
    default: Optional["AnyNode"] = None


@record
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
