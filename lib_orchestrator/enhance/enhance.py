"""One prompt through the LLM, safely: protected spans out and back, the answer cleaned and checked,
trimmed to a token budget, and on any failure the original prompt with the reason recorded."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from .breaker import Breaker
from .cleanup import clean_output, is_refusal
from .client import LlmError
from .protect import protect, restore

CLIP_CHUNK = 75


@dataclass(frozen=True)
class Enhanced:
    prompt: str  # what to generate with: the enhanced prompt, or the original on fallback
    original: str
    status: str  # "enhanced", "fallback" or "skipped"
    reason: str = ""  # why it fell back, or what was repaired


def enhance(prompt: str, ask: Callable[[str], str], breaker: Optional[Breaker] = None,
            embeddings: Iterable[str] = (), token_budget: int = 2 * CLIP_CHUNK) -> Enhanced:
    """`ask(text) -> answer` is the call to the model (a chat with the template's messages)."""
    def fallback(reason: str) -> Enhanced:
        return Enhanced(prompt, prompt, "fallback", reason)

    if not prompt.strip():
        return Enhanced(prompt, prompt, "skipped", "empty prompt")
    blocked = breaker.blocked() if breaker else None
    if blocked:
        return fallback(blocked)
    protected = protect(prompt, embeddings)
    try:
        answer = ask(protected.text)
    except LlmError as exc:
        if breaker:
            breaker.failed(str(exc))
        return fallback(str(exc))
    if breaker:
        breaker.succeeded()
    text = clean_output(_prompt_field(answer))
    if not text:
        return fallback("the model's answer was empty")
    if is_refusal(text):
        return fallback("the model refused")
    restored, note = restore(protected, text)
    if restored is None:
        return fallback(note)
    trimmed = trim_to_budget(restored, token_budget)
    if trimmed != restored:
        note = "; ".join(n for n in (note, f"trimmed to {token_budget} tokens") if n)
    return Enhanced(trimmed, prompt, "enhanced", note)


def count_tokens(text: str) -> int:
    """An estimate of CLIP's count: words and punctuation marks (its BPE splits rare words further,
    so real counts run a little higher; the budget leaves room for that)."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def trim_to_budget(prompt: str, budget: int) -> str:
    """Drop comma-separated parts from the end until the prompt fits. Protected spans are never
    dropped: the extra network tags at the end, and any part holding a weight, an edit, BREAK or AND."""
    networks = re.search(r"(?:\s*<[^>]+>)+\s*$", prompt)
    tail = networks.group() if networks else ""
    parts = prompt[:len(prompt) - len(tail)].split(", ")
    room = budget - count_tokens(tail)
    while count_tokens(", ".join(parts)) > room:
        removable = [k for k, part in enumerate(parts) if not _PROTECTED.search(part)]
        if len(removable) <= 1:
            break
        parts.pop(removable[-1])
    return ", ".join(parts) + tail


_PROTECTED = re.compile(r"[<(\[]|\bBREAK\b|\bAND\b")


def _prompt_field(answer: str) -> str:
    """The `prompt` of a structured answer; the text itself when the model ignored the schema."""
    try:
        data = json.loads(answer)
    except ValueError:
        return answer
    if isinstance(data, dict) and isinstance(data.get("prompt"), str):
        return data["prompt"]
    return answer
