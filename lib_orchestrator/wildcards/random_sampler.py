"""Random sampling by compiling a template to Python source: one function per template.

The per-image state `s` lives in a local variable; each draw is the LCG step of rng.py inlined, then a
tuple index. Plain wildcard lines stay strings. A few options with syntax are inlined as branches; past
that, they compile to small functions `(s, scope) -> (text, s)`, called only when picked.

Scopes (`v`) are dicts of variables; keys starting with `#` are the engine's own: `#c` the cyclical
counter, `#s` the variables being sampled, `#d` the dynamic wildcard depth.
"""
from __future__ import annotations

import re
import threading
from ast import literal_eval
from bisect import bisect_right
from itertools import accumulate
from math import isfinite
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import TemplateError
from . import rng
from .ast import (
    CYCLICAL,
    AnyNode,
    Seq,
    Text,
    VarGet,
    Variant,
    VarSet,
    Wildcard,
    Wrap,
)
from .nesting import MAX_NESTING, Nesting, too_nested
from .options import all_zero, single_wildcard
from .resolve import (
    MAX_PROMPT_CHARS,
    MAX_WILDCARD_DEPTH,
    Resolver,
    cycle_error,
    self_referencing_variable,
    too_deep,
    too_long,
    undefined_variable,
)
from .wrap import wrap_text

MAX_INLINE_OPTIONS = 4  # composite options of one choice inlined as branches; more become calls
MAX_INLINE_INDENT = 8  # and no deeper than this, so generated functions stay small

Unit = Any  # a str, or a callable (s, scope) -> (text, s)
PromptFn = Callable[[int], str]


class RandomCompiler:
    """Compiles AST nodes to Python functions; caches wildcards so each is compiled once."""

    def __init__(self, resolver: Resolver, cyclical: Optional[Callable[..., Tuple[str, int]]] = None) -> None:
        self.resolver = resolver
        self.cyclical = cyclical  # the cyclical sampler, for `@` nodes met in random mode
        self.ns: Dict[str, Any] = {
            "bisect": bisect_right, "GET": self._get_var, "DYN": self._dynamic,
            "WRAP": wrap_text, "CYC": self._cyclical,
        }
        self._units: Dict[int, Unit] = {}
        self._wildcards: Dict[str, Tuple[Tuple[Unit, ...], Tuple[float, ...]]] = {}
        self._pickers: Dict[str, Any] = {}  # dynamic wildcard paths: pattern -> picking function
        self._compiling: List[str] = []  # the wildcards being compiled, for cycles: guarded by _lock
        self._n = 0
        self._lock = threading.RLock()
        self.nesting = Nesting(resolver)

    # -- public ------------------------------------------------------------------------------
    def compile(self, node: AnyNode) -> PromptFn:
        """A function seed -> prompt."""
        with self._lock:
            self._checked(node)
            return self._compile(node)

    def _checked(self, node: AnyNode) -> None:
        """Nesting, cycles and depth first, without recursion (nesting.py); then what the node holds is
        compiled deepest first, the wildcards it reaches and then its own parts that become functions,
        so that compiling one part finds the parts inside it done: the compiler recurses only through
        what it writes inline, a few levels, not once per level of nesting."""
        for pattern, at in self.nesting.check(node):
            self._wildcard(pattern, at)
        units: List[AnyNode] = []
        stack = [node]
        while stack:  # parents before children; reversed below
            for part, own_unit in _parts(stack.pop()):
                if part.__class__ is not Text and id(part) not in self._units:
                    if own_unit:
                        units.append(part)
                    stack.append(part)
        for part in reversed(units):
            self._unit(part)

    def _compile(self, node: AnyNode) -> PromptFn:
        lines: List[str] = []
        expr = self._emit(node, lines, 1, own_scope=True)
        head = [" " + rng.SEED_SRC]
        if any("v" in _names(line) for line in lines):  # the scope dict only when something reads it
            # `#h`: nesting so far, from the template's own height (nesting.py)
            head.append(f" v = {{'#c': seed, '#h': {self.nesting.height(node)}}}")
        return self._define("prompt", "seed", head + lines, expr)  # type: ignore[no-any-return]

    def _define(self, prefix: str, params: str, lines: List[str], result: str) -> Any:
        """Compile a function whose constants arrive as closure cells: faster than globals."""
        name = self._fresh(prefix)
        used = sorted({n for line in lines + [result] for n in _names(line)} & self.ns.keys())
        src = (f"def make_{name}({', '.join(used)}):\n def {name}({params}):\n"
               + "\n".join(" " + line for line in lines) + f"\n  return {result}\n return {name}\n")
        scope: Dict[str, Any] = {}
        exec(compile(src, f"<template {name}>", "exec"), scope)
        return scope[f"make_{name}"](*(self.ns[n] for n in used))

    def unit(self, node: AnyNode) -> Unit:
        """A str for plain text, else a function (s, scope) -> (text, s)."""
        if isinstance(node, Text):
            return node.text
        found = self._units.get(id(node))
        if found is not None:
            return found
        with self._lock:  # the cyclical and combinatorial samplers ask for units while they run
            self._checked(node)
            return self._unit(node)

    def _unit(self, node: AnyNode) -> Unit:
        key = id(node)
        found = self._units.get(key)
        if found is not None:
            return found
        lines: List[str] = []
        expr = self._emit(node, lines, 1, own_scope=True)
        fn = self._define("u", "s, v", lines, f"{expr}, s")
        fn.node = node  # keeps id(node) valid for the cache
        self._units[key] = fn
        return fn

    # -- emission: append statements to `lines`, return an expression for the node's text --------
    def _fresh(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def _const(self, value: Any) -> str:
        name = self._fresh("K")
        self.ns[name] = value
        return name

    def _emit(self, node: AnyNode, lines: List[str], ind: int, own_scope: bool = False) -> str:
        pad = " " * ind
        if isinstance(node, Text):
            return repr(node.text)
        if isinstance(node, Seq):
            sets = [i for i in node.items if isinstance(i, VarSet)]
            if sets and not own_scope:  # its variables must not leak into its siblings
                return self._call(self.unit(node), lines, ind)
            for vs in sets:
                self._emit_set(vs, lines, ind)
            parts = [self._emit(i, lines, ind) for i in node.items if not isinstance(i, VarSet)]
            parts = [self._simple(p, lines, ind) for p in parts if p != "''"]
            if not parts:
                return "''"
            if len(parts) == 1:
                return parts[0]
            return _fstring(parts)
        if isinstance(node, VarSet):
            if own_scope:
                self._emit_set(node, lines, ind)
            return "''"
        if isinstance(node, Variant):
            return self._emit_variant(node, lines, ind)
        if isinstance(node, Wildcard):
            return self._emit_wildcard(node, lines, ind)
        if isinstance(node, VarGet):
            x = self._fresh("x")
            default = self._const(None if node.default is None else self.unit(node.default))
            # A value already drawn (an immediate variable's) is text: read in place, without a call
            lines.append(f"{pad}{x} = v.get({node.name!r}, {default})")
            lines.append(f"{pad}if {x}.__class__ is not str: {x}, s = GET({node.name!r}, {default}, s, v, "
                         f"{self._const(node)})")
            return x
        if isinstance(node, Wrap):
            w = self._emit(node.wrapper, lines, ind)
            i = self._emit(node.inner, lines, ind)
            if w[0] in "'\"":  # a wrapper without syntax: where the inner text goes is known now
                return self._emit_wrapped(literal_eval(w), i, lines, ind)
            return f"WRAP({w}, {i})"
        raise TypeError(node)  # pragma: no cover

    def _emit_wrapped(self, wrapper: str, inner: str, lines: List[str], ind: int) -> str:
        """wrap_text(wrapper, inner) for a literal wrapper, as the text around the inner one."""
        if inner[0] in "'\"":
            return repr(wrap_text(wrapper, literal_eval(inner)))
        mark = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in wrapper)  # a private-use character
        before, after = wrap_text(wrapper, mark).split(mark)
        parts = [p for p in (repr(before), self._simple(inner, lines, ind), repr(after)) if p != "''"]
        return parts[0] if len(parts) == 1 else _fstring(parts)

    def _simple(self, expr: str, lines: List[str], ind: int) -> str:
        """A literal or a name, as f-string parts must be (an f-string cannot nest another before 3.12)."""
        if expr.isidentifier() or expr[0] in "'\"":
            return expr
        x = self._fresh("x")
        lines.append(f"{' ' * ind}{x} = {expr}")
        return x

    def _call(self, unit: Unit, lines: List[str], ind: int, scope: str = "v") -> str:
        if isinstance(unit, str):
            return repr(unit)
        x = self._fresh("x")
        lines.append(f"{' ' * ind}{x}, s = {self._const(unit)}(s, {scope})")
        return x

    def _emit_set(self, node: VarSet, lines: List[str], ind: int) -> None:
        pad = " " * ind
        if node.keep_existing:
            lines.append(f"{pad}if {node.name!r} not in v:")
            ind += 1
            pad = " " * ind
        if node.immediate:
            inner: List[str] = []
            x = self._emit(node.value, inner, ind)
            lines.extend(inner)
            lines.append(f"{pad}v = {{**v, {node.name!r}: {x}}}")
        else:
            unit = self.unit(node.value)
            value = repr(unit) if isinstance(unit, str) else self._const(unit)
            lines.append(f"{pad}v = {{**v, {node.name!r}: {value}}}")

    def _emit_pick(self, units: Sequence[Unit], weights: Sequence[float], lines: List[str], ind: int,
                   at: AnyNode, scope: str = "v", nodes: Optional[Sequence[AnyNode]] = None) -> str:
        """Inline draw of one option by weight. With `nodes`, a few composite options are inlined
        as branches instead of being called: a call costs more than the draw itself."""
        pad = " " * ind
        live = [(u, w, n) for u, w, n in zip(units, weights, nodes or [None] * len(units)) if w > 0]
        if not live:
            raise all_zero(at)
        if len(live) == 1:
            node = live[0][2]
            if node is not None and scope == "v" and ind < MAX_INLINE_INDENT:
                return self._emit(node, lines, ind)
            return self._call(live[0][0], lines, ind, scope)
        composite = [j for j, (u, _, _) in enumerate(live) if not isinstance(u, str)]
        inline = (nodes is not None and scope == "v" and ind < MAX_INLINE_INDENT
                  and 0 < len(composite) <= MAX_INLINE_OPTIONS)
        x, i = self._fresh("x"), self._fresh("i")
        opts = self._const(tuple(None if inline and j in composite else u for j, (u, _, _) in enumerate(live)))
        ws = finite_weights([w for _, w, _ in live], at)
        lines.append(pad + rng.STEP_SRC)
        if all(w == ws[0] for w in ws):
            draw = f"s * {len(live)} >> {rng.PICK_SHIFT}"
        else:
            draw = f"bisect({self._const(tuple(accumulate(ws)))}, s * {_float_literal(sum(ws) * rng.TO_UNIT)})"
        if inline and len(composite) > 1:  # the branches need the index
            lines.append(f"{pad}{i} = {draw}")
            draw = i
        lines.append(f"{pad}{x} = {opts}[{draw}]")
        if inline:
            lines.append(f"{pad}if {x} is None:")
            for k, j in enumerate(composite):
                if len(composite) > 1:
                    keyword = "if" if k == 0 else "elif" if k < len(composite) - 1 else "else"
                    lines.append(f"{pad} {keyword} {i} == {j}:" if keyword != "else" else f"{pad} else:")
                depth = ind + (2 if len(composite) > 1 else 1)
                body: List[str] = []
                expr = self._emit(live[j][2], body, depth)  # type: ignore[arg-type]
                lines.extend(body)
                lines.append(f"{' ' * depth}{x} = {expr}")
        elif composite:
            lines.append(f"{pad}if {x}.__class__ is not str: {x}, s = {x}(s, {scope})")
        return x

    def _emit_variant(self, node: Variant, lines: List[str], ind: int) -> str:
        if node.sampler == CYCLICAL and self.cyclical is not None:
            return self._cyc_call(node, lines, ind)
        wc = single_wildcard(node)
        if wc is not None and isinstance(wc.path, Text) and (node.lo, node.hi) != (1, 1):
            units, weights = self._wildcard_units(wc)
            return self._emit_many(units, weights, node, lines, ind, self._param_scope(wc, lines, ind))
        if (node.lo, node.hi) == (1, 1) or len(node.options) == 1 and node.lo <= 1 <= node.hi:
            if len(node.options) == 1:
                if node.options[0].weight <= 0:
                    raise all_zero(node)
                return self._emit(node.options[0].body, lines, ind)
            bodies = [o.body for o in node.options]
            units = [self.unit(b) for b in bodies]
            return self._emit_pick(units, [o.weight for o in node.options], lines, ind, node, nodes=bodies)
        merged: Dict[AnyNode, float] = {}  # identical options are one option, as in combinatorial mode
        for o in node.options:
            merged[o.body] = merged.get(o.body, 0.0) + o.weight
        units = [self.unit(body) for body in merged]
        return self._emit_many(units, list(merged.values()), node, lines, ind)

    def _emit_many(self, units: Sequence[Unit], weights: Sequence[float], node: Variant,
                   lines: List[str], ind: int, scope: str = "v") -> str:
        x = self._fresh("x")
        weights = finite_weights(weights, node)
        pick = many_picker(units, weights, node.lo, node.hi, node.sep)
        lines.append(f"{' ' * ind}{x}, s = {self._const(pick)}(s, {scope})")
        return x

    def _cyc_call(self, node: AnyNode, lines: List[str], ind: int) -> str:
        x = self._fresh("x")
        lines.append(f"{' ' * ind}{x}, s = CYC({self._const(node)}, s, v)")
        return x

    def _emit_wildcard(self, node: Wildcard, lines: List[str], ind: int) -> str:
        pad = " " * ind
        if node.sampler == CYCLICAL and self.cyclical is not None:
            return self._cyc_call(node, lines, ind)
        scope = self._param_scope(node, lines, ind)
        if not isinstance(node.path, Text):
            path = self._emit(node.path, lines, ind)
            x = self._fresh("x")
            lines.append(f"{pad}{x}, s = DYN({path}, s, {scope}, {self._const(node)})")
            return x
        units, weights = self._wildcard_units(node)
        if not units:
            return repr(f"__{node.path.text}__")
        nodes = [c.node for c in self.resolver.resolve(node.path.text, node).choices]
        return self._emit_pick(units, weights, lines, ind, node, scope, nodes)

    def _param_scope(self, node: Wildcard, lines: List[str], ind: int) -> str:
        """The name of the scope a wildcard's lines see: `v`, or `v` plus its parameters."""
        if not node.params:
            return "v"
        scope = self._fresh("w")
        binds = ", ".join(f"{k!r}: {self._bind(val)}" for k, val in node.params)
        lines.append(f"{' ' * ind}{scope} = {{**v, {binds}}}")
        return scope

    def _bind(self, value: AnyNode) -> str:
        unit = self.unit(value)
        return repr(unit) if isinstance(unit, str) else self._const(unit)

    def _wildcard_units(self, node: Wildcard) -> Tuple[Tuple[Unit, ...], Tuple[float, ...]]:
        assert isinstance(node.path, Text)
        return self._wildcard(node.path.text, node)

    def wildcard(self, pattern: str, at: AnyNode) -> Tuple[Tuple[Unit, ...], Tuple[float, ...]]:
        found = self._wildcards.get(pattern)
        if found is not None:
            return found
        with self._lock:
            self._checked(Wildcard(Text(pattern), src=at.src, pos=at.pos))
            return self._wildcard(pattern, at)

    def _wildcard(self, pattern: str, at: AnyNode) -> Tuple[Tuple[Unit, ...], Tuple[float, ...]]:
        found = self._wildcards.get(pattern)
        if found is not None:
            return found
        if pattern in self._compiling:
            chain = self._compiling[self._compiling.index(pattern):] + [pattern]
            raise cycle_error(chain, at)
        if len(self._compiling) >= MAX_WILDCARD_DEPTH:
            raise too_deep(at)
        resolved = self.resolver.resolve(pattern, at)
        self._compiling.append(pattern)
        try:
            units = tuple(self.unit(c.node) for c in resolved.choices)
        finally:
            self._compiling.pop()
        result = (units, tuple(c.weight for c in resolved.choices))
        self._wildcards[pattern] = result
        return result

    # -- runtime helpers called from generated code --------------------------------------------
    def _get_var(self, name: str, default: Optional[Unit], s: int, v: Dict[str, Any],
                 at: AnyNode) -> Tuple[str, int]:
        value = v.get(name, default)
        if value is None:
            raise undefined_variable(name, at)
        if value.__class__ is str:
            return value, s
        sampling = v.get("#s", frozenset())
        if name in sampling:
            raise self_referencing_variable(name, at)
        # Where a value is used is known only now: its nesting adds to what the variables being read add.
        # (A default is written where it is used: the template's height counts it already.)
        nested = v.get("#h", 0) + (self.nesting.height(value.node) if name in v else 0)
        if nested > MAX_NESTING:
            raise too_nested(at)
        text, s = value(s, {**v, "#s": sampling | {name}, "#h": nested})
        if len(text) > MAX_PROMPT_CHARS:
            raise too_long(at)
        return text, s

    def _dynamic(self, path: str, s: int, v: Dict[str, Any], at: Wildcard) -> Tuple[str, int]:
        depth = v.get("#d", 0) + 1
        if depth > MAX_WILDCARD_DEPTH:
            raise too_deep(at)
        pattern = path.strip()
        pick = self._pickers.get(pattern)
        if pick is None:
            with self._lock:  # compiled while sampling, maybe in several threads at once
                self._checked(Wildcard(Text(pattern), src=at.src, pos=at.pos))
                units, weights = self._wildcard(pattern, at)
                if not units:
                    return f"__{path}__", s
                lines: List[str] = []
                expr = self._emit_pick(units, weights, lines, 1, at)
                pick = self._pickers[pattern] = self._define("d", "s, v", lines, f"{expr}, s")
        nested = v.get("#h", 0) + self.nesting.pattern_height(pattern, at)
        if nested > MAX_NESTING:
            raise too_nested(at)
        text, s = pick(s, {**v, "#d": depth, "#h": nested})
        if len(text) > MAX_PROMPT_CHARS:
            raise too_long(at)
        return text, s

    def _cyclical(self, node: AnyNode, s: int, v: Dict[str, Any]) -> Tuple[str, int]:
        assert self.cyclical is not None
        return self.cyclical(node, v.get("#c", 0), s, v)


def finite_weights(weights: Sequence[float], at: AnyNode) -> List[float]:
    """Weights whose running sums are finite floats. The parser and the file readers cap weights, so
    this only matters for an AST built by hand; but a sum that overflows would be written into the
    generated source as `inf`, a NameError at run time, so it is guarded here where the source is made."""
    if not all(isfinite(w) for w in weights):
        raise TemplateError("a weight is not a finite number", at.location(), "weights are numbers from 0 up")
    if isfinite(sum(weights)):
        return list(weights)
    top = max(weights)  # the same proportions, scaled below the overflow
    return [w / top for w in weights]


def _float_literal(value: float) -> str:
    """repr() of a float as Python source; `inf` and `nan` are not literals, so they are refused."""
    if not isfinite(value):
        raise ValueError(f"no literal for {value!r}")
    return repr(value)


def _parts(node: AnyNode) -> List[Tuple[AnyNode, bool]]:
    """The nodes a node holds, each with whether _emit compiles it as a function of its own (a unit)
    rather than writing it inline."""
    if isinstance(node, Variant):
        inline = len(node.options) == 1 and (node.lo, node.hi) == (1, 1)
        return [(o.body, not inline) for o in node.options]
    if isinstance(node, Seq):
        return [(i, False) for i in node.items]
    if isinstance(node, Wildcard):
        return [(value, True) for _, value in node.params] + [(node.path, False)]
    if isinstance(node, VarSet):
        return [(node.value, not node.immediate)]
    if isinstance(node, VarGet):
        return [(node.default, True)] if node.default is not None else []
    if isinstance(node, Wrap):
        return [(node.wrapper, False), (node.inner, False)]
    return []


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _names(line: str) -> set:
    return set(_IDENT.findall(line))


def _fstring(parts: Sequence[str]) -> str:
    """An f-string expression concatenating parts (string literals or variable names)."""
    out = []
    for part in parts:
        if part[0] in "'\"":  # a repr() of ours: re-quote it for the inside of f'...'
            quoted = repr(literal_eval(part))
            body = quoted[1:-1].replace("{", "{{").replace("}", "}}")
            out.append(body.replace("'", "\\'") if quoted[0] == '"' else body)
        else:
            out.append("{" + part + "}")
    return "f'" + "".join(out) + "'"


def many_picker(units: Sequence[Unit], weights: Sequence[float], lo: int, hi: int,
                sep: str) -> Callable[[int, Dict[str, Any]], Tuple[str, int]]:
    """`{lo-hi$$sep$$…}`: a function (s, scope) -> (text, s) that draws a count in [lo, hi], then that many
    options without replacement, by weight. What does not change between prompts (the options left after
    zero weights, the bounds) is worked out here, once per template rather than once per prompt."""
    live = [(u, w) for u, w in zip(units, weights) if w > 0]
    options = tuple(u for u, _ in live)
    hi = min(hi, len(live))
    lo = min(lo, hi)
    span = hi - lo + 1
    mul, inc, mask, bits, to_unit = rng.LCG_MUL, rng.LCG_INC, rng.MASK, rng.BITS, rng.TO_UNIT  # closure cells
    if all(w == 1.0 for _, w in live):
        # Weights of 1 (every wildcard file line, most options): the running sums are whole numbers and
        # the target `s * 2**-30 * n` is exact, so the first sum above it is option `s * n >> 30` itself,
        # the same pick as the search below, without it.
        def pick_even(s: int, v: Dict[str, Any]) -> Tuple[str, int]:
            s = (s * mul + inc) & mask
            k = lo + (s * span >> bits)
            left = list(options)
            texts = []
            for _ in range(k):
                s = (s * mul + inc) & mask
                unit = left.pop(s * len(left) >> bits)
                if unit.__class__ is not str:
                    unit, s = unit(s, v)
                texts.append(unit)
            return join_results(texts, sep), s

        return pick_even
    weights_left = tuple(w for _, w in live)

    def pick_weighted(s: int, v: Dict[str, Any]) -> Tuple[str, int]:
        s = (s * mul + inc) & mask
        k = lo + (s * span >> bits)
        left, ws = list(options), list(weights_left)
        texts = []
        for _ in range(k):
            total = sum(ws)  # summed again, never decremented: the same float as the options left add up to
            s = (s * mul + inc) & mask
            target = s * to_unit * total
            acc = 0.0
            pick = len(ws) - 1
            for j, w in enumerate(ws):
                acc += w
                if target < acc:
                    pick = j
                    break
            del ws[pick]
            unit = left.pop(pick)
            if unit.__class__ is not str:
                unit, s = unit(s, v)
            texts.append(unit)
        return join_results(texts, sep), s

    return pick_weighted


def join_results(texts: Sequence[str], sep: str) -> str:
    """dynamicprompts' SamplingResult.joined: one result is kept as is; else one leading/trailing sep goes."""
    if len(texts) == 1:
        return texts[0]
    joined = sep.join(texts)
    if sep:
        if joined.startswith(sep):
            joined = joined[len(sep):]
        if joined.endswith(sep):
            joined = joined[:-len(sep)]
    return joined
