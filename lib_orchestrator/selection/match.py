"""Which LoRAs a prompt is about: keyword evidence, meaning, or both, ranked on one scale.

- keyword: the index's BM25-flavoured scorer (index.py), as always; the floor is absolute and relative
  to the prompt's best match.
- semantic: cosine similarity of the prompt's vector to each LoRA's. Static embeddings put every text
  somewhat near every other, so a similarity counts by how far it stands above the library's median
  for this prompt: a prompt whose best LoRA is barely above the median matches nothing (`semantic_min`),
  and otherwise only LoRAs within `semantic_relative` of the best come in, at most `semantic_candidates`.
  Rank broadly, draw cautiously: an outfit, pose, background, slider or LoRA of unknown category that
  came by similarity alone is ranked (and offered to the LLM) but drawn only over a higher bar
  (`semantic_strict_*`). Static vectors cannot tell a prompt about nothing in the library from one about
  something, and a wrong outfit changes the image where a wrong style only changes its look. A character
  never comes in by similarity: she is picked by name.
- hybrid (the default): both. A LoRA whose trigger the prompt names is decisive in every mode (the picker
  takes it first); keyword matches stay candidates and similarity adds those no word found. Each is
  ranked by its similarity share, raised by up to half for keyword evidence, so a LoRA with both comes
  first and a one-word overlap with a LoRA the prompt is not about (`girl` in its tags) is not drawn.
  When no LoRA stands out by meaning, words alone rank, as in keyword mode.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

from ..library import LoraRecord
from ..library.categories import is_appearance, keywords_in
from .index import LoraIndex, Match, checkpoint_base
from .rules import Rules
from .text import words

KEYWORD_SHARE = 0.5  # in hybrid ranks, keyword evidence raises a LoRA's similarity share by up to half
STRONG_KEYWORD = 8.0  # keyword evidence this strong counts fully (index.PHRASE_WEIGHT: one trigger phrase)
# A character is picked by her name (a trigger, a keyword), never for resembling the prompt: "a girl with white
# hair" is a description, and bringing in Frieren for it changes who the image is of.
NAMED_ONLY = frozenset({"character"})


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
    pickable: bool = True  # False: ranked and shown (and offered to the LLM), but below the bar to be drawn


@dataclass(frozen=True)
class Found:
    candidates: Dict[int, Candidate]  # in a fixed order: keyword matches as scored, then by similarity
    note: Optional[str] = None  # why meaning had no say (semantic mode without vectors), or what failed


def find(index: LoraIndex, prompt: str, rules: Rules, compat: Sequence[float], mode: Optional[str] = None) -> Found:
    """The prompt's candidates under the rules' mode (or `mode`; `llm` chooses among hybrid's). Never raises:
    an embedder that fails leaves keyword evidence, with the reason in `note`."""
    mode = mode or rules.match
    if mode == "llm":
        mode = "hybrid"
    keyword = _keyword(index, prompt, rules, compat)
    if mode == "keyword":
        return Found(keyword)
    semantic = index.semantic
    if semantic is None:  # hybrid's keyword half is today's matching: said once where the library's state is shown
        note = f"semantic matching has no LoRA vectors ({index.semantic_note or 'not embedded yet'}): keywords used"
        return Found(keyword, note if mode == "semantic" else None)
    from ..embeddings.base import EmbedError

    try:
        sims = semantic.similarities(prompt)
    except EmbedError as exc:
        return Found(keyword, f"semantic matching failed ({exc.message}); keywords used")
    if sims is None:
        return Found(keyword if mode != "semantic" else _triggers_only(keyword))
    return Found(_combined(index, keyword, sims, rules, compat, mode))


def _keyword(index: LoraIndex, prompt: str, rules: Rules, compat: Sequence[float]) -> Dict[int, Candidate]:
    """Today's keyword matches: over the absolute floor and the share of the best (both × compatibility)."""
    scored = {i: m for i, m in index.score(prompt).items() if compat[i] > 0}
    best = max((m.score * compat[i] for i, m in scored.items()), default=0.0)
    floor = max(rules.min_score, rules.min_relative_score * best)
    out = {}
    for i, m in scored.items():
        score = m.score * compat[i]
        if score >= floor and (m.phrases or not _unnamed(index.records[i], m)):
            out[i] = Candidate(i, index.records[i].name, "trigger" if m.phrases else "match", score, score,
                               m.terms, None, m)
    return out


def _unnamed(record: LoraRecord, match: Match) -> bool:
    """A character matched by words that are not her name (`white` of `white dress`, `red` of `red hair`), or
    by one word of it that names no one (`man` of `Power (Chainsaw Man)`, `maid` of `Rem maid`). She is
    picked by name: a trigger phrase, or a word of her file name or alias that is hers (`lucy`)."""
    if record.category not in NAMED_ONLY:
        return False
    names = set(words(record.name)) | set(words(record.alias or ""))
    said = names.intersection(match.terms)
    return len(said) < 2 and all(_generic_word(word) for word in said)


GENERIC_PEOPLE = frozenset("""man men woman women girl girls boy boys lady ladies guy person people child kid
    knight warrior soldier witch wizard mage sorceress princess prince queen king samurai ninja pirate student
    teacher nurse doctor priest nun elf angel demon vampire idol detective""".split())


def _generic_word(word: str) -> bool:
    """A word that says what someone is or wears, not who: people nouns, category keywords (`maid`, `knight`)."""
    return word in GENERIC_PEOPLE or bool(keywords_in([word])) or is_appearance(word)


def _triggers_only(keyword: Dict[int, Candidate]) -> Dict[int, Candidate]:
    return {i: c for i, c in keyword.items() if c.reason == "trigger"}


def _combined(index: LoraIndex, keyword: Dict[int, Candidate], sims, rules: Rules, compat: Sequence[float],
              mode: str) -> Dict[int, Candidate]:
    import numpy as np

    usable = index.loadable(compat)
    if not usable.any():
        return {}
    shown = sims[usable]
    median, best = float(np.median(shown)), float(shown.max())
    spread = best - median
    kept = keyword if mode != "semantic" else _triggers_only(keyword)
    if spread < min(rules.semantic_min, rules.semantic_strict_min):  # nothing stands out by meaning: words decide
        return {i: replace(c, similarity=round(float(sims[i]), 4)) for i, c in kept.items()}

    def share(i: int) -> float:  # how far above the median, as a share of the best's lead
        return max(0.0, (float(sims[i]) - median) / spread)

    out: Dict[int, Candidate] = {}
    for i, c in kept.items():
        # Words strengthen what the meaning says; a word in common with a LoRA the prompt is not about
        # (`girl` in its tags) is no reason to draw it.
        rank = share(i) * (1 + KEYWORD_SHARE * min(1.0, c.score / STRONG_KEYWORD)) * compat[i]
        out[i] = replace(c, rank=rank, similarity=round(float(sims[i]), 4))
    strict = spread >= rules.semantic_strict_min
    if rules.semantic_candidates > 0 and spread >= rules.semantic_min:
        cut = median + rules.semantic_relative * spread
        over = np.flatnonzero(usable & (sims >= cut))
        taken = 0
        for i in (int(i) for i in over[np.argsort(-sims[over], kind="stable")]):
            if taken >= rules.semantic_candidates:
                break
            category = index.records[i].category
            if i in out or category in NAMED_ONLY:
                continue
            pickable = category not in rules.semantic_strict or (strict and share(i) >= rules.semantic_strict_relative)
            similarity = round(float(sims[i]), 4)
            out[i] = Candidate(i, index.records[i].name, "semantic", similarity, share(i) * compat[i], (), similarity,
                               pickable=pickable)
            taken += 1
    return out


def ranked(candidates: Dict[int, Candidate]) -> List[Candidate]:
    """Best first: named triggers, then by rank (ties by library order, so a listing is stable)."""
    return sorted(candidates.values(), key=lambda c: (c.reason != "trigger", -c.rank, c.index))


def rank_candidates(index: LoraIndex, prompt: str, mode: str, family: str, base_model: Optional[str] = None,
                    rules: Optional[Rules] = None) -> List[Candidate]:
    """The ranked candidates for a prompt on a checkpoint (`library match`)."""
    rules = rules or Rules()
    compat = index.compatible(family, checkpoint_base(family, base_model))
    return ranked(find(index, prompt, rules, compat, mode).candidates)
