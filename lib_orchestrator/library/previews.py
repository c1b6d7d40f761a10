"""Which image Forge shows for a LoRA, and whether it is an image at all."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")


def preview_names(stem: str) -> List[str]:
    """Forge's lookup order: for each extension, `<stem>.<ext>` then `<stem>.preview.<ext>`."""
    out = []
    for ext in PREVIEW_EXTENSIONS:
        out += [f"{stem}.{ext}", f"{stem}.preview.{ext}"]
    return out


def find_preview(stem: str, names: Dict[str, str]) -> Optional[str]:
    """The file name of the preview among a folder's `names` (lower-case name -> actual name):
    exact first, then ignoring case."""
    candidates = preview_names(stem)
    exact = set(names.values())
    for candidate in candidates:
        if candidate in exact:
            return candidate
    for candidate in candidates:
        found = names.get(candidate.lower())
        if found:
            return found
    return None


_MAGIC: Tuple[Tuple[bytes, int], ...] = ((b"\x89PNG\r\n\x1a\n", 0), (b"\xff\xd8\xff", 0), (b"GIF8", 0),
                                         (b"WEBP", 8))


def image_problem(path: str) -> Optional[str]:
    """Why the file is not a usable image, or None. Only the magic bytes are checked."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    if not head:
        return "empty file (0 bytes)"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return None
    if any(head[offset:offset + len(magic)] == magic for magic, offset in _MAGIC if offset == 0):
        return None
    return "not a PNG, JPEG, WEBP or GIF image"
