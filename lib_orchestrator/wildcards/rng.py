"""The per-image random stream: cheap enough to inline, deterministic from the image seed alone.

A prompt's randomness comes from one 64-bit state derived from the image seed by SplitMix64, then
advanced by a 64-bit LCG (Knuth's MMIX constants) once per draw. Draws use the high 32 bits, the
good ones of an LCG. Generated code inlines `advance` and `index` (see random_sampler.py); these
functions are the same arithmetic for the interpreted samplers.
"""
from __future__ import annotations

MASK = 0xFFFFFFFFFFFFFFFF
LCG_MUL = 6364136223846793005
LCG_INC = 1442695040888963407
TO_UNIT = 2.0 ** -32


def image_state(seed: int) -> int:
    """SplitMix64 of the seed: nearby seeds give unrelated streams."""
    z = (seed * 0x9E3779B97F4A7C15 + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def advance(s: int) -> int:
    return (s * LCG_MUL + LCG_INC) & MASK


def index(s: int, n: int) -> int:
    """An index in range(n) from a freshly advanced state."""
    return ((s >> 32) * n) >> 32


def unit(s: int) -> float:
    """A float in [0, 1) from a freshly advanced state."""
    return (s >> 32) * TO_UNIT
