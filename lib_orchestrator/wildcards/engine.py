"""The prompt engine: template text + wildcard folders + seed → prompts, in any of the three modes."""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from itertools import islice
from typing import Dict, Hashable, Iterator, List, Optional, Sequence, Tuple

from . import rng
from .ast import AnyNode
from .cyclical import Cycler
from .parser import parse
from .random_sampler import PromptFn, RandomCompiler
from .resolve import LoraGate, Resolver
from .store import WildcardStore

MODES = ("random", "combinatorial", "cyclical")
MAX_CACHED_TEMPLATES = 512
MAX_GATED = 8  # checkpoints (and library versions) a Forge session switches between, each kept compiled


@dataclass(frozen=True)
class Prompt:
    """One generated prompt and the image seed it belongs to."""

    text: str
    seed: int
    index: int

    def to_dict(self) -> Dict[str, object]:
        return {"prompt": self.text, "seed": self.seed, "index": self.index}


class _Generation:
    """Everything read or compiled from the files as they were at one time. A refresh replaces the
    whole of it at once, so a call that started with one generation finishes with it."""

    def __init__(self, store: WildcardStore, on_missing: str, lora_gate: Optional[LoraGate] = None) -> None:
        self.store_generation = store.generation
        self.resolver = Resolver(store, on_missing, lora_gate)
        self.randoms = RandomCompiler(self.resolver)
        self.cycler = Cycler(self.resolver, self.randoms)
        self.randoms.cyclical = self.cycler.render
        self.parsed: Dict[Tuple[str, str], AnyNode] = {}
        self.compiled: Dict[Tuple[str, str], PromptFn] = {}


class PromptEngine:
    """Holds the store and the compiled templates; cheap to keep for the life of the process.

    Safe to share between threads (Forge's generations and its tab): the store locks itself, and a
    refresh swaps in a new generation under the engine's lock while running calls keep theirs."""

    def __init__(self, roots: Sequence[str], on_missing: str = "error", lora_gate: Optional[LoraGate] = None,
                 store: Optional[WildcardStore] = None) -> None:
        self.store = store if store is not None else WildcardStore(roots)
        self.on_missing = on_missing
        self.lora_gate = lora_gate
        self._lock = threading.RLock()
        self._gen = self._new_generation()
        self._gated: Dict[Hashable, PromptEngine] = {}

    def _new_generation(self) -> _Generation:
        return _Generation(self.store, self.on_missing, self.lora_gate)

    def gated(self, key: Hashable, lora_gate: LoraGate) -> "PromptEngine":
        """This engine for one checkpoint and LoRA library: entries carrying a LoRA that `lora_gate`
        refuses are left out (kept as text with `keep`). The files are read once for all of them; `key`
        (checkpoint, library version) names the gate, and the last few are kept compiled."""
        with self._lock:
            engine = self._gated.get(key)
            if engine is None:
                if len(self._gated) >= MAX_GATED:
                    self._gated.pop(next(iter(self._gated)))
                engine = self._gated[key] = PromptEngine(self.store.roots, self.on_missing, lora_gate, self.store)
            return engine

    @property
    def resolver(self) -> Resolver:
        return self._gen.resolver

    @property
    def randoms(self) -> RandomCompiler:
        return self._gen.randoms

    @property
    def cycler(self) -> Cycler:
        return self._gen.cycler

    def refresh(self) -> bool:
        """Drop everything read from files that changed since; True when something did."""
        with self._lock:
            # The store is shared with the gated engines: whichever refreshes it first, all see the change.
            changed = self.store.refresh()
            if changed or self._gen.store_generation != self.store.generation:
                self._gen = self._new_generation()
                for engine in self._gated.values():
                    engine.refresh()
                return True
            return False

    @property
    def warnings(self) -> List[str]:
        notes = [str(f) for f in self.store.file_warnings()] + [str(n) for n in self._gen.resolver.notes]
        return list(dict.fromkeys(notes))

    def parse(self, template: str, source: str = "<template>") -> AnyNode:
        return self._parse(self._gen, template, source)

    def _parse(self, gen: _Generation, template: str, source: str) -> AnyNode:
        key = (template, source)
        node = gen.parsed.get(key)
        if node is None:
            node = gen.parsed[key] = parse(template, source)
        return node

    def compile(self, template: str, source: str = "<template>") -> PromptFn:
        """seed -> prompt for random mode; the same function serves every image."""
        return self._compile(self._gen, template, source)[1]

    def _compile(self, gen: _Generation, template: str, source: str) -> Tuple[_Generation, PromptFn]:
        key = (template, source)
        fn = gen.compiled.get(key)
        if fn is None:
            with self._lock:  # one compilation at a time: the compiler keeps state while it works
                if len(gen.compiled) >= MAX_CACHED_TEMPLATES and gen is self._gen:
                    # a long Forge session sees many templates: compiled code goes, the store keeps what it read
                    gen = self._gen = self._new_generation()
                fn = gen.compiled.get(key)
                if fn is None:
                    fn = gen.compiled[key] = gen.randoms.compile(self._parse(gen, template, source))
        return gen, fn

    def prompt(self, template: str, seed: int, mode: str = "random", source: str = "<template>") -> str:
        """The prompt of image seed `seed` (random or cyclical mode)."""
        if mode == "combinatorial":
            raise ValueError("combinatorial prompts have no per-seed form; use prompts()")
        return next(self.texts(template, mode, seed, 1, source))

    def prompts(self, template: str, mode: str = "random", seed: int = 0, count: int = 1,
                source: str = "<template>") -> Iterator[Prompt]:
        """Prompts for images seed, seed+1, …; in combinatorial mode `count` is the maximum."""
        texts = self.texts(template, mode, seed, count, source)
        return (Prompt(text, seed + k, k) for k, text in enumerate(texts))

    def texts(self, template: str, mode: str = "random", seed: int = 0, count: int = 1,
              source: str = "<template>") -> Iterator[str]:
        """prompts() without the records: text k belongs to image seed + k."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if count < 0:
            raise ValueError("count must be 0 or more")
        # every mode: the same static checks, the same errors
        gen, fn = self._compile(self._gen, template, source)
        if mode == "random":
            return map(fn, range(seed, seed + count))
        node = self._parse(gen, template, source)
        if mode == "cyclical":
            render = gen.cycler.render
            nested = gen.randoms.nesting.height(node)  # where `#h` starts (nesting.py)
            return (render(node, x, rng.image_state(x), {"#c": x, "#h": nested})[0]
                    for x in range(seed, seed + count))
        # islice takes at most sys.maxsize; a larger maximum is no maximum: the listing stops at
        # the real number of combinations, and nobody waits for 2**63 prompts anyway.
        return islice(_combinator(gen, seed).iterate(node), count if count <= sys.maxsize else None)

    def count(self, template: str, source: str = "<template>") -> int:
        """How many prompts combinatorial mode can make, counted without listing them."""
        gen, _ = self._compile(self._gen, template, source)
        return _combinator(gen, 0).count(self._parse(gen, template, source))


def _combinator(gen: _Generation, seed: int):  # -> Combinator; imported here, random mode never needs it
    from .combinatorial import Combinator

    return Combinator(gen.resolver, gen.randoms, gen.cycler.render, seed)
