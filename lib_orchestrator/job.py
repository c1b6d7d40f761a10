"""One generation job, the way Forge runs it: every image composed from its own seed, the LoRA names
checked against what Forge can load, and the infotext that records it all and brings it back.

Pure: the Forge adapter (scripts/orchestrator.py) hands in plain lists and names and writes the
results back onto Forge's processing object.
"""
from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .compose import ComposedPrompt, apply_picks
from .enhance.enhance import Enhanced
from .provenance import KEY_ENHANCE, KEY_LORAS, KEY_NOTE, KEY_SETTINGS, KEY_TEMPLATE, loras_value
from .selection import LoraIndex, Rules, pick_loras
from .selection.pick import LLM_NOTE, Chooser, Pick, Selection
from .selection.rules import MATCH_MODES
from .selection.text import LORA_TAG


@dataclass(frozen=True)
class JobSettings:
    """The per-generation controls, in the order of the script's `ui()` and of REST `args`."""

    enabled: bool = False
    loras: bool = True  # pick LoRAs (else wildcards only)
    min_loras: int = 1
    max_loras: int = 6
    detailer: float = 0.3  # probability of adding a detailer LoRA
    rules_file: str = ""  # a rules YAML; "" = the defaults (or the Settings page's file)
    fixed_prompt: bool = False  # every image gets the prompt of the first seed (LoRA picks still per image)
    template: str = ""  # a template to use instead of the prompt box, e.g. `__templates/noir__`
    enhance: bool = False  # through the LLM after wildcards, before LoRA picks
    genre: str = ""  # the enhancement's genre card: a name, or the card's text
    match: str = ""  # how LoRAs are matched: keyword, semantic, hybrid or llm; "" = the rules' (default hybrid)

    @classmethod
    def from_args(cls, args: Any) -> "JobSettings":
        """From the script's args (Forge's form, or REST `args`). Never raises: missing trailing args keep
        their defaults (`"args": [true]`), extra ones are ignored, a value its field cannot use (wrong
        type, not finite, unreadable) falls back to the field's default, and numbers are clamped to their
        range. REST and pasted infotexts send anything; Forge's processing must not fail for it."""
        if not isinstance(args, (list, tuple)):  # a string or a mapping is no list of args
            args = ()
        defaults = cls()
        out = {f.name: _valid(f.name, value, getattr(defaults, f.name)) for f, value in zip(fields(cls), args)}
        return cls(**out)

    def rules(self, base: Rules) -> Rules:
        lo, hi = sorted((max(0, self.min_loras), max(0, self.max_loras)))
        rules = replace(base, min_total=lo, max_total=hi, detailer_probability=min(max(self.detailer, 0.0), 1.0))
        return replace(rules, match=self.match) if self.match else rules

    def to_infotext(self) -> str:
        values: Dict[str, Any] = {"loras": self.loras, "count": [self.min_loras, self.max_loras],
                                  "detailer": self.detailer, "rules": self.rules_file, "fixed": self.fixed_prompt,
                                  "template": self.template}
        if self.enhance:  # only then: infotexts from before enhancement existed stay byte for byte
            values.update(enhance=True, genre=self.genre)
        if self.match:  # likewise
            values.update(match=self.match)
        return json.dumps(values, separators=(",", ":"))

    @classmethod
    def from_infotext(cls, text: Any) -> "JobSettings":
        """From an infotext's `Orchestrator` value (enabled, since it was on for that image). Never raises:
        what is missing or unusable in it keeps its default."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError, RecursionError):
            return cls(enabled=True)
        if not isinstance(data, dict):
            return cls(enabled=True)
        count = data.get("count")
        lo, hi = count if isinstance(count, list) and len(count) == 2 else (None, None)
        return cls.from_args([True, data.get("loras"), lo, hi, data.get("detailer"), data.get("rules"),
                              data.get("fixed"), data.get("template"), data.get("enhance"), data.get("genre"),
                              data.get("match")])


MAX_LORAS = 20  # the most a rules file's count.max may be
# Number fields' ranges: a finite number outside is clamped, anything else is the default.
_RANGES: Dict[str, Tuple[float, float]] = {"min_loras": (0, MAX_LORAS), "max_loras": (0, MAX_LORAS),
                                           "detailer": (0.0, 1.0)}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def _valid(name: str, value: Any, default: Any) -> Any:
    """`value` as field `name` needs it, or `default`."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        text = value.strip().lower() if isinstance(value, str) else None
        return True if text in _TRUE else False if text in _FALSE else default
    if isinstance(default, (int, float)):
        number = _finite(value)
        if number is None:
            return default
        lo, hi = _RANGES[name]
        clamped = min(max(number, lo), hi)
        return int(clamped) if isinstance(default, int) else float(clamped)
    if name == "match":  # one of the modes, any case; anything else is the rules' own
        text = value.strip().lower() if isinstance(value, str) else ""
        return text if text in MATCH_MODES else default
    return value if isinstance(value, str) else default


def _finite(value: Any) -> Optional[Union[int, float]]:
    """A finite number from a number or its text; None for anything else, a bool included (JSON's `true`
    where a count belongs is a mistake, not 1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value  # exact, however large: clamping needs no float
    if not isinstance(value, (str, numbers.Real)):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def pasted_settings(params: Mapping[str, Any]) -> JobSettings:
    """The controls that pasting an image's parameters gives back: its `Orchestrator` value, or the
    defaults for an image made without Orchestrator."""
    return JobSettings.from_infotext(params.get(KEY_SETTINGS, "")) if KEY_SETTINGS in params else JobSettings()


def enhance_after_paste(params: Mapping[str, Any]) -> bool:
    """Whether pasting turns enhancement on: a pasted prompt is the enhanced one already, so not unless
    the template field comes back too and replaces it (the answer cache then gives the same enhanced
    prompt)."""
    settings = pasted_settings(params)
    return settings.enhance and bool(settings.template)


@dataclass(frozen=True)
class ImageResult:
    composed: ComposedPrompt
    note: str = ""
    enhanced: Optional[Enhanced] = None
    negative_template: str = ""  # the negative prompt before wildcards (ADetailer's negative shares its choices)
    prompt_seed: Optional[int] = None  # the seed the wildcards were drawn with (the first image's when fixed)


@dataclass
class JobPlan:
    """What the adapter writes back: one entry per image of the job, in Forge's order."""

    prompts: List[str] = field(default_factory=list)
    negative_prompts: List[str] = field(default_factory=list)
    hr_prompts: Optional[List[str]] = None
    hr_negative_prompts: Optional[List[str]] = None
    images: List[ImageResult] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def infotext_values(self, index: int) -> Dict[str, str]:
        """The Orchestrator keys for image `index` (global), as plain strings."""
        image = self.images[index]
        loras = loras_value((p.name, p.weight, p.reason) for p in image.composed.loras)
        values = {KEY_TEMPLATE: image.composed.template, KEY_LORAS: loras}
        if image.note:
            values[KEY_NOTE] = image.note
        if image.enhanced is not None:
            values[KEY_ENHANCE] = image.enhanced.to_infotext()
        return values


def plan_job(templates: Sequence[str], negatives: Sequence[str], seeds: Sequence[int], settings: JobSettings,
             expand: Any, index: Optional[LoraIndex], rules: Rules, family: str, base_model: str,
             known_loras: Optional[Collection[str]], batch_size: int = 1,
             hr_templates: Optional[Sequence[str]] = None,
             enhance: Optional[Callable[[str, int], Enhanced]] = None,
             no_library: str = "LoRA library still indexing: wildcards only",
             chooser: Optional[Chooser] = None) -> JobPlan:
    """Compose every image of a job.

    `expand(template, seed) -> str` expands wildcards; `known_loras` holds the names Forge can load
    (None: not checked). `enhance(prompt, seed)` runs between wildcards and LoRA picks, so picks match
    what the LLM wrote; it never raises (a failure is the original prompt and a reason). With
    `batch_size > 1`, Forge applies only the first prompt's LoRAs to the whole batch, so each batch gets
    the LoRAs of its first image and the infotext says so. `chooser` is the LLM's LoRA choice (match `llm`).
    """
    plan = JobPlan(hr_prompts=[] if hr_templates is not None else None,
                   hr_negative_prompts=[] if hr_templates is not None else None)
    rules = settings.rules(rules)
    batch_picks: Optional[Selection] = None
    enhanced_by: Dict[Tuple[str, int], Enhanced] = {}
    for k, (template, negative, seed) in enumerate(zip(templates, negatives, seeds)):
        prompt_seed = seeds[0] if settings.fixed_prompt else seed
        base = expand(template, prompt_seed)
        negative_text = expand(negative, prompt_seed) if negative else ""
        note = ""
        base, unknown = _drop_unknown_tags(base, known_loras)
        if unknown:
            note = f"removed unknown LoRA tags: {', '.join(unknown)}"
            plan.warnings.append(f"seed {seed}: {note} (Forge would have loaded no LoRA for the batch)")
        enhanced = None
        if enhance is not None:  # once per (prompt, seed): "same prompt for every image" gets one answer
            enhanced = enhanced_by.get((base, prompt_seed)) or enhance(base, prompt_seed)
            enhanced_by[(base, prompt_seed)] = enhanced
        if enhanced is not None:
            base = enhanced.prompt
            if enhanced.status == "fallback":
                plan.warnings.append(f"seed {seed}: LLM enhancement fell back to the prompt: {enhanced.reason}")
        if settings.loras and index is not None:
            if batch_size > 1 and k % batch_size:
                selection = batch_picks  # Forge loads only the batch's first prompt's LoRAs
                note = f"LoRAs of the batch's first image (batch size {batch_size})"
            else:
                selection = _checked(pick_loras(index, base, seed, rules, family, base_model, chooser), known_loras)
                batch_picks = selection
        else:
            selection = Selection((), ())
            if settings.loras and index is None:
                note = no_library  # why each image went without LoRAs: still indexing, or the scan failed
        assert selection is not None
        prompt, negative_prompt, picks = apply_picks(base, negative_text, selection.picks)
        composed = ComposedPrompt(template, seed, base, prompt, negative_prompt, picks, selection.warnings)
        plan.warnings.extend(f"seed {seed}: {w}" for w in selection.warnings)
        # Why the LLM did not choose goes where the user looks, as the enhancement's fallback does
        llm = [w for w in selection.warnings if w.startswith(LLM_NOTE)]
        if llm and not (batch_size > 1 and k % batch_size):
            note = "; ".join(n for n in (note, *llm) if n)
        if hr_templates is not None:
            hr_template = hr_templates[k]
            if hr_template == template:
                hr_prompt = prompt
            else:  # the user's own hires prompt: expanded, with the same LoRAs
                # Forge loads the hires pass's LoRAs from this prompt alone: one unknown tag here turns
                # off every LoRA of that pass, so the main prompt's rule holds for it too
                hr_base, hr_unknown = _drop_unknown_tags(expand(hr_template, prompt_seed), known_loras)
                if hr_unknown:
                    hr_note = f"removed unknown LoRA tags from the hires prompt: {', '.join(hr_unknown)}"
                    note = "; ".join(n for n in (note, hr_note) if n)
                    plan.warnings.append(f"seed {seed}: {hr_note} (Forge would have loaded no LoRA for the "
                                         "hires pass)")
                hr_prompt, _, _ = apply_picks(hr_base, "", picks)
            plan.hr_prompts.append(hr_prompt)  # type: ignore[union-attr]
            plan.hr_negative_prompts.append(negative_prompt)  # type: ignore[union-attr]
        plan.prompts.append(prompt)
        plan.negative_prompts.append(negative_prompt)
        plan.images.append(ImageResult(composed, note, enhanced, negative, prompt_seed))
    return plan


def _drop_unknown_tags(prompt: str, known: Optional[Collection[str]]) -> Tuple[str, List[str]]:
    """A `<lora:name>` the user wrote that Forge cannot find would disable every LoRA of its batch in
    Forge: such tags are taken out (and reported)."""
    if known is None:
        return prompt, []
    unknown: List[str] = []

    def check(match: "re.Match[str]") -> str:
        if match.group(2).strip() in known:
            return match.group(0)
        unknown.append(match.group(2).strip())
        return ""

    cleaned = LORA_TAG.sub(check, prompt)
    return (" ".join(cleaned.split()) if unknown else prompt), unknown


def _checked(selection: Selection, known: Optional[Collection[str]]) -> Selection:
    """Drop picks Forge cannot resolve: one unknown name disables every LoRA of the batch in Forge."""
    if known is None:
        return selection
    kept: List[Pick] = []
    warnings = list(selection.warnings)
    for pick in selection.picks:
        if pick.reason == "user" or pick.name in known:
            kept.append(pick)
        else:
            warnings.append(f"'{pick.name}' is not in Forge's LoRA list (refresh the LoRA tab?); left out")
    return Selection(tuple(kept), tuple(warnings))
