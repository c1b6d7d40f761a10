"""Combinatorial mode: every prompt a template can make, lazily, in dynamicprompts' order.

The leftmost choice is the outermost loop. Counting walks the same structure without listing
anything. Parts marked `~` (random) or `@` (cyclical) are sampled afresh for each prompt from one
stream seeded by the run's seed, as dynamicprompts does.
"""
from __future__ import annotations

from itertools import product
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from . import rng
from .ast import (
    CYCLICAL,
    RANDOM,
    AnyNode,
    Seq,
    Text,
    VarGet,
    Variant,
    VarSet,
    Wildcard,
    Wrap,
)
from .nesting import MAX_NESTING, too_nested
from .options import bounds, live_options, ordered_picks, single_wildcard, weighted_sum_of_picks
from .random_sampler import RandomCompiler, join_results
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

MATERIALISE_AT_MOST = 4096  # a part with fewer texts than this is listed once and reused

Scope = Dict[str, Any]  # name -> ("fixed", text) | ("lazy", node)
CyclicalFn = Callable[[AnyNode, int, int, Dict[str, Any]], Tuple[str, int]]


class Combinator:
    def __init__(self, resolver: Resolver, randoms: RandomCompiler, cyclical: CyclicalFn, seed: int = 0) -> None:
        self.resolver = resolver
        self.randoms = randoms
        self.cyclical = cyclical
        self.state = rng.image_state(seed)
        self.visits: Dict[int, int] = {}
        self._counts: Dict[Tuple[int, Tuple[Any, ...]], int] = {}

    # -- counting ------------------------------------------------------------------------------
    def count(self, node: AnyNode, scope: Optional[Scope] = None) -> int:
        return self._count(node, scope or self._top(node))

    def _count(self, node: AnyNode, scope: Scope) -> int:
        """Memoised on the node and the variables in sight: nested variables would otherwise make
        counting exponential (`${b=${a}${a}}${c=${b}${b}}…`)."""
        if isinstance(node, Text):
            return 1
        key = (id(node), tuple(sorted((k, v[0], id(v[1]) if v[0] == "lazy" else v[1])
                                      for k, v in scope.items() if not k.startswith("#"))))
        found = self._counts.get(key)
        if found is None:
            found = self._counts[key] = self._count_uncached(node, scope)
        return found

    def _count_uncached(self, node: AnyNode, scope: Scope) -> int:
        if _nonfinite(node):
            return 1
        if isinstance(node, Seq):
            scope, total = self._count_assignments(node, scope)
            for item in node.items:
                if not isinstance(item, VarSet):
                    total *= self._count(item, scope)
            return total
        if isinstance(node, VarSet):  # alone (a template, an option): its value is drawn all the same
            return self._count_assignments(Seq((node,)), scope)[1]
        if isinstance(node, Variant):
            wc = single_wildcard(node)
            if wc is not None and isinstance(wc.path, Text) and (node.lo, node.hi) != (1, 1):
                inner = self._enter(wc.path.text, wc, self._params(wc, scope))
                counts = [self._count(c, inner) for c in self._choices(wc.path.text, wc)]
                lo, hi = bounds(node.lo, node.hi, len(counts))
                return weighted_sum_of_picks(counts, lo, hi)
            options = live_options(node)
            lo, hi = bounds(node.lo, node.hi, len(options))
            return weighted_sum_of_picks([self._count(o, scope) for o in options], lo, hi)
        if isinstance(node, Wildcard):
            dynamic = not isinstance(node.path, Text)
            paths = list(self._gen(node.path, scope)) if dynamic else [node.path.text]  # type: ignore[union-attr]
            total = 0
            for raw in paths:
                inner = self._enter(raw.strip(), node, self._params(node, scope), dynamic)
                total += sum(self._count(c, inner) for c in self._choices(raw.strip(), node)) or 1
            return total
        if isinstance(node, VarGet):
            kind, value = self._lookup(node, scope)
            if kind == "fixed":
                return 1
            return self._count(value, self._expand(scope, node.name, value, node))
        if isinstance(node, Wrap):
            return self._count(node.wrapper, scope) * self._count(node.inner, scope)
        raise TypeError(node)  # pragma: no cover

    # -- enumeration ---------------------------------------------------------------------------
    def iterate(self, node: AnyNode) -> Iterator[str]:
        return self._gen(node, self._top(node))

    def _top(self, node: AnyNode) -> Scope:
        """The scope a walk starts with: `#h` counts nesting from the template's own, measured height,
        so variables read deep inside it can only add what is left (nesting.py)."""
        return {"#h": self.randoms.nesting.height(node)}

    def _gen(self, node: AnyNode, scope: Scope) -> Iterator[str]:
        """The texts of a node. A plain function handing back the node's own generator: a level of
        nesting then costs one or two Python frames, not three or four (nesting.py counts on it)."""
        if isinstance(node, Text):
            return iter((node.text,))
        if _nonfinite(node):
            return self._gen_sampled(node, scope)
        if isinstance(node, Seq):
            return self._gen_seq(node, scope)
        if isinstance(node, VarSet):  # alone: drawn, as the random sampler draws it, for nothing to read it
            return self._gen_assigned([node], [], scope)
        if isinstance(node, Variant):
            return self._gen_variant(node, scope)
        if isinstance(node, Wildcard):
            return self._gen_wildcard(node, scope)
        if isinstance(node, VarGet):
            kind, value = self._lookup(node, scope)
            if kind == "fixed":
                return iter((value,))
            return self._gen_value(value, self._expand(scope, node.name, value, node), node)
        if isinstance(node, Wrap):
            return self._gen_wrap(node, scope)
        raise TypeError(node)  # pragma: no cover

    def _gen_sampled(self, node: AnyNode, scope: Scope) -> Iterator[str]:
        yield self._sample(node, scope)  # drawn when reached, not when the generator is made

    def _gen_value(self, value: AnyNode, scope: Scope, at: VarGet) -> Iterator[str]:
        for text in self._gen(value, scope):
            if len(text) > MAX_PROMPT_CHARS:  # variables can double a text at each level
                raise too_long(at)
            yield text

    def _gen_wrap(self, node: Wrap, scope: Scope) -> Iterator[str]:
        for wrapper in self._gen(node.wrapper, scope):
            for inner in self._gen(node.inner, scope):
                yield wrap_text(wrapper, inner)

    def _gen_seq(self, node: Seq, scope: Scope) -> Iterator[str]:
        # Assignments take effect in the order written, before the text (dynamicprompts hoists them).
        sets = [vs for vs in node.items if isinstance(vs, VarSet)]
        items = [i for i in node.items if not isinstance(i, VarSet)]
        if not sets:
            return self._gen_items(items, scope)
        return self._gen_assigned(sets, items, scope)

    def _gen_assigned(self, sets: List[VarSet], items: List[AnyNode], scope: Scope) -> Iterator[str]:
        def scopes_after(vs: VarSet, inner: Scope) -> Iterator[Scope]:
            if vs.keep_existing and vs.name in inner:
                yield inner
            elif vs.immediate:
                for text in self._gen(vs.value, inner):
                    yield {**inner, vs.name: ("fixed", text)}
            else:
                yield {**inner, vs.name: ("lazy", vs.value)}

        # Each assignment's values, nested left to right; an odometer, not a recursion: a sequence may
        # hold thousands of assignments.
        for inner in odometer([lambda prev, vs=vs: scopes_after(vs, prev[-1] if prev else scope) for vs in sets]):
            yield from self._gen_items(items, inner[-1])

    def _gen_items(self, items: List[AnyNode], scope: Scope) -> Iterator[str]:
        # Small, finite parts are listed once and multiplied with itertools.product; the rest are
        # enumerated afresh for each combination of the parts before them.
        slots: List[Any] = []
        for item in items:
            if isinstance(item, Text):
                slots.append([item.text])
            elif not _nonfinite(item) and self._count(item, scope) <= MATERIALISE_AT_MOST:
                slots.append(list(self._gen(item, scope)))
            else:
                slots.append(item)
        if all(isinstance(slot, list) for slot in slots):
            for combo in product(*slots):
                yield "".join(combo)
            return
        makers = [(lambda prev, slot=slot: iter(slot)) if isinstance(slot, list)
                  else (lambda prev, slot=slot: self._gen(slot, scope)) for slot in slots]
        for parts in odometer(makers):
            yield "".join(parts)

    def _gen_variant(self, node: Variant, scope: Scope) -> Iterator[str]:
        wc = single_wildcard(node)
        if wc is not None and isinstance(wc.path, Text) and (node.lo, node.hi) != (1, 1):
            options = self._choices(wc.path.text, wc)
            inner = self._enter(wc.path.text, wc, self._params(wc, scope))
            lo, hi = bounds(node.lo, node.hi, len(options))
            return self._gen_picks(options, lo, hi, node.sep, inner)
        options = live_options(node)
        lo, hi = bounds(node.lo, node.hi, len(options))
        return self._gen_picks(options, lo, hi, node.sep, scope)

    def _gen_picks(self, options: List[AnyNode], lo: int, hi: int, sep: str, scope: Scope) -> Iterator[str]:
        for pick in ordered_picks(len(options), lo, hi):
            if len(pick) == 1:
                yield from self._gen(options[pick[0]], scope)
                continue
            # Lazily, like _gen_items: an option may have more texts than memory holds.
            for parts in odometer([lambda prev, i=i: self._gen(options[i], scope) for i in pick]):
                yield join_results(parts, sep)

    def _gen_wildcard(self, node: Wildcard, scope: Scope) -> Iterator[str]:
        paths = [node.path.text] if isinstance(node.path, Text) else list(self._gen(node.path, scope))
        for raw in paths:
            choices = self._choices(raw.strip(), node)
            if not choices:
                yield f"__{raw}__"
                continue
            inner = self._enter(raw.strip(), node, self._params(node, scope))
            for choice in choices:
                yield from self._gen(choice, inner)

    # -- helpers -------------------------------------------------------------------------------
    def _choices(self, pattern: str, at: Wildcard) -> List[AnyNode]:
        resolved = self.resolver.resolve(pattern, at)
        return [c.node for c in resolved.choices if c.weight > 0]

    def _enter(self, pattern: str, at: AnyNode, scope: Scope, dynamic: bool = False) -> Scope:
        """The scope inside a wildcard. The chain of wildcards entered lives in the scope, not on the
        sampler: enumerations are suspended generators, and siblings must not see each other's."""
        chain: Tuple[str, ...] = scope.get("#w", ())
        if pattern in chain:
            raise cycle_error(list(chain[chain.index(pattern):]) + [pattern], at)
        if len(chain) >= MAX_WILDCARD_DEPTH:
            raise too_deep(at)
        if not dynamic:  # measured with the template before sampling
            return {**scope, "#w": chain + (pattern,)}
        nested = scope.get("#h", 0) + self.randoms.nesting.pattern_height(pattern, at)
        if nested > MAX_NESTING:
            raise too_nested(at)
        return {**scope, "#w": chain + (pattern,), "#h": nested}

    def _expand(self, scope: Scope, name: str, value: AnyNode, at: AnyNode) -> Scope:
        """The scope for sampling variable `name`'s value where it is read: reading it again in there is
        a cycle, and the value's nesting adds to what the variables being read add already (a default
        is written where it is read: the template's height counts it)."""
        nested = scope.get("#h", 0) + (self.randoms.nesting.height(value) if name in scope else 0)
        if nested > MAX_NESTING:
            raise too_nested(at)
        return {**scope, "#s": scope.get("#s", frozenset()) | {name}, "#h": nested}

    def _params(self, node: Wildcard, scope: Scope) -> Scope:
        if not node.params:
            return scope
        return {**scope, **{k: ("lazy", v) for k, v in node.params}}

    def _count_assignments(self, node: Seq, scope: Scope) -> Tuple[Scope, int]:
        """The scope after a sequence's assignments, and how many ways its immediate ones can go."""
        factor = 1
        new = dict(scope)
        for vs in node.items:
            if not isinstance(vs, VarSet) or (vs.keep_existing and vs.name in new):
                continue
            if vs.immediate:
                factor *= self._count(vs.value, new)
                new[vs.name] = ("fixed", "")
            else:
                new[vs.name] = ("lazy", vs.value)
        return new, factor

    def _lookup(self, node: VarGet, scope: Scope) -> Tuple[str, Any]:
        found = scope.get(node.name)
        if found is None:
            if node.default is None:
                raise undefined_variable(node.name, node)
            return "lazy", node.default
        if node.name in scope.get("#s", frozenset()):
            raise self_referencing_variable(node.name, node)
        return found  # type: ignore[no-any-return]

    def _sample(self, node: AnyNode, scope: Scope) -> str:
        """A `~`/`@` part inside combinatorial mode: drawn anew for each prompt."""
        variables = {k: (v[1] if v[0] == "fixed" else self.randoms.unit(v[1]))
                     for k, v in scope.items() if not k.startswith("#")}
        variables["#h"] = scope.get("#h", 0)
        if _sampler(node) == CYCLICAL:
            count = self.visits.get(id(node), 0)
            self.visits[id(node)] = count + 1
            text, self.state = self.cyclical(node, count, self.state, variables)
        else:
            unit = self.randoms.unit(node)
            if isinstance(unit, str):
                return unit
            text, self.state = unit(self.state, variables)
        if len(text) > MAX_PROMPT_CHARS:
            raise too_long(node)
        return text


def _sampler(node: AnyNode) -> Optional[str]:
    return getattr(node, "sampler", None)


def _nonfinite(node: AnyNode) -> bool:
    return _sampler(node) in (RANDOM, CYCLICAL)


def odometer(makers: List[Callable[[List[Any]], Iterator[Any]]]) -> Iterator[List[Any]]:
    """Every combination of values, the first maker's outermost, like nested for-loops written out:
    makers[k](values chosen before k) gives a fresh iterator for place k. No recursion, whatever the
    number of places; the list yielded is reused, so copy it to keep it."""
    if not makers:
        yield []
        return
    chosen: List[Any] = []
    iters = [makers[0](chosen)]
    while iters:
        try:
            value = next(iters[-1])
        except StopIteration:
            iters.pop()
            continue
        del chosen[len(iters) - 1:]  # the values of this place and any after it were for the last round
        chosen.append(value)
        if len(iters) == len(makers):
            yield chosen
        else:
            iters.append(makers[len(iters)](chosen))
