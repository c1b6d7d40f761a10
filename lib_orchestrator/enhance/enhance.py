"""One prompt through the LLM, safely: protected spans out and back, the answer cleaned and checked,
trimmed to a token budget, and on any failure the original prompt with the reason recorded."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Sequence

from .breaker import Breaker
from .cleanup import clean_output, is_refusal, json_object
from .client import LlmError
from .protect import protect, restore

CLIP_CHUNK = 75


@dataclass(frozen=True)
class Enhanced:
    prompt: str  # what to generate with: the enhanced prompt, or the original on fallback
    original: str
    status: str  # "enhanced", "fallback" or "skipped"
    reason: str = ""  # why it fell back, or what was repaired
    model: str = ""
    template: str = ""  # name@version

    def to_infotext(self) -> str:
        """Provenance for the image's infotext: never the server's address or key."""
        fields: Dict[str, str] = {"status": self.status, "model": self.model, "template": self.template,
                                  "reason": self.reason}
        return json.dumps({k: v for k, v in fields.items() if v}, ensure_ascii=False, separators=(",", ":"))


def enhance(prompt: str, ask: Callable[[str], str], breaker: Optional[Breaker] = None,
            embeddings: Iterable[str] = (), token_budget: int = 2 * CLIP_CHUNK,
            prefix: Sequence[str] = ()) -> Enhanced:
    """`ask(text) -> answer` is the call to the model (a chat with the template's messages).
    `prefix` holds the family's quality tags, put in front unless the prompt has its own of a kind;
    the budget holds per BREAK chunk, as Forge encodes each chunk on its own."""
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
    restored = add_prefix(prefix, restored, protected.prefixes)
    budget = token_budget * (1 + len(re.findall(r"\bBREAK\b", restored)))
    trimmed = trim_to_budget(restored, budget)
    if trimmed != restored:
        note = "; ".join(n for n in (note, f"trimmed to {budget} tokens") if n)
    return Enhanced(trimmed, prompt, "enhanced", note)


def add_prefix(prefix: Sequence[str], prompt: str, own: Sequence[str] = ()) -> str:
    """The family's prefix tags in front, except kinds the user already chose: any `score_…` of
    theirs replaces all of the template's score tags, and so on for `source_` and `rating_`."""
    kinds = {_kind(tag) for tag in own}
    present = {part.strip().lower() for part in prompt.split(",")}
    extra = [tag for tag in prefix if _kind(tag) not in kinds and tag.lower() not in present]
    if not extra:
        return prompt
    head = len(own)  # the user's own prefixes lead the restored prompt: the family's follow them
    parts = prompt.split(", ")
    return ", ".join([*parts[:head], *extra, *parts[head:]])


def _kind(tag: str) -> str:
    match = re.match(r"(score|source|rating)_", tag)
    return match.group(1) if match else tag.lower()


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
    data = json_object(answer)
    return data["prompt"] if data is not None and isinstance(data.get("prompt"), str) else answer
