"""A batch as data: generation settings, and one record per image with its final prompts and LoRAs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

SCHEMA = "orchestrator-batch"
VERSION = 1
MAX_IMAGES = 100_000  # days of generation; a plan past this is a typo, and would fill the memory first
MAX_SEED = 2**32 - 1
ORIGINS = ("template", "story", "by LoRA")  # Forge's seeds: numpy's generator takes nothing larger

# The ranges Forge's own controls allow (its API takes more, and fails deep inside or silently clamps).
LIMITS: Dict[str, Tuple[float, float]] = {
    "steps": (1, 150), "width": (64, 4096), "height": (64, 4096), "cfg_scale": (0, 30),
    "hr_scale": (1, 8), "hr_second_pass_steps": (0, 150), "denoising_strength": (0, 1), "hr_cfg": (0, 30),
}


def settings_problem(values: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """(field, what is wrong) for the first setting outside what Forge allows, or None."""
    import math

    for key, (low, high) in LIMITS.items():
        value = values.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # absent, or of the wrong type: the loader says so in its own words
        if not math.isfinite(value) or not low <= value <= high:
            return key, f"{key} must be from {low:g} to {high:g}, not {value!r}"
    return None


@dataclass(frozen=True)
class Settings:
    """What Forge needs besides the prompts; unset values are Forge's own defaults."""

    checkpoint: Optional[str] = None
    sampler_name: str = "Euler a"
    scheduler: str = "Automatic"
    steps: int = 20
    width: int = 1024
    height: int = 1024
    cfg_scale: float = 7.0
    enable_hr: bool = False
    hr_upscaler: str = "Latent"
    hr_scale: float = 2.0
    hr_second_pass_steps: int = 0
    denoising_strength: float = 0.7
    hr_cfg: Optional[float] = None  # None: the same as cfg_scale

    def __post_init__(self) -> None:
        problem = settings_problem(asdict(self))
        if problem:
            raise ValueError(problem[1])

    def forge_fields(self) -> Dict[str, Any]:
        """Processing fields for Forge, with its API traps avoided: `hr_cfg` defaults to 1 there (the
        hires pass then drops the negative prompt), and `enable_hr` without `hr_additional_modules`
        fails with a TypeError."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("checkpoint", "hr_cfg")}
        if self.enable_hr:
            fields["hr_cfg"] = self.cfg_scale if self.hr_cfg is None else self.hr_cfg
            fields["hr_additional_modules"] = ["Use same choices"]
        else:
            for key in ("hr_upscaler", "hr_scale", "hr_second_pass_steps", "denoising_strength"):
                fields.pop(key)
        return fields


@dataclass(frozen=True)
class BatchImage:
    index: int
    seed: int
    prompt: str
    negative_prompt: str = ""
    loras: Tuple[Tuple[str, float, str], ...] = ()  # (name, weight, reason)
    checkpoint: Optional[str] = None  # None: the batch's


@dataclass(frozen=True)
class Batch:
    name: str
    template: str
    seed: int
    settings: Settings = field(default_factory=Settings)
    images: Tuple[BatchImage, ...] = ()
    negative_template: str = ""
    # how the images were made: "template" (every image planned from the template with seed+k, so the form can
    # plan it again), "story" (scenes of a story bible) or "by LoRA" (one prompt set per LoRA)
    origin: str = "template"

    def checkpoint_of(self, image: BatchImage) -> Optional[str]:
        return image.checkpoint or self.settings.checkpoint

    def run_order(self) -> List[BatchImage]:
        """Images grouped by checkpoint (in order of first appearance), so each is loaded once."""
        first: Dict[Optional[str], int] = {}
        for image in self.images:
            first.setdefault(self.checkpoint_of(image), len(first))
        return sorted(self.images, key=lambda im: (first[self.checkpoint_of(im)], im.index))

    def to_dict(self) -> Dict[str, Any]:
        return {"schema": SCHEMA, "version": VERSION, "name": self.name, "template": self.template,
                "negative_template": self.negative_template, "seed": self.seed, "settings": asdict(self.settings),
                "images": [{"index": im.index, "seed": im.seed, "prompt": im.prompt,
                            "negative_prompt": im.negative_prompt,
                            "loras": [{"name": n, "weight": w, "reason": r} for n, w, r in im.loras],
                            "checkpoint": im.checkpoint} for im in self.images],
                "origin": self.origin}
