"""The tab's compose preview: N composed prompts with each pick explained, locks, and lint inline.

A lock fixes a wildcard to one value (`{"style": "oil painting"}`) or pins LoRAs; a reroll is a new
seed. Nothing here waits on anything but the core.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .compose import ComposedPrompt, compose, lora_gated
from .enhance.enhance import Enhanced
from .errors import OrchestratorError
from .selection import LoraIndex, Rules
from .selection.pick import Chooser
from .wildcards import PromptEngine
from .wildcards.batch_vars import fix_variables

_ESCAPES = str.maketrans({c: "\\" + c for c in "{}|$#%_"})


@dataclass(frozen=True)
class Preview:
    prompts: Tuple[ComposedPrompt, ...]
    messages: Tuple[str, ...]  # lint: errors and warnings, one line each
    enhanced: Tuple[Optional[Enhanced], ...] = ()  # per prompt, when the LLM step ran


def lock_wildcards(template: str, locks: Dict[str, str]) -> str:
    """Every `__name__` of a locked wildcard becomes its fixed value (escaped, so it stays text)."""
    for name, value in locks.items():
        template = template.replace(f"__{name}__", value.translate(_ESCAPES))
    return template


def preview(template: str, seed: int, count: int, engine: PromptEngine, index: Optional[LoraIndex], rules: Rules,
            family: str, base_model: str, locks: Optional[Dict[str, str]] = None,
            pinned: Sequence[str] = (), negative: str = "",
            enhance: Optional[Callable[[str, int], Enhanced]] = None, chooser: Optional[Chooser] = None) -> Preview:
    text = lock_wildcards(template, locks or {})
    if index is not None:
        engine = lora_gated(engine, index, family, base_model)
    if pinned:
        rules = replace(rules, pinned=tuple(dict.fromkeys([*rules.pinned, *pinned])))
    notes: List[str] = []
    try:
        if rules.variable_scope() == "batch":  # the previewed prompts are one batch, as the generation's would be
            fixed = fix_variables(engine, text, seed)
            text, notes = fixed.text, [str(n) for n in fixed.notes]
        bases = list(engine.texts(text, "random", seed, count))
    except OrchestratorError as exc:
        return Preview((), (exc.one_line(),))
    prompts: List[ComposedPrompt] = []
    enhanced: List[Optional[Enhanced]] = []
    for k, base in enumerate(bases):
        enhanced.append(enhance(base, seed + k) if enhance else None)
        base = enhanced[-1].prompt if enhanced[-1] else base  # type: ignore[union-attr]
        if index is None:
            prompts.append(ComposedPrompt(template, seed + k, base, base, negative, ()))
        else:
            prompts.append(compose(template, base, seed + k, index, rules, family, base_model, negative, chooser))
    messages = list(dict.fromkeys(notes + engine.warnings))
    for p in prompts:
        messages.extend(w for w in p.warnings if w not in messages)
    for e in enhanced:
        if e is not None and e.status == "fallback" and f"LLM: {e.reason}" not in messages:
            messages.append(f"LLM: {e.reason}")
    return Preview(tuple(prompts), tuple(messages), tuple(enhanced) if enhance else ())


def wildcard_names(engine: PromptEngine) -> List[str]:
    """The names a template can use, for the editor's list (`__name__` inserts them)."""
    return engine.store.names()
