"""Base models as Civitai names them, their architecture family, and what loads on what.

A LoRA's family is hard (an SD1 LoRA does not load on SDXL); within a family, the lineage is soft
(an Illustrious LoRA works best on Illustrious or NoobAI, less well on plain SDXL or Pony).
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, Mapping, Optional, Tuple

from .header import Header

UNKNOWN = "Unknown"
FAMILIES = ("sd1", "sd2", "sdxl", "flux", "sd3", "video", "unknown")

_FAMILY_OF: Dict[str, str] = {}
for _family, _names in {
    "sd1": ("SD 1.4", "SD 1.5", "SD 1.5 LCM", "SD 1.5 Hyper"),
    "sd2": ("SD 2.0", "SD 2.0 768", "SD 2.1", "SD 2.1 768", "SD 2.1 Unclip"),
    "sdxl": ("SDXL 0.9", "SDXL 1.0", "SDXL 1.0 LCM", "SDXL Lightning", "SDXL Hyper", "SDXL Turbo",
             "SDXL Distilled", "Pony", "Illustrious", "NoobAI"),
    "flux": ("Flux.1 S", "Flux.1 D", "Flux.1 Krea", "Flux.1 Kontext"),
    "sd3": ("SD 3", "SD 3.5", "SD 3.5 Medium", "SD 3.5 Large", "SD 3.5 Large Turbo"),
    "video": ("SVD", "SVD XT", "Hunyuan Video", "LTXV", "LTXV2", "Mochi", "CogVideoX"),
}.items():
    for _name in _names:
        _FAMILY_OF[_name] = _family

# Image architectures Forge's LoRA loader cannot use.
_EXCLUDED_IMAGE = {"Chroma", "Lumina", "AuraFlow", "Pony V7", "Kolors", "PixArt a", "PixArt E", "Hunyuan 1",
                   "HiDream", "Qwen", "Stable Cascade"}

# Lineages inside a family: same lineage = fully compatible.
LINEAGE: Dict[str, str] = {
    **{n: "sdxl" for n in ("SDXL 0.9", "SDXL 1.0", "SDXL 1.0 LCM", "SDXL Lightning", "SDXL Hyper", "SDXL Turbo",
                           "SDXL Distilled")},
    "Pony": "pony", "Illustrious": "illustrious", "NoobAI": "illustrious",
}
# Soft scores between lineages of one family (symmetric); change them to taste.
DEFAULT_SOFT_SCORES: Dict[frozenset, float] = {
    frozenset({"sdxl", "pony"}): 0.6,
    frozenset({"sdxl", "illustrious"}): 0.6,
    frozenset({"pony", "illustrious"}): 0.3,
}

_CANONICAL = {re.sub(r"\s+", " ", n).lower(): n for n in list(_FAMILY_OF) + sorted(_EXCLUDED_IMAGE) + [UNKNOWN]}


def normalise(name: str) -> str:
    """Civitai spelling for a known base model (case and spacing); anything else as written."""
    cleaned = re.sub(r"\s+", " ", name.strip())
    return _CANONICAL.get(cleaned.lower(), cleaned) if cleaned else UNKNOWN


def family_of(base_model: str) -> str:
    if base_model.startswith("Wan Video"):
        return "video"
    return _FAMILY_OF.get(base_model, "unknown")


def is_excluded(base_model: str) -> bool:
    """Video models and image architectures that Forge cannot load a LoRA for."""
    return family_of(base_model) == "video" or base_model in _EXCLUDED_IMAGE or base_model.startswith("Flux.2")


def compatibility(lora_base: str, checkpoint_base: str,
                  soft_scores: Optional[Mapping[frozenset, float]] = None) -> float:
    """0 when the LoRA cannot load on the checkpoint; 1 for the same lineage; between for kin."""
    family = family_of(lora_base)
    if family == "unknown" or is_excluded(lora_base) or family != family_of(checkpoint_base):
        return 0.0
    a = LINEAGE.get(lora_base, family)
    b = LINEAGE.get(checkpoint_base, family)
    if a == b:
        return 1.0
    scores = DEFAULT_SOFT_SCORES if soft_scores is None else soft_scores
    return float(scores.get(frozenset({a, b}), 0.0))


# -- where a base model comes from, below Civitai ---------------------------------------------------
USER_SD_VERSION = {"SD1": "SD 1.5", "SD2": "SD 2.1", "SDXL": "SDXL 1.0", "Flux": "Flux.1 D"}

_ARCHITECTURE = {
    "stable-diffusion-v1/lora": "SD 1.5",
    "stable-diffusion-v2-512/lora": "SD 2.1",
    "stable-diffusion-v2-768-v/lora": "SD 2.1 768",
    "stable-diffusion-xl-v1-base/lora": "SDXL 1.0",
    "flux-1-dev/lora": "Flux.1 D",
    "flux-1/lora": "Flux.1 D",
    "flux-1-schnell/lora": "Flux.1 S",
    "chroma/lora": "Chroma",
    "lumina-2/lora": "Lumina",
}


def from_header(header: Header) -> Optional[str]:
    meta = header.metadata
    arch = meta.get("modelspec.architecture", "").strip().lower()
    if arch:
        if arch in _ARCHITECTURE:
            return _ARCHITECTURE[arch]
        if arch.startswith("stable-diffusion-3"):
            return "SD 3.5"
    version = meta.get("ss_base_model_version", "").strip().lower()
    if version:
        if version == "sd_v1":
            return "SD 1.5"
        if version in ("sd_v2", "sd_v2_v"):
            return "SD 2.1"
        if version.startswith("sdxl"):
            return "SDXL 1.0"
        if version.startswith("flux1"):
            return "Flux.1 D"
        if version.startswith("chroma"):
            return "Chroma"
        if version.startswith("lumina2"):
            return "Lumina"
    if meta.get("ss_v2", "").strip() == "True":
        return "SD 2.1"
    return None


_WAN_KEY = re.compile(r"blocks\.\d+\.(self_attn|cross_attn)\.")


def from_tensor_keys(keys: Iterable[str]) -> Optional[str]:
    """The architecture the tensor names belong to (SwarmUI's approach, by sentinel fragments)."""
    keys = tuple(keys)
    if any("double_blocks" in k or "single_blocks" in k or "single_transformer_blocks" in k for k in keys):
        return "Flux.1 D"
    if any(k.startswith(("lora_te1_", "lora_te2_", "lora_unet_input_blocks_", "lora_unet_output_blocks_"))
           for k in keys):
        return "SDXL 1.0"
    if any(k.startswith(("lora_te_text_model", "lora_unet_down_blocks_", "lora_unet_up_blocks_")) for k in keys):
        return "SD 1.5"
    if any("joint_blocks" in k for k in keys):
        return "SD 3.5"
    if any(_WAN_KEY.search(k) for k in keys):
        return "Wan Video"
    return None


_FOLDER = {
    "pony": "Pony", "illustrious": "Illustrious", "il": "Illustrious", "noobai": "NoobAI", "noob": "NoobAI",
    "sdxl": "SDXL 1.0", "sdxl10": "SDXL 1.0", "xl": "SDXL 1.0",
    "sd15": "SD 1.5", "sd1": "SD 1.5", "15": "SD 1.5", "sd21": "SD 2.1", "sd2": "SD 2.1",
    "flux": "Flux.1 D", "flux1": "Flux.1 D", "flux1d": "Flux.1 D",
}


def from_folders(folders: Tuple[str, ...]) -> Optional[str]:
    """The nearest enclosing folder named for a base model (`Pony/`, `SD15/`, `_SDXL_1_0/`)."""
    for folder in reversed(folders):
        key = re.sub(r"[\s_.\-]", "", folder).lower()
        if key in _FOLDER:
            return _FOLDER[key]
    return None
