"""Which LoRAs a prompt is about: keyword evidence, meaning, or both, ranked on one scale.

- keyword: the index's BM25-flavoured scorer (index.py), as always; the floor is absolute and relative
  to the prompt's best match.
- semantic: cosine similarity of the prompt's vector to each LoRA's. Static embeddings put every text
  somewhat near every other, so a similarity counts by how far it stands above the library's median
  for this prompt: a prompt whose best LoRA is barely above the median matches nothing (`semantic_min`),
  and otherwise only LoRAs within `semantic_relative` of the best come in, at most `semantic_candidates`.
- hybrid (the default): both. A LoRA whose trigger the prompt names is decisive in every mode (the picker
  takes it first); keyword matches stay candidates, similarity adds those no word found, and the rank of
  each is its similarity share plus half its keyword share, so a LoRA with both comes first and a weak
  one-word overlap does not outrank a clear meaning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from .index import LoraIndex, Match, checkpoint_base
from .rules import Rules

KEYWORD_SHARE = 0.5  # in hybrid ranks, a keyword match's share counts half as much as similarity's
MODES = ("keyword", "semantic", "hybrid", "llm")


@dataclass(frozen=True)
class Candidate:
    index: int  # into LoraIndex.records
    name: str
    reason: str  # trigger | match | semantic
    score: float  # keyword evidence × compatibility (trigger, match), the similarity (semantic)
    rank: float  # the one scale candidates are ordered and drawn by
    terms: Tuple[str, ...] = ()
    similarity: Optional[float] = None  # cosine to the prompt, where vectors exist
    match: Optional[Match] = None  # the keyword match: its trigger phrases decide `trigger` picks


@dataclass(frozen=True)
class Found:
    candidates: Dict[int, Candidate]  # in a fixed order: keyword matches as scored, then by similarity
    mode: str  # the mode actually used: hybrid without vectors is keyword
    note: Optional[str] = None  # why it is not the mode asked for, or what failed


def find(index: LoraIndex, prompt: str, rules: Rules, compat: Sequence[float], mode: Optional[str] = None) -> Found:
    """The prompt's candidates under the rules' mode (or `mode`). Never raises: an embedder that fails
    leaves keyword evidence, with the reason in `note`."""
    mode = mode or rules.match
    keyword = _keyword(index, prompt, rules, compat)
    if mode == "keyword":
        return Found(keyword, "keyword")
    semantic = getattr(index, "semantic", None)
    if semantic is None:  # hybrid's keyword half is today's matching: said once where the library's state is shown
        note = f"semantic matching has no LoRA vectors ({index.semantic_note or 'not embedded yet'}): keywords used"
        return Found(keyword, "keyword", note if mode == "semantic" else None)
    from ..embeddings.base import EmbedError

    try:
        sims = semantic.similarities(prompt)
    except EmbedError as exc:
        return Found(keyword, "keyword", f"semantic matching failed ({exc.message}); keywords used")
    if sims is None:
        return Found(keyword if mode != "semantic" else _triggers_only(keyword), mode)
    return Found(_combined(index, keyword, sims, rules, compat, mode), mode)


def _keyword(index: LoraIndex, prompt: str, rules: Rules, compat: Sequence[float]) -> Dict[int, Candidate]:
    """Today's keyword matches: over the absolute floor and the share of the best (both × compatibility)."""
    scored = {i: m for i, m in index.score(prompt).items() if compat[i] > 0}
    best = max((m.score * compat[i] for i, m in scored.items()), default=0.0)
    floor = max(rules.min_score, rules.min_relative_score * best)
    out = {}
    for i, m in scored.items():
        score = m.score * compat[i]
        if score >= floor:
            out[i] = Candidate(i, index.records[i].name, "trigger" if m.phrases else "match", score, score,
                               m.terms, None, m)
    return out


def _triggers_only(keyword: Dict[int, Candidate]) -> Dict[int, Candidate]:
    return {i: c for i, c in keyword.items() if c.reason == "trigger"}


def _combined(index: LoraIndex, keyword: Dict[int, Candidate], sims, rules: Rules, compat: Sequence[float],
              mode: str) -> Dict[int, Candidate]:
    import numpy as np

    weights = np.asarray(compat, dtype=np.float32)
    usable = weights > 0
    if not usable.any():
        return {}
    shown = sims[usable]
    median, best = float(np.median(shown)), float(shown.max())
    spread = best - median
    admitted: List[int] = []
    if spread >= rules.semantic_min and rules.semantic_candidates > 0:
        cut = median + rules.semantic_relative * spread
        over = np.flatnonzero(usable & (sims >= cut))
        over = over[np.argsort(-sims[over], kind="stable")][:rules.semantic_candidates]
        admitted = [int(i) for i in over]

    def share(i: int) -> float:  # how far above the median, as a share of the best's lead (0 when no lead)
        return max(0.0, (float(sims[i]) - median) / spread) if spread >= rules.semantic_min else 0.0

    best_keyword = max((c.score for c in keyword.values()), default=0.0)
    out: Dict[int, Candidate] = {}
    kept = keyword if mode != "semantic" else _triggers_only(keyword)
    for i, c in kept.items():
        rank = share(i) + KEYWORD_SHARE * c.score / best_keyword
        out[i] = Candidate(i, c.name, c.reason, c.score, rank * compat[i], c.terms, round(float(sims[i]), 4), c.match)
    for i in admitted:
        if i not in out:
            similarity = round(float(sims[i]), 4)
            out[i] = Candidate(i, index.records[i].name, "semantic", similarity, share(i) * compat[i], (),
                               similarity)
    return out


def ranked(found: Found) -> List[Candidate]:
    """Best first: named triggers, then by rank (ties by library order, so a listing is stable)."""
    return sorted(found.candidates.values(), key=lambda c: (c.reason != "trigger", -c.rank, c.index))


def rank_candidates(index: LoraIndex, prompt: str, mode: str, family: str, base_model: Optional[str] = None,
                    rules: Optional[Rules] = None) -> List[Candidate]:
    """The ranked candidates for a prompt on a checkpoint (`library match`)."""
    rules = rules or Rules()
    compat = index.compatible(family, checkpoint_base(family, base_model))
    return ranked(find(index, prompt, rules, compat, mode))
