"""One prompt through the LLM, safely: protected spans out and back, the answer cleaned and checked,
trimmed to a token budget, and on any failure the original prompt with the reason recorded."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Sequence

from .cleanup import clean_output, is_refusal
from .errors import LlmError
from .protect import Protected, protect, restore

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
        """Provenance for the image's infotext (reasons never hold the server's address or key)."""
        fields: Dict[str, str] = {"status": self.status, "model": self.model, "template": self.template,
                                  "reason": self.reason}
        if self.status == "enhanced":
            fields["original"] = self.original
        return json.dumps({k: v for k, v in fields.items() if v}, ensure_ascii=False, separators=(",", ":"))


def enhance(prompt: str, ask: Callable[[Protected], str], embeddings: Iterable[str] = (),
            token_budget: int = 2 * CLIP_CHUNK, prefix: Sequence[str] = ()) -> Enhanced:
    """`ask(protected) -> answer text` is the call to the model with `protected.text` (LlmError when it
    gives none).
    `prefix` holds the family's quality tags, put in front unless the prompt has its own of a kind;
    the budget holds per BREAK chunk, as Forge encodes each chunk on its own."""
    def fallback(reason: str) -> Enhanced:
        return Enhanced(prompt, prompt, "fallback", reason)

    if not prompt.strip():
        return Enhanced(prompt, prompt, "skipped", "empty prompt")
    protected = protect(prompt, embeddings)
    try:
        answer = ask(protected)
    except LlmError as exc:
        return fallback(str(exc))
    text = clean_output(answer)
    if not text:
        return fallback("the model's answer was empty")
    if is_refusal(text, prompt):
        return fallback("the model refused")
    restored, note = restore(protected, text)
    if restored is None:
        return fallback(note)
    restored = add_prefix(prefix, restored, protected.prefixes)
    budget = token_budget * (1 + len(re.findall(r"\bBREAK\b", restored)))
    trimmed = trim_to_budget(restored, budget, protected.inline)
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
    return len(_TOKEN.findall(text))


_TOKEN = re.compile(r"\w+|[^\w\s]")


def trim_to_budget(prompt: str, budget: int, keep: Sequence[str] = ()) -> str:
    """Cut words from the end until the prompt fits: whole comma-separated parts first, then sentences,
    then words of the last part left. Never cut: the extra network tags at the end, a part holding a
    protected span (`keep`, or a weight, edit, BREAK or AND), and the prompt's first part."""
    networks = re.search(r"(?:\s*<[^>]+>)+\s*$", prompt)
    tail = networks.group() if networks else ""
    parts = prompt[:len(prompt) - len(tail)].split(", ")
    costs = [count_tokens(p) for p in parts]
    room = budget - count_tokens(tail)
    total = sum(costs) + len(parts) - 1  # each ", " is one more token
    fixed = [k == 0 or _protected(p, keep) for k, p in enumerate(parts)]
    k = len(parts) - 1
    while total > room and k > 0:
        if fixed[k]:
            k -= 1
            continue
        total -= costs[k] + 1
        parts[k] = ""
        k -= 1
    if total > room:  # a paragraph: its last part with words to spare loses sentences, then words
        for k in reversed(range(len(parts))):
            if parts[k] and _cuttable(parts[k], keep):
                parts[k] = _shorten(parts[k], costs[k] - (total - room), keep)
                break
    return ", ".join(p for p in parts if p) + tail


def _protected(part: str, keep: Sequence[str]) -> bool:
    return bool(_PROTECTED.search(part)) or any(span in part for span in keep)


def _cuttable(part: str, keep: Sequence[str]) -> bool:
    return any(not _protected(piece, keep) for piece in _SPAN_OR_WORD.findall(part))


def _shorten(text: str, room: int, keep: Sequence[str]) -> str:
    """`text` cut to about `room` tokens from the end: whole sentences if the first fits, else words.
    Pieces holding a protected span always stay, and so does the first piece."""
    for pieces in (re.split(r"(?<=[.!?])\s+", text), _SPAN_OR_WORD.findall(text)):
        must = [k == 0 or _protected(piece, keep) for k, piece in enumerate(pieces)]
        used = sum(count_tokens(piece) for piece, m in zip(pieces, must) if m)
        if used > room:
            continue
        out, full = [], False
        for piece, m in zip(pieces, must):
            if not m:
                cost = count_tokens(piece)
                full = full or used + cost > room  # once one does not fit, the rest go too: no gaps
                if full:
                    continue
                used += cost
            out.append(piece)
        return " ".join(out).rstrip(",;:")
    words = _SPAN_OR_WORD.findall(text)
    return " ".join(w for k, w in enumerate(words) if k == 0 or _protected(w, keep))


_SPAN_OR_WORD = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|<[^>]+>|\S+")
_PROTECTED = re.compile(r"[<(\[]|\bBREAK\b|\bAND\b")
