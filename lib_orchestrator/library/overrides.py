"""The user's own word on a LoRA (category, default weight, excluded, pinned, notes), kept in the
extension's data folder, never in the user's sidecar files, and applied before selection."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, Iterable, List, Optional

from ..atomic import write_text_atomic
from ..bounded_json import parse_bounded
from ..errors import Location, OrchestratorError
from .categories import CATEGORIES
from .record import LoraRecord, json_text

MAX_OVERRIDES_BYTES = 64 * 1024 * 1024  # 10,000 overrides with notes are about 2 MiB


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
        """Raises OrchestratorError, and only that, for a file that cannot be read (bad JSON, nested too
        deep, too big, not UTF-8); entries that are not overrides are dropped one by one."""
        try:
            with open(self.path, "rb") as fh:
                data = fh.read(MAX_OVERRIDES_BYTES + 1)
            if len(data) > MAX_OVERRIDES_BYTES:
                raise ValueError(f"over the {MAX_OVERRIDES_BYTES // (1024 * 1024)} MiB cap")
            raw = parse_bounded(data.decode("utf-8"), MAX_OVERRIDES_BYTES) if data.strip() else {}
        except FileNotFoundError:
            raw = {}
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and the JSON caps included
            raise OrchestratorError(f"cannot read overrides: {exc}", Location(self.path, 0, 0),
                                    "fix or delete the file; it is rewritten on the next change") from None
        if not isinstance(raw, dict):
            raise OrchestratorError("cannot read overrides: not a JSON object", Location(self.path, 0, 0),
                                    "fix or delete the file; it is rewritten on the next change")
        self._data = {}
        for key, value in raw.items():
            override = _override(value)
            if override is not None:  # one bad entry does not lose the others
                self._data[key] = override

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
        write_text_atomic(self.path, json_text(data, indent=2))  # a path not UTF-8 on disk is kept, escaped

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


def _override(value: Any) -> Optional[Override]:
    """An entry of the file as an Override, or None when it is not one (wrong types, out of range)."""
    if not isinstance(value, dict):
        return None
    category, weight = value.get("category"), value.get("weight")
    excluded, pinned, notes = value.get("excluded", False), value.get("pinned", False), value.get("notes", "")
    if category is not None and not isinstance(category, str):
        return None
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))):
        return None
    if not isinstance(excluded, bool) or not isinstance(pinned, bool) or not isinstance(notes, str):
        return None
    try:
        return Override(category, float(weight) if weight is not None else None, excluded, pinned, notes)
    except (OrchestratorError, OverflowError):  # an unknown category, a weight out of range or not a number
        return None
