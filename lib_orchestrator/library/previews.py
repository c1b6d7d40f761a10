"""Which image Forge shows for a LoRA, and whether it is an image at all."""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")


def preview_names(stem: str) -> List[str]:
    """Forge's lookup order: for each extension, `<stem>.<ext>` then `<stem>.preview.<ext>`."""
    out = []
    for ext in PREVIEW_EXTENSIONS:
        out += [f"{stem}.{ext}", f"{stem}.preview.{ext}"]
    return out


def find_preview(stem: str, names: Dict[str, str]) -> Optional[str]:
    """The file name of the preview among a folder's `names` (lower-case name -> actual name):
    exact first, then ignoring case. For one lookup; scans use PreviewIndex."""
    return PreviewIndex(names.values()).find(stem)


class PreviewIndex:
    """A folder's images by the stem they would be the preview of, so each lookup is one dict get."""

    def __init__(self, names: Iterable[str]) -> None:
        self._by_stem: Dict[str, List[Tuple[int, str, str]]] = {}
        for name in names:
            low = name.lower()
            for i, ext in enumerate(PREVIEW_EXTENSIONS):
                if low.endswith("." + ext):
                    base = name[:-len(ext) - 1]
                    self._add(base, 2 * i, name)  # `<stem>.<ext>`
                    if base.lower().endswith(".preview"):
                        self._add(base[:-8], 2 * i + 1, name)  # `<stem>.preview.<ext>`
                    break

    def _add(self, base: str, rank: int, name: str) -> None:
        self._by_stem.setdefault(base.lower(), []).append((rank, base, name))

    def __bool__(self) -> bool:
        return bool(self._by_stem)

    def find(self, stem: str) -> Optional[str]:
        candidates = self._by_stem.get(stem.lower())
        if not candidates:
            return None
        # Exactly `<stem>.<ext>` or `<stem>.preview.<ext>` as Forge spells it, else any case.
        exact = [c for c in candidates if c[1] == stem and c[2][len(stem):] == c[2][len(stem):].lower()]
        return min(exact or candidates)[2]


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
