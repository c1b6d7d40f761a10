"""Readers for the files that sit beside a LoRA. Each returns the facts the resolver needs, or None.

They never raise on bad input: what is wrong goes into the list of notes they are given, and the
scanner turns notes into `corrupt_sidecar` problems.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..bounded_json import JsonLimitError, may_hold_lone_surrogates, parse_bounded, replace_lone_surrogates

MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # the largest LoRA Manager files, with every Civitai image, are ~1 MiB
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_CIVITAI_KEYS = ("modelId", "baseModel", "trainedWords", "modelVersions", "files")
USER_KEYS = ("activation text", "preferred weight", "sd version", "negative text", "description", "notes")


def load_json(path: str, notes: List[str]) -> Optional[Dict[str, Any]]:
    """A JSON object from a file written by another tool: forgiving where nothing is lost."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_SIDECAR_BYTES + 1)  # never the whole of a file that is too big
    except OSError as exc:
        notes.append(f"cannot read: {exc.strerror}")
        return None
    if len(data) > MAX_SIDECAR_BYTES:
        notes.append(f"over the {MAX_SIDECAR_BYTES // (1024 * 1024)} MiB cap for a sidecar; not read")
        return None
    if not data.strip(b"\x00 \t\r\n"):
        notes.append("empty file")
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        notes.append("starts with a UTF-8 byte order mark")
        text = data[3:].decode("utf-8", errors="replace")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        notes.append("UTF-16 encoded")
        text = data.decode("utf-16", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            notes.append("not UTF-8; read as cp1252")
            text = data.decode("cp1252", errors="replace")
    try:
        obj = parse_bounded(text, MAX_SIDECAR_BYTES)
    except JsonLimitError as exc:
        notes.append(f"not read: {exc}")
        return None
    except ValueError as exc:
        fixed = _TRAILING_COMMA.sub(r"\1", text)
        try:
            obj = parse_bounded(fixed, MAX_SIDECAR_BYTES)
        except ValueError:
            where = f" at line {exc.lineno}" if hasattr(exc, "lineno") else ""
            notes.append(f"invalid JSON ({getattr(exc, 'msg', exc)}{where})")
            return None
        notes.append("trailing commas")
    if not isinstance(obj, dict):
        notes.append("not a JSON object")
        return None
    if may_hold_lone_surrogates(text):
        obj, changed = replace_lone_surrogates(obj)
        if changed:
            notes.append("holds invalid Unicode (lone surrogate escapes such as \\ud800); read with U+FFFD")
    return obj


@dataclass(frozen=True)
class CivitaiFacts:
    base_model: str = ""
    trained_words: Tuple[str, ...] = ()
    tags: Tuple[str, ...] = ()
    model_id: Optional[int] = None
    version_id: Optional[int] = None
    size_kb: Optional[float] = None
    sha256: str = ""
    autov3: str = ""


@dataclass(frozen=True)
class UserFacts:
    activation_text: str = ""
    preferred_weight: Any = None
    sd_version: str = ""
    negative_text: str = ""
    description: str = ""


@dataclass(frozen=True)
class ManagerFacts:
    """ComfyUI LoRA Manager's `.metadata.json`."""

    sha256: str = ""
    size: Optional[int] = None
    base_model: str = ""
    civitai: Optional[CivitaiFacts] = None
    tags: Tuple[str, ...] = ()
    strength: Any = None


@dataclass(frozen=True)
class MatrixFacts:
    """Stability Matrix's `.cm-info.json`."""

    base_model: str = ""
    trained_words: Tuple[str, ...] = ()
    tags: Tuple[str, ...] = ()
    sha256: str = ""


@dataclass(frozen=True)
class Sidecars:
    civitai: Optional[CivitaiFacts] = None
    user: Optional[UserFacts] = None
    manager: Optional[ManagerFacts] = None
    matrix: Optional[MatrixFacts] = None
    description: str = ""
    problems: Tuple[Tuple[str, str], ...] = field(default=())  # (file name, what is wrong)


def civitai_facts(obj: Dict[str, Any]) -> Optional[CivitaiFacts]:
    """A Civitai model-version object; None for `{}` and Civitai Helper skeletons (no Civitai facts)."""
    if not obj or obj.get("skeleton_file") or obj.get("id") in ("", None):
        return None
    model = obj.get("model") if isinstance(obj.get("model"), dict) else {}
    primary = _primary_file(obj.get("files"))
    hashes = primary.get("hashes") if isinstance(primary.get("hashes"), dict) else {}
    return CivitaiFacts(
        base_model=_text(obj.get("baseModel")),
        trained_words=_strings(obj.get("trainedWords")),
        tags=_strings(model.get("tags")),
        model_id=_int(obj.get("modelId")),
        version_id=_int(obj.get("id")),
        size_kb=_float(primary.get("sizeKB")),
        sha256=_text(hashes.get("SHA256")).lower(),
        autov3=_text(hashes.get("AutoV3")).lower(),
    )


def user_facts(obj: Dict[str, Any]) -> Optional[UserFacts]:
    """Forge/A1111 user metadata; None when the file is some other JSON: no user-metadata key, or a raw
    Civitai object saved under the generic `<stem>.json` name (it has a `description` too)."""
    if not any(key in obj for key in USER_KEYS) or any(key in obj for key in _CIVITAI_KEYS):
        return None
    return UserFacts(
        activation_text=_text(obj.get("activation text")),
        preferred_weight=obj.get("preferred weight"),
        sd_version=_text(obj.get("sd version")),
        negative_text=_text(obj.get("negative text")),
        description=_text(obj.get("description")),
    )


def manager_facts(obj: Dict[str, Any]) -> ManagerFacts:
    civitai = obj.get("civitai")
    tips = obj.get("usage_tips")
    strength = None
    if isinstance(tips, str) and tips.strip().startswith("{"):
        try:
            tips = parse_bounded(tips, MAX_SIDECAR_BYTES)
        except ValueError:
            tips = None
    if isinstance(tips, dict):
        strength = tips.get("strength")
    return ManagerFacts(
        sha256=_text(obj.get("sha256")).lower(),
        size=_int(obj.get("size")),
        base_model=_text(obj.get("base_model")),
        civitai=civitai_facts(civitai) if isinstance(civitai, dict) else None,
        tags=_strings(obj.get("tags")),
        strength=strength,
    )


def matrix_facts(obj: Dict[str, Any]) -> MatrixFacts:
    hashes = obj.get("Hashes") if isinstance(obj.get("Hashes"), dict) else {}
    return MatrixFacts(
        base_model=_text(obj.get("BaseModel")),
        trained_words=_strings(obj.get("TrainedWords")),
        tags=_strings(obj.get("Tags")),
        sha256=_text(hashes.get("SHA256")).lower(),
    )


def read_sidecars(present: Dict[str, str]) -> Sidecars:
    """Facts from the sidecars that exist. `present` maps a suffix (".civitai.info", …) to a path."""
    problems: List[Tuple[str, str]] = []

    def load(suffix: str) -> Optional[Dict[str, Any]]:
        path = present.get(suffix)
        if path is None:
            return None
        notes: List[str] = []
        obj = load_json(path, notes)
        problems.extend((suffix, note) for note in notes)
        return obj

    civitai = load(".civitai.info")
    user = load(".json")
    manager = load(".metadata.json")
    matrix = load(".cm-info.json")
    description = ""
    for suffix in (".description.txt", ".txt"):
        if suffix in present:
            try:
                with open(present[suffix], encoding="utf-8", errors="replace") as fh:
                    description = fh.read(100_000).strip()
            except OSError:
                pass
            break
    return Sidecars(
        civitai=civitai_facts(civitai) if civitai is not None else None,
        user=user_facts(user) if user is not None else None,
        manager=manager_facts(manager) if manager is not None else None,
        matrix=matrix_facts(matrix) if matrix is not None else None,
        description=description,
        problems=tuple(problems),
    )


def _primary_file(files: Any) -> Dict[str, Any]:
    if not isinstance(files, list):
        return {}
    entries = [f for f in files if isinstance(f, dict)]
    for entry in entries:
        if entry.get("primary") is True:
            return entry
    for entry in entries:
        if entry.get("type") == "Model":
            return entry
    return entries[0] if entries else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _strings(value: Any) -> Tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v.strip() for v in value if isinstance(v, str) and v.strip())


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _float(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
