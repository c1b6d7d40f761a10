"""What kind of LoRA it is: from the folder it lives in, Civitai's tags, or its name."""
from __future__ import annotations

from typing import Iterable, Optional, Tuple

CATEGORIES = ("style", "character", "concept", "clothing", "pose", "background", "detailer", "slider", "other")

_FOLDERS = {
    "style": "style", "styles": "style", "art style": "style",
    "character": "character", "characters": "character", "chars": "character",
    "concept": "concept", "concepts": "concept",
    "clothing": "clothing", "clothes": "clothing", "outfit": "clothing", "outfits": "clothing",
    "pose": "pose", "poses": "pose",
    "background": "background", "backgrounds": "background", "scenery": "background",
    "detailer": "detailer", "detailers": "detailer", "tool": "detailer", "tools": "detailer",
    "slider": "slider", "sliders": "slider",
}
# Civitai tags, most telling first: a slider is tagged "concept" too, a detailer "tool".
_TAGS = (("slider", "slider"), ("tool", "detailer"), ("detail", "detailer"), ("enhancer", "detailer"),
         ("character", "character"), ("clothing", "clothing"), ("poses", "pose"), ("pose", "pose"),
         ("background", "background"), ("style", "style"), ("concept", "concept"))
_NAMES = (("slider", "slider"), ("detail", "detailer"), ("style", "style"))


def from_folders(folders: Tuple[str, ...]) -> Optional[str]:
    """The outermost folder named for a category."""
    for folder in folders:
        found = _FOLDERS.get(folder.strip().lower())
        if found:
            return found
    return None


def from_tags(tags: Iterable[str]) -> Optional[str]:
    lowered = {t.strip().lower() for t in tags}
    for tag, category in _TAGS:
        if tag in lowered:
            return category
    return None


def from_name(stem: str) -> Optional[str]:
    lowered = stem.lower()
    for fragment, category in _NAMES:
        if fragment in lowered:
            return category
    return None
