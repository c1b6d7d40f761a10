"""Every import that differs between Forge variants, in one place.

lllyasviel Forge and Forge Neo (Gradio 4.40, pydantic 2) are the targets. Forge Classic, reForge and A1111
1.10 (Gradio 3.41, pydantic 1) must at least load without breaking the UI: Classic removed
`modules.generation_parameters_copypaste` (Neo keeps an empty one), Classic's `PostprocessImageArgs` has no `index`,
A1111 has no `modules_forge`, and the LoRA registry (`networks`) exists only while the built-in LoRA
extension is enabled.
"""
from __future__ import annotations

import os
from typing import Any, List, Optional, Set

from lib_orchestrator.checkpoint import UNKNOWN, CheckpointKind, base_model_of, identify_file

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


def selected_checkpoint(shared: Any, sd_models: Any) -> Any:
    """The CheckpointInfo Forge will load for the next image: the one chosen in the checkpoint list (an
    exact alias), else the first it listed. Forge's own select_checkpoint() does the same, but Neo's prints
    a line each time it falls back, and the tab asks before every preview."""
    chosen = getattr(shared.opts, "sd_model_checkpoint", None)
    info = (getattr(sd_models, "checkpoint_aliases", None) or {}).get(chosen) if chosen else None
    if info is None:
        info = next(iter((getattr(sd_models, "checkpoints_list", None) or {}).values()), None)
    return info


def find_checkpoint(sd_models: Any, name: str) -> Any:
    """The CheckpointInfo for a name as a user writes it (a file name, a title with its hash, a partial
    name), or None. Forge applies a checkpoint override only for an exact alias and otherwise quietly keeps
    the loaded model: callers pass on `.name`, an exact alias."""
    return sd_models.get_closet_checkpoint_match(name) if name else None


def upscaler_names(shared: Any) -> List[str]:
    """The hires-fix upscalers this Forge accepts: its latent modes (none in Neo), then its upscaler models."""
    names = list(getattr(shared, "latent_upscale_modes", None) or {})
    return names + [u.name for u in getattr(shared, "sd_upscalers", None) or [] if u.name not in names]


def default_upscaler(shared: Any) -> str:
    """Forge's own default ("Latent"; "None" in Neo), if it has it, else its first."""
    names = upscaler_names(shared)
    default = getattr(shared, "latent_upscale_default_mode", None)
    return default if default in names else (names[0] if names else "")


def checkpoint(shared: Any, sd_models: Any) -> CheckpointKind:
    """What the selected checkpoint is (family, base model), without loading it: Forge loads a checkpoint
    only on the first generation and keeps a placeholder model until then, and after the user picks
    another one the loaded model is the wrong one to ask. Its file's header tells; the loaded model's
    flags only when the file cannot (a .gguf, say)."""
    info = selected_checkpoint(shared, sd_models)
    kind = identify_file(info.filename) if getattr(info, "filename", None) else UNKNOWN
    if kind.family != "unknown":
        return kind
    model = getattr(shared, "sd_model", None)
    loaded = getattr(model, "sd_checkpoint_info", None)
    if loaded is None or (info is not None and getattr(loaded, "filename", None) != info.filename):
        return kind
    for flag, family in (("is_sdxl", "sdxl"), ("is_sd1", "sd1"), ("is_sd2", "sd2"), ("is_sd3", "sd3")):
        if getattr(model, flag, False):
            name = getattr(loaded, "name", "") or ""
            return CheckpointKind(family, base_model_of(family, [name]), "loaded model")
    return kind
