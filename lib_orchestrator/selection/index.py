"""What each LoRA can be matched on, indexed once per library so a prompt is scored in microseconds.

Scoring is BM25-flavoured keyword matching: each matched term adds its inverse document frequency
times the weight of the field it came from. A trigger phrase that appears whole as a prompt tag is a
`phrase` match and counts most.

The meaning of LoRAs (their vectors) is attached afterwards (`with_semantic`): embedding a library takes
longer than indexing it, so keywords serve while it runs.
"""
from __future__ import annotations

import copy
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..library import LoraRecord, compatibility, family_of
from .text import naming_phrases, prompt_tags, words

if TYPE_CHECKING:
    from .semantic import SemanticIndex

# How much a term counts by where the LoRA has it.
FIELD_WEIGHTS = {"trigger": 3.0, "tag": 2.0, "name": 2.0, "training": 1.0, "description": 0.3}
PHRASE_WEIGHT = 8.0
MAX_PHRASE_OWNERS = 5  # a trigger phrase shared by more LoRAs than this…
PHRASE_SHARE = 0.01  # …and by more than this share of the library names none of them (`masterpiece`)
COMMON_TERM_SHARE = 0.02  # terms in more than this share of the library are not indexed…
MIN_COMMON_TERM = 50  # …unless they are in this few LoRAs or fewer


@dataclass(frozen=True)
class Match:
    score: float
    terms: Tuple[str, ...]  # what matched, for the explanation
    phrase: Optional[str] = None  # a trigger phrase the prompt contains whole (the first, where activation goes)
    phrases: Tuple[str, ...] = ()  # every trigger phrase of this LoRA the prompt contains whole


class LoraIndex:
    """The LoRAs that can be picked (one per name and per duplicate group), and a keyword scorer over them."""

    def __init__(self, records: Iterable[LoraRecord]) -> None:
        self.records: List[LoraRecord] = []
        seen_groups, seen_names = set(), set()
        for r in records:
            if not r.is_lora or r.excluded or r.family == "unknown":
                continue
            # One per name, the first listed: `<lora:NAME>` loads one file whatever the folder, a folder
            # linked inside the library lists its LoRAs twice (§1), and two files of one stem are one tag.
            # So a name is neither picked twice nor twice as likely to be drawn. One per duplicate group.
            if r.name.lower() in seen_names or (r.duplicate_group and r.duplicate_group in seen_groups):
                continue
            seen_names.add(r.name.lower())
            if r.duplicate_group:
                seen_groups.add(r.duplicate_group)
            self.records.append(r)
        self.by_name: Dict[str, int] = {}
        for i, r in enumerate(self.records):
            self.by_name.setdefault(r.name.lower(), i)
            if r.alias:
                self.by_name.setdefault(r.alias.lower(), i)
        self._build_terms()
        self._compat: Dict[Tuple[str, str], List[float]] = {}
        self._loadable: Dict[int, Tuple[Sequence[float], Any]] = {}  # id of a _compat list -> (it, its mask)
        self._pools: Dict[Tuple[str, str], Dict[str, List[int]]] = {}
        self.semantic: Optional["SemanticIndex"] = None  # the LoRAs' vectors, once embedded
        self.semantic_note: Optional[str] = None  # why there are none: embedding, not installed, failed
        self.effect: Dict[int, float] = {}  # the user's verdict on a LoRA (history/effect.py's score), where not 0
        self._factors: Dict[float, Dict[int, float]] = {}

    def with_semantic(self, semantic: Optional["SemanticIndex"], note: Optional[str] = None) -> "LoraIndex":
        """This index with vectors (or, with None, the reason there are none); the keyword part is shared."""
        other = copy.copy(self)
        other.semantic, other.semantic_note = semantic, note
        return other

    def with_feedback(self, scores: Mapping[str, float]) -> "LoraIndex":
        """This index with the user's verdicts (a LoRA name or alias, any case -> its score in stars against the
        user's average); names not in the library are ignored. The rest is shared."""
        other = copy.copy(self)
        other.effect, other._factors = {}, {}
        for name, score in scores.items():
            i = self.by_name.get(name.lower())
            if i is not None and score:
                other.effect[i] = float(score)
        return other

    def factors(self, strength: float) -> Dict[int, float]:
        """Each rated LoRA's pick-weight factor at this feedback strength (those that are not 1)."""
        found = self._factors.get(strength)
        if found is None:
            from ..history.effect import feedback_factor

            found = {i: f for i, s in self.effect.items() if (f := feedback_factor(s, strength)) != 1.0}
            self._factors[strength] = found
        return found

    def _build_terms(self) -> None:
        postings: Dict[str, Dict[int, float]] = defaultdict(dict)
        phrases: Dict[str, List[int]] = defaultdict(list)
        for i, r in enumerate(self.records):
            fields: List[Tuple[str, Iterable[str]]] = [
                ("trigger", (w for phrase in r.trigger_words for w in words(phrase))),
                ("tag", (w for t in r.tags for w in words(t))),
                ("name", words(r.name) + (words(r.alias) if r.alias else [])),
                ("training", (w for t in r.suggested_tags for w in words(t))),
                ("description", words(r.description[:2000])),
            ]
            for field, terms in fields:
                weight = FIELD_WEIGHTS[field]
                for term in terms:
                    if postings[term].get(i, 0.0) < weight:
                        postings[term][i] = weight
            # A naming trigger is a phrase on its own: `looking back` names the LoRA whose activation text
            # is `hand on hip, looking back`, while `white hair` names no character (§5). A trigger is one
            # phrase as the scan split it: `(red, blue:1.2)` is not `red` and `blue` (no one prompt tag
            # equals it, so only its words count).
            for tag in naming_phrases(r.activations, r.category == "character"):
                phrases[tag].append(i)
        n = max(len(self.records), 1)
        # A term most LoRAs have (`1girl`, `solo`, `recommended`) tells none apart, and would make every
        # prompt match thousands of LoRAs: such terms are left out. The rest count by damped idf.
        common = max(MIN_COMMON_TERM, int(n * COMMON_TERM_SHARE))
        self._postings = {t: (math.log(1 + n / len(p)), p) for t, p in postings.items() if len(p) <= common}
        # A phrase many LoRAs share (`masterpiece`) names none of them; a few (`looking back` of the pose LoRAs)
        # each name them all, and the picker takes the best one.
        most = max(MAX_PHRASE_OWNERS, int(n * PHRASE_SHARE))
        self._phrases = {t: owners for t, owners in phrases.items() if len(owners) <= most}

    def score(self, prompt: str) -> Dict[int, Match]:
        tags = prompt_tags(prompt)
        found: Dict[int, Tuple[float, List[str], List[str]]] = {}
        for term in dict.fromkeys(w for tag in tags for w in words(tag)):
            entry = self._postings.get(term)
            if entry is None:
                continue
            idf, posting = entry
            for i, weight in posting.items():
                score, terms, phrases = found.get(i, (0.0, [], []))
                terms.append(term)
                found[i] = (score + idf * weight, terms, phrases)
        for tag in dict.fromkeys(tags):
            for i in self._phrases.get(tag, ()):
                score, terms, phrases = found.get(i, (0.0, [], []))
                found[i] = (score + PHRASE_WEIGHT, terms, phrases + [tag])
        return {i: Match(s, tuple(t), p[0] if p else None, tuple(p)) for i, (s, t, p) in found.items()}

    def compatible(self, family: str, base_model: str) -> List[float]:
        """Per LoRA: 0 when it cannot load on the checkpoint, else its lineage score."""
        key = (family, base_model)
        scores = self._compat.get(key)
        if scores is None:
            scores = [compatibility(r.base_model, base_model) if family_of(base_model) == family else 0.0
                      for r in self.records]
            self._compat[key] = scores
        return scores


    def loadable(self, compat: Sequence[float]) -> Any:
        """One of `compatible`'s lists as a numpy mask of the LoRAs that load, made once per list: semantic
        matching needs it for every image, and 10k floats to numpy cost more than the matching itself."""
        import numpy as np

        found = self._loadable.get(id(compat))
        if found is None or found[0] is not compat:  # the list kept beside it: an id is never reused meanwhile
            found = self._loadable[id(compat)] = (compat, np.asarray(compat, dtype=np.float32) > 0)
        return found[1]

    def pool(self, family: str, base_model: str, category: str) -> List[int]:
        """The LoRAs of a category that load on the checkpoint, for fallback draws."""
        pools = self._pools.get((family, base_model))
        if pools is None:
            compat = self.compatible(family, base_model)
            pools = defaultdict(list)
            for i, r in enumerate(self.records):
                if compat[i] > 0:
                    pools[r.category].append(i)
            self._pools[(family, base_model)] = pools
        return pools.get(category, [])


def checkpoint_base(family: str, base_model: Optional[str]) -> str:
    """The checkpoint's base model: the one given, else the plain one of its family."""
    if base_model:
        return base_model
    return {"sd1": "SD 1.5", "sd2": "SD 2.1", "sdxl": "SDXL 1.0", "flux": "Flux.1 D", "sd3": "SD 3.5"}.get(
        family, "Unknown")
