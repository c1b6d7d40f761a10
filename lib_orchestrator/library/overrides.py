"""The user's own word on a LoRA (category, default weight, excluded, pinned, notes), kept in the
extension's data folder, never in the user's sidecar files, and applied before selection."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from typing import Dict, Iterable, List, Optional

from ..atomic import write_text_atomic
from ..errors import Location, OrchestratorError
from .categories import CATEGORIES
from .record import LoraRecord


@dataclass(frozen=True)
class Override:
    category: Optional[str] = None
    weight: Optional[float] = None  # the default weight when picked (negative allowed, for sliders)
    excluded: bool = False  # never picked
    pinned: bool = False  # always picked when it loads on the checkpoint
    notes: str = ""

    def __post_init__(self) -> None:
        if self.category is not None and self.category not in CATEGORIES:
            raise OrchestratorError(f"unknown category {self.category!r}", hint=f"one of {', '.join(CATEGORIES)}")
        if self.weight is not None and not -10 <= self.weight <= 10:
            raise OrchestratorError(f"weight {self.weight} is out of range", hint="between -10 and 10")

    @property
    def empty(self) -> bool:
        return self == Override()


class OverrideStore:
    """Overrides by the LoRA's path relative to its folder, in one JSON file written atomically."""

    def __init__(self, path: str, strict: bool = False) -> None:
        """`strict`: raise on an unreadable file. Otherwise (in Forge) start empty, keep the error in
        `self.error`, and set the unreadable file aside before the first save, so nothing is lost."""
        self.path = path
        self._data: Dict[str, Override] = {}
        self.error: Optional[OrchestratorError] = None
        try:
            self.load()
        except OrchestratorError as exc:
            if strict:
                raise
            self.error = exc

    def load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                raw = json.load(fh)
        except FileNotFoundError:
            raw = {}
        except (OSError, ValueError) as exc:
            raise OrchestratorError(f"cannot read overrides: {exc}", Location(self.path, 0, 0),
                                    "fix or delete the file; it is rewritten on the next change") from None
        self._data = {}
        for key, value in (raw.items() if isinstance(raw, dict) else ()):
            try:
                self._data[key] = Override(**{k: v for k, v in value.items() if k in Override.__dataclass_fields__})
            except (OrchestratorError, TypeError, AttributeError):
                continue  # one bad entry does not lose the others

    def get(self, path: str) -> Override:
        return self._data.get(path, Override())

    def set(self, path: str, override: Override) -> None:
        if override.empty:
            self._data.pop(path, None)
        else:
            self._data[path] = override
        self._save()

    def _save(self) -> None:
        if self.error is not None and os.path.exists(self.path):
            os.replace(self.path, self.path + ".unreadable")  # the user's broken file, kept for them to fix
            self.error = None
        data = {k: asdict(v) for k, v in sorted(self._data.items())}
        write_text_atomic(self.path, json.dumps(data, indent=2, ensure_ascii=False))

    def apply(self, records: Iterable[LoraRecord]) -> List[LoraRecord]:
        out = []
        for r in records:
            o = self._data.get(r.path)
            if o is not None:
                r = replace(r, category=o.category or r.category,
                            category_source="override" if o.category else r.category_source,
                            preferred_weight=o.weight if o.weight is not None else r.preferred_weight,
                            weight_source="override" if o.weight is not None else r.weight_source,
                            excluded=r.excluded or o.excluded)
            out.append(r)
        return out

    def pinned_names(self, records: Iterable[LoraRecord]) -> List[str]:
        return [r.name for r in records if self._data.get(r.path, Override()).pinned]
