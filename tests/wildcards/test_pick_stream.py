"""`{lo-hi$$sep$$…}` in random mode draws from the image's stream exactly as documented: a count, then each
option by its weight among those left. The compiled sampler takes shortcuts (weights of 1 skip the search);
this reference walks the stream with rng.py's own functions, the long way, for every seed."""
from __future__ import annotations

from typing import Sequence

import pytest

from lib_orchestrator.wildcards import PromptEngine, rng


def reference(options: Sequence[str], weights: Sequence[float], lo: int, hi: int, sep: str, seed: int) -> str:
    live = [(o, w) for o, w in zip(options, weights) if w > 0]
    hi = min(hi, len(live))
    lo = min(lo, hi)
    s = rng.advance(rng.image_state(seed))
    picked = []
    for _ in range(lo + rng.index(s, hi - lo + 1)):
        total = sum(w for _, w in live)
        s = rng.advance(s)
        target = rng.unit(s) * total
        running, j = 0.0, len(live) - 1
        for k, (_, w) in enumerate(live):
            running += w
            if target < running:
                j = k
                break
        picked.append(live.pop(j)[0])
    return sep.join(picked)


@pytest.mark.parametrize("template, options, weights, lo, hi, sep", [
    ("{2$$, $$a|b|c|d}", "abcd", [1, 1, 1, 1], 2, 2, ", "),
    ("{1-3$$ and $$a|b|c|d|e}", "abcde", [1] * 5, 1, 3, " and "),
    ("{0-2$$a|b}", "ab", [1, 1], 0, 2, ","),
    ("{5$$a|b|c}", "abc", [1, 1, 1], 5, 5, ","),
    ("{2$$a|0::b|c}", "abc", [1, 0, 1], 2, 2, ","),
    ("{1-3$$+$$2::a|b|0.5::c|d}", "abcd", [2, 1, 0.5, 1], 1, 3, "+"),
    ("{2-4$$ $$0.3::a|0.3::b|0.3::c|0.1::d|e}", "abcde", [0.3, 0.3, 0.3, 0.1, 1], 2, 4, " "),
])
def test_pick_n_follows_the_documented_stream(tmp_path, template, options, weights, lo, hi, sep):
    engine = PromptEngine([str(tmp_path)])
    for seed in range(-50, 3000):
        assert engine.prompt(template, seed) == reference(list(options), weights, lo, hi, sep, seed), seed
