"""Beats: what happens in each scene, in order. The LLM plans them under a schema that only lets it
name the bible's characters; every answer is checked again here, since small models ignore schemas.
Without a usable answer the beats come from the outline, so a story never fails to plan."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..enhance.cleanup import json_object
from ..enhance.errors import LlmError
from .bible import Bible

SHOTS = ("wide shot", "medium shot", "close-up", "over-the-shoulder shot")
_FIELDS = ("action", "location", "time_of_day", "mood")


@dataclass(frozen=True)
class Beat:
    shot: str
    characters: Tuple[str, ...]  # ids from the bible
    action: str = ""
    location: str = ""
    time_of_day: str = ""
    mood: str = ""


def beats_schema(bible: Bible, count: int) -> Dict[str, Any]:
    text = {"type": "string", "maxLength": 120}
    return {"type": "object", "required": ["beats"], "additionalProperties": False, "properties": {"beats": {
        "type": "array", "minItems": count, "maxItems": count, "items": {
            "type": "object", "additionalProperties": False, "required": ["shot", "characters", *_FIELDS],
            "properties": {"shot": {"enum": list(SHOTS)},
                           "characters": {"type": "array", "items": {"enum": [c.id for c in bible.characters]}},
                           **{name: text for name in _FIELDS}}}}}}


def beats_messages(bible: Bible, count: int, genre_card: str) -> List[Dict[str, str]]:
    system = (
        "You plan the scenes of a short illustrated story. Reply only with JSON that matches the schema. "
        f"Write exactly {count} beats, in story order, with a beginning, a turn and an ending. For each beat "
        "give the camera shot, the ids of the characters who can be seen, and short visual phrases for the "
        "action, the location, the time of day and the mood. Describe only what can be seen. Never describe "
        "what the characters look like or wear: that is fixed elsewhere. Use only the character ids given.")
    cast = "; ".join(f"{c.id}: {c.prose}" for c in bible.characters) or "none"
    user = "\n".join([f"TITLE: {bible.title}", f"GENRE CARD: {genre_card or bible.genre or 'none'}",
                      f"SETTING: {bible.setting or 'any'}", f"CHARACTERS: {cast}",
                      f"OUTLINE: {bible.outline or 'invent one that fits the genre'}", f"BEATS: {count}"])
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def plan_beats(bible: Bible, count: int, ask: Optional[Callable[[List[Dict[str, str]], Dict[str, Any]], str]],
               genre_card: str = "") -> Tuple[List[Beat], str]:
    """(count beats, a note: "" when the LLM planned them, else why the outline did)."""
    if count <= 0:
        return [], ""
    if ask is None:
        return outline_beats(bible, count), "planned from the outline (no LLM)"
    try:
        answer = ask(beats_messages(bible, count, genre_card), beats_schema(bible, count))
    except LlmError as exc:
        return outline_beats(bible, count), f"planned from the outline: {exc}"
    beats = checked_beats(json_object(answer), bible)
    if not beats:
        return outline_beats(bible, count), "planned from the outline: the LLM's beats were unusable"
    note = ""
    if len(beats) < count:
        note = f"the LLM planned {len(beats)} beats of {count}; the outline filled in the rest"
        beats += outline_beats(bible, count)[len(beats):]
    return beats[:count], note


def checked_beats(data: Optional[Dict[str, Any]], bible: Bible) -> List[Beat]:
    """The usable beats of an answer: unknown characters dropped, shots one of SHOTS, texts short."""
    ids = {c.id.lower(): c.id for c in bible.characters}
    order = [c.id for c in bible.characters]
    raw = data.get("beats") if isinstance(data, dict) else None
    beats: List[Beat] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        shot = str(item.get("shot", "")).strip().lower()
        shot = next((s for s in SHOTS if s.split()[0] in shot), SHOTS[1])
        present = item.get("characters") if isinstance(item.get("characters"), list) else []
        named = {ids[str(c).strip().lower()] for c in present if str(c).strip().lower() in ids}
        cast = tuple(cid for cid in order if cid in named)  # bible order: each character keeps its BREAK chunk
        texts = {name: _phrase(item.get(name)) for name in _FIELDS}
        if any(texts.values()):
            beats.append(Beat(shot, cast, **texts))
    return beats


def outline_beats(bible: Bible, count: int) -> List[Beat]:
    """Beats without an LLM: the outline's sentences in turn as actions, an establishing wide shot of
    everyone first, then the characters a sentence names by id (else each in turn), then everyone
    again at the end."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", bible.outline) if s.strip()]
    everyone = tuple(c.id for c in bible.characters)
    beats = []
    for k in range(count):
        action = _phrase(sentences[k * len(sentences) // count]) if sentences else ""
        named = tuple(cid for cid in everyone if re.search(rf"\b{re.escape(cid)}\b", action, re.IGNORECASE))
        if k == 0 or k == count - 1 or not everyone:
            shot, cast = SHOTS[0] if k == 0 else SHOTS[1], everyone
        else:
            shot, cast = SHOTS[1 + (k - 1) % 2], named or (everyone[(k - 1) % len(everyone)],)
        beats.append(Beat(shot, cast, action, bible.setting))
    return beats


def _phrase(value: Any) -> str:
    text = " ".join(str(value or "").split()).strip(" .,;")
    return text[:120]


def llm_asker(chat: Callable[..., str], bible: Bible, seed: int, label: str
              ) -> Callable[[List[Dict[str, str]], Dict[str, Any]], str]:
    """`ask` for plan_beats through an Enhancer's `chat`: room for every beat, and an answer cached
    only when it holds usable beats."""
    def ask(messages: List[Dict[str, str]], schema: Dict[str, Any]) -> str:
        count = schema["properties"]["beats"]["minItems"]
        return chat(messages, schema, seed, max_tokens=100 * count + 200, label=label,
                    usable=lambda answer: bool(checked_beats(json_object(answer), bible)))

    return ask
