"""modules.shared stand-in: opts, cmd_opts, state, sd_model, prompt_styles, walk_files, total_tqdm."""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

from modules.options import OptionHTML, OptionInfo, Options, options_section  # noqa: F401

_ROOT = os.path.join(tempfile.gettempdir(), "forge_stub_root")
script_path = _ROOT
data_path = _ROOT  # Forge's --data-dir; reset(models_dir=...) makes it the parent of that models folder
models_path = os.path.join(_ROOT, "models")
demo = None
sd_model = None  # reset(): a modules.sd_models.FakeInitialModel until process_images loads a checkpoint
hide_dirs = {"visible": True}


class UpscalerData:
    """modules.upscaler.UpscalerData: one entry of `sd_upscalers` (no upscaling is ever done here)."""

    name = None
    data_path = None
    scale: int = 4
    scaler = None
    model = None

    def __init__(self, name, path, upscaler=None, scale=4, model=None, sha256=None):
        self.name = name
        self.data_path = path
        self.local_data_path = path
        self.scaler = upscaler
        self.scale = scale
        self.model = model
        self.sha256 = sha256

    def __repr__(self):
        return f"<UpscalerData name={self.name} path={self.data_path} scale={self.scale}>"


class _Upscaler:
    """A stand-in for the Upscaler subclass behind an UpscalerData (`.scaler`): only `.name`."""

    def __init__(self, name):
        self.name = name


_FORGE_LATENT_MODES = {
    "Latent": {"mode": "bilinear", "antialias": False},
    "Latent (antialiased)": {"mode": "bilinear", "antialias": True},
    "Latent (bicubic)": {"mode": "bicubic", "antialias": False},
    "Latent (bicubic antialiased)": {"mode": "bicubic", "antialias": True},
    "Latent (nearest)": {"mode": "nearest", "antialias": False},
    "Latent (nearest-exact)": {"mode": "nearest-exact", "antialias": False},
}
# (name, upscaler class) on a bare install, as each host lists them (None/Lanczos/Nearest first in Forge, then
# the downloadable models; Neo registers only None and the ESRGAN download entry).
_FORGE_UPSCALERS = (("None", "UpscalerNone"), ("Lanczos", "UpscalerLanczos"), ("Nearest", "UpscalerNearest"),
                    ("DAT x2", "UpscalerDAT"), ("DAT x3", "UpscalerDAT"), ("DAT x4", "UpscalerDAT"),
                    ("ESRGAN_4x", "UpscalerESRGAN"), ("R-ESRGAN 4x+", "UpscalerRealESRGAN"),
                    ("R-ESRGAN 4x+ Anime6B", "UpscalerRealESRGAN"), ("ScuNET GAN", "UpscalerScuNET"),
                    ("ScuNET PSNR", "UpscalerScuNET"), ("SwinIR 4x", "UpscalerSwinIR"))
_NEO_UPSCALERS = (("None", "UpscalerNone"), ("ESRGAN", "UpscalerESRGAN"))

# Filled per variant by apply_variant() (in place, so references stay valid)
latent_upscale_default_mode = "Latent"
latent_upscale_modes: dict = {}
sd_upscalers: list = []


def _variant():
    import stub_control

    return stub_control.current_variant()


def _apply_upscalers(variant):
    global latent_upscale_default_mode
    latent_upscale_modes.clear()
    sd_upscalers.clear()
    if variant == "neo":
        latent_upscale_default_mode = "None"
        names = _NEO_UPSCALERS
    else:
        latent_upscale_default_mode = "Latent"
        latent_upscale_modes.update({k: dict(v) for k, v in _FORGE_LATENT_MODES.items()})
        names = _FORGE_UPSCALERS
    for name, cls in names:
        sd_upscalers.append(UpscalerData(name, None, _Upscaler(cls)))


def _default_options(variant=None) -> dict:
    """Forge's defaults for the options the stand-in knows; Neo's where they differ (variant "neo")."""
    neo = (variant or _variant()) == "neo"
    options = {
        "samples_save": OptionInfo(True, "Always save all generated images"),
        "samples_format": OptionInfo("png", "File format for images"),
        "samples_filename_pattern": OptionInfo("", "Images filename pattern"),
        "save_images_add_number": OptionInfo(True, "Add number to filename when saving"),
        "grid_save": OptionInfo(True, "Always save all generated image grids"),
        "grid_format": OptionInfo("jpg" if neo else "png", "File format for grids"),
        "grid_extended_filename": OptionInfo(False, "Add extended info (seed, prompt) to filename when saving grid"),
        "grid_only_if_multiple": OptionInfo(True, "Do not save grids consisting of one picture"),
        "return_grid": OptionInfo(True, "Show grid in gallery"),
        "n_rows": OptionInfo(-1, "Grid row count"),
        "enable_pnginfo": OptionInfo(True, "Save text information about generation parameters as chunks to png files"),
        "save_incomplete_images": OptionInfo(False, "Save incomplete images"),
        "outdir_samples": OptionInfo("", "Output directory for images"),
        "outdir_txt2img_samples": OptionInfo(os.path.join(data_path, "outputs", "txt2img-images"), "txt2img dir"),
        "outdir_img2img_samples": OptionInfo(os.path.join(data_path, "outputs", "img2img-images"), "img2img dir"),
        "outdir_grids": OptionInfo("", "Output directory for grids"),
        "outdir_txt2img_grids": OptionInfo(os.path.join(data_path, "outputs", "txt2img-grids"), "txt2img grids"),
        "outdir_img2img_grids": OptionInfo(os.path.join(data_path, "outputs", "img2img-grids"), "img2img grids"),
        "save_to_dirs": OptionInfo(True, "Save images to a subdirectory"),
        "grid_save_to_dirs": OptionInfo(True, "Save grids to a subdirectory"),
        "directories_filename_pattern": OptionInfo("[date]", "Directory name pattern"),
        "img_max_size_mp": OptionInfo(200, "Maximum image size"),
        "grid_text_active_color": OptionInfo("#000000", "Text color for image grids"),
        "grid_text_inactive_color": OptionInfo("#999999", "Inactive text color for image grids"),
        "grid_background_color": OptionInfo("#ffffff", "Background color for image grids"),
        "live_previews_enable": OptionInfo(True, "Show live previews of the created image"),
        "show_progress_every_n_steps": OptionInfo(1 if neo else 10, "Live preview display period"),
        "list_hidden_files": OptionInfo(True, "Load models/files in hidden directories"),
        "sd_model_checkpoint": OptionInfo("" if neo else None, "(Managed by Forge)"),
        "sd_checkpoint_hash": OptionInfo("", "SHA256 hash of the current checkpoint"),
        "CLIP_stop_at_last_layers": OptionInfo(2 if neo else 1, "Clip skip"),
        "randn_source": OptionInfo("CPU" if neo else "GPU", "Random number generator source."),
        "eta_noise_seed_delta": OptionInfo(0, "Eta noise seed delta"),
        "face_restoration_model": OptionInfo("CodeFormer", "Face restoration model"),
        "add_model_hash_to_info": OptionInfo(True, "Add model hash to infotext"),
        "add_model_name_to_info": OptionInfo(True, "Add model name to infotext"),
        "add_user_name_to_info": OptionInfo(False, "Add user name to infotext when authenticated"),
        "add_version_to_infotext": OptionInfo(True, "Add program version to infotext"),
        "infotext_skip_pasting": OptionInfo([], "Disregard fields from pasted infotext"),
        "send_seed": OptionInfo(True, "Send seed when sending prompt or image to other interface"),
        "send_size": OptionInfo(True, "Send size when sending prompt or image to another interface"),
        "infotext_styles": OptionInfo("Apply if any", "Infer styles from prompts of pasted infotext"),
        "extra_networks_default_multiplier": OptionInfo(1.0, "Default multiplier for extra networks"),
        "sd_lora": OptionInfo("None", "Add network to prompt"),
        "lora_preferred_name": OptionInfo("Alias from file", "When adding to prompt, refer to Lora by"),
        "lora_add_hashes_to_infotext": OptionInfo(True, "Add Lora hashes to infotext"),
        "lora_show_all": OptionInfo(False, "Always show all networks on the Lora page"),
        "lora_hide_unknown_for_versions": OptionInfo([], "Hide networks of unknown versions for model versions"),
        "do_not_show_images": OptionInfo(False, "Do not show any images in gallery"),
        "enable_prompt_comments": OptionInfo(True, "Enable comments"),
    }
    if neo:  # Neo renamed the quicksettings option and has no grid font option
        options["quicksettings_list"] = OptionInfo([], "Quicksettings List")
    else:
        options["font"] = OptionInfo("", "Font for image grids that have text")
        options["quick_setting_list"] = OptionInfo([], "Quicksettings list")
    return options


options_templates: dict = _default_options("forge")
opts = Options(options_templates)


def _default_cmd_opts(variant=None) -> argparse.Namespace:
    common = dict(
        lora_dir=os.path.join(models_path, "Lora"), data_dir=data_path, models_dir=None, ckpt=None, api=False,
        nowebui=False, skip_install=False, disable_extension_access=False, no_prompt_history=False,
        use_textbox_seed=False, listen=False, share=False, api_auth=None, hide_ui_dir_config=False,
        freeze_settings=False, port=None, tls_keyfile=None, tls_certfile=None,
    )
    if (variant or _variant()) == "neo":  # --lora-dirs/--ckpt-dirs (appendable lists); embeddings under models
        common.update(lora_dirs=[], ckpt_dirs=[], embeddings_dir=os.path.join(models_path, "embeddings"))
    else:
        common.update(ckpt_dir=None, lyco_dir_backcompat=os.path.join(models_path, "LyCORIS"),
                      embeddings_dir=os.path.join(data_path, "embeddings"))
    return argparse.Namespace(**common)


cmd_opts = _default_cmd_opts("forge")


def apply_variant(old: str, new: str) -> None:
    """Stub-only (stub_control.set_variant): upscalers, option defaults and command-line options of `new`.
    An option or flag still at `old`'s default takes `new`'s; one only `old` has goes; one only `new` has
    comes with its default. Values a test set are kept."""
    _apply_upscalers(new)
    old_t, new_t = _default_options(old), _default_options(new)
    for key in old_t.keys() - new_t.keys():
        options_templates.pop(key, None)
        opts.data.pop(key, None)
    for key, info in new_t.items():
        if key not in old_t:
            options_templates[key] = info
            opts.data.setdefault(key, info.default)
        elif old_t[key].default != info.default:
            options_templates[key] = info
            if opts.data.get(key) == old_t[key].default:
                opts.data[key] = info.default
    old_c, new_c = vars(_default_cmd_opts(old)), vars(_default_cmd_opts(new))
    for key in old_c.keys() - new_c.keys():
        cmd_opts.__dict__.pop(key, None)
    for key, value in new_c.items():
        if key not in old_c:
            setattr(cmd_opts, key, value)
        elif old_c[key] != value and getattr(cmd_opts, key, None) == old_c[key]:
            setattr(cmd_opts, key, value)


_apply_upscalers("forge")


class State:
    skipped = False
    interrupted = False
    stopping_generation = False
    job = ""
    job_no = 0
    job_count = 0
    processing_has_refined_job_count = False
    job_timestamp = "0"
    sampling_step = 0
    sampling_steps = 0
    current_latent = None
    current_image = None
    current_image_sampling_step = 0
    id_live_preview = 0
    textinfo = None
    time_start = None
    server_start = None
    server_command = None

    def __init__(self):
        self.server_start = time.time()

    def interrupt(self):
        self.interrupted = True

    def skip(self):
        self.skipped = True

    def stop_generating(self):
        self.stopping_generation = True

    def nextjob(self):
        self.job_no += 1
        self.sampling_step = 0
        self.current_image_sampling_step = 0

    def dict(self):
        return {
            "skipped": self.skipped, "interrupted": self.interrupted, "stopping_generation": self.stopping_generation,
            "job": self.job, "job_count": self.job_count, "job_timestamp": self.job_timestamp,
            "job_no": self.job_no, "sampling_step": self.sampling_step, "sampling_steps": self.sampling_steps,
        }

    def begin(self, job: str = "(unknown)"):
        self.sampling_step = 0
        self.time_start = time.time()
        self.job_count = -1
        self.processing_has_refined_job_count = False
        self.job_no = 0
        self.job_timestamp = time.strftime("%Y%m%d%H%M%S")
        self.current_latent = None
        self.current_image = None
        self.current_image_sampling_step = 0
        self.id_live_preview = 0
        self.skipped = False
        self.interrupted = False
        self.stopping_generation = False
        self.textinfo = None
        self.job = job

    def end(self):
        self.job = ""
        self.job_count = 0

    def set_current_image(self):
        pass

    def do_set_current_image(self):
        pass

    def assign_current_image(self, image):
        self.current_image = image


state = State()


class _TotalTqdm:
    def __init__(self):
        self.total = 0

    def reset(self):
        self.total = 0

    def update(self):
        pass

    def updateTotal(self, new_total):
        self.total = new_total

    def clear(self):
        self.total = 0


total_tqdm = _TotalTqdm()

_re_comment = re.compile(r"(^|\n)[ \t]*#[^\n]*")


def _strip_comments(text):
    if not isinstance(text, str) or not getattr(opts, "enable_prompt_comments", True):
        return text
    text = _re_comment.sub(r"\1", text)
    text = re.sub(r"#[^\n]*", "", text)
    return text.strip("\n")


class _PromptStyles:
    """Simplified StyleDatabase: no styles defined; applying only strips # comments."""

    def __init__(self):
        self.styles = {}

    def apply_styles_to_prompt(self, prompt, styles):
        return _strip_comments(prompt)

    def apply_negative_styles_to_prompt(self, prompt, styles):
        return _strip_comments(prompt)

    def extract_styles_from_prompt(self, prompt, negative_prompt):
        return [], prompt, negative_prompt


prompt_styles = _PromptStyles()


def _natural_key(s):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def walk_files(path, allowed_extensions=None):
    if not os.path.exists(path):
        return
    if allowed_extensions is not None:
        allowed_extensions = set(allowed_extensions)
    items = list(os.walk(path, followlinks=True))
    items = sorted(items, key=lambda x: _natural_key(x[0]))
    for root, _, files in items:
        for filename in sorted(files, key=_natural_key):
            if allowed_extensions is not None:
                _, ext = os.path.splitext(filename)
                if ext.lower() not in allowed_extensions:
                    continue
            if not opts.list_hidden_files and ("/." in root or "\\." in root):
                continue
            yield os.path.join(root, filename)


def reset(models_dir: str | None = None) -> None:
    """Stub-only: fresh opts (templates re-seeded), cmd_opts, state and upscalers for the current variant,
    mutated in place so that `from modules.shared import opts` references held by other modules stay valid.
    `models_dir`: this test's models folder (Forge's models_path; data_path becomes its parent)."""
    global sd_model, demo, models_path, data_path
    if models_dir is not None:
        models_path = os.path.abspath(models_dir)
        data_path = os.path.dirname(models_path)
    else:
        models_path = os.path.join(_ROOT, "models")
        data_path = _ROOT
    paths = sys.modules.get("modules.paths")
    if paths is not None:  # it copied the values at import
        paths.models_path = models_path
        paths.data_path = data_path
    variant = _variant()
    options_templates.clear()
    options_templates.update(_default_options(variant))
    opts.data_labels = options_templates
    opts.data = {k: v.default for k, v in options_templates.items() if not v.do_not_save}
    cmd_opts.__dict__.clear()
    cmd_opts.__dict__.update(vars(_default_cmd_opts(variant)))
    _apply_upscalers(variant)
    state.__dict__.clear()
    state.__init__()
    total_tqdm.clear()
    sd_model = None
    demo = None
