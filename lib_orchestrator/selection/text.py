"""Prompt and tag text, normalised for matching: case, `_` as space, A1111 weights and brackets gone."""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from ..library.resolve import split_triggers

LORA_TAG = re.compile(r"<(lora|lyco):([^:>]+)(?::([^:>]*))?[^>]*>", re.I)
_WEIGHT = re.compile(r":\s*-?\d+(\.\d+)?\s*(?=[)\]])")  # `(frieren:1.2)` -> `(frieren)`
_BRACKETS = re.compile(r"\\[()\[\]]|[()\[\]{}]")
_SEPARATORS = re.compile(r",|\bBREAK\b|\bAND\b|\n")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.U)
STOPWORDS = frozenset("a an the of and or in on at to with for by from is are was be his her its their this that "
                      "these those it as into onto over under near beneath above below behind through up down out "
                      "off about very one two no not style lora".split())


def normalise_tag(text: str) -> str:
    """`Pointy_Ears` -> `pointy ears`; `(frieren:1.2)` -> `frieren`."""
    text = _BRACKETS.sub(" ", _WEIGHT.sub("", text))
    return _SPACES.sub(" ", text.replace("_", " ")).strip().lower()


def prompt_tags(prompt: str) -> List[str]:
    """The comma-separated tags of a prompt, normalised, LoRA tags removed."""
    plain = LORA_TAG.sub(",", prompt)
    tags = (normalise_tag(part) for part in _SEPARATORS.split(plain))
    return [t for t in tags if t]


def words(text: str) -> List[str]:
    """Content words of normalised text, for keyword matching."""
    return [w for w in _WORD.findall(text.lower().replace("_", " ")) if w not in STOPWORDS and len(w) > 1]


def user_loras(prompt: str) -> List[Tuple[str, str]]:
    """`<lora:name:w>` tags the user wrote: (name, weight text)."""
    return [(m.group(2).strip(), (m.group(3) or "").strip()) for m in LORA_TAG.finditer(prompt)]


def unsaid(activation: str, prompt: str) -> Optional[str]:
    """The activation text to add to a prompt: verbatim, less the triggers the prompt already holds as
    tags (`hand on hip, looking back` to `1girl, looking back` adds `hand on hip`). None when it holds
    them all, or the first: a prompt naming `frieren` has chosen its own words for her, and gets no
    `elf, white hair` from `frieren, elf, white hair`."""
    said = set(prompt_tags(prompt))
    parts = split_triggers([activation])
    kept = [p for p in parts if normalise_tag(p) not in said]
    if not kept or normalise_tag(parts[0]) in said:
        return None
    return activation.strip() if len(kept) == len(parts) else ", ".join(kept)
