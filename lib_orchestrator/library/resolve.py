"""From everything read about one file to a LoraRecord, by the rules of docs/lora-library.md."""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import base_models, categories
from .header import Header, json_value
from .problems import BASE_MODEL_CONFLICT, EXCLUDED_ARCHITECTURE, STALE_SIDECAR, Problem
from .record import LoraRecord
from .sidecars import Sidecars

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REPEATS = re.compile(r"^\d+_")


def resolve(path: str, name: str, size: int, header: Optional[Header], side: Sidecars,
            folders: Tuple[str, ...], preview: Optional[str], problems: List[Problem]) -> LoraRecord:
    meta = header.metadata if header else {}
    tensor_hash = _tensor_hash(meta)
    civitai = side.civitai or (side.manager.civitai if side.manager else None)
    stale_civitai = False
    if side.civitai is not None:
        c = side.civitai
        if c.size_kb is not None and abs(c.size_kb * 1024 - size) >= 1024:
            problems.append(Problem(STALE_SIDECAR, _sibling(path, name, ".civitai.info"),
                                    f"describes a file of {c.size_kb * 1024:,.0f} bytes; this one has {size:,}"))
            stale_civitai = True
        elif c.autov3 and tensor_hash and not tensor_hash.startswith(c.autov3):
            problems.append(Problem(STALE_SIDECAR, _sibling(path, name, ".civitai.info"),
                                    f"AutoV3 {c.autov3} is not this file's tensor hash {tensor_hash[:12]}"))
            stale_civitai = True
    stale_manager = False
    if side.manager is not None and side.manager.size is not None and side.manager.size != size:
        problems.append(Problem(STALE_SIDECAR, _sibling(path, name, ".metadata.json"),
                                f"records a size of {side.manager.size:,} bytes; this file has {size:,}"))
        stale_manager = True

    candidates, layout = _base_model_candidates(name, side, header, folders)
    chosen = base_models.resolve_base_model(candidates, layout)
    base, base_source = chosen.base_model, chosen.source
    if chosen.conflicts:
        problems.append(Problem(BASE_MODEL_CONFLICT, path, chosen.conflict_message()))
    family = base_models.family_of(base)
    excluded = base_models.is_excluded(base)
    if excluded:
        problems.append(Problem(EXCLUDED_ARCHITECTURE, path, f"{base} LoRAs do not load in Forge"))

    activations, trigger_source = _activations(side, meta)
    triggers = split_triggers(activations)
    suggested = _top_tags(meta)
    tags = civitai.tags if civitai and civitai.tags else ()
    if not tags and side.manager and side.manager.tags:
        tags = side.manager.tags
    if not tags and side.matrix and side.matrix.tags:
        tags = side.matrix.tags
    alias = meta.get("ss_output_name", "").strip() or None
    category, category_source = categories.classify(
        folders=folders, tags=tags, triggers=triggers, names=(name, alias or ""), training_tags=suggested)

    weight, weight_source = _weight(side, meta)

    sha256 = None  # known without hashing only from a sidecar whose size matches the file
    c, m = side.civitai, side.manager
    if c and not stale_civitai and c.size_kb is not None and _HEX64.fullmatch(c.sha256):
        sha256 = c.sha256
    elif m and not stale_manager and m.size == size and _HEX64.fullmatch(m.sha256):
        sha256 = m.sha256

    return LoraRecord(
        path=path, name=name, is_lora=True, alias=alias,
        base_model=base, base_model_source=base_source, base_model_candidates=tuple(candidates), family=family,
        excluded=excluded, category=category, category_source=category_source,
        trigger_words=triggers, activation_text=activations, trigger_source=trigger_source,
        suggested_tags=suggested, tags=tuple(tags),
        preferred_weight=weight, weight_source=weight_source,
        negative_text=side.user.negative_text if side.user else "",
        description=(side.user.description if side.user and side.user.description else side.description),
        sha256=sha256, tensor_hash=tensor_hash, preview=preview, size=size,
        civitai_model_id=civitai.model_id if civitai else None,
        civitai_version_id=civitai.version_id if civitai else None,
        problems=tuple(problems),
    )


def _base_model_candidates(name: str, side: Sidecars, header: Optional[Header], folders: Tuple[str, ...]
                           ) -> Tuple[List[base_models.Candidate], Optional[base_models.Layout]]:
    """Every source's word on the base model, most trusted first (docs/lora-library.md §3.1)."""
    found: List[Optional[base_models.Candidate]] = [
        base_models.civitai_candidate(side.civitai.base_model, ".civitai.info baseModel") if side.civitai else None,
        base_models.civitai_candidate(side.manager.civitai.base_model, ".metadata.json civitai.baseModel")
        if side.manager and side.manager.civitai else None,
        base_models.civitai_candidate(side.manager.base_model, ".metadata.json base_model") if side.manager else None,
        base_models.civitai_candidate(side.matrix.base_model, ".cm-info.json BaseModel") if side.matrix else None,
        base_models.user_candidate(side.user.sd_version) if side.user else None,
    ]
    layout = None
    if header is not None:
        found.extend(base_models.header_candidates(header.metadata))
        tensor, layout = base_models.tensor_candidate(header.keys)
        found.append(tensor)
    found.append(base_models.name_candidate(name))
    found.extend(base_models.folder_candidates(folders))
    return [c for c in found if c is not None], layout


def _activations(side: Sidecars, meta: dict) -> Tuple[Tuple[str, ...], Optional[str]]:
    """The activation alternatives, verbatim, from the first source that has any (§5)."""
    if side.user and side.user.activation_text:
        parts = _unique(side.user.activation_text.split("||"))
        if parts:
            return parts, "user_json"
    for words in (side.civitai.trained_words if side.civitai else (),
                  side.manager.civitai.trained_words if side.manager and side.manager.civitai else (),
                  side.matrix.trained_words if side.matrix else ()):
        parts = _unique(words)
        if parts:
            return parts, "civitai"
    phrase = meta.get("modelspec.trigger_phrase", "").strip()
    if phrase:
        return (phrase,), "modelspec"
    folders = json_value(meta, "ss_tag_frequency")
    if not isinstance(folders, dict):
        folders = json_value(meta, "ss_dataset_dirs")
    if isinstance(folders, dict):
        names = _unique(_REPEATS.sub("", str(k)) for k in folders)
        if names:
            return names, "dataset"
    return (), None


def _unique(parts: Iterable[str]) -> Tuple[str, ...]:
    """Stripped, empties dropped, duplicates (ignoring case) dropped, the first kept."""
    seen: Dict[str, str] = {}
    for part in parts:
        part = part.strip()
        if part and part.lower() not in seen:
            seen[part.lower()] = part
    return tuple(seen.values())


_OPEN, _CLOSE = "([{<", ")]}>"


def split_triggers(alternatives: Iterable[str]) -> Tuple[str, ...]:
    """Every trigger on its own: each alternative split on commas outside brackets, so
    `(gotoh_hitori_(bocchi_the_rock):1.2)` stays whole; `\\(` is text. An alternative whose brackets
    do not close is split on every comma."""
    triggers: List[str] = []
    for alternative in alternatives:
        parts: List[str] = []
        current: List[str] = []
        depth, escaped = 0, False
        for ch in alternative:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch in _OPEN:
                depth += 1
            elif ch in _CLOSE:
                depth = max(depth - 1, 0)
            elif ch == "," and depth == 0:
                parts.append("".join(current))
                current = []
                continue
            current.append(ch)
        parts.append("".join(current))
        triggers.extend(alternative.split(",") if depth else parts)
    return _unique(triggers)


def _weight(side: Sidecars, meta: dict) -> Tuple[Optional[float], Optional[str]]:
    for raw, source in ((side.user.preferred_weight if side.user else None, "user_json"),
                        (side.manager.strength if side.manager else None, "usage_tips"),
                        (meta.get("modelspec.lora_default_weight"), "modelspec")):
        value = _number(raw)
        if value:
            return value, source
    return None, None


def _number(raw: Any) -> Optional[float]:
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def _tensor_hash(meta: dict) -> Optional[str]:
    for key in ("sshs_model_hash", "modelspec.hash_sha256"):
        value = meta.get(key, "").strip().lower()
        if value.startswith("0x"):
            value = value[2:]
        if _HEX64.fullmatch(value) and value != EMPTY_SHA256:
            return value
    return None


def _top_tags(meta: dict, limit: int = 10) -> Tuple[str, ...]:
    folders = json_value(meta, "ss_tag_frequency")
    if not isinstance(folders, dict):
        return ()
    counts: Counter = Counter()
    for tags in folders.values():
        if isinstance(tags, dict):
            for tag, n in tags.items():
                if isinstance(n, (int, float)):
                    counts[str(tag).strip()] += n
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(tag for tag, _ in ranked[:limit] if tag)


def _sibling(path: str, name: str, suffix: str) -> str:
    folder = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
    return folder + name + suffix
