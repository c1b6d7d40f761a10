"""The prompt engine: template text + wildcard folders + seed → prompts, in any of the three modes."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import islice
from typing import Dict, Iterator, List, Sequence, Tuple

from . import rng
from .ast import AnyNode
from .cyclical import Cycler
from .parser import parse
from .random_sampler import PromptFn, RandomCompiler
from .resolve import Resolver
from .store import WildcardStore

MODES = ("random", "combinatorial", "cyclical")
MAX_CACHED_TEMPLATES = 512


@dataclass(frozen=True)
class Prompt:
    """One generated prompt and the image seed it belongs to."""

    text: str
    seed: int
    index: int

    def to_dict(self) -> Dict[str, object]:
        return {"prompt": self.text, "seed": self.seed, "index": self.index}


class PromptEngine:
    """Holds the store and the compiled templates; cheap to keep for the life of the process."""

    def __init__(self, roots: Sequence[str], on_missing: str = "error") -> None:
        self.store = WildcardStore(roots)
        self.on_missing = on_missing
        self._reset()

    def _reset(self) -> None:
        self.resolver = Resolver(self.store, self.on_missing)
        self.randoms = RandomCompiler(self.resolver)
        self.cycler = Cycler(self.resolver, self.randoms)
        self.randoms.cyclical = self.cycler.render
        self._parsed: Dict[Tuple[str, str], AnyNode] = {}
        self._compiled: Dict[Tuple[str, str], PromptFn] = {}

    def refresh(self) -> bool:
        """Drop everything read from files that changed since; True when something did."""
        if self.store.refresh():
            self._reset()
            return True
        return False

    @property
    def warnings(self) -> List[str]:
        notes = [str(f) for f in self.store.file_warnings()] + [str(n) for n in self.resolver.notes]
        return list(dict.fromkeys(notes))

    def parse(self, template: str, source: str = "<template>") -> AnyNode:
        key = (template, source)
        node = self._parsed.get(key)
        if node is None:
            node = self._parsed[key] = parse(template, source)
        return node

    def compile(self, template: str, source: str = "<template>") -> PromptFn:
        """seed -> prompt for random mode; the same function serves every image."""
        key = (template, source)
        fn = self._compiled.get(key)
        if fn is None:
            if len(self._compiled) >= MAX_CACHED_TEMPLATES:  # a long Forge session sees many templates
                self._reset()  # compiled code goes; the store keeps what it read
            fn = self._compiled[key] = self.randoms.compile(self.parse(template, source))
        return fn

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
        fn = self.compile(template, source)  # every mode: the same static checks, the same errors
        if mode == "random":
            return map(fn, range(seed, seed + count))
        node = self.parse(template, source)
        if mode == "cyclical":
            render = self.cycler.render
            return (render(node, x, rng.image_state(x), {"#c": x})[0] for x in range(seed, seed + count))
        # islice takes at most sys.maxsize; a larger maximum is no maximum: the listing stops at
        # the real number of combinations, and nobody waits for 2**63 prompts anyway.
        return islice(self._combinator(seed).iterate(node), count if count <= sys.maxsize else None)

    def count(self, template: str, source: str = "<template>") -> int:
        """How many prompts combinatorial mode can make, counted without listing them."""
        self.compile(template, source)
        return self._combinator(0).count(self.parse(template, source))

    def _combinator(self, seed: int):  # -> Combinator; imported here, random mode never needs it
        from .combinatorial import Combinator

        return Combinator(self.resolver, self.randoms, self.cycler.render, seed)
