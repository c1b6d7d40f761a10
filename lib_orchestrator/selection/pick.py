"""Picking LoRAs for one image: seeded, within the rules, each pick with its reason.

Order of business: LoRAs the user wrote, pinned ones, LoRAs whose trigger the prompt names, category
minimums, then matches (by keywords, meaning or both: match.py; or the LLM's choice among them) by
weighted chance (temperature), a fallback when nothing matched (subject-neutral categories only, unless
the rules allow more), and a detailer by chance. Every draw comes from one `random.Random` seeded by the
image seed, and only its `random()` is used, whose sequence Python keeps stable across versions.

Feedback: where the index carries the user's verdicts (`LoraIndex.with_feedback`) and the rules' `feedback`
is above 0, every drawn LoRA's chance (matches and fallbacks, never a trigger, a pin or the user's own) is
multiplied by its factor, and a pick the factor moved says so in its reason (`match+feedback`). At 0, or with
no verdicts, not one draw changes.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Set, Tuple

from ..library import LoraRecord
from .index import LoraIndex
from .match import Candidate, find, ranked
from .rules import Rules
from .text import user_loras

if TYPE_CHECKING:
    from .llm_choice import CandidateCard, ChoiceResult

# (prompt, image seed, the candidates' cards) -> the LLM's choice: llm_choice.LlmChooser
Chooser = Callable[[str, int, Sequence["CandidateCard"]], "ChoiceResult"]

REASONS = ("user", "pinned", "trigger", "match", "semantic", "llm", "fallback", "detailer")
FEEDBACK = "+feedback"  # appended to the reason of a pick whose chance the user's ratings moved noticeably
NOTICEABLE = 0.05  # …by more than this share either way
LLM_NOTE = "LLM LoRA choice"  # how the warnings about the LLM's choice begin: they go into the image's note too


@dataclass(frozen=True)
class Pick:
    name: str  # what goes in <lora:NAME:W>
    weight: float
    category: str
    reason: str
    score: float = 0.0
    matched: Tuple[str, ...] = ()
    phrase: Optional[str] = None  # the prompt tag that named it, where its activation text goes
    activation: Optional[str] = None  # the activation alternative drawn; the composer adds what is unsaid
    negative: str = ""
    record: Optional[LoraRecord] = None  # None for a user's tag naming no known LoRA
    similarity: Optional[float] = None  # cosine of its vector to the prompt's, where vectors exist
    why: str = ""  # the LLM's reason, for an `llm` pick
    tag: str = ""  # a user's `<lora:NAME>` written without a weight: the composer gives it this pick's weight


@dataclass(frozen=True)
class Selection:
    picks: Tuple[Pick, ...]
    warnings: Tuple[str, ...]


def pick_loras(index: LoraIndex, prompt: str, seed: int, rules: Rules, family: str, base_model: str,
               chooser: Optional[Chooser] = None) -> Selection:
    """`chooser` (llm_choice.LlmChooser) is asked when the rules' match is `llm`."""
    rng = random.Random((seed & 0xFFFFFFFFFFFFFFFF) ^ 0x4C4F5241)  # "LORA": apart from the wildcard stream
    compat = index.compatible(family, base_model)
    state = _State(index, rules, compat, {n.lower() for n in rules.blocked}, family, base_model)
    warnings: List[str] = []

    for name, weight_text, tag in user_loras(prompt):
        i = index.by_name.get(name.lower())
        record = index.records[i] if i is not None else None
        if record is not None and not weight_text:
            state.add(i, _weight_filled(record, name, tag, state.rules, seed))
            continue
        state.add(i, Pick(name, _parse_weight(weight_text), record.category if record else "other", "user",
                          record=record))
    for name in rules.pinned:
        i = index.by_name.get(name.lower())
        if i is None:
            warnings.append(f"pinned LoRA '{name}' is not in the library")
        elif compat[i] <= 0:
            warnings.append(f"pinned LoRA '{name}' does not load on a {base_model} checkpoint")
        elif i not in state.taken:
            state.add(i, state.pick(i, "pinned", None, rng))

    total = rules.min_total + int(rng.random() * (rules.max_total - rules.min_total + 1))
    found = find(index, prompt, rules, compat)
    if found.note:
        warnings.append(found.note)
    matches = found.candidates

    # One LoRA per phrase: the best (a character's Pony and IL versions). A LoRA picked for one of its
    # triggers names all of them that the prompt holds, so another cannot come in by another of its
    # triggers (a second pose LoRA by `looking back` after `hand on hip, looking back`).
    named: Set[str] = set()
    for i, c in sorted(((i, c) for i, c in matches.items() if c.match is not None and c.match.phrases),
                       key=lambda ic: (-ic[1].score, ic[0])):
        assert c.match is not None
        if named.isdisjoint(c.match.phrases) and state.allowed(i):
            named.update(c.match.phrases)
            state.add(i, state.pick(i, "trigger", c, rng))
    matches = {i: c for i, c in matches.items()
               if i in state.taken or c.match is None or named.isdisjoint(c.match.phrases)}

    if rules.match == "llm":  # the LLM judges every candidate, those under their bar too
        matches, note = _llm_choice(index, prompt, seed, rules, matches, state, chooser)
        if note:
            warnings.append(note)
    else:  # without it, only those over their bar are drawn
        matches = {i: c for i, c in matches.items() if c.pickable}

    for category, rule in rules.categories.items():
        while state.per_category[category] < rule.min and len(state.picks) < rules.max_total:
            pool = [i for i in matches if index.records[i].category == category and state.allowed(i)]
            if pool:
                i = _weighted(pool, matches, rules.temperature, rng, state.factors)
                state.add(i, state.pick(i, matches[i].reason, matches[i], rng))
                continue
            i = state.draw(state.pool(category), rng)
            if i is None:
                break
            state.add(i, state.pick(i, "fallback", None, rng))

    while len(state.picks) < total:
        pool = [i for i in matches if state.allowed(i)]
        if not pool:
            break
        i = _weighted(pool, matches, rules.temperature, rng, state.factors)
        state.add(i, state.pick(i, matches[i].reason, matches[i], rng))

    # Nothing matched: fill from the pool. Something matched: only make up the minimum.
    if rules.fallback:
        while len(state.picks) < (total if not matches else rules.min_total):
            i = state.fallback(rng)
            if i is None:
                break
            state.add(i, state.pick(i, "fallback", None, rng))

    if rng.random() < rules.detailer_probability and state.per_category["detailer"] == 0 \
            and len(state.picks) < rules.max_total:
        pool = [i for i in matches if index.records[i].category == "detailer" and state.allowed(i)]
        if pool:
            i = _weighted(pool, matches, rules.temperature, rng, state.factors)
        else:
            i = state.draw(state.pool("detailer"), rng)
        if i is not None:
            state.add(i, state.pick(i, "detailer", matches.get(i), rng))

    for p in state.picks:
        if p.record is not None and any(w.code == "stem_collision" for w in p.record.problems):
            warnings.append(f"<lora:{p.name}> is ambiguous: several files are named '{p.name}'")
    return Selection(tuple(state.picks), tuple(warnings))


def _llm_choice(index: LoraIndex, prompt: str, seed: int, rules: Rules, candidates: Dict[int, Candidate],
                state: "_State", chooser: Optional[Chooser]) -> Tuple[Dict[int, Candidate], Optional[str]]:
    """The LLM's choice among the best hybrid candidates, as the matches (in its order, reason `llm`), or
    the hybrid matches (those over their bar) with why not. The picker's rules still apply to what it chose."""
    drawable = {i: c for i, c in candidates.items() if c.pickable}
    if chooser is None:
        return drawable, f"{LLM_NOTE} is not set up here: hybrid picks"
    offered = [c for c in ranked(candidates) if state.allowed(c.index)][:rules.llm_candidates]
    if not offered:
        return drawable, None
    chosen, error = llm_chosen(index, prompt, seed, offered, chooser)
    if error is not None:
        return drawable, f"{LLM_NOTE} fell back to hybrid picks: {error}"
    for c, why in chosen:
        state.why[c.index] = why
    return {c.index: c for c, _ in chosen}, None


def llm_chosen(index: LoraIndex, prompt: str, seed: int, offered: Sequence[Candidate],
               chooser: Chooser) -> Tuple[List[Tuple[Candidate, str]], Optional[str]]:
    """The offered candidates the LLM chose, in its order, each as reason `llm` (drawable, ranked by that
    order: the first it names is drawn as the best, temperature still applies) with its reason; or the
    error that kept it from choosing."""
    from .llm_choice import card_for

    result = chooser(prompt, seed, [card_for(index.records[c.index]) for c in offered])
    if result.error is not None:
        return [], result.error
    by_name = {c.name: c for c in offered}
    chosen: Dict[int, Tuple[Candidate, str]] = {}
    for k, choice in enumerate(result.chosen):
        c = by_name.get(choice.id)
        if c is not None and c.index not in chosen:
            chosen[c.index] = (replace(c, reason="llm", rank=1.0 / (1 + k), pickable=True), choice.reason)
    return list(chosen.values()), None


class _State:
    def __init__(self, index: LoraIndex, rules: Rules, compat: Sequence[float], blocked: Set[str],
                 family: str, base_model: str) -> None:
        self.index, self.rules, self.compat, self.blocked = index, rules, compat, blocked
        self.family, self.base_model = family, base_model
        self.picks: List[Pick] = []
        self.taken: Set[int] = set()
        self.per_category: Counter = Counter()
        self.per_group: Counter = Counter()
        self.category_max = {name: rule.max for name, rule in rules.categories.items()}
        self.other_max = rules.category("other").max
        self.groups: Dict[str, List[int]] = {}  # a category or a lower-cased LoRA name -> its conflict groups
        self.why: Dict[int, str] = {}  # the LLM's reason for each LoRA it chose
        self.factors = index.factors(rules.feedback) if rules.feedback > 0 and index.effect else {}
        self.top_factor = max(self.factors.values(), default=1.0)
        for g, group in enumerate(rules.conflicts):
            for member in group:
                self.groups.setdefault(member.lower(), []).append(g)

    def groups_of(self, record: Optional[LoraRecord], category: str) -> List[int]:
        found = self.groups.get(category, [])
        if record is not None and self.groups:
            found = found + self.groups.get(record.name.lower(), [])
        return found

    def allowed(self, i: int) -> bool:
        if i in self.taken or self.compat[i] <= 0 or len(self.picks) >= self.rules.max_total:
            return False
        record = self.index.records[i]
        if self.per_category[record.category] >= self.category_max.get(record.category, self.other_max):
            return False
        if self.blocked and record.name.lower() in self.blocked:
            return False
        return all(self.per_group[g] == 0 for g in self.groups_of(record, record.category))

    def add(self, i: Optional[int], pick: Pick) -> None:
        """Take a pick. User-written and pinned LoRAs come through here unchecked: they always go in."""
        self.picks.append(pick)
        if i is not None:
            self.taken.add(i)
        self.per_category[pick.category] += 1
        for g in self.groups_of(pick.record, pick.category):
            self.per_group[g] += 1

    def pool(self, category: str) -> List[int]:
        return self.index.pool(self.family, self.base_model, category)

    def draw(self, pool: List[int], rng: random.Random) -> Optional[int]:
        """A uniformly drawn allowed member of a (possibly large) pool: a few blind draws first, since
        nearly all are allowed, then a scan."""
        if self.factors:
            return self._draw_weighted(pool, rng)
        for _ in range(8):
            if not pool:
                return None
            i = pool[int(rng.random() * len(pool))]
            if self.allowed(i):
                return i
        allowed = [i for i in pool if self.allowed(i)]
        return allowed[int(rng.random() * len(allowed))] if allowed else None

    def _draw_weighted(self, pool: List[int], rng: random.Random) -> Optional[int]:
        """An allowed member drawn in proportion to its feedback factor (1 for a LoRA not rated): uniform
        proposals accepted with factor / the largest factor, which needs no pass over a large pool, then the
        exact weighted draw over the allowed ones if the proposals keep missing."""
        top = max(self.top_factor, 1.0)
        for _ in range(16):
            if not pool:
                return None
            i = pool[int(rng.random() * len(pool))]
            if self.allowed(i) and rng.random() * top < self.factors.get(i, 1.0):
                return i
        allowed = [i for i in pool if self.allowed(i)]
        if not allowed:
            return None
        return allowed[_by_weight([self.factors.get(i, 1.0) for i in allowed], rng)]

    def fallback(self, rng: random.Random) -> Optional[int]:
        """A compatible LoRA from a fallback category drawn by the categories' weights."""
        choices = [(rule.weight, category) for category, rule in self.rules.categories.items()
                   if rule.weight > 0 and category in self.rules.fallback_categories and self.pool(category)
                   and self.per_category[category] < rule.max]
        while choices:
            k = _by_weight([w for w, _ in choices], rng)
            i = self.draw(self.pool(choices[k][1]), rng)
            if i is not None:
                return i
            del choices[k]  # nothing allowed there (a conflict group): try the other categories
        return None

    def pick(self, i: int, reason: str, found: Optional[Candidate], rng: random.Random) -> Pick:
        record = self.index.records[i]
        rule = self.rules.category(record.category)
        if record.preferred_weight:
            weight = record.preferred_weight
        elif rule.weight_range:
            lo, hi = rule.weight_range
            weight = lo + rng.random() * (hi - lo)
        else:
            weight = rule.lora_weight
        if self.rules.jitter:
            weight += (rng.random() * 2 - 1) * self.rules.jitter
        match = found.match if found else None
        if reason not in ("user", "pinned", "trigger") and abs(self.factors.get(i, 1.0) - 1.0) > NOTICEABLE:
            reason += FEEDBACK
        return Pick(record.name, round(weight, 2), record.category, reason,
                    score=round(found.score, 3) if found else 0.0, matched=found.terms if found else (),
                    phrase=match.phrase if match else None, activation=_activation(record, rng),
                    negative=record.negative_text, record=record,
                    similarity=round(found.similarity, 3) if found and found.similarity is not None else None,
                    why=self.why.get(i, ""))


def _weight_filled(record: LoraRecord, name: str, tag: str, rules: Rules, seed: int) -> Pick:
    """`<lora:NAME>` with no weight (a wildcard entry that carries a LoRA): the LoRA's preferred weight,
    else its category's (never a draw from the category's range: the entry asked for this LoRA, and a
    slider's range centres on 0), and one of its activation texts, drawn from a stream of its own, so the
    other picks of the image stay what they were."""
    weight = record.preferred_weight or rules.category(record.category).lora_weight
    rng = random.Random(f"{seed}:{record.name}")
    return Pick(name, round(weight, 2), record.category, "user", activation=_activation(record, rng),
                negative=record.negative_text, record=record, tag=tag)


def _activation(record: LoraRecord, rng: random.Random) -> Optional[str]:
    """One activation alternative, drawn, as written (`hand on hip, looking back`). What of it the prompt
    already says is left to the composer, which sees the prompt with the other picks' text too."""
    alternatives = record.activations
    if not alternatives:
        return None
    return alternatives[int(rng.random() * len(alternatives))].strip()


def _weighted(pool: List[int], matches: Dict[int, Candidate], temperature: float, rng: random.Random,
              factors: Dict[int, float]) -> int:
    """Temperature 0: the best; higher: flatter. Weights are (rank / best) ** (1 / temperature), each times
    the LoRA's feedback factor (at temperature 0, rank times factor decides the best)."""
    scores = [matches[i].rank for i in pool]
    best = max(scores)
    if temperature <= 0 or best <= 0:
        if factors:
            scores = [s * factors.get(i, 1.0) for s, i in zip(scores, pool)]
        return pool[scores.index(max(scores))]
    weights = [(s / best) ** (1.0 / temperature) for s in scores]
    if factors:
        weights = [w * factors.get(i, 1.0) for w, i in zip(weights, pool)]
    return pool[_by_weight(weights, rng)]


def _by_weight(weights: Sequence[float], rng: random.Random) -> int:
    """An index drawn in proportion to the weights."""
    target = rng.random() * sum(weights)
    for k, w in enumerate(weights):
        target -= w
        if target < 0:
            return k
    return len(weights) - 1


def _parse_weight(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0

