"""The composer: a base prompt and LoRA picks become the final positive and negative prompts, recorded
with everything needed to explain and reproduce them."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, List, Optional, Sequence, Tuple

from .selection import LoraIndex, Rules, pick_loras
from .selection.pick import Chooser, Pick
from .selection.text import normalise_tag, unsaid

if TYPE_CHECKING:
    from .wildcards import PromptEngine


@dataclass(frozen=True)
class ComposedPrompt:
    template: str
    seed: int
    base_prompt: str  # after wildcards, before LoRAs
    prompt: str  # with <lora:…> tags and activation text
    negative_prompt: str
    loras: Tuple[Pick, ...]
    warnings: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {
            "seed": self.seed, "template": self.template, "base_prompt": self.base_prompt, "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "loras": [{"name": p.name, "path": p.record.path if p.record else None, "weight": p.weight,
                       "category": p.category, "score": p.score, "matched": list(p.matched), "reason": p.reason,
                       "similarity": p.similarity, "why": p.why,
                       "activation": p.activation if p.reason != "user" or p.tag else None} for p in self.loras],
            "warnings": list(self.warnings),
        }


def lora_gate(index: LoraIndex, family: str, base_model: str,
              known: Optional[Collection[str]] = None) -> Callable[[str], str]:
    """For the wildcard engine: why a LoRA a wildcard entry carries cannot be used here ("" when it can):
    not in the library (or not in Forge's LoRA list), or not loading on the checkpoint."""
    compat = index.compatible(family, base_model)

    def why_not(name: str) -> str:
        i = index.by_name.get(name.lower())
        if i is None:
            return "is not in the LoRA library"
        if known is not None and index.records[i].name not in known and name not in known:
            return "is not in Forge's LoRA list"
        if compat[i] <= 0:
            return f"does not load on a {base_model or family} checkpoint"
        return ""

    return why_not


def lora_gated(engine: PromptEngine, index: LoraIndex, family: str, base_model: str,
               known: Optional[Collection[str]] = None) -> PromptEngine:
    """`engine` as a generation on this checkpoint draws: entries whose LoRA cannot be used are left out. Kept
    compiled per (library, Forge's list, checkpoint); Forge's list is a new set each call, so its content keys it."""
    names = frozenset(known) if known is not None else None
    return engine.gated((id(index), names, family, base_model), lora_gate(index, family, base_model, known))


def compose(template: str, base_prompt: str, seed: int, index: LoraIndex, rules: Rules, family: str,
            base_model: str, negative: str = "", chooser: Optional[Chooser] = None) -> ComposedPrompt:
    selection = pick_loras(index, base_prompt, seed, rules, family, base_model, chooser)
    prompt, negative_prompt, picks = apply_picks(base_prompt, negative, selection.picks)
    return ComposedPrompt(template, seed, base_prompt, prompt, negative_prompt, picks, selection.warnings)


def apply_picks(prompt: str, negative: str, picks: Sequence[Pick]) -> Tuple[str, str, Tuple[Pick, ...]]:
    """Activation text once per LoRA (after the tag that named it, else at the end), `<lora:NAME:W>`
    tags at the end (the user's own stay where they are), LoRA negative text into the negative prompt."""
    out = prompt.strip()
    kept: List[Pick] = []
    for pick in picks:
        if pick.reason == "user" and pick.tag:  # `<lora:NAME>`: the weight and activation text it lacked
            if pick.tag not in out:  # another image's pick (a batch sharing its first image's LoRAs)
                continue
            filled = lora_tag(pick.name, pick.weight)
            activation = unsaid(pick.activation, out.replace(pick.tag, "")) if pick.activation else None
            out = _after_tag(out.replace(pick.tag, filled, 1), filled, activation)
            kept.append(replace(pick, activation=activation))
            continue
        if pick.reason == "user":
            kept.append(pick)
            continue
        # Less what the prompt or another pick already says (a character's two versions): the one rule.
        activation = unsaid(pick.activation, out) if pick.activation else None
        if activation:
            out = _insert_after(out, pick.phrase, activation)
        kept.append(replace(pick, activation=activation))
    tags = " ".join(lora_tag(p.name, p.weight) for p in kept if p.reason != "user")
    if tags:
        out = f"{out} {tags}" if out else tags
    negatives = [negative.strip()] if negative.strip() else []
    for pick in kept:
        text = pick.negative.strip()
        if text and normalise_tag(text) not in {normalise_tag(n) for n in negatives}:
            negatives.append(text)
    return out, ", ".join(negatives), tuple(kept)


def _after_tag(prompt: str, tag: str, text: Optional[str]) -> str:
    """`text` after the comma-separated part that holds `tag`: `<lora:x:0.8> zelda, TEXT, hat`."""
    if not text:
        return prompt
    at = prompt.find(tag)
    end = prompt.find(",", at + len(tag))
    return f"{prompt}, {text}" if end < 0 else f"{prompt[:end]}, {text}{prompt[end:]}"


def _insert_after(prompt: str, phrase: Optional[str], text: str) -> str:
    if phrase:
        parts = prompt.split(",")
        for k, part in enumerate(parts):
            if normalise_tag(part) == phrase:
                parts.insert(k + 1, " " + text)
                return ",".join(parts)
    return f"{prompt}, {text}" if prompt else text


def lora_tag(name: str, weight: float) -> str:
    return f"<lora:{name}:{weight:g}>"
