"""A story bible: the genre, the setting and the characters, each with fixed visual descriptors that
every scene repeats word for word. Written by the user as YAML (or JSON, which YAML reads too).

    title: The Lighthouse
    genre: noir                 # a genre card's name, or the card's text
    setting: a storm-battered lighthouse on a rocky coast
    style: film grain, muted palette    # added to every scene
    outline: Elias finds a stranger washed ashore. They climb to the lamp room.   # optional
    characters:
      - id: keeper
        tags: 1boy, old man, white beard, yellow raincoat      # for tag checkpoints (SD1.5, Pony, …)
        prose: an old man with a white beard in a yellow raincoat   # for SDXL and Flux
        lora: lighthouse_keeper_xl:0.8                         # optional
        trigger: lhkeeper                                       # optional
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import yaml

from ..errors import Location, OrchestratorError, yaml_error

_ID = re.compile(r"^[A-Za-z][\w-]{0,39}$")


@dataclass(frozen=True)
class Character:
    id: str
    tags: str
    prose: str
    lora: Optional[Tuple[str, float]] = None
    trigger: str = ""


@dataclass(frozen=True)
class Bible:
    title: str
    genre: str
    setting: str
    characters: Tuple[Character, ...]
    style: str = ""
    outline: str = ""

    def character(self, id: str) -> Character:
        return next(c for c in self.characters if c.id == id)


def parse_bible(text: str, source: str = "<story>") -> Bible:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source, "check indentation; each character starts with '- id:'") from None
    if not isinstance(data, dict):
        raise OrchestratorError("a story bible is a mapping: title, genre, setting, characters", Location(source, 1, 1))

    node = yaml.compose(text)

    def at(*path: Any) -> Location:
        """Where a key (str) or list item (int) of the document starts, for errors."""
        found = node
        for step in path:
            if isinstance(step, int) and isinstance(found, yaml.SequenceNode) and step < len(found.value):
                found = found.value[step]
            elif isinstance(step, str) and isinstance(found, yaml.MappingNode):
                found = next((v for k, v in found.value if k.value == step), found)
            else:
                break
        mark = found.start_mark
        lines = text.splitlines()
        return Location(source, mark.line + 1, mark.column + 1, lines[mark.line] if mark.line < len(lines) else "")

    characters: List[Character] = []
    raw = data.get("characters") or []
    if not isinstance(raw, list):
        raise OrchestratorError("characters must be a list", at("characters"), "start each one with '- id:'")
    for k, item in enumerate(raw):
        if not isinstance(item, dict):
            raise OrchestratorError(f"character {k + 1} is not a mapping", at("characters", k), "write '- id: name'")
        cid = str(item.get("id", "")).strip()
        if not _ID.match(cid):
            raise OrchestratorError(f"character {k + 1} needs an id of letters, digits, '-' or '_'",
                                    at("characters", k), "e.g. id: keeper")
        if any(c.id == cid for c in characters):
            raise OrchestratorError(f"two characters have the id {cid!r}", at("characters", k),
                                    "give each its own id")
        tags, prose = _text(item.get("tags")), _text(item.get("prose"))
        if not (tags or prose):
            raise OrchestratorError(f"character {cid!r} has neither tags nor prose", at("characters", k),
                                    "describe how they look: tags for SD1.5/Pony, prose for SDXL/Flux")
        lora = _lora(item.get("lora"), at("characters", k, "lora"))
        characters.append(Character(cid, tags or prose, prose or tags, lora, _text(item.get("trigger"))))
    return Bible(_text(data.get("title")) or "story", _text(data.get("genre")), _text(data.get("setting")),
                 tuple(characters), _text(data.get("style")), _text(data.get("outline")))


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return " ".join(str(value).split()) if value is not None else ""


def _lora(value: Any, where: Location) -> Optional[Tuple[str, float]]:
    if value is None or value == "":
        return None
    name, _, weight = str(value).strip().partition(":")
    try:
        return name.strip(), float(weight) if weight.strip() else 1.0
    except ValueError:
        raise OrchestratorError(f"LoRA weight {weight!r} is not a number", where, "write lora: name:0.8") from None
