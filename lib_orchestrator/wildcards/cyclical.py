"""Cyclical mode, computed from a counter instead of remembered state.

dynamicprompts' cyclical sampler keeps a cursor per node and advances it on every visit. Here the
top-level counter is the image seed, and a part chosen by a cyclical choice of n options gets
counter // n: exactly the number of earlier visits dynamicprompts would have counted, so the same
sequence comes out without any state, and image seed X always gets the same prompt.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from .ast import COMBINATORIAL, CYCLICAL, AnyNode, Seq, Text, VarGet, Variant, VarSet, Wildcard, Wrap
from .nesting import MAX_NESTING, too_nested
from .options import bounds, live_options, nth_pick, pick_count, single_wildcard
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

Scope = Dict[str, Any]  # the random sampler's scopes: name -> text or compiled unit


class Cycler:
    def __init__(self, resolver: Resolver, randoms: RandomCompiler) -> None:
        self.resolver = resolver
        self.randoms = randoms

    def render(self, node: AnyNode, counter: int, s: int, scope: Scope) -> Tuple[str, int]:
        if isinstance(node, Text):
            return node.text, s
        sampler = getattr(node, "sampler", None)
        if sampler not in (None, CYCLICAL, COMBINATORIAL):  # `~` parts stay random
            unit = self.randoms.unit(node)
            if isinstance(unit, str):
                return unit, s
            return unit(s, {k: self.randoms.unit(v[1]) if isinstance(v, tuple) and k[0] != "#" else v
                            for k, v in scope.items()})
        if isinstance(node, VarSet):  # alone (a template, an option): its value is drawn all the same
            node = Seq((node,), src=node.src, pos=node.pos)
        if isinstance(node, Seq):
            for vs in node.items:
                if isinstance(vs, VarSet) and not (vs.keep_existing and vs.name in scope):
                    if vs.immediate:
                        text, s = self.render(vs.value, counter, s, scope)
                        scope = {**scope, vs.name: text}
                    else:
                        scope = {**scope, vs.name: ("cyc", vs.value)}
            parts = []
            for item in node.items:
                if not isinstance(item, VarSet):
                    text, s = self.render(item, counter, s, scope)
                    parts.append(text)
            return "".join(parts), s
        if isinstance(node, Variant):
            wc = single_wildcard(node)
            if wc is not None and isinstance(wc.path, Text) and (node.lo, node.hi) != (1, 1):
                options = self._choices(wc.path.text, wc)
                scope = self._params(wc, scope)
            else:
                options = live_options(node)
            lo, hi = bounds(node.lo, node.hi, len(options))
            total = pick_count(len(options), lo, hi)
            if total == 0:
                return "", s
            pick = nth_pick(len(options), lo, hi, counter % total)
            texts = []
            for i in pick:
                text, s = self.render(options[i], counter // total, s, scope)
                texts.append(text)
            return join_results(texts, node.sep) if texts else "", s
        if isinstance(node, Wildcard):
            inner = self._params(node, scope)
            if isinstance(node.path, Text):
                raw = node.path.text
            else:
                raw, s = self.render(node.path, counter, s, scope)
                # A computed name is measured only now: its nesting adds to what is being read.
                nested = scope.get("#h", 0) + self.randoms.nesting.pattern_height(raw.strip(), node)
                if nested > MAX_NESTING:
                    raise too_nested(node)
                inner = {**inner, "#h": nested}
            pattern = raw.strip()
            choices = self._choices(pattern, node)
            if not choices:
                return f"__{raw}__", s
            # The chain of wildcards entered lives in the scope, not on the sampler: several threads
            # may render with one sampler.
            chain: Tuple[str, ...] = scope.get("#w", ())
            if pattern in chain:
                raise cycle_error(list(chain[chain.index(pattern):]) + [pattern], node)
            if len(chain) >= MAX_WILDCARD_DEPTH:
                raise too_deep(node)
            inner = {**inner, "#w": chain + (pattern,)}
            text, s = self.render(choices[counter % len(choices)], counter // len(choices), s, inner)
            if len(text) > MAX_PROMPT_CHARS:
                raise too_long(node)
            return text, s
        if isinstance(node, VarGet):
            value = scope.get(node.name)
            if value is None:
                if node.default is None:
                    raise undefined_variable(node.name, node)
                return self.render(node.default, counter, s, scope)
            if isinstance(value, str):
                return value, s
            sampling = scope.get("#s", frozenset())
            if node.name in sampling:
                raise self_referencing_variable(node.name, node)
            nested = scope.get("#h", 0) + self.randoms.nesting.height(value[1] if isinstance(value, tuple)
                                                                      else value.node)
            if nested > MAX_NESTING:
                raise too_nested(node)
            inner_scope = {**scope, "#s": sampling | {node.name}, "#h": nested}
            if isinstance(value, tuple):
                text, s = self.render(value[1], counter, s, inner_scope)
            else:
                text, s = value(s, inner_scope)  # a unit bound by the random sampler
            if len(text) > MAX_PROMPT_CHARS:  # variables can double a text at each level
                raise too_long(node)
            return text, s
        if isinstance(node, Wrap):
            wrapper, s = self.render(node.wrapper, counter, s, scope)
            inner, s = self.render(node.inner, counter, s, scope)
            return wrap_text(wrapper, inner), s
        raise TypeError(node)  # pragma: no cover

    def _choices(self, pattern: str, at: AnyNode) -> List[AnyNode]:
        return [c.node for c in self.resolver.resolve(pattern, at).choices if c.weight > 0]

    def _params(self, node: Wildcard, scope: Scope) -> Scope:
        if not node.params:
            return scope
        return {**scope, **{k: ("cyc", v) for k, v in node.params}}
