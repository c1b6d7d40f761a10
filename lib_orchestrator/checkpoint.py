"""What a checkpoint file is, without loading it: its architecture family and base model, from its
safetensors header (tensor names, `modelspec.*`) and its name.

Forge loads the selected checkpoint only on the first generation, so until then the loaded model
cannot say what it is; and after the user picks another checkpoint, the loaded one is the wrong one
to ask. The file itself is always there.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

from .library.base_models import family_of as _family_of_base
from .library.base_models import lineage_in_text, name_tokens
from .library.header import Header, HeaderError, read_header
from .selection.index import checkpoint_base

# Architecture families the selection understands (the same names as the LoRA library's).
NATIVE_SIZE = {"sd1": (512, 512), "sd2": (768, 768), "sdxl": (1024, 1024), "sd3": (1024, 1024),
               "flux": (1024, 1024)}


@dataclass(frozen=True)
class CheckpointKind:
    family: str  # sd1, sd2, sdxl, sd3, flux, or unknown
    base_model: str  # Civitai's name: "SD 1.5", "Pony", "Illustrious", "Flux.1 S", … or "Unknown"
    source: str  # what told: "header", "name", "loaded model" or "nothing"

    @property
    def native_size(self) -> Tuple[int, int]:
        """The size it was trained at: the sensible default for a new image."""
        return NATIVE_SIZE.get(self.family, (1024, 1024))


UNKNOWN = CheckpointKind("unknown", "Unknown", "nothing")

# modelspec.architecture values (Stability's ModelSpec) of whole checkpoints
_ARCHITECTURE = (
    ("stable-diffusion-v1", "sd1"), ("stable-diffusion-v2", "sd2"), ("stable-diffusion-xl", "sdxl"),
    ("stable-diffusion-v3", "sd3"), ("stable-diffusion-3", "sd3"), ("flux-1", "flux"),
)


def family_from_keys(keys: Iterable[str]) -> Optional[str]:
    """The family a checkpoint's tensor names belong to: its text encoders tell SD1 (CLIP-L under
    `cond_stage_model.transformer`), SD2 (OpenCLIP under `cond_stage_model.model`) and SDXL
    (`conditioner.embedders`) apart; SD3's MMDiT has `joint_blocks`, Flux `double_blocks`."""
    found = set()
    for key in keys:
        if "double_blocks." in key:
            return "flux"
        if "joint_blocks." in key:
            return "sd3"
        if key.startswith("conditioner.embedders.") or key.startswith("model.diffusion_model.label_emb."):
            found.add("sdxl")
        elif key.startswith("cond_stage_model.model."):
            found.add("sd2")
        elif key.startswith("cond_stage_model.transformer."):
            found.add("sd1")
    for family in ("sdxl", "sd2", "sd1"):
        if family in found:
            return family
    return None


def _family_from_metadata(metadata: Dict[str, str]) -> Optional[str]:
    arch = metadata.get("modelspec.architecture", "").strip().lower()
    for prefix, family in _ARCHITECTURE:
        if arch.startswith(prefix):
            return family
    return None


def family_from_name(name: str) -> Optional[str]:
    """The family a checkpoint's name claims (`juggernautXL_v9`, `flux1-dev-fp8`, `v1-5-pruned`)."""
    words = name_tokens(name)  # the LoRA library's: `ponyDiffusionV6XL_v6` -> pony, diffusion, v6xl, v6
    pairs = set(zip(words, words[1:]))
    if any(w.startswith("flux") or w == "chroma" for w in words):
        return "flux"
    if {"sd3", "sd35"} & set(words):
        return "sd3"
    lineage = lineage_in_text(name)  # one table of lineage names for checkpoints and LoRAs
    if lineage and _family_of_base(lineage) != "unknown":
        return _family_of_base(lineage)
    if any(re.fullmatch(r"[a-z0-9]*xl\d*", w) for w in words):
        return "sdxl"
    if {"sd2", "sd20", "sd21"} & set(words):
        return "sd2"
    if {"sd1", "sd14", "sd15"} & set(words) or {("v1", "5"), ("sd", "1"), ("1", "5")} & pairs:
        return "sd1"
    return None


def base_model_of(family: str, texts: Iterable[str]) -> str:
    """The base model inside a family: a lineage the name or the header's title names (Pony,
    Illustrious, NoobAI; Flux's variants), else the family's plain one."""
    for text in texts:
        found = lineage_in_text(text)
        if found and _family_of_base(found) == family:
            return found
    return checkpoint_base(family, None)


def identify(name: str, header: Optional[Header] = None) -> CheckpointKind:
    """A checkpoint's kind from its header (when it could be read) and its file name."""
    stem = os.path.splitext(os.path.basename(name))[0]
    texts = [stem]
    family, source = None, "nothing"
    if header is not None:
        texts += [header.metadata.get(k, "") for k in ("modelspec.title", "modelspec.description")]
        family = family_from_keys(header.keys) or _family_from_metadata(header.metadata)
        source = "header" if family else source
    if family is None:
        family = family_from_name(stem)
        source = "name" if family else source
    if family is None:
        return UNKNOWN
    return CheckpointKind(family, base_model_of(family, texts), source)


_CACHE: Dict[Tuple[str, int, int], CheckpointKind] = {}


def identify_file(path: str) -> CheckpointKind:
    """`identify` for a file on disk, reading only its header; cached by path, size and mtime, so
    asking before every preview costs nothing. A missing or unreadable file is judged by its name."""
    try:
        st = os.stat(path)
    except OSError:
        return identify(path)
    key = (path, st.st_size, st.st_mtime_ns)
    found = _CACHE.get(key)
    if found is None:
        header = None
        if path.lower().endswith(".safetensors"):
            try:
                header = read_header(path, st.st_size)
            except (HeaderError, OSError):
                header = None
        found = _CACHE[key] = identify(path, header)
    return found


__all__ = ["CheckpointKind", "NATIVE_SIZE", "UNKNOWN", "base_model_of", "family_from_keys", "family_from_name",
           "identify", "identify_file"]
