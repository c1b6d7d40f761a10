"""modules.processing stand-in: the p dataclasses, create_infotext, Processed and process_images (fake sampler)."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import stub_control

from modules import errors, extra_networks, images, infotext_utils, scripts, sd_models, shared

try:
    from PIL import Image
except ImportError:  # Pillow missing: a tiny stand-in keeps the pipeline running
    Image = None

FORGE_VERSION = "f2.0.1v1.10.1-1.10.1"
NEO_VERSION = "neo-2.26"  # modules_forge.forge_version: version "neo", release "2.26"


def program_version():
    return NEO_VERSION if stub_control.current_variant() == "neo" else FORGE_VERSION


class _TinyImage:
    """Used only when Pillow is not installed: size, mode, info like a PIL image."""

    def __init__(self, size, color):
        self.size = size
        self.width, self.height = size
        self.mode = "RGB"
        self.color = color
        self.info = {}


def _make_image(width, height, seed):
    color = ((seed * 37) % 256, (seed * 59) % 256, (seed * 83) % 256)
    if Image is None:
        return _TinyImage((width, height), color)
    return Image.new("RGB", (width, height), color)


def get_fixed_seed(seed):
    if seed == "" or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except Exception:
            seed = -1
    if seed == -1:
        return int(random.randrange(4294967294))
    return seed


def fix_seed(p):
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


def create_infotext(p, all_prompts, all_seeds, all_subseeds, comments=None, iteration=0, position_in_batch=0,
                    use_main_prompt=False, index=None, all_negative_prompts=None):
    """Built-in keys first, then **p.extra_generation_params, then Version/User. Lists are indexed with `index`
    (batch-local in the per-image call), callables get this function's locals, None values are left out."""
    if use_main_prompt:
        index = 0
    elif index is None:
        index = position_in_batch + iteration * p.batch_size

    if all_negative_prompts is None:
        all_negative_prompts = p.all_negative_prompts

    clip_skip = getattr(shared.opts, "CLIP_stop_at_last_layers", 1)
    prompt_text = p.main_prompt if use_main_prompt else all_prompts[index]
    negative_prompt = p.main_negative_prompt if use_main_prompt else all_negative_prompts[index]
    model = shared.sd_model

    if stub_control.current_variant() == "neo":
        generation_params = _neo_params(p, model, index, use_main_prompt, all_seeds, all_subseeds)
    else:
        generation_params = _forge_params(p, model, index, use_main_prompt, all_seeds, all_subseeds, clip_skip)

    for key, value in generation_params.items():
        try:
            if isinstance(value, list):
                generation_params[key] = value[index]
            elif callable(value):
                generation_params[key] = value(**locals())
        except Exception:
            errors.report(f'Error creating infotext for key "{key}"', exc_info=True)
            generation_params[key] = None

    generation_params_text = ", ".join(
        [k if k == v else f"{k}: {infotext_utils.quote(v)}" for k, v in generation_params.items() if v is not None]
    )
    negative_prompt_text = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt_text}{negative_prompt_text}\n{generation_params_text}".strip()


def _variation_seed(p, index, use_main_prompt, all_subseeds):
    if p.subseed_strength == 0:
        return None
    return p.all_subseeds[0] if use_main_prompt else all_subseeds[index]


def _neo_params(p, model, index, use_main_prompt, all_seeds, all_subseeds):
    """Neo's built-in keys: Model before Model hash, no VAE/Image CFG keys, Clip skip only (and always) for an
    SD1 model, RNG always (its default source is CPU)."""
    opts = shared.opts
    params = {"Steps": p.steps, "Sampler": p.sampler_name, "Schedule type": p.scheduler, "CFG scale": p.cfg_scale}
    if getattr(model, "use_distilled_cfg_scale", False):
        params["Distilled CFG Scale"] = p.distilled_cfg_scale
    if getattr(model, "use_shift", False):
        params["Shift"] = p.distilled_cfg_scale
    params.update({
        "Seed": p.all_seeds[0] if use_main_prompt else all_seeds[index],
        "Face restoration": opts.face_restoration_model if p.restore_faces else None,
        "Size": f"{p.width}x{p.height}",
        "Model": p.sd_model_name if opts.add_model_name_to_info else None,
        "Model hash": p.sd_model_hash if opts.add_model_hash_to_info else None,
        "Variation seed": _variation_seed(p, index, use_main_prompt, all_subseeds),
        "Variation seed strength": None if p.subseed_strength == 0 else p.subseed_strength,
        "Seed resize from": (None if p.seed_resize_from_w <= 0 or p.seed_resize_from_h <= 0
                             else f"{p.seed_resize_from_w}x{p.seed_resize_from_h}"),
        "Denoising strength": p.extra_generation_params.get("Denoising strength"),
        "Clip skip": int(getattr(p, "clip_skip", opts.CLIP_stop_at_last_layers))
        if getattr(model, "is_sd1", False) else None,
        "ENSD": opts.eta_noise_seed_delta if opts.eta_noise_seed_delta != 0 else None,
        "RNG": opts.randn_source,
        **p.extra_generation_params,
        "Version": program_version() if opts.add_version_to_infotext else None,
        "User": p.user if opts.add_user_name_to_info else None,
    })
    return params


def _forge_params(p, model, index, use_main_prompt, all_seeds, all_subseeds, clip_skip):
    uses_distilled = bool(getattr(model, "use_distilled_cfg_scale", False))
    return {
        "Steps": p.steps,
        "Sampler": p.sampler_name,
        "Schedule type": p.scheduler,
        "CFG scale": p.cfg_scale,
        "Distilled CFG Scale": p.distilled_cfg_scale if uses_distilled else None,
        "Image CFG scale": getattr(p, "image_cfg_scale", None),
        "Seed": p.all_seeds[0] if use_main_prompt else all_seeds[index],
        "Face restoration": shared.opts.face_restoration_model if p.restore_faces else None,
        "Size": f"{p.width}x{p.height}",
        "Model hash": p.sd_model_hash if shared.opts.add_model_hash_to_info else None,
        "Model": p.sd_model_name if shared.opts.add_model_name_to_info else None,
        "VAE hash": p.sd_vae_hash,
        "VAE": p.sd_vae_name,
        "Variation seed": _variation_seed(p, index, use_main_prompt, all_subseeds),
        "Variation seed strength": None if p.subseed_strength == 0 else p.subseed_strength,
        "Seed resize from": (None if p.seed_resize_from_w <= 0 or p.seed_resize_from_h <= 0
                             else f"{p.seed_resize_from_w}x{p.seed_resize_from_h}"),
        "Denoising strength": p.extra_generation_params.get("Denoising strength"),
        "Clip skip": None if clip_skip <= 1 else clip_skip,
        "ENSD": shared.opts.eta_noise_seed_delta if shared.opts.eta_noise_seed_delta != 0 else None,
        "RNG": shared.opts.randn_source if shared.opts.randn_source != "GPU" else None,
        "Tiling": "True" if p.tiling else None,
        **p.extra_generation_params,
        "Version": program_version() if shared.opts.add_version_to_infotext else None,
        "User": p.user if shared.opts.add_user_name_to_info else None,
    }


@dataclass(repr=False)
class StableDiffusionProcessing:
    sd_model: object = None
    outpath_samples: str = None
    outpath_grids: str = None
    prompt: str = ""
    prompt_for_display: str = None
    negative_prompt: str = ""
    styles: list = None
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0
    seed_resize_from_h: int = -1
    seed_resize_from_w: int = -1
    seed_enable_extras: bool = True
    sampler_name: str = None
    scheduler: str = None
    batch_size: int = 1
    n_iter: int = 1
    steps: int = 50
    cfg_scale: float = 7.0
    distilled_cfg_scale: float = 3.5
    width: int = 512
    height: int = 512
    restore_faces: bool = None
    tiling: bool = None
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    extra_generation_params: dict = None
    overlay_images: list = None
    eta: float = None
    do_not_reload_embeddings: bool = False
    denoising_strength: float = None
    ddim_discretize: str = None
    s_min_uncond: float = None
    s_churn: float = None
    s_tmax: float = None
    s_tmin: float = None
    s_noise: float = None
    override_settings: dict = None
    override_settings_restore_afterwards: bool = True
    sampler_index: int = None
    refiner_checkpoint: str = None
    refiner_switch_at: float = None
    token_merging_ratio: float = 0
    token_merging_ratio_hr: float = 0
    disable_extra_networks: bool = False
    firstpass_image: object = None
    comments: dict = None

    scripts_value: object = field(default=None, init=False)
    script_args_value: list = field(default=None, init=False)
    scripts_setup_complete: bool = field(default=False, init=False)

    cached_uc = [None, None]
    cached_c = [None, None]

    sampler: object = field(default=None, init=False)
    is_using_inpainting_conditioning: bool = field(default=False, init=False)
    paste_to: tuple = field(default=None, init=False)
    is_hr_pass: bool = field(default=False, init=False)
    c: tuple = field(default=None, init=False)
    uc: tuple = field(default=None, init=False)
    rng: object = field(default=None, init=False)
    step_multiplier: int = field(default=1, init=False)
    color_corrections: list = field(default=None, init=False)
    all_prompts: list = field(default=None, init=False)
    all_negative_prompts: list = field(default=None, init=False)
    all_seeds: list = field(default=None, init=False)
    all_subseeds: list = field(default=None, init=False)
    iteration: int = field(default=0, init=False)
    main_prompt: str = field(default=None, init=False)
    main_negative_prompt: str = field(default=None, init=False)
    prompts: list = field(default=None, init=False)
    negative_prompts: list = field(default=None, init=False)
    seeds: list = field(default=None, init=False)
    subseeds: list = field(default=None, init=False)
    extra_network_data: dict = field(default=None, init=False)
    user: str = field(default=None, init=False)
    sd_model_name: str = field(default=None, init=False)
    sd_model_hash: str = field(default=None, init=False)
    sd_vae_name: str = field(default=None, init=False)
    sd_vae_hash: str = field(default=None, init=False)
    is_api: bool = field(default=False, init=False)

    def __post_init__(self):
        if self.sampler_index is not None:
            print("sampler_index argument for StableDiffusionProcessing does not do anything; use sampler_name")
        self.comments = {}
        if self.styles is None:
            self.styles = []
        self.sampler_noise_scheduler_override = None
        self.extra_generation_params = self.extra_generation_params or {}
        self.override_settings = self.override_settings or {}
        if not self.seed_enable_extras:
            self.subseed = -1
            self.subseed_strength = 0
            self.seed_resize_from_h = 0
            self.seed_resize_from_w = 0
        self.cached_uc = StableDiffusionProcessing.cached_uc
        self.cached_c = StableDiffusionProcessing.cached_c

    def __repr__(self):
        return f"<{type(self).__name__} prompt={self.prompt!r} n_iter={self.n_iter} batch_size={self.batch_size}>"

    def setup_scripts(self):
        self.scripts_setup_complete = True
        self.scripts.setup_scrips(self, is_ui=not self.is_api)

    def comment(self, text):
        self.comments[text] = 1

    def init(self, all_prompts, all_seeds, all_subseeds):
        pass

    def setup_prompts(self):
        if isinstance(self.prompt, list):
            self.all_prompts = self.prompt
        elif isinstance(self.negative_prompt, list):
            self.all_prompts = [self.prompt] * len(self.negative_prompt)
        else:
            self.all_prompts = self.batch_size * self.n_iter * [self.prompt]

        if isinstance(self.negative_prompt, list):
            self.all_negative_prompts = self.negative_prompt
        else:
            self.all_negative_prompts = [self.negative_prompt] * len(self.all_prompts)

        if len(self.all_prompts) != len(self.all_negative_prompts):
            raise RuntimeError(f"Received a different number of prompts ({len(self.all_prompts)}) "
                               f"and negative prompts ({len(self.all_negative_prompts)})")

        self.all_prompts = [shared.prompt_styles.apply_styles_to_prompt(x, self.styles) for x in self.all_prompts]
        self.all_negative_prompts = [shared.prompt_styles.apply_negative_styles_to_prompt(x, self.styles)
                                     for x in self.all_negative_prompts]
        self.main_prompt = self.all_prompts[0]
        self.main_negative_prompt = self.all_negative_prompts[0]

    def parse_extra_network_prompts(self):
        self.prompts, self.extra_network_data = extra_networks.parse_prompts(self.prompts)

    def setup_conds(self):
        pass

    def fill_fields_from_opts(self):
        pass

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        raise NotImplementedError()

    def close(self):
        self.sampler = None
        self.c = None
        self.uc = None

    def get_token_merging_ratio(self, for_hr=False):
        return self.token_merging_ratio or 0

    def save_samples(self) -> bool:
        """Whether this batch's images go to disk: saving on, and the batch neither skipped nor interrupted
        (unless opts.save_incomplete_images)."""
        state = shared.state
        return shared.opts.samples_save and not self.do_not_save_samples and (
            shared.opts.save_incomplete_images or not state.interrupted and not state.skipped)


def _get_sd_model(self):
    return shared.sd_model


def _set_sd_model(self, value):
    pass


def _get_scripts(self):
    return self.scripts_value


def _set_scripts(self, value):
    self.scripts_value = value
    if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
        self.setup_scripts()


def _get_script_args(self):
    return self.script_args_value


def _set_script_args(self, value):
    self.script_args_value = value
    if self.scripts_value and self.script_args_value and not self.scripts_setup_complete:
        self.setup_scripts()


# Properties are attached after @dataclass so that `sd_model=` stays a (no-op) constructor argument.
StableDiffusionProcessing.sd_model = property(_get_sd_model, _set_sd_model)
StableDiffusionProcessing.scripts = property(_get_scripts, _set_scripts)
StableDiffusionProcessing.script_args = property(_get_script_args, _set_script_args)


@dataclass(repr=False)
class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    enable_hr: bool = False
    denoising_strength: float = 0.75
    firstphase_width: int = 0
    firstphase_height: int = 0
    hr_scale: float = 2.0
    hr_upscaler: str = None
    hr_second_pass_steps: int = 0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_checkpoint_name: str = None
    hr_additional_modules: list = field(default=None)
    hr_sampler_name: str = None
    hr_scheduler: str = None
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    hr_cfg: float = 1.0
    hr_distilled_cfg: float = 3.5
    force_task_id: str = None

    cached_hr_uc = [None, None]
    cached_hr_c = [None, None]

    hr_checkpoint_info: dict = field(default=None, init=False)
    hr_upscale_to_x: int = field(default=0, init=False)
    hr_upscale_to_y: int = field(default=0, init=False)
    truncate_x: int = field(default=0, init=False)
    truncate_y: int = field(default=0, init=False)
    applied_old_hires_behavior_to: tuple = field(default=None, init=False)
    latent_scale_mode: dict = field(default=None, init=False)
    hr_c: tuple = field(default=None, init=False)
    hr_uc: tuple = field(default=None, init=False)
    all_hr_prompts: list = field(default=None, init=False)
    all_hr_negative_prompts: list = field(default=None, init=False)
    hr_prompts: list = field(default=None, init=False)
    hr_negative_prompts: list = field(default=None, init=False)
    hr_extra_network_data: list = field(default=None, init=False)

    def __post_init__(self):
        super().__post_init__()
        if self.firstphase_width != 0 or self.firstphase_height != 0:
            self.hr_upscale_to_x = self.width
            self.hr_upscale_to_y = self.height
            self.width = self.firstphase_width
            self.height = self.firstphase_height

    def calculate_target_resolution(self):
        if self.hr_resize_x == 0 and self.hr_resize_y == 0:
            self.extra_generation_params["Hires upscale"] = self.hr_scale
            self.hr_upscale_to_x = int(self.width * self.hr_scale)
            self.hr_upscale_to_y = int(self.height * self.hr_scale)
        else:
            self.extra_generation_params["Hires resize"] = f"{self.hr_resize_x}x{self.hr_resize_y}"
            if self.hr_resize_y == 0:
                self.hr_upscale_to_x = self.hr_resize_x
                self.hr_upscale_to_y = self.hr_resize_x * self.height // self.width
            elif self.hr_resize_x == 0:
                self.hr_upscale_to_x = self.hr_resize_y * self.width // self.height
                self.hr_upscale_to_y = self.hr_resize_y
            else:
                self.hr_upscale_to_x = self.hr_resize_x
                self.hr_upscale_to_y = self.hr_resize_y

    def init(self, all_prompts, all_seeds, all_subseeds):
        if not self.enable_hr:
            return
        self.extra_generation_params["Denoising strength"] = self.denoising_strength

        if self.hr_checkpoint_name and self.hr_checkpoint_name != "Use same checkpoint":
            self.hr_checkpoint_info = sd_models.get_closet_checkpoint_match(self.hr_checkpoint_name)
            if self.hr_checkpoint_info is None:
                raise Exception(f"Could not find checkpoint with name {self.hr_checkpoint_name}")
            self.extra_generation_params["Hires checkpoint"] = self.hr_checkpoint_info.short_title

        if isinstance(self.hr_additional_modules, list):
            for i, module in enumerate(self.hr_additional_modules):
                self.extra_generation_params[f"Hires Module {i + 1}"] = module

        if self.hr_sampler_name is not None and self.hr_sampler_name != self.sampler_name:
            self.extra_generation_params["Hires sampler"] = self.hr_sampler_name

        def get_hr_prompt(p, index, prompt_text, **kwargs):
            hr_prompt = p.all_hr_prompts[index]
            return hr_prompt if hr_prompt != prompt_text else None

        def get_hr_negative_prompt(p, index, negative_prompt, **kwargs):
            hr_negative_prompt = p.all_hr_negative_prompts[index]
            return hr_negative_prompt if hr_negative_prompt != negative_prompt else None

        self.extra_generation_params["Hires prompt"] = get_hr_prompt
        self.extra_generation_params["Hires negative prompt"] = get_hr_negative_prompt
        self.extra_generation_params["Hires CFG Scale"] = self.hr_cfg
        self.extra_generation_params["Hires Distilled CFG Scale"] = (
            self.hr_distilled_cfg if getattr(shared.sd_model, "use_distilled_cfg_scale", False) else None)
        self.extra_generation_params["Hires schedule type"] = None
        if self.hr_scheduler is None:
            self.hr_scheduler = self.scheduler

        # A latent mode by name, or (no name) the default mode; else it must be an upscaler's name. Neo has no
        # latent modes and the default "None", so None becomes the string "nearest" there: it fails only later,
        # when the hires pass indexes it (TypeError), as in Neo.
        if self.hr_upscaler is not None:
            self.latent_scale_mode = shared.latent_upscale_modes.get(self.hr_upscaler, None)
        else:
            self.latent_scale_mode = shared.latent_upscale_modes.get(shared.latent_upscale_default_mode, "nearest")
        if self.enable_hr and self.latent_scale_mode is None:
            if not any(x.name == self.hr_upscaler for x in shared.sd_upscalers):
                if stub_control.current_variant() == "neo":
                    raise ValueError(f'Could not find upscaler named "{self.hr_upscaler}"')
                raise Exception(f"could not find upscaler named {self.hr_upscaler}")

        self.calculate_target_resolution()

        if not shared.state.processing_has_refined_job_count:
            if shared.state.job_count == -1:
                shared.state.job_count = self.n_iter
            shared.state.job_count = shared.state.job_count * 2
            shared.state.processing_has_refined_job_count = True

        if self.hr_second_pass_steps:
            self.extra_generation_params["Hires steps"] = self.hr_second_pass_steps
        if self.hr_upscaler is not None:
            self.extra_generation_params["Hires upscaler"] = self.hr_upscaler

    def setup_prompts(self):
        super().setup_prompts()
        if not self.enable_hr:
            return
        if self.hr_prompt == "":
            self.hr_prompt = self.prompt
        if self.hr_negative_prompt == "":
            self.hr_negative_prompt = self.negative_prompt

        if isinstance(self.hr_prompt, list):
            self.all_hr_prompts = self.hr_prompt
        else:
            self.all_hr_prompts = self.batch_size * self.n_iter * [self.hr_prompt]
        if isinstance(self.hr_negative_prompt, list):
            self.all_hr_negative_prompts = self.hr_negative_prompt
        else:
            self.all_hr_negative_prompts = self.batch_size * self.n_iter * [self.hr_negative_prompt]

        self.all_hr_prompts = [shared.prompt_styles.apply_styles_to_prompt(x, self.styles)
                               for x in self.all_hr_prompts]
        self.all_hr_negative_prompts = [shared.prompt_styles.apply_negative_styles_to_prompt(x, self.styles)
                                        for x in self.all_hr_negative_prompts]

    def parse_extra_network_prompts(self):
        res = super().parse_extra_network_prompts()
        if self.enable_hr:
            start, end = self.iteration * self.batch_size, (self.iteration + 1) * self.batch_size
            self.hr_prompts = self.all_hr_prompts[start:end]
            self.hr_negative_prompts = self.all_hr_negative_prompts[start:end]
            self.hr_prompts, self.hr_extra_network_data = extra_networks.parse_prompts(self.hr_prompts)
        return res

    def sample(self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        """Fake sampler: one solid-colour image per seed (width x height), then the hires pass if enabled."""
        if self.scripts is not None:
            self.scripts.process_before_every_sampling(self, x=None, noise=None, c=conditioning,
                                                       uc=unconditional_conditioning)
        samples = [_make_image(self.width, self.height, s) for s in seeds]
        if not self.enable_hr:
            return samples
        return self.sample_hr_pass(samples, seeds, subseeds, subseed_strength, prompts)

    def sample_hr_pass(self, samples, seeds, subseeds, subseed_strength, prompts):
        if shared.state.interrupted:
            return samples
        self.is_hr_pass = True
        if self.latent_scale_mode is not None:  # latent upscale: its interpolation mode (Neo: a str → TypeError)
            _ = self.latent_scale_mode["mode"], self.latent_scale_mode["antialias"]
        if not self.disable_extra_networks:
            extra_networks.activate(self, self.hr_extra_network_data)
        if self.scripts is not None:
            self.scripts.before_hr(self)
            self.scripts.process_before_every_sampling(self, x=None, noise=None, c=self.hr_c, uc=self.hr_uc)
        samples = [_make_image(self.hr_upscale_to_x, self.hr_upscale_to_y, s) for s in seeds]
        self.is_hr_pass = False
        return samples


@dataclass(repr=False)
class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """Fields only: img2img generation is not implemented by the stand-in."""

    init_images: list = None
    resize_mode: int = 0
    denoising_strength: float = 0.75
    image_cfg_scale: float = None
    mask: object = None
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    mask_blur: int = None
    mask_round: bool = True
    inpainting_fill: int = 0
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = 0
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float = None
    latent_mask: object = None
    force_task_id: str = None
    hr_distilled_cfg: float = 3.5


class Processed:
    def __init__(self, p: StableDiffusionProcessing, images_list, seed=-1, info="", subseed=None, all_prompts=None,
                 all_negative_prompts=None, all_seeds=None, all_subseeds=None, index_of_first_image=0,
                 infotexts=None, comments="", extra_images_list=None):
        self.images = images_list
        self.extra_images = extra_images_list if extra_images_list is not None else []
        self.prompt = p.prompt
        self.negative_prompt = p.negative_prompt
        self.seed = seed
        self.subseed = subseed
        self.subseed_strength = p.subseed_strength
        self.info = info
        self.comments = "".join(f"{comment}\n" for comment in p.comments)
        self.width = p.width
        self.height = p.height
        self.sampler_name = p.sampler_name
        self.cfg_scale = p.cfg_scale
        self.image_cfg_scale = getattr(p, "image_cfg_scale", None)
        self.steps = p.steps
        self.batch_size = p.batch_size
        self.restore_faces = p.restore_faces
        self.face_restoration_model = shared.opts.face_restoration_model if p.restore_faces else None
        self.sd_model_name = p.sd_model_name
        self.sd_model_hash = p.sd_model_hash
        self.sd_vae_name = p.sd_vae_name
        self.sd_vae_hash = p.sd_vae_hash
        self.seed_resize_from_w = p.seed_resize_from_w
        self.seed_resize_from_h = p.seed_resize_from_h
        self.denoising_strength = getattr(p, "denoising_strength", None)
        self.extra_generation_params = p.extra_generation_params
        self.index_of_first_image = index_of_first_image
        self.styles = p.styles
        self.job_timestamp = shared.state.job_timestamp
        self.clip_skip = getattr(shared.opts, "CLIP_stop_at_last_layers", 1)
        self.token_merging_ratio = p.token_merging_ratio
        self.eta = p.eta
        self.is_using_inpainting_conditioning = p.is_using_inpainting_conditioning
        self.version = program_version()

        self.prompt = self.prompt if not isinstance(self.prompt, list) else self.prompt[0]
        self.negative_prompt = self.negative_prompt if not isinstance(self.negative_prompt, list) \
            else self.negative_prompt[0]
        self.seed = int(self.seed if not isinstance(self.seed, list) else self.seed[0]) if self.seed is not None else -1
        self.subseed = int(self.subseed if not isinstance(self.subseed, list) else self.subseed[0]) \
            if self.subseed is not None else -1

        self.all_prompts = all_prompts or p.all_prompts or [self.prompt]
        self.all_negative_prompts = all_negative_prompts or p.all_negative_prompts or [self.negative_prompt]
        self.all_seeds = all_seeds or p.all_seeds or [self.seed]
        self.all_subseeds = all_subseeds or p.all_subseeds or [self.subseed]
        self.infotexts = infotexts or [info] * len(images_list)

    def js(self):
        obj = {
            "prompt": self.all_prompts[0],
            "all_prompts": self.all_prompts,
            "negative_prompt": self.all_negative_prompts[0],
            "all_negative_prompts": self.all_negative_prompts,
            "seed": self.seed,
            "all_seeds": self.all_seeds,
            "subseed": self.subseed,
            "all_subseeds": self.all_subseeds,
            "subseed_strength": self.subseed_strength,
            "width": self.width,
            "height": self.height,
            "sampler_name": self.sampler_name,
            "cfg_scale": self.cfg_scale,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "restore_faces": self.restore_faces,
            "face_restoration_model": self.face_restoration_model,
            "sd_model_name": self.sd_model_name,
            "sd_model_hash": self.sd_model_hash,
            "sd_vae_name": self.sd_vae_name,
            "sd_vae_hash": self.sd_vae_hash,
            "seed_resize_from_w": self.seed_resize_from_w,
            "seed_resize_from_h": self.seed_resize_from_h,
            "denoising_strength": self.denoising_strength,
            "extra_generation_params": self.extra_generation_params,
            "index_of_first_image": self.index_of_first_image,
            "infotexts": self.infotexts,
            "styles": self.styles,
            "job_timestamp": self.job_timestamp,
            "clip_skip": self.clip_skip,
            "is_using_inpainting_conditioning": self.is_using_inpainting_conditioning,
            "version": self.version,
        }
        return json.dumps(obj, default=lambda o: None)

    def infotext(self, p: StableDiffusionProcessing, index):
        return create_infotext(p, self.all_prompts, self.all_seeds, self.all_subseeds, comments=[],
                               position_in_batch=index % self.batch_size, iteration=index // self.batch_size)


def fix_p_invalid_sampler_and_scheduler(p):
    if p.sampler_name is None:
        p.sampler_name = "Euler"
    if p.scheduler is None:
        p.scheduler = "Automatic"


def process_images(p: StableDiffusionProcessing) -> Processed:
    if p.scripts is not None:
        p.scripts.before_process(p)

    stored_opts = {k: shared.opts.data[k] for k in p.override_settings.keys() if k in shared.opts.data}
    try:
        # a checkpoint override that is not an exact alias is dropped: the selected checkpoint is used
        if sd_models.checkpoint_aliases.get(p.override_settings.get("sd_model_checkpoint")) is None:
            p.override_settings.pop("sd_model_checkpoint", None)
        for k, v in p.override_settings.items():
            shared.opts.set(k, v, is_api=True, run_callbacks=False)
        sd_models.forge_model_reload()  # the first generation loads the model; a changed selection reloads
        fix_p_invalid_sampler_and_scheduler(p)
        res = process_images_inner(p)
    finally:
        if p.override_settings_restore_afterwards:
            for k, v in stored_opts.items():
                setattr(shared.opts, k, v)
    return res


def process_images_inner(p: StableDiffusionProcessing) -> Processed:
    if isinstance(p.prompt, list):
        assert len(p.prompt) > 0
    else:
        assert p.prompt is not None

    seed = get_fixed_seed(p.seed)
    subseed = get_fixed_seed(p.subseed)

    info = shared.sd_model.sd_checkpoint_info
    p.sd_model_name = info.name_for_extra
    p.sd_model_hash = shared.sd_model.sd_model_hash
    p.sd_vae_name = None
    p.sd_vae_hash = None
    shared.sd_model.extra_generation_params = {}
    shared.sd_model.comments = []

    p.fill_fields_from_opts()
    p.setup_prompts()

    if isinstance(seed, list):
        p.all_seeds = seed
    else:
        p.all_seeds = [int(seed) + (x if p.subseed_strength == 0 else 0) for x in range(len(p.all_prompts))]
    if isinstance(subseed, list):
        p.all_subseeds = subseed
    else:
        p.all_subseeds = [int(subseed) + x for x in range(len(p.all_prompts))]

    if p.scripts is not None:
        p.scripts.process(p)

    infotexts = []
    output_images = []

    def infotext(index=0, use_main_prompt=False):
        return create_infotext(p, p.prompts, p.seeds, p.subseeds, use_main_prompt=use_main_prompt, index=index,
                               all_negative_prompts=p.negative_prompts)

    p.init(p.all_prompts, p.all_seeds, p.all_subseeds)

    if shared.state.job_count == -1:
        shared.state.job_count = p.n_iter

    pass_index = stub_control.current_variant() != "classic"

    for n in range(p.n_iter):
        p.iteration = n
        if shared.state.skipped:
            shared.state.skipped = False
        if shared.state.interrupted or shared.state.stopping_generation:
            break

        start, end = n * p.batch_size, (n + 1) * p.batch_size
        p.prompts = p.all_prompts[start:end]
        p.negative_prompts = p.all_negative_prompts[start:end]
        p.seeds = p.all_seeds[start:end]
        p.subseeds = p.all_subseeds[start:end]

        if p.scripts is not None:
            p.scripts.before_process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)

        if len(p.prompts) == 0:
            break

        p.parse_extra_network_prompts()

        if not p.disable_extra_networks:
            extra_networks.activate(p, p.extra_network_data)

        if p.scripts is not None:
            p.scripts.process_batch(p, batch_number=n, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)

        p.setup_conds()
        p.extra_generation_params.update(shared.sd_model.extra_generation_params)

        samples = p.sample(conditioning=p.c, unconditional_conditioning=p.uc, seeds=p.seeds, subseeds=p.subseeds,
                           subseed_strength=p.subseed_strength, prompts=p.prompts)

        if p.scripts is not None:
            ps = scripts.PostSampleArgs(samples)
            p.scripts.post_sample(p, ps)
            samples = ps.samples

        shared.state.nextjob()

        if p.scripts is not None:
            p.scripts.postprocess_batch(p, samples, batch_number=n)

            p.prompts = p.all_prompts[start:end]
            p.negative_prompts = p.all_negative_prompts[start:end]

            batch_params = scripts.PostprocessBatchListArgs(list(samples))
            p.scripts.postprocess_batch_list(p, batch_params, batch_number=n)
            samples = batch_params.images

        save_samples = p.save_samples()  # decided once per batch, after its sampling

        for i, image in enumerate(samples):
            p.batch_index = i
            global_index = i + p.iteration * p.batch_size

            if p.scripts is not None:
                pp = scripts.PostprocessImageArgs(image, global_index) if pass_index \
                    else scripts.PostprocessImageArgs(image)
                p.scripts.postprocess_image(p, pp)
                image = pp.image

                pp = scripts.PostprocessImageArgs(image, global_index) if pass_index \
                    else scripts.PostprocessImageArgs(image)
                p.scripts.postprocess_image_after_composite(p, pp)
                image = pp.image

            if save_samples:
                images.save_image(image, p.outpath_samples, "", p.seeds[i], p.prompts[i],
                                  shared.opts.samples_format, info=infotext(i), p=p)

            text = infotext(i)
            infotexts.append(text)
            if shared.opts.enable_pnginfo:
                image.info["parameters"] = text
            output_images.append(image)

    if not infotexts:  # nothing made (interrupted before the first image): still one infotext
        infotexts.append(Processed(p, []).infotext(p, 0))

    p.color_corrections = None
    index_of_first_image = 0
    unwanted_grid_because_of_img_count = len(output_images) < 2 and shared.opts.grid_only_if_multiple
    if (shared.opts.return_grid or shared.opts.grid_save) and not p.do_not_save_grid \
            and not unwanted_grid_because_of_img_count:
        grid = images.image_grid(output_images, p.batch_size)
        if shared.opts.return_grid:
            text = infotext(use_main_prompt=True)
            infotexts.insert(0, text)
            if shared.opts.enable_pnginfo:
                grid.info["parameters"] = text
            output_images.insert(0, grid)
            index_of_first_image = 1
        if shared.opts.grid_save:
            images.save_image(grid, p.outpath_grids, "grid", p.all_seeds[0], p.all_prompts[0],
                              shared.opts.grid_format, info=infotext(use_main_prompt=True),
                              short_filename=not shared.opts.grid_extended_filename, p=p, grid=True)

    if not p.disable_extra_networks and p.extra_network_data:
        extra_networks.deactivate(p, p.extra_network_data)

    res = Processed(p, images_list=output_images, seed=p.all_seeds[0], info=infotexts[0] if infotexts else "",
                    subseed=p.all_subseeds[0], index_of_first_image=index_of_first_image, infotexts=infotexts)

    if p.scripts is not None:
        p.scripts.postprocess(p, res)

    return res

