"""Finding LoRAs in a large library: search by name, trigger word and tag; filters; pages; details."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..sanitize import sanitise_html
from .base_models import compatibility
from .record import LoraRecord


@dataclass(frozen=True)
class Query:
    text: str = ""  # words that must all appear in the name, alias, trigger words or tags
    category: Optional[str] = None
    base_model: Optional[str] = None
    checkpoint: Optional[str] = None  # only LoRAs that load on this base model
    warnings_only: bool = False
    page: int = 0
    page_size: int = 48
    sort: str = ""  # "": the library's order; "effectiveness": the best judged first (scores given to search)
    rated_only: bool = False  # only LoRAs the user has judged (a rated image or a comparison)


@dataclass(frozen=True)
class Page:
    items: Tuple[LoraRecord, ...]
    total: int
    page: int
    pages: int


class Catalogue:
    """The library's LoRAs with a search text each, built once per scan."""

    def __init__(self, records: Sequence[LoraRecord]) -> None:
        self.records = [r for r in records if r.is_lora]
        self._haystacks = [" ".join([r.name, r.alias or "", *r.trigger_words, *r.tags, *r.suggested_tags,
                                     r.base_model, r.category]).lower().replace("_", " ")
                           for r in self.records]
        self.by_path = {r.path: r for r in self.records}

    def search(self, query: Query, scores: Optional[Mapping[str, Any]] = None) -> Page:
        """`scores`: a LoRA's name or alias in lower case -> its effectiveness (a LoraScore: `score`, `rated`,
        `compared`), for `sort="effectiveness"` and `rated_only`."""
        words = query.text.lower().replace("_", " ").split()
        scores = scores or {}
        found = []
        for r, hay in zip(self.records, self._haystacks):
            if words and not all(w in hay for w in words):
                continue
            if query.category and r.category != query.category:
                continue
            if query.base_model and r.base_model != query.base_model:
                continue
            if query.checkpoint and compatibility(r.base_model, query.checkpoint) <= 0:
                continue
            if query.warnings_only and not r.problems:
                continue
            if query.rated_only and not _judged(score_of(r, scores)):
                continue
            found.append(r)
        if query.sort == "effectiveness":  # judged ones by score; the rest after them, in the library's order
            def rank(r: LoraRecord) -> Tuple[bool, float]:
                s = score_of(r, scores)
                return (not _judged(s), -s.score if _judged(s) else 0.0)
            found.sort(key=rank)
        size = max(1, query.page_size)
        pages = max(1, -(-len(found) // size))
        page = min(max(0, query.page), pages - 1)
        return Page(tuple(found[page * size:(page + 1) * size]), len(found), page, pages)

    def facets(self) -> Dict[str, List[str]]:
        """The values the filters offer."""
        return {"category": sorted({r.category for r in self.records}),
                "base_model": sorted({r.base_model for r in self.records})}


def score_of(record: LoraRecord, scores: Mapping[str, Any]) -> Any:
    """The record's effectiveness by its name, else by its alias (an infotext names a LoRA either way)."""
    found = scores.get(record.name.lower())
    if found is None and record.alias:
        found = scores.get(record.alias.lower())
    return found


def _judged(score: Any) -> bool:
    return score is not None and bool(score.rated or score.compared)


def details(record: LoraRecord) -> Dict[str, Any]:
    """What the details panel shows: every value with where it came from; HTML made safe."""
    return {
        "name": record.name, "path": record.path, "alias": record.alias,
        "base_model": record.base_model, "base_model_source": record.base_model_source, "family": record.family,
        "base_model_candidates": [c.to_dict() for c in record.base_model_candidates],
        "category": record.category, "category_source": record.category_source,
        "trigger_words": list(record.trigger_words), "trigger_source": record.trigger_source,
        "activation_text": list(record.activations),
        "suggested_tags": list(record.suggested_tags), "tags": list(record.tags),
        "preferred_weight": record.preferred_weight, "weight_source": record.weight_source,
        "negative_text": record.negative_text, "sha256": record.sha256, "tensor_hash": record.tensor_hash,
        "warnings": [p.to_dict() for p in record.problems],
        "description_html": sanitise_html(record.description),
        "preview": record.preview,
    }
