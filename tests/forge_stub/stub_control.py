"""Stand-in control panel (not a Forge module): variant switch and full state reset.

Variants:
- "forge"   (default) lllyasviel Forge 2.0.1v1.10.1: alias module present, PostprocessImageArgs has index,
            one unknown LoRA name fails the whole batch's LoRA activation, forbidden_network_aliases is a dict.
- "classic" Forge Classic: no modules.generation_parameters_copypaste, PostprocessImageArgs(image) without index.
- "neo"     Forge Neo: no alias, unknown LoRA names are skipped, forbidden_network_aliases is a set.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager

VARIANTS = ("forge", "classic", "neo")
_variant = "forge"


def current_variant() -> str:
    return _variant


def set_variant(name: str) -> None:
    global _variant
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {VARIANTS}")
    _variant = name
    # The alias module decides at import time whether it exists: drop any cached copy.
    sys.modules.pop("modules.generation_parameters_copypaste", None)
    pkg = sys.modules.get("modules")
    if pkg is not None and hasattr(pkg, "generation_parameters_copypaste"):
        delattr(pkg, "generation_parameters_copypaste")
    if "networks" in sys.modules:
        sys.modules["networks"].reset_registry()


@contextmanager
def use_variant(name: str):
    previous = _variant
    set_variant(name)
    try:
        yield
    finally:
        set_variant(previous)


def reset(lora_dir: str | None = None, variant: str = "forge") -> None:
    """Fresh stand-in state: options, cmd_opts, state, model, callbacks, script runners, LoRA registry."""
    import extra_networks_lora
    import network  # noqa: F401
    import networks
    from modules import errors, extra_networks, script_callbacks, scripts, sd_models, shared
    from modules_forge import main_thread

    set_variant(variant)
    shared.reset()
    if lora_dir is not None:
        shared.cmd_opts.lora_dir = lora_dir
    sd_models.reset()
    script_callbacks.clear_callbacks()
    scripts.reset()
    errors.reported.clear()
    main_thread.last_exception = None
    extra_networks.extra_network_registry.clear()
    extra_networks.extra_network_aliases.clear()
    networks.extra_network_lora = extra_networks_lora.ExtraNetworkLora()
    extra_networks.register_extra_network(networks.extra_network_lora)
    networks.reset_registry()
    networks.list_available_networks()
    import launch

    launch.pip_calls.clear()
