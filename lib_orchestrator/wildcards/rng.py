"""The per-image random stream: cheap enough to inline, deterministic from the image seed alone.

A prompt's randomness comes from one 32-bit state derived from the image seed by MurmurHash3's
finaliser (fmix32), then advanced by a 32-bit LCG (a multiplier from L'Ecuyer's tables of good lattice
structure) once per draw; a draw in range(n) is the state's high bits, `s * n >> 32`. All of it stays
in small Python ints, which is what makes generated code fast (see random_sampler.py, which inlines
exactly this arithmetic; these functions are its reference and serve the interpreted samplers).
"""
from __future__ import annotations

MASK = 0xFFFFFFFF
LCG_MUL = 2891336453
LCG_INC = 1013904223
TO_UNIT = 2.0 ** -32

# The same arithmetic as source text, for the code generator.
SEED_SRC = ("s = seed & 4294967295; s ^= s >> 16; s = (s * 2246822507) & 4294967295; s ^= s >> 13; "
            "s = (s * 3266489909) & 4294967295; s ^= s >> 16")
STEP_SRC = "s = (s * 2891336453 + 1013904223) & 4294967295"


def image_state(seed: int) -> int:
    """Nearby seeds give unrelated streams: MurmurHash3's fmix32, a bijection of 32-bit seeds (Forge's
    seeds are 32-bit; a larger seed counts modulo 2**32)."""
    s = seed & MASK
    s ^= s >> 16
    s = (s * 2246822507) & MASK
    s ^= s >> 13
    s = (s * 3266489909) & MASK
    return s ^ (s >> 16)


def advance(s: int) -> int:
    return (s * LCG_MUL + LCG_INC) & MASK


def index(s: int, n: int) -> int:
    """An index in range(n) from a freshly advanced state."""
    return (s * n) >> 32


def unit(s: int) -> float:
    """A float in [0, 1) from a freshly advanced state."""
    return s * TO_UNIT
