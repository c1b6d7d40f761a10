"""The per-image stream: the source the code generator inlines is the same arithmetic as rng.py."""
from __future__ import annotations

from collections import Counter

from lib_orchestrator.wildcards import rng


def run(src: str, **names: int) -> int:
    scope = dict(names)
    exec(src, {}, scope)
    return scope["s"]


def test_inlined_seed_mix_and_step_equal_the_reference_functions():
    for seed in [0, 1, 2, 12345, 2**31, 2**32 - 1, 2**40 + 7, -1]:
        state = run(rng.SEED_SRC, seed=seed)
        assert state == rng.image_state(seed)
        assert 0 <= state <= rng.MASK
        assert run(rng.STEP_SRC, s=state) == rng.advance(state)


def test_draws_are_uniform_across_seeds_and_along_a_stream():
    firsts = Counter(rng.index(rng.advance(rng.image_state(seed)), 10) for seed in range(50_000))
    assert all(4_600 < c < 5_400 for c in firsts.values())
    s, pairs = rng.image_state(7), Counter()
    for _ in range(50_000):
        a = rng.index(s := rng.advance(s), 5)
        b = rng.index(s := rng.advance(s), 5)
        pairs[a, b] += 1
    assert len(pairs) == 25 and all(1_700 < c < 2_300 for c in pairs.values())
