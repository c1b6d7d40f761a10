"""One prompt through the LLM, safely: protected spans out and back, the answer cleaned and checked,
trimmed to a token budget, and on any failure the original prompt with the reason recorded."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Sequence, Tuple

from .cleanup import clean_output, is_refusal
from .errors import LlmError
from .protect import _PAREN, _SQUARE, Protected, protect, restore

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
            token_budget: int = 2 * CLIP_CHUNK, prefix: Sequence[str] = (), prose: bool = False) -> Enhanced:
    """`ask(protected) -> answer text` is the call to the model with `protected.text` (LlmError when it
    gives none).
    `prefix` holds the family's quality tags, put in front unless the prompt has its own of a kind;
    the budget holds per BREAK chunk, as Forge encodes each chunk on its own; `prose` trims by sentence."""
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
    trimmed = trim_chunks(restored, token_budget, protected.inline, prose)
    if trimmed != restored:
        chunked = " per BREAK chunk" if len(break_chunks(restored)[0]) > 1 else ""
        note = "; ".join(n for n in (note, f"trimmed to {token_budget} tokens{chunked}") if n)
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
    """An estimate of CLIP's count: runs of letters, and each digit, underscore and punctuation mark
    (`score_8_up` is five). Its BPE splits rare words further, so real counts run a little higher."""
    return len(_TOKEN.findall(text))


_TOKEN = re.compile(r"[^\W\d_]+|\d|_|[^\w\s]")


def break_chunks(prompt: str) -> Tuple[List[str], List[str]]:
    """The prompt cut at each BREAK outside a bracket group: (chunks, the separators between them, each
    holding its BREAK), so that chunks[0] + separators[0] + chunks[1] + … is the prompt again."""
    masked, spans = _mask(prompt, ())
    breaks = [str(n) for n, span in enumerate(spans) if span == "BREAK"]
    if not breaks:
        return [prompt], []
    pieces = re.split(rf"([\s,]*{_MASK}(?:{'|'.join(breaks)}){_MASK}[\s,]*)", masked)
    return [_unmask(p, spans) for p in pieces[::2]], [_unmask(p, spans) for p in pieces[1::2]]


def trim_chunks(prompt: str, budget: int, keep: Sequence[str] = (), prose: bool = False) -> str:
    """Each BREAK chunk trimmed to the budget on its own: Forge encodes every chunk separately, so one
    long chunk must not borrow the room a short one leaves (nor cost the short one its words)."""
    chunks, separators = break_chunks(prompt)
    trimmed = [trim_to_budget(chunk, budget, keep, prose) for chunk in chunks]
    return "".join(part for pair in zip(trimmed, [*separators, ""]) for part in pair)


def trim_to_budget(prompt: str, budget: int, keep: Sequence[str] = (), prose: bool = False) -> str:
    """Cut from the end until the prompt fits: whole units first (comma-separated tags, or sentences
    for prose), then words. Never cut: the extra network tags at the end, a protected span (bracket
    groups, BREAK, AND, and the `keep` names) or the first word."""
    networks = re.search(r"(?:\s*<[^<>]+>)+\s*$", prompt)
    tail = networks.group() if networks else ""
    masked, spans = _mask(prompt[:len(prompt) - len(tail)], keep)

    def cost(text: str) -> int:
        return count_tokens(_unmask(text, spans))

    units = re.split(r"(?<=[.!?])\s+", masked) if prose else masked.split(", ")
    costs = [cost(u) for u in units]
    gap = 0 if prose else 1  # ", " is a token; a space is not
    room = budget - count_tokens(tail)
    total = sum(costs) + gap * (len(units) - 1)
    for k in reversed(range(1, len(units))):  # whole units without a protected span
        if total <= room:
            break
        if _MASK not in units[k]:
            total -= costs[k] + gap
            units[k] = ""
    for k in reversed(range(len(units))):  # then words, keeping spans and the first word
        if total <= room:
            break
        if not units[k]:
            continue
        words = units[k].split()
        kept = [w for j, w in enumerate(words) if j == 0 or _MASK in w]
        spare = costs[k] - sum(cost(w) for w in kept)
        need = total - room
        drop = set()
        for j in reversed(range(len(words))):
            if need <= 0 or spare <= 0:
                break
            if j and _MASK not in words[j]:
                drop.add(j)
                need -= cost(words[j])
                spare -= cost(words[j])
        shortened = " ".join(w for j, w in enumerate(words) if j not in drop).rstrip(",;:")
        total -= costs[k] - cost(shortened)
        units[k] = shortened
    joiner = " " if prose else ", "
    return _unmask(joiner.join(u for u in units if u), spans) + tail


_MASK = "\x00"
_SPAN = re.compile(rf"{_PAREN}|{_SQUARE}|\bBREAK\b|\bAND\b")


def _mask(text: str, keep: Sequence[str]) -> Tuple[str, List[str]]:
    """Protected spans as opaque words `\\x00n\\x00`: no comma, space or sentence end inside a span
    can split it."""
    names = sorted({k for k in keep if k}, key=len, reverse=True)
    pattern = _SPAN.pattern + "".join(f"|(?i:(?<![\\w]){re.escape(n)}(?![\\w]))" for n in names)
    spans: List[str] = []

    def hold(match: "re.Match[str]") -> str:
        spans.append(match.group())
        return f"{_MASK}{len(spans) - 1}{_MASK}"

    return re.sub(pattern, hold, text), spans


def _unmask(text: str, spans: Sequence[str]) -> str:
    return re.sub(f"{_MASK}(\\d+){_MASK}", lambda m: spans[int(m.group(1))], text) if _MASK in text else text
