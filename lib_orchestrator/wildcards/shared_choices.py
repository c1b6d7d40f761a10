"""One image's main prompt and the prompts that go with it (ADetailer's), drawn with the same choices.

sd-dynamic-prompts' issue #561: the face detailer's prompt `__character__ face` drew another character than
the body. Here the extra prompts are rendered after the main template, with its seed, its random stream
continued and its variables in scope, and a `__name__` the main template draws gives its first value to
every `__name__` of the extras:

- the main template's text is exactly `engine.prompt(main, seed)`: its wildcards are rewritten into calls
  that draw the same way (same code, same state) and only note the first value each name drew;
- variables the main template sets (`${who=!__character__}`) are read by the extras as they are; a
  non-immediate one is drawn again where it is read, but its `__name__`s take the shared values;
- "first" is in reading order: the value of the first `__name__` written in the main template that drew
  (an immediate variable is set before the text around it is drawn, but `a __c__, ${w=!__c__}` shares
  what the first `__c__` gave);
- a `__name__` first met in an extra draws (from the continued stream) and is shared with the later extras.

Only wildcards written in the templates themselves are shared: those inside wildcard files, nested, draw
as usual; so do wildcards with parameters, computed names (`__${x}__`), the cyclical sampler's (`@`) and
those inside a many-pick variant (`{2$$__name__}`, `{1-2$$__a__|__b__}`).

The rewrite uses the engine's own compiled units: a wildcard becomes `${#wc:k:name}` (the k-th written in
the main template; `${#wc:name}` in an extra; names starting with `#` are the engine's own, see
random_sampler.py), whose value in the scope is a callable that runs the wildcard's compiled unit. A
last `${#capture}` at the end of the main template hands over the state and the scope at that point,
which the extras start from.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import Any, Dict, List, MutableMapping, Optional, Sequence, Tuple

from . import rng
from .ast import CYCLICAL, AnyNode, Option, Seq, Text, VarGet, Variant, VarSet, Wildcard, Wrap, static_text

WILDCARD_VAR = "#wc:"  # `${#wc:k:name}` / `${#wc:name}` stand for a shared `__name__`
LAST = 1 << 62  # the rank of an extra's wildcards: after every one of the main template
CAPTURE_VAR = "#capture"  # the end of the main template
MAX_CACHED = 256  # rewritten templates kept per compiler; a Forge session sees few ADetailer prompts


@dataclass(frozen=True)
class SharedExpansion:
    """The main prompt, the extras in the order given, and the value each shared `__name__` took."""

    main: str
    extras: Tuple[str, ...]
    values: Tuple[Tuple[str, str], ...] = ()


def is_template(engine: Any, text: str, source: str = "<extra prompt>") -> bool:
    """Whether `text` holds template syntax (wildcards, variables, variants…): plain text, which the engine
    would give back unchanged, is left alone. Raises the engine's TemplateError for text that does not
    parse."""
    return static_text(engine.parse(text, source)) != text


def expand_with(engine: Any, main: str, extras: Sequence[str], seed: int, source: str = "<template>",
                extra_sources: Sequence[str] = ()) -> SharedExpansion:
    """`main` and `extras` for image seed `seed` (random mode), the extras with the main prompt's choices.

    `engine` is the PromptEngine that made (or would make) the main prompt: its wildcards, its gate.
    Raises what the engine raises (TemplateError, with the extra's own source name from `extra_sources`)."""
    randoms = engine.randoms
    cache = _cache(randoms)
    draws = _Draws()
    top = _template(engine, randoms, cache, main, source, main=True)
    parts: List[_Rewritten] = []
    for k, extra in enumerate(extras):
        name = extra_sources[k] if k < len(extra_sources) else f"<extra prompt {k + 1}>"
        parts.append(_template(engine, randoms, cache, extra, name, main=False))
    scope: Dict[str, Any] = {"#c": seed, "#h": randoms.nesting.height(top.node)}
    for part in (top, *parts):
        for var, pattern, node, rank in part.wildcards:
            if var not in scope:
                scope[var] = _SharedWildcard(node, randoms.unit(node), pattern, rank, draws)
    scope[CAPTURE_VAR] = draws.capture
    main_text, _ = top.unit(rng.image_state(seed), scope)
    s, at_end = draws.state, draws.scope
    texts: List[str] = []
    for part in parts:
        if part.unit.__class__ is str:
            texts.append(part.unit)
            continue
        local = {k: v for k, v in at_end.items() if k != "#s"}
        local["#h"] = randoms.nesting.height(part.node)
        text, s = part.unit(s, local)
        texts.append(text)
    return SharedExpansion(main_text, tuple(texts), tuple((k, v) for k, (_, v) in draws.values.items()))


class _Draws:
    """What one expansion shares: the first value of each name, and where the main template ended."""

    def __init__(self) -> None:
        self.values: Dict[str, Tuple[int, str]] = {}  # name -> (rank of the wildcard that drew it, value)
        self.sharing = False  # False while the main template renders: it draws every time
        self.state = 0
        self.scope: Dict[str, Any] = {}

    def capture(self, s: int, v: Dict[str, Any]) -> Tuple[str, int]:
        self.state, self.scope, self.sharing = s, v, True
        return "", s


_Draws.capture.node = Text("")  # type: ignore[attr-defined]  # the sampler measures a value's nesting by it


class _SharedWildcard:
    """The value of `${#wc:…}`: the wildcard drawn by its own compiled unit, with the state and scope it
    would have had in place, and its value noted when it is the first in reading order; once the main
    template is done, the noted value."""

    __slots__ = ("node", "unit", "pattern", "rank", "draws")

    def __init__(self, node: Wildcard, unit: Any, pattern: str, rank: int, draws: _Draws) -> None:
        self.node, self.unit, self.pattern, self.rank, self.draws = node, unit, pattern, rank, draws

    def __call__(self, s: int, v: Dict[str, Any]) -> Tuple[str, int]:
        draws = self.draws
        found = draws.values.get(self.pattern)
        if draws.sharing and found is not None:
            return found[1], s
        text, s = (self.unit, s) if self.unit.__class__ is str else self.unit(s, v)
        if found is None or self.rank < found[0]:
            draws.values[self.pattern] = (self.rank, text)
        return text, s


@dataclass(frozen=True)
class _Rewritten:
    node: AnyNode
    unit: Any  # str, or the compiled (s, scope) -> (text, s)
    wildcards: Tuple[Tuple[str, str, Wildcard, int], ...]  # (variable, name, first node, rank)


_CACHES: "weakref.WeakKeyDictionary[Any, Dict[Tuple[bool, str, str], _Rewritten]]" = weakref.WeakKeyDictionary()


def _cache(randoms: Any) -> Dict[Tuple[bool, str, str], _Rewritten]:
    """Rewritten templates of one compiler (one generation of the engine: a refresh starts afresh)."""
    found = _CACHES.get(randoms)
    if found is None:
        found = _CACHES[randoms] = {}
    return found


def _template(engine: Any, randoms: Any, cache: MutableMapping[Tuple[bool, str, str], _Rewritten], text: str,
              source: str, main: bool) -> _Rewritten:
    key = (main, text, source)
    found = cache.get(key)
    if found is not None:
        return found
    wildcards: List[Tuple[str, str, Wildcard, int]] = []
    node = rewrite(engine.parse(text, source), wildcards, ranked=main)
    if main:  # the main template's own top level, so its variables stay in the scope handed over
        items = node.items if isinstance(node, Seq) else (node,)
        node = Seq(items + (VarGet(CAPTURE_VAR),), src=node.src, pos=node.pos)
    # an extra is a unit of its own: what it sets stays in it, never reaching the next extra
    found = _Rewritten(node, randoms.unit(node), tuple(wildcards))
    if len(cache) >= MAX_CACHED:
        cache.clear()
    cache[key] = found
    return found


def shared_pattern(node: AnyNode) -> Optional[str]:
    """The name under which a wildcard node is shared, or None for one that is not."""
    if (node.__class__ is Wildcard and node.path.__class__ is Text and not node.params  # type: ignore[union-attr]
            and node.sampler != CYCLICAL):  # type: ignore[union-attr]
        return node.path.text  # type: ignore[union-attr,no-any-return]
    return None


def rewrite(node: AnyNode, found: List[Tuple[str, str, Wildcard, int]], ranked: bool = True) -> AnyNode:
    """`node` with every shared wildcard replaced by a variable; `found` gets (variable, name, node, rank)
    for each, in reading order. `ranked`: one variable per wildcard written, ranked by its place (the main
    template); else one per name, ranked after them all (an extra).

    Recursive: the parser refuses templates nested more than 100 levels, two frames each here."""
    pattern = shared_pattern(node)
    if pattern is not None:
        rank = len(found) if ranked else LAST
        var = f"{WILDCARD_VAR}{rank}:{pattern}" if ranked else WILDCARD_VAR + pattern
        found.append((var, pattern, node, rank))  # type: ignore[arg-type]
        return VarGet(var, src=node.src, pos=node.pos)
    if isinstance(node, Seq):
        items = tuple(rewrite(i, found, ranked) for i in node.items)
        return node if _same(items, node.items) else replace(node, items=items)
    if isinstance(node, Variant):
        if node.sampler == CYCLICAL or (node.lo, node.hi) != (1, 1):
            # The cyclical sampler walks the node itself; a many-pick merges options that read the same
            # (`{2$$__w__|__w__}` is one option), which two numbered variables would no longer do.
            return node
        bodies = tuple(rewrite(o.body, found, ranked) for o in node.options)
        if _same(bodies, tuple(o.body for o in node.options)):
            return node
        options = tuple(Option(b, o.weight, src=o.src, pos=o.pos) for b, o in zip(bodies, node.options))
        return replace(node, options=options)
    if isinstance(node, VarSet):
        value = rewrite(node.value, found, ranked)
        return node if value is node.value else replace(node, value=value)
    if isinstance(node, VarGet) and node.default is not None:
        default = rewrite(node.default, found, ranked)
        return node if default is node.default else replace(node, default=default)
    if isinstance(node, Wrap):
        wrapper, inner = rewrite(node.wrapper, found, ranked), rewrite(node.inner, found, ranked)
        if wrapper is node.wrapper and inner is node.inner:
            return node
        return replace(node, wrapper=wrapper, inner=inner)
    return node  # text, and wildcards that are not shared


def _same(a: Tuple[AnyNode, ...], b: Tuple[AnyNode, ...]) -> bool:
    return all(x is y for x, y in zip(a, b))
