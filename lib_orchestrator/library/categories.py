"""What kind of LoRA it is, scored from every signal (docs/lora-library.md §4): the folders it lives in,
Civitai's tags, booru qualifiers and keywords in its triggers, its name, its training tags.

Each signal votes with a weight; the category with the highest total wins. A folder outvotes any one
other signal, because a user who files a LoRA under `chara/` has said what it is; two or three other
signals that agree can still overrule it.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .base_models import name_tokens

CATEGORIES = ("style", "character", "concept", "clothing", "pose", "background", "detailer", "slider", "other")
SIGNALS = ("folder", "tags", "trigger", "name", "training")  # tie order for category_source

FOLDER_WEIGHT = 6
TAG_WEIGHT = 4
QUALIFIER_WEIGHT = 4
NAME_WEIGHT = 2
TRIGGER_WEIGHT, TRIGGER_CAP = 1, 3
TRAINING_WEIGHT, TRAINING_CAP, TRAINING_TOP = 1, 2, 5


def _table(rows: Dict[str, str]) -> Dict[str, str]:
    return {name: category for category, names in rows.items() for name in names.split(", ")}


_FOLDERS = _table({
    "style": "style, styles, art style, art styles, artstyle, artstyles, artist, artists, art, aesthetic, aesthetics",
    "character": "character, characters, chara, charas, char, chars, person, persons, people, celebrity, celebrities, "
                 "oc, ocs",
    "concept": "concept, concepts, effect, effects, fx, vfx, lighting",
    "clothing": "clothing, clothes, outfit, outfits, costume, costumes, fashion, attire, wear, uniforms",
    "pose": "pose, poses, posing, gesture, gestures, hands gestures, hands and gestures, action, actions",
    "background": "background, backgrounds, bg, bgs, scenery, sceneries, scene, scenes, landscape, landscapes, "
                  "environment, environments, location, locations, place, places",
    "detailer": "detailer, detailers, tool, tools, enhancer, enhancers, enhancement, enhancements, utility, utilities, "
                "fix, fixes",
    "slider": "slider, sliders",
})

# Civitai tags, most telling first: a slider is tagged "concept" too, a detailer "tool".
_TAGS: Tuple[Tuple[Tuple[str, ...], str], ...] = (
    (("slider",), "slider"),
    (("tool", "tools", "detail", "detailer", "enhancer"), "detailer"),
    (("character", "characters", "celebrity"), "character"),
    (("clothing", "clothes", "outfit", "costume"), "clothing"),
    (("poses", "pose"), "pose"),
    (("background", "backgrounds", "scenery", "landscape"), "background"),
    (("style", "art style", "artstyle"), "style"),
    (("concept", "concepts", "effect"), "concept"),
)

_KEYWORDS = _table({
    "style": "style, art style, artstyle, artist, watercolor, oil painting, painting, sketch, lineart, pixel art, "
             "flat color, cel shading, impasto, ink wash, ukiyo e, chibi",
    "character": "character, chara, oc",
    "concept": "concept, lens flare, god rays, light rays, sunbeam, glitch, chromatic aberration, bokeh, bloom, "
               "glowing, "
               "magic circle, runes, particles, motion blur, double exposure, silhouette, backlighting, rim light, "
               "lighting, effect, effects, fx, hologram",
    "clothing": "outfit, outfits, clothing, clothes, costume, dress, qipao, cheongsam, china dress, armor, armour, "
                "uniform, hat, kimono, yukata, hanfu, bikini, swimsuit, lingerie, hoodie, jacket, coat, skirt, shirt, "
                "sweater, bodysuit, gown, apron, maid, cape, capelet, robe, boots, gloves, pantyhose, thighhighs, "
                "leotard, helmet",
    "pose": "pose, poses, posing, looking back, sitting, standing, jumping, kneeling, lying, squatting, crouching, "
            "hand on hip, hands on hips, arms up, arms behind back, from behind, from above, from below, "
            "leaning forward, spread arms, peace sign, heart hands, stretching, running, walking, all fours, "
            "crossed arms, crossed legs, wariza, seiza, contrapposto",
    # `background` alone is special-cased: `simple background` is a training tag of nearly any LoRA
    "background": "backgrounds, bg, scenery, landscape, library, street, city, cityscape, shrine, temple, ruins, "
                  "forest, "
                  "beach, classroom, bedroom, cafe, castle, alley, rooftop, mountain, garden, train station, interior, "
                  "architecture",
    "detailer": "detail, details, detailer, enhancer, tweaker",
    "slider": "slider, sliders",
})
_KEYWORD_LENGTH = max(len(k.split()) for k in _KEYWORDS)
_APPEARANCE = ("twintails", "ponytail", "braid", "ahoge", "pointy ears", "animal ears", "cat ears", "fox ears",
               "hair ornament", "hair bun", "sidelocks", "heterochromia")
_NON_WORD = re.compile(r"[^0-9a-z]+")
_UNWEIGHT = re.compile(r"^\((.*):\s*-?\d+(?:\.\d+)?\s*\)$", re.S)
_QUALIFIED = re.compile(r"^.*[^\s_(][ _]\(([^()]+)\)$", re.S)
_QUALIFIER_CATEGORY = {"artist": "style", "style": "style", "cosplay": None}


def _words(text: str) -> List[str]:
    return [w for w in _NON_WORD.split(text.lower()) if w]


_FIRST_WORDS = frozenset(k.split()[0] for k in _KEYWORDS)


def keywords_in(words: Sequence[str]) -> Dict[str, str]:
    """category -> the first keyword found, as consecutive whole words."""
    found: Dict[str, str] = {}
    for i in range(len(words)):
        if words[i] not in _FIRST_WORDS:  # most words begin no keyword: skip building phrases from them
            continue
        for n in range(1, _KEYWORD_LENGTH + 1):
            if i + n > len(words):
                break
            phrase = " ".join(words[i:i + n])
            category = _KEYWORDS.get(phrase)
            if category and category not in found:
                found[category] = phrase
    if words == ["background"]:
        found.setdefault("background", "background")
    return found


def _is_appearance(words: Sequence[str]) -> bool:
    if words and words[-1] in ("hair", "eyes"):
        return True
    text = f" {' '.join(words)} "
    return any(f" {a} " in text for a in _APPEARANCE)


def is_appearance(trigger: str) -> bool:
    """Whether a trigger describes how a person looks (§4.5): `white hair`, `(twintails:1.2)`."""
    return _is_appearance(_words(_unwrapped(trigger)))


def _unwrapped(trigger: str) -> str:
    """The trigger without backslashes and without brackets around the whole that carry a weight."""
    text = trigger.replace("\\", "").strip()
    unweighted = _UNWEIGHT.match(text)
    return unweighted.group(1).strip() if unweighted else text


def qualifier(trigger: str) -> Optional[str]:
    """The booru qualifier of `gotoh_hitori_(bocchi_the_rock)`, `(name_(series):1.2)` or `name \\(series\\)`."""
    found = _QUALIFIED.match(_unwrapped(trigger))
    return " ".join(_words(found.group(1))) if found else None


def folder_name_key(folder: str) -> str:
    words = _words(folder.replace("&", " "))
    while words and words[0].isdigit():  # `01 - Characters`, `2. Poses`
        words.pop(0)
    return " ".join(words)


def from_folders(folders: Tuple[str, ...]) -> Optional[Tuple[str, str]]:
    """(category, folder) of the nearest enclosing folder named for a category."""
    for folder in reversed(folders):
        category = _FOLDERS.get(folder_name_key(folder))
        if category:
            return category, folder
    return None


def from_tags(tags: Iterable[str]) -> Optional[str]:
    lowered = {t.strip().lower() for t in tags}
    for names, category in _TAGS:
        if any(n in lowered for n in names):
            return category
    return None


def classify(folders: Tuple[str, ...] = (), tags: Iterable[str] = (), triggers: Sequence[str] = (),
             names: Sequence[str] = (), training_tags: Sequence[str] = ()) -> Tuple[str, str]:
    """(category, category_source) from every signal, scored (docs/lora-library.md §4)."""
    votes: Dict[str, List[Tuple[int, str]]] = defaultdict(list)  # category -> (weight, signal)

    folder = from_folders(folders)
    if folder:
        votes[folder[0]].append((FOLDER_WEIGHT, "folder"))
    tag = from_tags(tags)
    if tag:
        votes[tag].append((TAG_WEIGHT, "tags"))

    qualified = set()
    per_trigger: Dict[str, int] = defaultdict(int)
    for trigger in triggers:
        q = qualifier(trigger)
        if q is not None:
            category = _QUALIFIER_CATEGORY.get(q, "character")
            if category:
                qualified.add(category)
        words = _words(_unwrapped(trigger))  # `(white hair:1.2)`: the weight's digits are no words of it
        hits = set(keywords_in(words))
        if _is_appearance(words):
            hits.add("character")
        for category in hits:
            per_trigger[category] += 1
    for category in qualified:
        votes[category].append((QUALIFIER_WEIGHT, "trigger"))
    for category, n in per_trigger.items():  # each trigger is a vote of its own
        votes[category].extend([(TRIGGER_WEIGHT, "trigger")] * min(n, TRIGGER_CAP))

    named = set()
    for name in names:
        if name:
            named.update(keywords_in(name_tokens(name)))
    for category in named:
        votes[category].append((NAME_WEIGHT, "name"))

    per_tag: Dict[str, int] = defaultdict(int)
    for training_tag in training_tags[:TRAINING_TOP]:
        for category in keywords_in(_words(training_tag)):
            per_tag[category] += 1
    for category, n in per_tag.items():
        votes[category].extend([(TRAINING_WEIGHT, "training")] * min(n, TRAINING_CAP))

    if not votes:
        return "other", "none"

    def strongest(category: str) -> Tuple[int, str]:
        # the heaviest single vote; between equals, the first signal in SIGNALS
        return max(votes[category], key=lambda v: (v[0], -SIGNALS.index(v[1])))

    winner = max(votes, key=lambda c: (sum(w for w, _ in votes[c]), strongest(c)[0], -CATEGORIES.index(c)))
    return winner, strongest(winner)[1]
