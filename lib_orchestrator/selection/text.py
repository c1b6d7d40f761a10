"""Prompt and tag text, normalised for matching: case, `_` as space, A1111 weights and brackets gone."""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

from ..library.categories import is_appearance, qualifier  # §4.5's table, one for both
from ..library.resolve import split_triggers

LORA_TAG = re.compile(r"<(lora|lyco):([^:>]+)(?::([^:>]*))?[^>]*>", re.I)
_WEIGHT = re.compile(r":\s*-?\d+(\.\d+)?\s*(?=[)\]])")  # `(frieren:1.2)` -> `(frieren)`
_BRACKETS = re.compile(r"\\[()\[\]]|[()\[\]{}]")
_SEPARATORS = re.compile(r",|\bBREAK\b|\bAND\b|\n")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.U)
# Normalised tags that never say which LoRA a prompt wants: a family's prompt prefix (`score_9`,
# `source_anime`, `rating_safe`) and a count of people (`1girl`, `2boys`, `solo`).
_GENERIC = re.compile(r"(?:score|source|rating) \w.*|\d+\+?(?:girl|boy|other)s?|solo(?: focus)?"
                      r"|multiple (?:girls|boys)")
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


def user_loras(prompt: str) -> List[Tuple[str, str, str]]:
    """`<lora:name:w>` tags the user wrote: (name, weight text, the tag as written)."""
    return [(m.group(2).strip(), (m.group(3) or "").strip(), m.group(0)) for m in LORA_TAG.finditer(prompt)]


def naming_phrases(alternatives: Sequence[str], character: bool) -> List[str]:
    """The triggers of these activation alternatives that name their LoRA on their own (a prompt tag equal
    to one picks it as `trigger`), normalised, in order; generic ones never do. A character's other
    triggers describe her (`elf`, `white hair`), and prompts hold those for their own reasons, so only her
    names do: the first trigger of all that is no appearance word, the first such of each alternative that
    holds several, and any `name_(series)` tag. One-trigger alternatives after the first are Civitai's
    one-per-entry lists (`frieren`, `elf`), not names of their own."""
    groups = [[(t, normalise_tag(t)) for t in _triggers(a)] for a in alternatives]
    if not character:  # a pose's `looking back`, a slider's `ponytail slider`: each names it
        return list(dict.fromkeys(tag for group in groups for _, tag in group if not _generic(tag)))
    names = [[(t, tag) for t, tag in group if not _generic(tag) and not is_appearance(tag)]
             for group in groups]
    found = [tag for kept in names for _, tag in kept][:1]  # `score_9, hu tao`: her name comes first
    found += [kept[0][1] for group, kept in zip(groups, names) if len(group) > 1 and kept]
    found += [tag for kept in names for t, tag in kept if qualifier(t)]
    return list(dict.fromkeys(found))


def _generic(tag: str) -> bool:
    """A normalised trigger that names nothing: empty, a prompt prefix, a count of people."""
    return not tag or _GENERIC.fullmatch(tag) is not None


def _triggers(alternative: str) -> Sequence[str]:
    """An alternative's triggers, as the scan splits them (most hold one: no need to walk them)."""
    return split_triggers([alternative]) if "," in alternative else [alternative.strip()]


def unsaid(activation: str, prompt: str) -> Optional[str]:
    """The activation text to add to a prompt: verbatim, less the triggers the prompt already holds as
    tags (`hand on hip, looking back` to `1girl, looking back` adds `hand on hip`). None when it holds
    them all, or names the first in its own words, as whole words inside any tag: a prompt naming
    `frieren` (`frieren elf mage`) has chosen its words for her, and gets no `elf, white hair` from
    `frieren, elf, white hair`. The one rule for picks, the composer and swatches."""
    text = " , ".join(prompt_tags(prompt))
    parts = split_triggers([activation])
    kept = [p for p in parts if not _holds(text, p, _TAG_EDGES)]
    if not kept or _holds(text, parts[0], _WORD_EDGES):
        return None
    return activation.strip() if len(kept) == len(parts) else ", ".join(kept)


_TAG_EDGES = (r"(?:^|(?<= , ))", r"(?= , |$)")  # a run of whole tags
_WORD_EDGES = (r"(?<!\w)", r"(?!\w)")  # whole words, anywhere


def _holds(text: str, trigger: str, edges: Tuple[str, str]) -> bool:
    """`text` (prompt tags joined by ` , `) holds the trigger's tags (`(red, blue:1.2)` is `red , blue`)."""
    phrase = " , ".join(prompt_tags(trigger))
    return bool(phrase) and re.search(edges[0] + re.escape(phrase) + edges[1], text) is not None
