"""How much better (or worse) a LoRA makes this user's images: an effect in stars, with its uncertainty, from the
user's own star ratings and blind pairwise comparisons. Pure functions; the store hands the data in.

Why this model. Usage says what got picked, not what the user liked. Stars are on each user's own scale and noisy;
a comparison of two images that share prompt and seed but differ in their LoRAs holds everything else equal, but
says only "better" or "worse". So both are read, each on its own terms, and pooled by how much each knows:

- **Stars.** A rated image's value is its stars (1..5), 0 for a reject, 5 for a favourite without stars. μ and σ
  are the user's mean and sample standard deviation over every rated image (those without LoRAs too): effects are
  measured against the user's typical image, in the user's own spread. σ is floored at 0.75 (a user who rates
  nearly everything 4 would otherwise make one 5 look like a huge effect) and is 1.0 below 5 ratings (too few to
  estimate a spread). A LoRA's star evidence is d̄ = mean(value − μ) over the n rated images that used it, with
  precision n/σ²: each image one measurement with noise σ. An image with several LoRAs credits each of them with
  its whole deviation (nothing here can tell them apart; comparisons can).
- **Pairs.** Bradley–Terry over LoRA effects: each side of a comparison is a set of items, P(winner side wins) =
  logistic(Σθ_winner − Σθ_loser). Items on both sides cancel (a LoRA both images used says nothing), and the image
  without LoRAs is the anchor at θ = 0 simply by being the empty set, so θ reads "better than no LoRA". A tie is
  half a win each way. The fit is the MAP under a Gaussian prior of sd 3 logits (a LoRA that always wins stays
  finite), by Newton's method; θ's variance is the diagonal of the inverse Hessian, exact up to 400 items and
  1/H_ii beyond (cheaper; never wider than the truth, and close to it while comparisons are mostly against the
  baseline: at most 2% narrower for 800 LoRAs in 20k random comparisons, one in nine with the baseline).
- **One logit counts as one star.** If one look at one image judges it with noise of about one star (σ, for most
  users), a LoRA one star better wins Φ(1/√2) ≈ 76% of its twin comparisons (Thurstone); one logit gives
  logistic(1) ≈ 73%. The two scales agree within the noise of either, so no fitted exchange rate is needed.
- **Combined**, precision-weighted, with a prior of k = 3 average ratings so one rating does not make a champion:
  score = (n/σ²·d̄ + θ/vθ) / (k/σ² + n/σ² + 1/vθ), variance = 1/(that denominator), low/high = score ∓ 1.96·sd.
  One 5-star image for a user with μ = 3.5, σ = 1 scores 1.5/(4 + 1/9) ≈ 0.36; ten score 15/(13 + 1/9) ≈ 1.14.
  A LoRA with no ratings and no comparisons scores 0 with the prior's interval (θ = 0, vθ = 9). The two zeros
  are pooled as one, though the stars' is the user's average image and the pairs' the image without LoRAs.
- **Weight buckets** (`by_weight`): each (LoRA, bucket) is its own item, in the stars and in the pairs. The edges
  are fixed, half-open [low, high): "<0" (negative weights invert a slider LoRA: another effect altogether),
  "0-0.5" (a hint of it), "0.5-0.8" (moderate), "0.8-1.1" (about the strength it was trained for: 0.8 and 1.0,
  the two weights most often written, share it), ">=1.1" (overdriven), "?" (weight unknown: a `Lora hashes`
  entry only). Weights are rounded to 6 decimals first, so 0.1 * 8 lands where 0.8 does.

`feedback_factor` turns a score into a multiplier on a candidate's pick weight: exp(2·strength·score), clamped to
[0.2, 5], and exactly 1.0 at strength 0 or score 0, so feedback off reproduces today's picks bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import OrchestratorError

LoraRef = Tuple[str, Optional[float]]  # (name, weight) as the image's infotext wrote it
Item = Tuple[str, str]  # (case-folded name, bucket label or "")

PRIOR_RATINGS = 3.0  # k: the prior counts as this many ratings at the user's mean
PRIOR_SD_LOGITS = 3.0  # Bradley–Terry prior on each θ
SIGMA_FLOOR = 0.75
SIGMA_FEW = 1.0  # σ while there are fewer than FEW_RATINGS ratings
FEW_RATINGS = 5
DENSE_LIMIT = 400  # up to this many compared items, the exact inverse Hessian; beyond it, its diagonal
Z95 = 1.959963984540054
FACTOR_MIN, FACTOR_MAX = 0.2, 5.0

# (upper edge, label); a weight w goes to the first bucket with w < edge. WEIGHT_BUCKETS: the display order.
_EDGES = ((0.0, "<0"), (0.5, "0-0.5"), (0.8, "0.5-0.8"), (1.1, "0.8-1.1"), (math.inf, ">=1.1"))
UNKNOWN_BUCKET = "?"
WEIGHT_BUCKETS = tuple(label for _, label in _EDGES) + (UNKNOWN_BUCKET,)
_BUCKET_ORDER = {label: i for i, label in enumerate(("",) + WEIGHT_BUCKETS)}


@dataclass(frozen=True)
class RatedImage:
    loras: Tuple[LoraRef, ...]  # (name, weight) of the image's LoRAs
    value: float  # stars 1..5; reject = 0; favourite without stars = 5


@dataclass(frozen=True)
class Comparison:
    winner: Tuple[LoraRef, ...]  # the LoRAs of the image that won (left of a tie)
    loser: Tuple[LoraRef, ...]
    tie: bool = False


@dataclass(frozen=True)
class LoraScore:
    name: str
    bucket: str  # "" for the LoRA over all weights; else the weight bucket label, e.g. "0.5-0.8"
    images: int  # images that used it (usage); in a bucket row, its rated images (usage has no weights)
    rated: int  # of them rated (stars/reject/favourite)
    compared: int  # comparisons in which it was on one side only
    score: float  # effect in stars vs the user's mean (0 = average; +1 = a star better), shrunk
    low: float  # 95% interval
    high: float

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def weight_bucket(weight: Optional[float]) -> str:
    """The bucket label of a LoRA weight (see the module docstring for the edges); "?" when unknown."""
    if weight is None or not math.isfinite(weight):
        return UNKNOWN_BUCKET
    rounded = round(float(weight), 6)
    for edge, label in _EDGES:
        if rounded < edge:
            return label
    return _EDGES[-1][1]  # unreachable: the last edge is infinite


def lora_scores(usage: Mapping[str, int], rated: Sequence[RatedImage], comparisons: Sequence[Comparison],
                by_weight: bool = False) -> List[LoraScore]:
    """One score per LoRA (by_weight: per LoRA and weight bucket), best first: higher score, then the narrower
    interval (more evidence), then more images, then name. Names are compared case-insensitively and shown as first
    spelled (usage first, then ratings, then comparisons). Every LoRA named in the input gets a row; by_weight,
    every bucket a rating or comparison names (usage does not say at which weights a LoRA was used)."""
    spelling: Dict[str, str] = {}
    memo: Dict[LoraRef, Item] = {}  # (name, weight) -> item: most images repeat a few hundred of them

    def fold(name: str) -> str:
        shown = name.strip()
        key = shown.casefold()
        if key and key not in spelling:
            spelling[key] = shown
        return key

    def item_of(ref: LoraRef) -> Item:
        item = memo.get(ref)
        if item is None:
            name, weight = ref
            item = memo[ref] = (fold(name), weight_bucket(weight) if by_weight else "")
        return item

    def items_of(loras: Sequence[LoraRef]) -> Iterable[Item]:
        # a dict as an ordered set: a LoRA written twice on one image counts once (per bucket, by_weight);
        # a nameless entry ("" once stripped) is no LoRA
        if len(loras) == 1:
            item = item_of(loras[0])
            return (item,) if item[0] else ()
        return {item: None for item in map(item_of, loras) if item[0]}

    used: Dict[str, int] = {}
    for name, count in usage.items():
        key = fold(name)
        if key:  # spellings that differ only in case are one LoRA: their counts add
            used[key] = used.get(key, 0) + max(0, int(count))

    # stars: per item, how many rated images used it and the sum of their values
    values: List[float] = []
    sums: Dict[Item, List[float]] = {}  # item -> [count, total]
    for index, image in enumerate(rated):
        value = float(image.value)
        if not 0.0 <= value <= 5.0:  # NaN fails this too
            raise OrchestratorError(f"rated image #{index}: value {image.value!r} is not between 0 and 5",
                                    hint="a rating is 1..5 stars, 0 for a reject, 5 for a favourite without stars")
        values.append(value)
        if image.loras:
            for item in items_of(image.loras):
                acc = sums.get(item)
                if acc is None:
                    acc = sums[item] = [0, 0.0]
                acc[0] += 1
                acc[1] += value
    mean, sigma = _star_scale(values)

    # pairs: what is on one side only; a comparison with nothing left says nothing
    sides: List[Tuple[List[Item], List[Item], float]] = []
    compared: Dict[Item, int] = {}
    mentioned: Dict[Item, None] = {}  # a LoRA only ever on both sides still gets its row
    for comparison in comparisons:
        winner, loser = items_of(comparison.winner), items_of(comparison.loser)
        mentioned.update(dict.fromkeys(winner))
        mentioned.update(dict.fromkeys(loser))
        plus = [item for item in winner if item not in loser]
        minus = [item for item in loser if item not in winner]
        if not plus and not minus:
            continue
        for item in plus + minus:
            compared[item] = compared.get(item, 0) + 1
        sides.append((plus, minus, 0.5 if comparison.tie else 1.0))
    effects = _fit_pairs(sides, sorted(compared))

    items = set(sums) | set(mentioned)
    if not by_weight:
        items |= {(key, "") for key in used}
    prior_var = PRIOR_SD_LOGITS ** 2
    var_star = sigma * sigma
    scores = []
    for item in items:
        key, bucket = item
        n, total = sums.get(item, (0, 0.0))
        n = int(n)
        deviation = total - n * mean  # n·d̄
        theta, var_theta = effects.get(item, (0.0, prior_var))
        precision = (PRIOR_RATINGS + n) / var_star + 1.0 / var_theta
        score = (deviation / var_star + theta / var_theta) / precision
        half = Z95 * math.sqrt(1.0 / precision)
        images = max(used.get(key, 0), n) if not bucket else n
        scores.append(LoraScore(spelling[key], bucket, images, n, compared.get(item, 0), score,
                                score - half, score + half))
    # rounded so that sums taken in another order (a permuted input) cannot swap two equal scores
    scores.sort(key=lambda s: (-round(s.score, 9), round(s.high - s.low, 9), -s.images, s.name.casefold(),
                               _BUCKET_ORDER.get(s.bucket, len(_BUCKET_ORDER))))
    return scores


def feedback_factor(score: Union[LoraScore, float], strength: float) -> float:
    """The multiplier on a candidate's pick weight: exp(2·strength·score) within [0.2, 5]; exactly 1.0 at strength 0
    or score 0 (feedback off = the picks without it). At strength 1 a LoRA half a star better is picked e ≈ 2.7 times
    as often; one a whole star worse would get e⁻² ≈ 0.14 and is held at the floor, 0.2."""
    if not (math.isfinite(strength) and strength >= 0.0):
        raise OrchestratorError(f"feedback strength {strength!r} is not a number from 0 up",
                                hint="feedback is 0 (off) to 1 (strong)")
    value = score.score if isinstance(score, LoraScore) else float(score)
    if strength == 0.0 or value == 0.0 or not math.isfinite(value):  # a score from lora_scores is always finite
        return 1.0
    return min(FACTOR_MAX, max(FACTOR_MIN, math.exp(2.0 * strength * value)))


def _star_scale(values: Sequence[float]) -> Tuple[float, float]:
    """μ and σ of the user's ratings (see the module docstring)."""
    if not values:
        return 0.0, SIGMA_FEW
    mean = math.fsum(values) / len(values)
    if len(values) < FEW_RATINGS:
        return mean, SIGMA_FEW
    spread = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, max(SIGMA_FLOOR, spread)


def _fit_pairs(sides: Sequence[Tuple[List[Item], List[Item], float]],
               items: List[Item]) -> Dict[Item, Tuple[float, float]]:
    """Bradley–Terry MAP: item -> (θ, variance of θ). `items` sorted, so the result does not depend on input order."""
    if not sides:
        return {}
    import numpy as np

    size, count = len(items), len(sides)
    index = {item: i for i, item in enumerate(items)}
    rows: List[int] = []
    cols: List[int] = []
    signs: List[float] = []
    for c, (plus, minus, _) in enumerate(sides):
        entries = sorted([(index[item], 1.0) for item in plus] + [(index[item], -1.0) for item in minus])
        for i, sign in entries:
            rows.append(c)
            cols.append(i)
            signs.append(sign)
    row = np.asarray(rows, dtype=np.intp)
    col = np.asarray(cols, dtype=np.intp)
    sign = np.asarray(signs, dtype=float)
    won = np.asarray([outcome for _, _, outcome in sides], dtype=float)
    prior = 1.0 / PRIOR_SD_LOGITS ** 2

    def margin(theta):  # Σθ_winner − Σθ_loser of every comparison
        return np.bincount(row, weights=sign * theta[col], minlength=count)

    def spread(per_comparison):  # the transpose: a value per comparison onto its items, signed
        return np.bincount(col, weights=sign * per_comparison[row], minlength=size)

    def log_posterior(theta, z):
        # log σ(z) = −log(1 + e^−z), in a form that neither overflows nor loses the tail
        return float(-(won * np.logaddexp(0.0, -z) + (1.0 - won) * np.logaddexp(0.0, z)).sum()
                     - 0.5 * prior * theta @ theta)

    dense = size <= DENSE_LIMIT
    if dense:  # H = XᵀWX + I/9 as a sum over each comparison's pairs of entries
        pair_i, pair_j, pair_s, pair_c = [], [], [], []
        start = 0
        for c in range(count):
            end = start
            while end < len(rows) and rows[end] == c:
                end += 1
            for a in range(start, end):
                for b in range(start, end):
                    pair_i.append(cols[a])
                    pair_j.append(cols[b])
                    pair_s.append(signs[a] * signs[b])
                    pair_c.append(c)
            start = end
        flat = np.asarray(pair_i, dtype=np.intp) * size + np.asarray(pair_j, dtype=np.intp)
        pair_sign = np.asarray(pair_s, dtype=float)
        pair_row = np.asarray(pair_c, dtype=np.intp)

    def hessian(w):
        h = np.bincount(flat, weights=pair_sign * w[pair_row], minlength=size * size).reshape(size, size)
        h[np.diag_indices(size)] += prior
        return h

    def curvature_diagonal(w):  # each item is at most once in a comparison: sign² = 1
        return np.bincount(col, weights=w[row], minlength=size) + prior

    theta = np.zeros(size)
    z = margin(theta)
    current = log_posterior(theta, z)
    for _ in range(100):
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # logistic, without overflow
        w = p * (1.0 - p)
        gradient = spread(won - p) - prior * theta
        norm = float(np.abs(gradient).max())
        if norm < 1e-10:
            break
        if dense:
            step = np.linalg.solve(hessian(w), gradient)
        else:  # Newton-CG on the sparse Hessian, solved as precisely as the gradient is small (inexact Newton)
            step = _conjugate_gradient(lambda v, w=w: spread(w * margin(v)) + prior * v, gradient,
                                       curvature_diagonal(w), min(0.1, math.sqrt(norm)))
        # the posterior is concave, so the Newton step ascends; halving only guards a first step that overshoots
        scale = 1.0
        while True:
            trial = theta + scale * step
            trial_z = margin(trial)
            value = log_posterior(trial, trial_z)
            if value >= current - 1e-12 * (1.0 + abs(current)) or scale < 1e-6:
                break
            scale *= 0.5
        theta, z, current = trial, trial_z, value
        if float(np.abs(scale * step).max()) < 1e-12:
            break
    p = 0.5 * (1.0 + np.tanh(0.5 * z))
    w = p * (1.0 - p)
    variance = np.diag(np.linalg.inv(hessian(w))) if dense else 1.0 / curvature_diagonal(w)
    return {item: (float(theta[i]), float(variance[i])) for i, item in enumerate(items)}


def _conjugate_gradient(apply, b, diagonal, relative):
    """Solve A x = b for a symmetric positive definite A given as a product, Jacobi-preconditioned, to
    |r| ≤ relative·|b|."""
    import numpy as np

    x = np.zeros_like(b)
    r = b.copy()
    z = r / diagonal
    d = z.copy()
    rz = float(r @ z)
    goal = relative * float(np.sqrt(b @ b))
    for _ in range(min(500, 10 * len(b))):  # a truncated solve still ascends; the Newton loop finishes it
        if float(np.sqrt(r @ r)) <= goal:
            break
        ad = apply(d)
        alpha = rz / float(d @ ad)
        x += alpha * d
        r -= alpha * ad
        z = r / diagonal
        rz, previous = float(r @ z), rz
        d = z + (rz / previous) * d
    return x
