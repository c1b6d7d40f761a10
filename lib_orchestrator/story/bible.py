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

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

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


MAX_BIBLE = 100_000  # characters in the whole bible: a few keys and a list of characters, never a book
MAX_CHARACTERS = 100
MAX_TEXT = 4000  # characters in one field: a bible is a few lines, never a YAML alias bomb


def parse_bible(text: str, source: str = "<story>") -> Bible:
    """The bible in `text`; anything wrong (or hostile: alias bombs, deep nesting, a huge file) raises
    OrchestratorError with the place, and nothing else."""
    if len(text) > MAX_BIBLE:
        raise OrchestratorError(f"the bible is longer than {MAX_BIBLE:,} characters", Location(source, 1, 1),
                                "a bible is a few keys and a list of characters")
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise OrchestratorError("the bible is nested too deeply", Location(source, 1, 1),
                                "a bible is a few keys and a list of characters") from None
    except yaml.YAMLError as exc:
        raise yaml_error(exc, source, "check indentation; each character starts with '- id:'") from None
    except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
        # PyYAML's constructors raise these for what they cannot build: `2001-13-45`, an int of 5000 digits,
        # `!!int x`
        raise OrchestratorError(f"a value cannot be read: {exc}", Location(source, 1, 1),
                                "put quotes around it to make it text") from None
    if not isinstance(data, dict):
        raise OrchestratorError("a story bible is a mapping: title, genre, setting, characters", Location(source, 1, 1))

    def at(*path: Any) -> Location:
        """Where a key (str) or list item (int) of the document starts, for errors (only they pay for
        composing the document again)."""
        found = yaml.compose(text, Loader=yaml.SafeLoader)  # safe_load above already parsed it
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
    if len(raw) > MAX_CHARACTERS:
        raise OrchestratorError(f"a bible has at most {MAX_CHARACTERS} characters, not {len(raw)}",
                                at("characters"), "keep the ones the story needs")
    for k, item in enumerate(raw):
        if not isinstance(item, dict):
            raise OrchestratorError(f"character {k + 1} is not a mapping", at("characters", k), "write '- id: name'")
        given = item.get("id", "")
        # only text: str() of a list an alias bomb built would spell out every one of its billions of items
        cid = str(given).strip() if isinstance(given, (str, int)) and not isinstance(given, bool) else ""
        if not _ID.match(cid):
            raise OrchestratorError(f"character {k + 1} needs an id of letters, digits, '-' or '_'",
                                    at("characters", k), "e.g. id: keeper")
        if any(c.id == cid for c in characters):
            raise OrchestratorError(f"two characters have the id {cid!r}", at("characters", k),
                                    "give each its own id")

        def where(key: str, k: int = k) -> Callable[[], Location]:
            return lambda: at("characters", k, key)

        tags, prose = _text(item.get("tags"), where("tags")), _text(item.get("prose"), where("prose"))
        if not (tags or prose):
            raise OrchestratorError(f"character {cid!r} has neither tags nor prose", at("characters", k),
                                    "describe how they look: tags for SD1.5/Pony, prose for SDXL/Flux")
        lora = _lora(item.get("lora"), where("lora"))
        trigger = _text(item.get("trigger"), where("trigger"))
        characters.append(Character(cid, tags or prose, prose or tags, lora, trigger))
    fields = {key: _text(data.get(key), lambda key=key: at(key))
              for key in ("title", "genre", "setting", "style", "outline")}
    return Bible(fields["title"] or "story", fields["genre"], fields["setting"], tuple(characters),
                 fields["style"], fields["outline"])


def _text(value: Any, where: Callable[[], Location]) -> str:
    """A field's text: a string, a number, or a list of those (joined with ", ")."""
    if value is None:
        return ""
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in items):
        raise OrchestratorError("this field must be text, or a list of texts", where(),
                                "write it as plain text, e.g. tags: 1girl, red hair")
    parts, length = [], 0
    for item in items:  # counted as it grows: aliases can repeat one long text a million times
        parts.append(str(item))
        length += len(parts[-1]) + 2
        if length > 2 * MAX_TEXT:  # far over, even once runs of spaces are one
            break
    text = " ".join(", ".join(parts).split())
    if len(text) > MAX_TEXT or length > 2 * MAX_TEXT:
        raise OrchestratorError(f"this field is longer than {MAX_TEXT} characters", where(), "shorten it")
    return text


def _lora(value: Any, where: Callable[[], Location]) -> Optional[Tuple[str, float]]:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OrchestratorError("lora must be text: name or name:weight", where(), "write lora: name:0.8")
    name, _, weight = value.strip().partition(":")
    name = name.strip()
    if not name or re.search(r"[<>:]", name):
        raise OrchestratorError(f"{name!r} is not a LoRA name", where(), "write lora: name:0.8")
    try:
        number = float(weight) if weight.strip() else 1.0
    except ValueError:
        raise OrchestratorError(f"LoRA weight {weight!r} is not a number", where(), "write lora: name:0.8") from None
    if not math.isfinite(number):
        raise OrchestratorError(f"LoRA weight {weight!r} is not a finite number", where(), "write lora: name:0.8")
    return name, number
