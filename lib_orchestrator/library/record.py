"""One LoRA (or one file that looks like a model and is reported) as the library knows it."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from .base_models import Candidate
from .problems import Problem

# Bumped whenever the rules that turn files into records change: a cached record made by older rules
# is then read again instead of served stale.
# 2: base-model candidates and refinement, scored categories, split triggers; 3: tensor data checked against
# the file size, previews decoded, AppleDouble files; 4: Misc folders vote nothing; 5: PonyTail is not Pony,
# any name term is a whole base-model folder; 6: weighted triggers unwrapped before keywords
RULES_VERSION = 6


@dataclass(frozen=True)
class LoraRecord:
    path: str  # relative to the library folder, `/` separators
    name: str  # the stem: what `<lora:NAME:w>` needs
    is_lora: bool = True
    alias: Optional[str] = None  # ss_output_name, which Forge may also accept
    base_model: str = "Unknown"
    base_model_source: str = "none"
    base_model_candidates: Tuple[Candidate, ...] = ()  # every source's word, most trusted first
    family: str = "unknown"
    excluded: bool = False
    category: str = "other"
    category_source: str = "none"
    trigger_words: Tuple[str, ...] = ()  # every trigger on its own, for matching
    activation_text: Tuple[str, ...] = ()  # the alternatives, verbatim: inject one whole, never all
    trigger_source: Optional[str] = None
    suggested_tags: Tuple[str, ...] = ()  # the most frequent training tags
    tags: Tuple[str, ...] = ()  # Civitai's tags for the model
    preferred_weight: Optional[float] = None
    weight_source: Optional[str] = None
    negative_text: str = ""
    description: str = ""
    sha256: Optional[str] = None
    tensor_hash: Optional[str] = None
    duplicate_group: Optional[str] = None
    preview: Optional[str] = None
    size: int = 0
    civitai_model_id: Optional[int] = None
    civitai_version_id: Optional[int] = None
    problems: Tuple[Problem, ...] = ()

    @property
    def activations(self) -> Tuple[str, ...]:
        """What may be injected: the activation alternatives; for a record made without them (by hand,
        or by another tool), its trigger words."""
        return self.activation_text or self.trigger_words

    @property
    def warnings(self) -> Tuple[str, ...]:
        return tuple(sorted({p.code for p in self.problems}))

    def to_dict(self) -> Dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["base_model_candidates"] = [c.to_dict() for c in self.base_model_candidates]
        out["trigger_words"] = list(self.trigger_words)
        out["activation_text"] = list(self.activation_text)
        out["suggested_tags"] = list(self.suggested_tags)
        out["tags"] = list(self.tags)
        out["warnings"] = list(self.warnings)
        out["problems"] = [p.to_dict() for p in self.problems]
        return out

    def to_json(self) -> str:
        """One line of JSON, UTF-8-writable (json_text)."""
        return json_text(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> "LoraRecord":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "LoraRecord":
        values = {k: v for k, v in data.items() if k in _FIELDS}
        values["base_model_candidates"] = tuple(Candidate.from_dict(c) for c in values.get("base_model_candidates", ()))
        values["trigger_words"] = tuple(values.get("trigger_words", ()))
        values["activation_text"] = tuple(values.get("activation_text", ()))
        values["suggested_tags"] = tuple(values.get("suggested_tags", ()))
        values["tags"] = tuple(values.get("tags", ()))
        values["problems"] = tuple(Problem.from_dict(p) for p in values.get("problems", ()))
        return cls(**values)


def json_text(data: Any, indent: Optional[int] = None) -> str:
    """JSON that can be written as UTF-8: readable text, except when it holds a name that was not UTF-8 on
    disk (kept with surrogate escapes); then all of it is ASCII-escaped (`\\udcff`), which reads back to the
    same name."""
    text = json.dumps(data, ensure_ascii=False, indent=indent)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, indent=indent)
    return text


_FIELDS = frozenset(f.name for f in dataclasses.fields(LoraRecord))
