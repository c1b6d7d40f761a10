"""LLM-assisted LoRA choice: the ranked candidates go to the enhancement server as compact cards, under a
JSON schema whose only allowed ids are theirs; what comes back is read tolerantly and can never name a
LoRA that was not offered. The picker still enforces counts, categories, compatibility and pins.

Nothing here imports requests: the chooser is handed an Enhancer, which owns the connection, the answer
cache and the circuit breaker (a dead server is skipped for enhancement and choice alike).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..enhance.errors import LlmError
from ..library import LoraRecord
from ..sanitize import html_text

if TYPE_CHECKING:
    from ..enhance.enhancer import Enhancer

__all__ = ["CandidateCard", "ChoiceResult", "LlmChoice", "LlmChooser", "card_for", "choice_messages",
           "choice_schema", "parse_choice"]

DESCRIPTION_CHARS = 160  # one line the model reads per candidate: the first sentence, not the whole page
REASON_CHARS = 120  # shown beside the pick in the preview and the infotext's warnings
DESCRIPTION_READ = 8000  # characters of the HTML read for that line
TRIGGERS_SHOWN = 8  # some LoRAs list dozens of training tags: a few tell the model what the LoRA is about
TRIGGER_CHARS = 60
ERROR_CHARS = 200
NAME_CHARS = 300  # longer than any file name
CHOICE_SEED = 0  # the answer is greedy (temperature 0): the image seed would change nothing but the cache key


@dataclass(frozen=True)
class CandidateCard:
    """What the LLM sees of one candidate."""
    id: str  # the LoRA's name (unique among the candidates)
    category: str
    triggers: Tuple[str, ...]
    description: str  # one line, no HTML


@dataclass(frozen=True)
class LlmChoice:
    id: str
    reason: str  # one line, at most REASON_CHARS, no control characters


@dataclass(frozen=True)
class ChoiceResult:
    chosen: Tuple[LlmChoice, ...]  # in the LLM's order; ids only from the candidates, each once
    error: Optional[str]  # None when the LLM answered usably, else one line why (the picker falls back)


# -- cards -------------------------------------------------------------------------------------------
def card_for(record: LoraRecord) -> CandidateCard:
    triggers: List[str] = []
    seen = set()
    for word in record.trigger_words:
        word = _cap(_one_line(word), TRIGGER_CHARS)
        if word and word.casefold() not in seen:
            seen.add(word.casefold())
            triggers.append(word)
    return CandidateCard(record.name, _one_line(record.category), tuple(triggers[:TRIGGERS_SHOWN]),
                         description_line(record.description))


_SENTENCE = re.compile(r".+?[.!?](?=\s|$)|.+$")


def description_line(description: str) -> str:
    """A Civitai description (HTML by strangers) as one plain line: its first sentence, or the first few
    when the first is a greeting ("Hi!"), cut at a word to DESCRIPTION_CHARS."""
    # the first sentence is near the start: a page-long description is not read to its end for each image
    text = _one_line(html_text(description[:DESCRIPTION_READ]))
    line = ""
    for sentence in _SENTENCE.finditer(text):
        line = f"{line} {sentence.group().strip()}".strip()
        if len(line) >= 40:
            break
    return _cap(line, DESCRIPTION_CHARS)


def _one_line(text: Any) -> str:
    """Whitespace runs as one space; control and other unprintable characters (zero-width, bidi) gone."""
    text = "".join(ch for ch in str(text) if ch.isprintable() or ch.isspace())
    return " ".join(text.split())


def _cap(text: str, most: int) -> str:
    if len(text) <= most:
        return text
    cut = text[:most - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > most // 2 else cut).rstrip(" ,;:-") + "…"


# -- what is asked ------------------------------------------------------------------------------------
def choice_schema(ids: Sequence[str], most: int) -> Dict[str, Any]:
    """The answer's shape: up to `most` of the candidates' ids, each with a short reason. Servers with
    structured output (LM Studio, llama.cpp, Ollama) cannot write any other id."""
    return {
        "type": "object",
        "properties": {"loras": {
            "type": "array",
            "maxItems": max(0, int(most)),
            "items": {
                "type": "object",
                "properties": {"id": {"type": "string", "enum": list(ids)},
                               "reason": {"type": "string", "maxLength": REASON_CHARS}},
                "required": ["id", "reason"],
                "additionalProperties": False,
            },
        }},
        "required": ["loras"],
        "additionalProperties": False,
    }


_SYSTEM = """You choose LoRAs (add-on models that teach an image generator a style, character, outfit, pose \
or concept) for one image.
You get the image's prompt and a list of candidate LoRAs, one per line: its id in quotes, its category, \
its trigger words and what it is.
Choose the candidates that fit what the prompt depicts: at most {most}, best fit first, none if none fits.
A character, clothing or pose LoRA fits only when the prompt shows that character, clothing or pose.
Copy each id exactly as written in the list; never invent one.
Answer with JSON only: {{"loras": [{{"id": "<id>", "reason": "<why it fits, under 15 words>"}}]}}"""


def choice_messages(prompt: str, cards: Sequence[CandidateCard], most: int) -> List[Dict[str, str]]:
    """System and user messages. The prompt goes as written, A1111 syntax and all: weights and LoRA tags
    tell the model what matters to the user."""
    lines = [_card_line(card) for card in cards]
    user = f"PROMPT: {prompt}\n\nCANDIDATES:\n" + "\n".join(lines)
    return [{"role": "system", "content": _SYSTEM.format(most=most)}, {"role": "user", "content": user}]


def _card_line(card: CandidateCard) -> str:
    # the id as a JSON string: a name with spaces, quotes or '|' in it still reads as one id
    parts = [json.dumps(card.id, ensure_ascii=False), f"({_one_line(card.category) or 'other'})"]
    triggers = [t for t in (_one_line(t) for t in card.triggers) if t]
    if triggers:
        parts.append("triggers: " + ", ".join(triggers))
    description = _one_line(card.description)
    if description:
        parts.append("— " + description)
    return "- " + " ".join(parts)


# -- what comes back ----------------------------------------------------------------------------------
_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_LORA_TAG = re.compile(r"^<lora:(.+?)(?::[^:>]*)?>$", re.IGNORECASE)
_ID_KEYS = ("id", "name", "lora")
_REASON_KEYS = ("reason", "why")
_DECODE_TRIES = 50  # an answer full of brackets is no JSON answer: do not try every one


def parse_choice(answer: str, ids: Sequence[str], most: int) -> Tuple[LlmChoice, ...]:
    """The candidates the answer chose, in its order, each once, at most `most`. Read tolerantly: the
    JSON object asked for, or JSON in fences or among prose, or a bare list of ids or objects. Ids match
    exactly, else case-insensitively (also as `<lora:id:w>` or `id.safetensors`); anything else is dropped.
    Raises ValueError when the answer holds no JSON list of LoRAs at all."""
    return _read(answer, ids, most)[0]


def _read(answer: str, ids: Sequence[str], most: int) -> Tuple[Tuple[LlmChoice, ...], List[str]]:
    """(the choices, the names the answer gave that are no candidate)."""
    items = _items(answer)
    exact = set(ids)
    folded: Dict[str, str] = {}
    for known in ids:  # two candidates differing only in case: the better ranked one
        folded.setdefault(known.casefold(), known)
    chosen: List[LlmChoice] = []
    taken = set()
    unknown: List[str] = []
    for name, reason in items:
        found = _match(name, exact, folded)
        if found is None:
            unknown.append(name)
        elif found not in taken and len(chosen) < max(0, most):
            taken.add(found)
            chosen.append(LlmChoice(found, _cap(_one_line(reason), REASON_CHARS)))
    return tuple(chosen), unknown


def _match(name: str, exact: set, folded: Dict[str, str]) -> Optional[str]:
    if name in exact:
        return name
    if len(name) > NAME_CHARS:  # no file name is this long: not worth reading as one
        return None
    bare = name.strip().strip("\"'`")
    tag = _LORA_TAG.match(bare)
    if tag:
        bare = tag.group(1).strip()
    if bare.lower().endswith(".safetensors"):
        bare = bare[:-len(".safetensors")]
    return bare if bare in exact else folded.get(bare.casefold())


def _items(answer: str) -> List[Tuple[str, str]]:
    """(name, reason) of every entry of the first JSON list of LoRAs in the answer."""
    text = _THINK.sub("", answer if isinstance(answer, str) else "")
    found_json = False
    for data in _json_values(text):
        found_json = True
        entries = _entries(data)
        if entries is not None:
            return [item for item in (_item(e) for e in entries) if item is not None]
    if found_json:
        raise ValueError(f"the LLM's answer holds JSON but no list of LoRAs: {_excerpt(text)}")
    raise ValueError(f"the LLM's answer is not JSON: {_excerpt(text)}")


def _json_values(text: str) -> Iterator[Any]:
    """The JSON objects and arrays in the text, in order: the whole text first (fences stripped), then
    each one that starts at a bracket among prose."""
    stripped = _unfenced(text)
    try:
        yield json.loads(stripped)
        return
    except (ValueError, RecursionError):
        pass
    decoder = json.JSONDecoder()
    start, tries = _next_bracket(text, 0), 0
    while start >= 0 and tries < _DECODE_TRIES:
        tries += 1
        try:
            data, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            start = _next_bracket(text, start + 1)
            continue
        if isinstance(data, (dict, list)):
            yield data
        start = _next_bracket(text, end)


def _unfenced(text: str) -> str:
    """The text inside a ```json fence around the whole answer (string methods: a regex anchored at the
    end would take quadratic time over a long run of spaces)."""
    text = text.strip()
    if text.startswith("```"):
        newline = text.find("\n")
        text = text[newline + 1:] if newline >= 0 else text[3:]
    if text.endswith("```"):
        text = text[:-3]
    return text


def _next_bracket(text: str, start: int) -> int:
    found = [k for k in (text.find("{", start), text.find("[", start)) if k >= 0]
    return min(found) if found else -1


def _entries(data: Any) -> Optional[List[Any]]:
    """The list of chosen entries a JSON value holds, or None when it holds none: {"loras": [...]}, a
    bare list or id, an object with some other list in it ({"choices": [...]}), or one chosen object."""
    if isinstance(data, list):
        return data
    if isinstance(data, str):  # one id, quoted
        return [data]
    if not isinstance(data, dict):
        return None
    if "loras" in data:
        value = data["loras"]
        return value if isinstance(value, list) else [value] if isinstance(value, (str, dict)) else None
    for value in data.values():
        if isinstance(value, list):
            return value
    if any(isinstance(data.get(key), str) for key in _ID_KEYS):
        return [data]
    return None


def _item(entry: Any) -> Optional[Tuple[str, str]]:
    if isinstance(entry, str):
        return entry, ""
    if not isinstance(entry, dict):
        return None
    name = next((entry[k] for k in _ID_KEYS if isinstance(entry.get(k), str)), None)
    if name is None:
        return None
    reason = next((entry[k] for k in _REASON_KEYS if isinstance(entry.get(k), str)), "")
    return name, reason


def _excerpt(text: str) -> str:
    line = _one_line(text)
    return "(empty)" if not line else json.dumps(_cap(line, 60), ensure_ascii=False)


def _sendable(name: str) -> bool:
    """A name read from a file name that was not UTF-8 on disk holds lone surrogates: no server can
    echo it back and the answer cache cannot key it, so it is not offered (the picker may still pick it)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- the step -----------------------------------------------------------------------------------------
class LlmChooser:
    """One image's LLM choice among ranked candidates; never raises, so a generation never fails for it."""

    def __init__(self, enhancer: "Enhancer", most: int = 4, max_tokens: int = 400) -> None:
        if most < 1:
            raise ValueError(f"the LLM must be allowed to choose at least one LoRA, not {most}")
        self.enhancer = enhancer
        self.most = most
        self.max_tokens = max_tokens

    def __call__(self, prompt: str, seed: int, cards: Sequence[CandidateCard]) -> ChoiceResult:
        """`cards` ranked best first (their order is part of what is cached). `seed` is the image's; the
        answer is greedy, so it is asked with one fixed seed and cached by (prompt, candidates, model):
        a batch of one prompt asks once, whatever its seeds."""
        try:
            return self._choose(prompt, cards)
        except LlmError as exc:  # the server's failure or the breaker's skip, already one readable line
            return ChoiceResult((), _cap(_one_line(exc), ERROR_CHARS))
        except ValueError as exc:
            return ChoiceResult((), _cap(_one_line(exc), ERROR_CHARS))
        except Exception as exc:  # noqa: BLE001 (a generation must never fail for its LoRA choice)
            return ChoiceResult((), f"unexpected {type(exc).__name__} in the LLM's LoRA choice")

    def _choose(self, prompt: str, cards: Sequence[CandidateCard]) -> ChoiceResult:
        unique: Dict[str, CandidateCard] = {}
        for card in cards:  # one id, one candidate: the best ranked card stands for it
            if _sendable(card.id):
                unique.setdefault(card.id, card)
        if not unique:
            return ChoiceResult((), "no candidate's name can be sent to the LLM (not UTF-8)" if cards else None)
        ids = list(unique)

        def usable(answer: str) -> bool:
            try:
                chosen, unknown = _read(answer, ids, self.most)
            except ValueError:
                return False
            return bool(chosen) or not unknown  # an empty list is an answer; only invented names are not

        answer = self.enhancer.chat(choice_messages(prompt, list(unique.values()), self.most),
                                    choice_schema(ids, self.most), CHOICE_SEED, temperature=0.0,
                                    max_tokens=self.max_tokens, label="lora-choice", usable=usable)
        chosen, unknown = _read(answer, ids, self.most)
        if not chosen and unknown:
            named = ", ".join(json.dumps(_cap(_one_line(n), 40), ensure_ascii=False) for n in unknown[:3])
            return ChoiceResult((), _cap(f"the LLM named no candidate LoRA (it answered {named})", ERROR_CHARS))
        return ChoiceResult(chosen, None)
