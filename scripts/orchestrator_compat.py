"""Every import that differs between Forge variants, in one place.

lllyasviel Forge (Gradio 4.40, pydantic 2) is the primary target. Forge Classic, reForge and A1111 1.10
(Gradio 3.41, pydantic 1) and Forge Neo must at least load without breaking the UI: Classic and Neo
removed `modules.generation_parameters_copypaste`, Classic's `PostprocessImageArgs` has no `index`,
A1111 has no `modules_forge`, and the LoRA registry (`networks`) exists only while the built-in LoRA
extension is enabled.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Set, Tuple

try:
    from modules import infotext_utils
except ImportError:  # A1111 before 1.8
    from modules import generation_parameters_copypaste as infotext_utils  # type: ignore[no-redef]

try:
    import networks  # extensions-builtin/sd_forge_lora (Forge) or Lora (A1111, Classic)
except ImportError:
    networks = None  # type: ignore[assignment]

try:
    from modules.ui_components import InputAccordion
except ImportError:
    InputAccordion = None  # type: ignore[assignment,misc]

try:
    import gradio as gr
except ImportError:  # only ever in a stripped test environment
    gr = None  # type: ignore[assignment]

__all__ = ["InputAccordion", "gr", "infotext_utils", "networks"]


def postprocess_index(p: Any, pp: Any) -> int:
    """The job-wide index of the image in `postprocess_image`: Forge passes it; others do not."""
    index = getattr(pp, "index", None)
    if index is not None:
        return int(index)
    return int(getattr(p, "iteration", 0)) * int(getattr(p, "batch_size", 1)) + int(getattr(p, "batch_index", 0))


def known_lora_names() -> Optional[Set[str]]:
    """Names `<lora:NAME>` resolves to in this Forge, or None when the registry is unavailable."""
    if networks is None:
        return None
    aliases = getattr(networks, "available_network_aliases", None)
    names = getattr(networks, "available_networks", None)
    if aliases is None and names is None:
        return None
    return set(aliases or {}) | set(names or {})


def lora_dirs(shared: Any, paths_models: Optional[str]) -> List[str]:
    """Forge's LoRA folder, plus Forge Neo's extra ones."""
    cmd = getattr(shared, "cmd_opts", None)
    first = getattr(cmd, "lora_dir", None) or (os.path.join(paths_models, "Lora") if paths_models else None)
    extra = getattr(cmd, "lora_dirs", None) or []
    return [d for d in [first, *extra] if d and os.path.isdir(d)]


_EMBEDDING_FILES = (".pt", ".bin", ".safetensors", ".png", ".webp", ".jxl", ".avif")


def embedding_names(shared: Any) -> List[str]:
    """The textual-inversion names a prompt may use: the files in Forge's embeddings folder, named as
    Forge's EmbeddingDatabase names them (the file name without its extension; not `.preview` images)."""
    folder = getattr(getattr(shared, "cmd_opts", None), "embeddings_dir", None)
    names: List[str] = []
    if not folder or not os.path.isdir(folder):
        return names
    for _root, _dirs, files in os.walk(folder, followlinks=True):
        for file in files:
            stem, ext = os.path.splitext(file)
            if ext.lower() in _EMBEDDING_FILES and not stem.lower().endswith(".preview"):
                names.append(stem)
    return names


def checkpoint(shared: Any) -> Tuple[str, Optional[str]]:
    """(family, base model or None) of the loaded checkpoint, from the model's flags and its name."""
    model = getattr(shared, "sd_model", None)
    if model is None:
        return "sdxl", None
    if getattr(model, "is_sdxl", False):
        family = "sdxl"
    elif getattr(model, "is_sd1", False):
        family = "sd1"
    elif getattr(model, "is_sd2", False):
        family = "sd2"
    elif getattr(model, "is_sd3", False):
        family = "sd3"
    else:
        family = "flux"  # Forge sets none of the flags for Flux (and Chroma)
    info = getattr(model, "sd_checkpoint_info", None)
    name = (getattr(info, "name", "") or getattr(info, "title", "") or "").lower()
    base = None
    if family == "sdxl":
        for fragment, guess in (("pony", "Pony"), ("illustrious", "Illustrious"), ("noob", "NoobAI")):
            if fragment in name:
                base = guess
                break
    return family, base
