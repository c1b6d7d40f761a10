"""The text an embedder sees for a LoRA and for a prompt: what each says, without the syntax, boilerplate
and file-name noise that would pull every vector the same way.

A static embedder averages token vectors, so a word that every text holds ("triggers:", "masterpiece",
`v2`, `ponyXL`) drags all of them towards one point and tells none apart; a long description would outvote
the name. So a LoRA's text is its name words, its triggers, its tags, its category, the start of its
description as plain text and the user's notes, each phrase once; a prompt's text is its tags or prose
without A1111 syntax and quality boilerplate. Pure functions, no numpy.
"""
from __future__ import annotations

import hashlib
import re
from typing import AbstractSet, Iterable, List, Tuple

from ..library.base_models import name_evidence, name_tokens
from ..library.record import LoraRecord
from ..sanitize import html_text
from ..selection.text import naming_phrases, prompt_tags

__all__ = ["DESCRIPTION_CHARS", "NOTES_CHARS", "encodable", "lora_text", "name_words", "prompt_text", "text_hash"]

DESCRIPTION_CHARS = 300  # enough for what the LoRA is; a whole Civitai page would drown its name
NOTES_CHARS = 500  # the user's own words count more, but a pasted page is no note
_DESCRIPTION_READ = 20_000  # HTML read before cutting: sanitising a megabyte for 300 characters is waste

# File-name tokens that say which version or training run a file is, not what it shows: `v2`, `v1s`, `000012`,
# `e10`, `ep5`, `epoch8`, `step2000`, `r32`, `rank16`, `dim32`, `fp16`, and LoRA type names.
_VERSION_TOKEN = re.compile(r"v\d+[a-z]?\d*|\d+|e\d+|ep\d+|epoch\d*|steps?\d*|r\d+|rank\d+|dim\d+|alpha\d+"
                            r"|fp\d+|bf16|final|last|lora|lyco|lycoris|locon|loha|lokr|dora")
# Quality and meta tags many prompts carry whatever they show: they would pull every prompt towards the
# detailer LoRAs. (Score, source and rating tags and counts of people are dropped by naming_phrases.)
_BOILERPLATE = frozenset({
    "masterpiece", "best quality", "high quality", "amazing quality", "great quality", "good quality",
    "normal quality", "low quality", "worst quality", "bad quality", "very aesthetic", "absurdres",
    "incredibly absurdres", "highres", "lowres", "newest", "8k", "4k", "uhd", "ultra high res",
})
_CATEGORY_WORDS = frozenset({"other", "unknown", ""})  # a category that says nothing about the LoRA
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
_PROMPT_SYNTAX = re.compile(r"[|:]")  # what is left of `[a|b]` and `[from:to:when]` after prompt_tags
_SPACES = re.compile(r"\s+")


def lora_text(record: LoraRecord, notes: str = "") -> str:
    """`qipao dress. qipao, china dress. cheongsam, chinese clothes. clothing. A tight silk dress…`: name
    words, triggers, tags (and the five commonest training tags), category, description and notes; fields
    apart by `. `, phrases by `, `; each phrase once, lower case."""
    return ". ".join(lora_fields(record, notes))


def lora_fields(record: LoraRecord, notes: str = "", common: AbstractSet[str] = frozenset()) -> Tuple[str, ...]:
    """The fields of lora_text, each as its own text, the empty ones left out. `common`: tags (lower case) so
    many LoRAs of the library carry (`sexy`, `base model`, `1girl`) that they say nothing of any one of them."""
    seen: set = set()

    def fresh(phrases: Iterable[str], skip: AbstractSet[str] = frozenset()) -> List[str]:
        kept = []
        for phrase in phrases:
            phrase = _SPACES.sub(" ", phrase).strip(" .,;:").lower()  # `slits.` + `. ` would be `slits..`
            if phrase and phrase not in seen and phrase not in _BOILERPLATE and phrase not in skip:
                seen.add(phrase)
                kept.append(phrase)
        return kept

    description = _plain(record.description, DESCRIPTION_CHARS)
    names = [name_words(record.name)] + ([name_words(record.alias)] if record.alias else [])
    triggers = record.trigger_words or record.activations
    tags = [*record.tags, *record.suggested_tags[:5]]
    category = "" if record.category in _CATEGORY_WORDS else record.category
    names = fresh(names)
    # A trigger that is the file's name again (`god_rays_sd15`, as Civitai Helper fills trainedWords) says
    # nothing the name does not, and its base-model token would pull the vector towards every SD 1.5 LoRA.
    triggers = [t for t in naming_phrases(triggers, character=False) if name_words(t).lower() not in names]
    fields = [names, fresh(triggers),
              fresh(naming_phrases(tags, character=False), common), fresh([category]), fresh([description]),
              fresh([_plain(notes, NOTES_CHARS)])]
    return tuple(", ".join(field) for field in fields if field)


def name_words(name: str) -> str:
    """`qipao_dress_ponyXL-000012` -> `qipao dress`: the name's words without its base model (`ponyXL`,
    `IL`, `sdxl`, `NAI-XL`), version, epoch or rank (`v2`, `000012`, `e10`, `r32`). A name made only of those
    keeps its words."""
    tokens = name_tokens(name)
    dropped = set()
    for i, token in enumerate(tokens):
        if i + 1 < len(tokens) and _lineage_pair(token, tokens[i + 1]):  # `NAI-XL`, `fluxDev`, `SD1.5`
            dropped.update((i, i + 1))
        elif _VERSION_TOKEN.fullmatch(token) or name_evidence(token):
            dropped.add(i)
    kept = [t for i, t in enumerate(tokens) if i not in dropped]
    return " ".join(kept or tokens)


def _lineage_pair(first: str, second: str) -> bool:
    hit = name_evidence(first + second)
    return hit is not None and hit[2] == first + second


def prompt_text(prompt: str) -> str:
    """A prompt as words: `<lora:…>`, `(word:1.2)`, `[a|b]`, `[from:to:0.5]`, BREAK, AND, escapes and
    `_` gone; score, rating and quality tags and counts of people dropped; each tag once, `, ` apart."""
    tags = (_SPACES.sub(" ", _PROMPT_SYNTAX.sub(" ", tag)).strip() for tag in prompt_tags(prompt))
    return ", ".join(t for t in naming_phrases([t for t in tags if t], character=False) if t not in _BOILERPLATE)


def text_hash(text: str) -> bytes:
    """sha256 of the text's UTF-8 (lone surrogates from undecodable file names kept): the cache key."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def encodable(text: str) -> str:
    """The text with lone surrogates (a file name that was not UTF-8 on disk) as U+FFFD: a tokenizer or a JSON
    body takes only real characters. The cache still keys on the text as it was (text_hash)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _plain(text: str, limit: int) -> str:
    """HTML as one line of plain text, links dropped, cut at a word boundary within `limit` characters."""
    if not text:
        return ""
    if "<" in text or "&" in text:
        text = html_text(text[:_DESCRIPTION_READ])
    text = _SPACES.sub(" ", _URL.sub(" ", text)).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit + 1].rsplit(" ", 1)[0] if " " in text[:limit + 1] else text[:limit]
    return cut.rstrip(" ,;:.-")
