"""Enhancement templates: one YAML file per target family (how to ask, what shape the answer has, how
code joins it) and genre cards. The shipped ones live beside this module; a file of the same name in
the user's folder replaces one. A template's version is part of the cache key and of the infotext.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from ..errors import Location, OrchestratorError, yaml_error
from .cleanup import json_object
from .errors import LlmError
from .protect import meaning

SHIPPED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
FORMS = ("tags", "prose", "booru")
TEMPLATE_NAMES = ("sd1", "sdxl", "flux", "pony", "illustrious")
SCHEMA_VERSION = 1  # of the answer schemas below: part of the cache key

_TAG = {"type": "string", "maxLength": 60}
_SCHEMAS: Dict[str, Dict[str, Any]] = {
    "tags": {"type": "object", "additionalProperties": False, "required": ["tags"],
             "properties": {"tags": {"type": "array", "items": _TAG, "minItems": 1, "maxItems": 40}}},
    "prose": {"type": "object", "additionalProperties": False, "required": ["prompt"],
              "properties": {"prompt": {"type": "string", "maxLength": 1200}}},
    "booru": {"type": "object", "additionalProperties": False, "required": ["scene"],
              "properties": {"characters": {"type": "array", "maxItems": 3,
                                            "items": {"type": "array", "items": _TAG, "maxItems": 24}},
                             "scene": {"type": "array", "items": _TAG, "maxItems": 40}}},
}


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    form: str
    budget: int  # tokens the finished prompt may use (per BREAK chunk for booru)
    length: str  # what the model is asked for, e.g. "12 to 24 tags"
    rating: str
    temperature: float
    top_p: float
    max_tokens: int
    prefix: Tuple[str, ...]  # tags code puts in front
    system: str
    user: str
    path: str

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def schema(self) -> Dict[str, Any]:
        return _SCHEMAS[self.form]

    def messages(self, idea: str, genre_card: str, spans: Sequence[str] = ()) -> List[Dict[str, str]]:
        """The chat for one prompt; `spans[n]` is what placeholder ⟦n⟧ stands for."""
        held = dict.fromkeys(int(n) for n in re.findall(r"⟦(\d+)⟧", idea))
        locked = ", ".join(f"⟦{n}⟧ ({meaning(spans[n])})" if n < len(spans) else f"⟦{n}⟧" for n in held) or "none"
        values = {"idea": idea, "genre": genre_card or "none", "locked": locked, "rating": self.rating,
                  "length": self.length}
        user = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group()), self.user)
        return [{"role": "system", "content": self.system.strip()}, {"role": "user", "content": user.strip()}]

    def text_of(self, answer: str) -> str:
        """The prompt text of an answer: its schema's fields joined the way the family reads them, or
        the answer itself when the model ignored the schema (cleanup and checks come after). JSON that
        does not parse (cut off, or two objects) is no prompt: LlmError."""
        data = json_object(answer)
        if data is None:
            listed = _json_list(answer)
            if listed is not None:  # a bare JSON array of tags
                return ", ".join(_tags(listed))
            if _BROKEN_JSON.search(answer):
                raise LlmError("the model's JSON answer is broken or cut off")
            return answer
        if isinstance(data.get("prompt"), str):  # a prose answer, or a tag model answering in prose
            return " ".join(data["prompt"].split())  # one line: blank lines inside a field are no commentary
        if "scene" in data or "characters" in data:
            characters = data.get("characters")
            groups = [g for g in (_tags(c) for c in (characters if isinstance(characters, list) else [])) if g]
            scene = _tags(data.get("scene"))
            if len(groups) > 1:  # BREAK keeps one character's colours off the other (Civitai 15104)
                return " BREAK ".join(", ".join(g) for g in groups) + (", " + ", ".join(scene) if scene else "")
            return ", ".join([*(groups[0] if groups else []), *scene])
        if "tags" in data:
            return ", ".join(_tags(data["tags"]))
        return ""


_BROKEN_JSON = re.compile(r'^\s*(?:<think>.*?</think>\s*)?\{|"(?:prompt|tags|scene|characters)"\s*:', re.DOTALL)


def _json_list(answer: str) -> Optional[List[Any]]:
    try:
        data = json.loads(answer.strip())
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, list) else None


def _tags(value: Any) -> List[str]:
    """Tags as a tag model should give them: short, no sentence punctuation, no repeats (ignoring case).
    Placeholders keep their case; everything else is lowercased."""
    if isinstance(value, str):  # a model that wrote the list as one string
        value = value.split(",")
    if not isinstance(value, list):
        return []
    out: Dict[str, str] = {}
    for item in value:
        if not isinstance(item, str):
            continue
        tag = " ".join(item.replace("_", " ").split()).strip(" ,.")
        if not tag or re.search(r"[.!?;]\s", tag):  # two sentences are no tag
            continue
        if "⟦" not in tag:
            tag = tag.lower()
        out.setdefault(tag.lower(), tag)
    return list(out.values())


def template_for(family: str, base_model: Optional[str] = None) -> str:
    """The template name for a checkpoint: its family, and for SDXL its base model's lineage."""
    base = (base_model or "").lower()
    if family in ("sd1", "sd2"):
        return "sd1"
    if family == "flux":
        return "flux"
    if "pony" in base:
        return "pony"
    if "illustrious" in base or "noob" in base:
        return "illustrious"
    return "sdxl"


def load_template(name: str, folder: Optional[str] = None) -> Template:
    path = _find(f"{name}.yaml", folder)
    if path is None:
        raise OrchestratorError(f"no enhancement template {name!r}",
                                hint=f"use one of {', '.join(TEMPLATE_NAMES)}, or add {name}.yaml to your folder")
    data = _read_yaml(path)
    location = Location(path, 1, 1)
    try:
        form = str(data["form"])
        if form not in FORMS:
            raise OrchestratorError(f"form {form!r} is not one of {', '.join(FORMS)}", location)
        system, user = data["system"], data["user"]
        if not isinstance(system, str) or not isinstance(user, str):
            raise OrchestratorError("system and user must be text", location, "write them as 'key: |' blocks")
        if "{idea}" not in user:
            raise OrchestratorError("the user message has no {idea}", location,
                                    "put {idea} where the prompt goes")
        prefix = data.get("prefix") or []
        prefix = prefix.split(",") if isinstance(prefix, str) else [str(t) for t in prefix]
        template = Template(
            name=name, version=int(data["version"]), form=form, budget=int(data["budget"]),
            length=str(data.get("length") or ""), rating=str(data.get("rating") or "safe"),
            temperature=float(data.get("temperature", 0.7)), top_p=float(data.get("top_p", 0.9)),
            max_tokens=int(data.get("max_tokens", 300)),
            prefix=tuple(t.strip() for t in prefix if t.strip()), system=system, user=user, path=path)
    except KeyError as exc:
        raise OrchestratorError(f"the template has no {exc.args[0]!r}", location,
                                "compare it with the shipped one of the same name") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise OrchestratorError(f"a template value has the wrong type ({exc})", location,
                                "version, budget and max_tokens are whole numbers; temperature and top_p "
                                "are numbers") from None
    if template.budget <= 0 or template.max_tokens <= 0 or not 0 <= template.temperature <= 2 \
            or not 0 < template.top_p <= 1:
        raise OrchestratorError("a template value is out of range", location,
                                "budget and max_tokens above 0, temperature 0 to 2, top_p above 0 up to 1")
    return template


def load_genres(folder: Optional[str] = None) -> Dict[str, str]:
    """Genre name → card; the user's cards replace shipped ones of the same name and add new ones."""
    genres: Dict[str, str] = {}
    for path in (os.path.join(SHIPPED, "genres.yaml"), _user_file("genres.yaml", folder)):
        if path is None or not os.path.isfile(path):
            continue
        data = _read_yaml(path)
        cards = data.get("genres")
        if not isinstance(cards, dict):
            raise OrchestratorError("genres.yaml has no 'genres' mapping", Location(path, 1, 1),
                                    "write genres: with one 'name: card text' line under it per genre")
        genres.update({str(k).strip().lower(): " ".join(str(v).split()) for k, v in cards.items()
                       if isinstance(v, (str, int, float))})
    return genres


def genre_card(genre: Optional[str], folder: Optional[str] = None) -> str:
    """The card of a named genre; any other text is taken as the card itself ("" means none)."""
    text = (genre or "").strip()
    return load_genres(folder).get(text.lower(), text) if text else ""


def _user_file(name: str, folder: Optional[str]) -> Optional[str]:
    return os.path.join(folder, name) if folder else None


def _find(name: str, folder: Optional[str]) -> Optional[str]:
    for path in (_user_file(name, folder), os.path.join(SHIPPED, name)):
        if path and os.path.isfile(path):
            return path
    return None


def _read_yaml(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise OrchestratorError(f"cannot read the template: {exc.strerror}", Location(path, 0, 0)) from None
    except UnicodeDecodeError as exc:
        raise OrchestratorError(f"not UTF-8 text (byte {exc.start})", Location(path, 0, 0),
                                "save the file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path, "check indentation; multi-line text goes under 'key: |'") from None
    except RecursionError:
        raise OrchestratorError("the file is nested too deeply", Location(path, 1, 1)) from None
    except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
        # PyYAML's constructors raise these for what they cannot build: `2001-13-45`, `!!int x`
        raise OrchestratorError(f"a value cannot be read: {exc}", Location(path, 1, 1),
                                "put quotes around it to make it text") from None
    if not isinstance(data, dict):
        raise OrchestratorError("a template file must be a mapping of keys", Location(path, 1, 1))
    return data
