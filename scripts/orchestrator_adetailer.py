"""ADetailer's prompts drawn with their image's wildcard choices (issue 20; sd-dynamic-prompts #561).

ADetailer (Bing-su/adetailer, script title "ADetailer") takes `[enabled, skip_img2img, {unit}, {unit}, …]` as
its args and reads each unit's `ad_prompt` / `ad_negative_prompt` in its postprocess_image, once per image
(empty: the image's own prompt; `[PROMPT]` in it: replaced by that; `[SEP]`: one prompt per detection). A unit
prompt with template syntax is expanded here, per image, by lib_orchestrator.wildcards.shared_choices: with
the image's prompt seed, after its main template, so `__character__ face` names the plan's character.

Forge runs AlwaysOn hooks in load order (extension folder names; Forge and Neo let users reorder them), so
ADetailer's postprocess_image may come before or after ours. The args it reads for image i are set before
every script's postprocess_image of that image: in process_batch for a batch's first image, and in
postprocess_image_after_composite of image i-1 for the others (Forge, Classic and Neo call both for every
image, after all the previous image's postprocess_image calls); our postprocess_image sets them too, for the
order where it runs first. `p.script_args` is replaced (a new tuple or list), never changed in place, and
the user's unit dicts are copied: the next image starts from the templates again.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from lib_orchestrator.errors import OrchestratorError
from lib_orchestrator.wildcards.batch_vars import BatchExpander
from lib_orchestrator.wildcards.shared_choices import expand_with, is_template

TITLE = "adetailer"  # ADetailer's title(), compared without case
PROMPT, NEGATIVE = "ad_prompt", "ad_negative_prompt"
KEY_ADETAILER = "Orchestrator ADetailer"  # infotext: the prompts ADetailer got for this image


class Binding:
    """What prepare() found: the user's args, and which ADetailer units hold templates (p.script_args
    positions). A plain class: Forge runs this file as a module outside sys.modules, where @dataclass fails."""

    def __init__(self, engine: Any, originals: Sequence[Any], units: Tuple[Tuple[int, int, Dict[str, Any]], ...],
                 templated: Tuple[Tuple[bool, bool], ...], batch: Optional[BatchExpander] = None) -> None:
        self.engine = engine
        self.originals = originals
        self.units = units  # (position, ADetailer's unit number from 1, dict)
        self.templated = templated  # per unit: (ad_prompt, ad_negative_prompt) holds a template
        self.batch = batch  # variables per batch: the plan's expander, which fixed them (and keeps each template)
        self.index = -1  # the image whose prompts are in p.script_args now
        self.written: Any = None  # the args put there
        self.shown: Dict[int, str] = {}  # image -> infotext value


def prepare(p: Any, engine: Any, expand: Any = None) -> None:
    """After the plan is made (our process()) by `engine` through `expand`: find ADetailer's units whose
    prompts are templates."""
    try:
        _prepare(p, engine, expand)
    except Exception as exc:  # never in ADetailer's way
        p._orchestrator_adetailer = None
        print(f"[Orchestrator] ADetailer prompts left as written: {_one_line(exc)}", file=sys.stderr)


def _prepare(p: Any, engine: Any, expand: Any) -> None:
    previous: Optional[Binding] = getattr(p, "_orchestrator_adetailer", None)
    args = p.script_args
    if previous is not None and args is previous.written:  # p run again (or ADetailer's copy of it)
        args = previous.originals
    p._orchestrator_adetailer = None
    script = _adetailer(p)
    if script is None or getattr(p, "_orchestrator_plan", None) is None:
        return
    lo, hi = int(script.args_from), min(int(script.args_to), len(args))
    if lo >= hi or args[lo] is False:  # ADetailer's own switch is off
        return
    units, templated, number = [], [], 0
    for pos in range(lo, hi):
        unit = args[pos]
        if not isinstance(unit, dict):
            continue
        number += 1
        flags = (_templated(engine, unit.get(PROMPT), "<ADetailer prompt>"),
                 _templated(engine, unit.get(NEGATIVE), "<ADetailer negative prompt>"))
        if any(flags):
            units.append((pos, number, unit))
            templated.append(flags)
    if units:
        batch = expand if isinstance(expand, BatchExpander) else None
        p._orchestrator_adetailer = Binding(engine, args, tuple(units), tuple(templated), batch)


def apply(p: Any, index: int) -> None:
    """Put image `index`'s expanded prompts where ADetailer reads its args (nothing when already there)."""
    binding: Optional[Binding] = getattr(p, "_orchestrator_adetailer", None)
    plan = getattr(p, "_orchestrator_plan", None)
    if binding is None or plan is None or binding.index == index or not 0 <= index < len(plan.images):
        return
    try:
        args = _expanded_args(binding, plan.images[index], index)
    except Exception as exc:  # never in ADetailer's way: it gets the prompts as the user wrote them
        print(f"[Orchestrator] ADetailer prompts of image {index + 1} left as written: {_one_line(exc)}",
              file=sys.stderr)
        args = binding.originals
    p.script_args = args
    binding.index, binding.written = index, args


def after_image(p: Any, index: int) -> None:
    """After every script's postprocess_image of image `index`, before it is saved: ADetailer's own infotext
    keys get the templates back, and the next image's prompts go in.

    ADetailer runs every script's process() again on a copy of p after a batch's last image (for
    ControlNet); the copy shares p's extra_generation_params, and ADetailer's process() then writes the
    prompts it reads, ours of that image, as "ADetailer prompt": pasting the infotext must give the template.
    """
    binding: Optional[Binding] = getattr(p, "_orchestrator_adetailer", None)
    if binding is not None:
        params = p.extra_generation_params
        for (_, number, unit), flags in zip(binding.units, binding.templated):
            suffix = "" if number == 1 else f" {_ordinal(number)}"
            for key, name, templated in ((PROMPT, "ADetailer prompt", flags[0]),
                                         (NEGATIVE, "ADetailer negative prompt", flags[1])):
                if templated and name + suffix in params:
                    params[name + suffix] = unit[key]
    apply(p, index + 1)


def infotext_values(p: Any, index: int) -> Dict[str, str]:
    """The prompts ADetailer got for image `index` (its own "ADetailer prompt" keeps the template)."""
    binding: Optional[Binding] = getattr(p, "_orchestrator_adetailer", None)
    if binding is None or index not in binding.shown:
        return {}
    return {KEY_ADETAILER: binding.shown[index]}


def _expanded_args(binding: Binding, image: Any, index: int) -> Sequence[Any]:
    seed = image.prompt_seed if image.prompt_seed is not None else image.composed.seed
    values: Dict[str, List[Optional[str]]] = {}
    for key, main, col in ((PROMPT, image.composed.template, 0), (NEGATIVE, image.negative_template, 1)):
        chosen = [unit.get(key) for (_, _, unit), flags in zip(binding.units, binding.templated) if flags[col]]
        if chosen and main and binding.batch is not None:  # the template the plan expanded
            main = binding.batch.template(main)
        texts = iter(expand_with(binding.engine, main, chosen, seed, extra_sources=[f"<ADetailer {key}>"] *
                                 len(chosen)).extras if chosen else ())
        values[key] = [next(texts) if flags[col] else None for flags in binding.templated]
    args = list(binding.originals)
    shown = []
    for n, (pos, number, unit) in enumerate(binding.units):
        copy = dict(unit)
        entry: Dict[str, Any] = {"unit": number}
        for key, name in ((PROMPT, "prompt"), (NEGATIVE, "negative")):
            if values[key][n] is not None:
                copy[key] = entry[name] = values[key][n]
        args[pos] = copy
        shown.append(entry)
    binding.shown[index] = json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
    return tuple(args) if isinstance(binding.originals, tuple) else args


def _adetailer(p: Any) -> Any:
    runner = getattr(p, "scripts", None)
    for script in getattr(runner, "alwayson_scripts", None) or ():
        try:
            title = script.title()
        except Exception:
            continue
        if isinstance(title, str) and title.strip().lower() == TITLE and script.args_from is not None:
            return script
    return None


def _templated(engine: Any, text: Any, source: str) -> bool:
    if not isinstance(text, str) or not text:
        return False
    try:
        return is_template(engine, text, source)
    except OrchestratorError as exc:
        print(f"[Orchestrator] ADetailer prompt left as written: {exc.one_line()}", file=sys.stderr)
        return False


def _ordinal(n: int) -> str:
    """2nd, 3rd, 11th: ADetailer's suffix for its later units' infotext keys."""
    last = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{last}"


def _one_line(exc: BaseException) -> str:
    return exc.one_line() if isinstance(exc, OrchestratorError) else f"{type(exc).__name__}: {exc}"
