"""Stand-in for ADetailer (Bing-su/adetailer), written for these tests from reading its public source
(scripts/!adetailer.py, adetailer/args.py, aaaaaa/p_method.py, aaaaaa/helper.py at 36189cb, March 2025;
AGPL: nothing copied). It detects nothing and inpaints nothing: per image it records the prompts it would
inpaint with, on `p.adetailer_inpaints`.

What it keeps of ADetailer:
- title "ADetailer", AlwaysOn, in a file named `!adetailer.py` (loaded early among its folder's files);
- args `[enabled, skip_img2img, {unit}, {unit}]` (ui: a checkbox, a checkbox, one dict per tab, two tabs);
  only the dicts are units, and without a leading bool (REST's old shape `[{unit}]`) it is enabled;
- a unit is skipped when its `ad_model` is "None" or `ad_tab_enable` is False; an unknown key in a unit is
  refused (ADetailer validates units with a pydantic model that forbids extras) and that unit is dropped;
- process(): writes "ADetailer model", "ADetailer prompt" and "ADetailer negative prompt" (when not empty),
  suffixed " 2nd", " 3rd"… for later units, and "ADetailer version" into p.extra_generation_params;
- postprocess_image(p, pp, *args): reads its args anew for every image; image i = iteration × batch_size +
  batch_index; each prompt is split on `[SEP]` (blanks around it dropped), an empty piece is the image's own
  prompt (`p.all_prompts[i]`, the negative likewise), `[PROMPT]` in a piece is replaced by it; the seed is
  `p.all_seeds[i]`;
- after the first image of a batch it calls every script's postprocess(copy(p), …), and after the last
  image of a batch every script's before_process and process on copy(p), putting p's all_prompts and
  all_negative_prompts back afterwards (ADetailer does both, for ControlNet).
"""
from __future__ import annotations

import re
from collections import namedtuple
from copy import copy
from typing import Any, List, Tuple

from modules import processing, scripts

UNIT_KEYS = ("ad_model", "ad_model_classes", "ad_tab_enable", "ad_prompt", "ad_negative_prompt", "ad_confidence",
             "ad_denoising_strength", "ad_inpaint_only_masked", "ad_use_steps", "ad_steps", "is_api")
DEFAULT_UNIT = {"ad_model": "None", "ad_prompt": "", "ad_negative_prompt": ""}


# What ADetailer would inpaint image `index` with, for unit `unit` (from 1). A namedtuple: Forge runs script
# files as modules outside sys.modules, where @dataclass fails.
Inpaint = namedtuple("Inpaint", "index unit prompts negatives seed")


class _Control:
    def __init__(self, value: Any, label: str) -> None:
        self.value, self.label = value, label


def _ordinal(n: int) -> str:
    return f"{n}{'tsnrhtdd'[(n // 10 % 10 != 1) * (n % 10 < 4) * n % 10::4]}"


def _units(args: Tuple[Any, ...]) -> List[Tuple[int, dict]]:
    out = []
    for n, unit in enumerate((a for a in args if isinstance(a, dict)), 1):
        if set(unit) - set(UNIT_KEYS):
            continue  # ADetailer: "ValidationError when validating ... arguments"
        if unit.get("ad_model", "None") != "None" and unit.get("ad_tab_enable", True) is not False:
            out.append((n, unit))
    return out


def _enabled(args: Tuple[Any, ...]) -> bool:
    return bool(args) and (args[0] if isinstance(args[0], bool) else True) and bool(_units(args))


def _pieces(text: str, own: str) -> Tuple[str, ...]:
    pieces = re.split(r"\s*\[SEP\]\s*", text)
    return tuple(own if not piece else piece.replace("[PROMPT]", own) for piece in pieces)


class ADetailerStandIn(scripts.Script):
    sorting_priority = 0

    def title(self) -> str:
        return "ADetailer"

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list:
        first = {**DEFAULT_UNIT, "ad_model": "face_yolov8n.pt"}
        return [_Control(False, "ADetailer"), _Control(False, "Skip img2img"), _Control(first, "1st"),
                _Control(dict(DEFAULT_UNIT), "2nd")]

    def process(self, p: Any, *args: Any) -> None:
        if not _enabled(args):
            p._ad_disabled = True
            return
        for n, unit in _units(args):
            suffix = "" if n == 1 else f" {_ordinal(n)}"
            p.extra_generation_params["ADetailer model" + suffix] = unit["ad_model"]
            for key, name in (("ad_prompt", "ADetailer prompt"), ("ad_negative_prompt", "ADetailer negative prompt")):
                if unit.get(key):
                    p.extra_generation_params[name + suffix] = unit[key]
        p.extra_generation_params["ADetailer version"] = "stand-in"

    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        if getattr(p, "_ad_disabled", False) or not _enabled(args):
            return
        i = p.iteration * p.batch_size + p.batch_index
        if p.batch_index == 0:
            with _prompts_kept(p):
                p.scripts.postprocess(copy(p), processing.Processed(p, [], p.seed, ""))
        record = p.__dict__.setdefault("adetailer_inpaints", [])
        for n, unit in _units(args):
            record.append(Inpaint(i, n, _pieces(unit.get("ad_prompt", ""), p.all_prompts[i]),
                                  _pieces(unit.get("ad_negative_prompt", ""), p.all_negative_prompts[i]),
                                  p.all_seeds[i]))
        if p.batch_index == p.batch_size - 1:
            with _prompts_kept(p):
                copy_p = copy(p)
                p.scripts.before_process(copy_p)
                p.scripts.process(copy_p)


class _prompts_kept:  # noqa: N801 (a context manager used like a function)
    def __init__(self, p: Any) -> None:
        self.p = p

    def __enter__(self) -> None:
        self.saved = copy(self.p.all_prompts), copy(self.p.all_negative_prompts)

    def __exit__(self, *exc: Any) -> None:
        self.p.all_prompts, self.p.all_negative_prompts = self.saved
