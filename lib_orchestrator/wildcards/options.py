"""What a variant or wildcard may produce, independent of how it is sampled.

Zero-weight options are never produced; every other option counts once, whatever its weight. That is
the rule the random sampler follows too, so a random prompt is always one of the combinatorial ones.
"""
from __future__ import annotations

from itertools import permutations
from math import perm
from typing import Iterator, List, Sequence, Tuple, TypeVar

from ..errors import TemplateError
from .ast import AnyNode, Variant, Wildcard

T = TypeVar("T")

# The largest weight accepted, in templates and files alike. Weights are relative, so nothing needs
# more; the cap keeps every sum of weights (and so every number the compiler writes) finite: a million
# options of the largest weight add up to 1e15, nowhere near float's 1.8e308.
MAX_WEIGHT = 1e9


def weight_problem(weight: float) -> str:
    """Why a weight is refused, or "" when it is fine."""
    if weight != weight:  # NaN compares unequal to itself
        return "is not a number"
    if weight < 0:
        return "is negative"
    if weight > MAX_WEIGHT:  # inf included
        return f"is over the {MAX_WEIGHT:,.0f} limit"
    return ""


def live_options(variant: Variant) -> List[AnyNode]:
    """The options that can be picked, identical ones once (dynamicprompts de-duplicates them too)."""
    seen: List[AnyNode] = []
    for option in variant.options:
        if option.weight > 0 and option.body not in seen:
            seen.append(option.body)
    if not seen:
        raise all_zero(variant)
    return seen


def all_zero(at: AnyNode) -> TemplateError:
    return TemplateError("every option has weight 0", at.location(), "give one option a weight above 0")


def bounds(lo: int, hi: int, n: int) -> Tuple[int, int]:
    """Bounds clamped to the option count, as dynamicprompts' adjust_range does."""
    return min(lo, n), min(hi, n)


def single_wildcard(variant: Variant) -> Wildcard | None:
    """`{2$$__w__}`: a lone wildcard option spreads its lines into the variant."""
    if len(variant.options) == 1 and isinstance(variant.options[0].body, Wildcard):
        return variant.options[0].body
    return None


def ordered_picks(n: int, lo: int, hi: int) -> Iterator[Tuple[int, ...]]:
    """Index tuples in dynamicprompts' order: by size, then lexicographic k-permutations."""
    for k in range(lo, hi + 1):
        yield from permutations(range(n), k)


def pick_count(n: int, lo: int, hi: int) -> int:
    return sum(perm(n, k) for k in range(lo, hi + 1))


def nth_pick(n: int, lo: int, hi: int, index: int) -> Tuple[int, ...]:
    """The index-th tuple of ordered_picks without listing the ones before it."""
    for k in range(lo, hi + 1):
        size = perm(n, k)
        if index < size:
            remaining = list(range(n))
            out = []
            for pos in range(k):
                block = perm(n - 1 - pos, k - 1 - pos)
                out.append(remaining.pop(index // block))
                index %= block
            return tuple(out)
        index -= size
    raise IndexError(index)


def weighted_sum_of_picks(counts: Sequence[int], lo: int, hi: int) -> int:
    """How many texts the k-permutations produce when option i alone produces counts[i]: Σ k!·e_k."""
    e = [1] + [0] * hi  # elementary symmetric polynomials e_0..e_hi of counts
    for c in counts:
        for k in range(hi, 0, -1):
            e[k] += e[k - 1] * c
    total = 0
    factorial = 1
    for k in range(0, hi + 1):
        if k > 0:
            factorial *= k
        if k >= lo:
            total += factorial * e[k]
    return total
