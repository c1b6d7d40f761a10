"""Stand-in control panel (not a Forge module): variant switch and full state reset.

Variants:
- "forge"   (default) lllyasviel Forge 2.0.1v1.10.1: alias module present, PostprocessImageArgs has index,
            one unknown LoRA name fails the whole batch's LoRA activation, forbidden_network_aliases is a dict,
            six Latent hires modes.
- "classic" Forge Classic: no modules.generation_parameters_copypaste, PostprocessImageArgs(image) without index.
- "neo"     Forge Neo (neo-2.26): a near-empty generation_parameters_copypaste, unknown LoRA names are skipped,
            forbidden_network_aliases is a set, no latent hires modes, its own option defaults and cmd_opts.
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
    previous, _variant = _variant, name
    # What the host decides at start-up: hires upscalers, option defaults, cmd_opts, infotext_utils' names.
    if "modules.shared" in sys.modules:
        sys.modules["modules.shared"].apply_variant(previous, name)
    if "modules.infotext_utils" in sys.modules:
        sys.modules["modules.infotext_utils"]._apply_variant(name)
    if previous != name and "modules.sd_models" in sys.modules:  # another host: nothing loaded in it yet
        sd_models = sys.modules["modules.sd_models"]
        sys.modules["modules.shared"].sd_model = sd_models.FakeInitialModel()
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


def _models_folder(lora_dir: str | None) -> str:
    """A models folder of this test's own: the one holding `lora_dir` (`<models>/Lora`), else a new temp one."""
    import os
    import tempfile

    if lora_dir is not None and os.path.basename(os.path.normpath(lora_dir)) == "Lora":
        return os.path.dirname(os.path.abspath(os.path.normpath(lora_dir)))
    return os.path.join(tempfile.mkdtemp(prefix="forge_stub_"), "models")


def reset(lora_dir: str | None = None, variant: str = "forge", models_dir: str | None = None) -> None:
    """Fresh stand-in state: options, cmd_opts, state, checkpoints, model placeholder, callbacks, script runners,
    paste bindings, progress tasks, main_thread's last exception, LoRA registry. `models_dir`: Forge's models
    folder for this test (checkpoints go to its Stable-diffusion/; data_path is its parent); default: the
    folder holding `lora_dir`, else a new temp folder."""
    import extra_networks_lora
    import network  # noqa: F401
    import networks
    from modules import errors, extra_networks, infotext_utils, progress, script_callbacks, scripts, sd_models, shared
    from modules_forge import main_thread

    set_variant(variant)
    shared.reset(models_dir=models_dir or _models_folder(lora_dir))
    if lora_dir is not None:
        shared.cmd_opts.lora_dir = lora_dir
    sd_models.reset()
    progress.reset()
    script_callbacks.clear_callbacks()
    scripts.reset()
    from modules import extensions, script_loading

    extensions.extensions.clear()
    script_loading.loaded_scripts.clear()
    errors.reported.clear()
    main_thread.reset()
    infotext_utils.registered_param_bindings.clear()
    infotext_utils.paste_fields.clear()
    extra_networks.extra_network_registry.clear()
    extra_networks.extra_network_aliases.clear()
    networks.extra_network_lora = extra_networks_lora.ExtraNetworkLora()
    extra_networks.register_extra_network(networks.extra_network_lora)
    networks.reset_registry()
    networks.list_available_networks()
    import launch

    launch.pip_calls.clear()


def install_extension(path: str) -> None:
    """Put an extension folder in Forge's extensions list (as a folder under extensions/ would be)."""
    import os

    from modules import extensions

    path = os.path.abspath(path)
    extensions.extensions.append(extensions.Extension(os.path.basename(path), path))
    extensions.extensions.sort(key=lambda e: e.name)


def forget_extension_modules() -> None:
    """A new Forge process: nothing an extension's script files imported from its own `scripts/` folder is in
    sys.modules yet (a UI reload, unlike this, keeps them)."""
    import os

    from modules import extensions

    folders = [os.path.join(e.path, "scripts") + os.sep for e in extensions.extensions]
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if any(os.path.abspath(file).startswith(folder) for folder in folders):
            del sys.modules[name]


def start_webui(*, tabs: bool = True) -> dict:
    """Forge's start-up after the checkpoints are listed, in its order: load every extension's scripts, register
    their settings, build txt2img's and img2img's script UIs, build the extension tabs (Gradio needed), then
    app_started. Returns the loaded script modules by file name (`"orchestrator_tab.py": module`). Saved
    defaults (ui-config.json) are applied by `modules.ui_loadsave` to a tab a test builds itself."""
    import os

    from modules import script_callbacks, script_loading, scripts

    scripts.load_scripts()
    script_callbacks.ui_settings_callback()
    for runner, img2img in ((scripts.scripts_txt2img, False), (scripts.scripts_img2img, True)):
        runner.initialize_scripts(img2img)
        runner.setup_ui()
    if tabs:
        script_callbacks.ui_tabs_callback()
    script_callbacks.app_started_callback(None, None)
    return {os.path.basename(path): module for path, module in script_loading.loaded_scripts.items()}
