"""Which image Forge shows for a LoRA, and whether it is an image at all."""
from __future__ import annotations

from functools import lru_cache
from typing import BinaryIO, Dict, Iterable, List, Optional, Tuple

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


# (format, magic bytes, offset): what the first bytes of each image Forge shows must be.
_MAGIC: Tuple[Tuple[str, bytes, int], ...] = (("PNG", b"\x89PNG\r\n\x1a\n", 0), ("JPEG", b"\xff\xd8\xff", 0),
                                              ("GIF", b"GIF8", 0), ("WEBP", b"WEBP", 8))
_pillow: Optional[Tuple[object, frozenset]] = None  # (PIL.Image, the formats it can open), once looked for
_pillow_looked = False


def image_problem(path: str) -> Optional[str]:
    """Why the file is not a usable image, or None. The magic bytes name the format; then Pillow, where
    it is installed (Forge ships it), opens the file and runs `verify()`: the headers, and for a PNG every
    chunk and its checksum, without decoding the pixels. Without Pillow the magic bytes alone decide."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            if not head:
                return "empty file (0 bytes)"
            fmt = next((name for name, magic, at in _MAGIC if head[at:at + len(magic)] == magic
                        and (name != "WEBP" or head.startswith(b"RIFF"))), None)
            if fmt is None:
                return "not a PNG, JPEG, WEBP or GIF image"
            pillow = _load_pillow()
            if pillow is None or fmt not in pillow[1]:
                return None
            fh.seek(0)
            return _undecodable(pillow[0], fh, fmt)  # the open file again: one open per preview
    except OSError as exc:
        return f"cannot read: {exc.strerror}"


def _undecodable(image_module: object, fh: BinaryIO, fmt: str) -> Optional[str]:
    try:
        with image_module.open(fh, formats=(fmt,)) as image:  # type: ignore[attr-defined]
            image.verify()
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises on these bytes, they are not an image
        # Pillow's "cannot identify image file <...>" names the file, which a cached message must not.
        unidentified = isinstance(exc, getattr(image_module, "UnidentifiedImageError", ()))
        reason = "Pillow cannot read its header" if unidentified or not str(exc) \
            else str(exc).splitlines()[0][:120]
        return f"{fmt} bytes that do not decode ({reason}): a broken or unfinished download?"
    return None


@lru_cache(maxsize=1)
def checker() -> str:
    """What judges a preview (image_problem), as part of its stamp: "pillow-<version>" where Pillow is
    installed, else "magic" (the first bytes alone). Installing, upgrading or removing Pillow then reads
    every LoRA with a preview again. Once per process, and only `import PIL` (1 ms), not PIL.Image (18 ms)."""
    try:
        import PIL

        return "pillow-" + str(PIL.__version__)
    except Exception:  # noqa: BLE001 - no Pillow, or a broken one: the magic bytes decide
        return "magic"


def _load_pillow() -> Optional[Tuple[object, frozenset]]:
    """PIL.Image and the formats this Pillow can open (a build without libwebp cannot open WEBP: the
    magic bytes decide for those), or None without Pillow. Imported on the first preview, not before."""
    global _pillow, _pillow_looked
    if not _pillow_looked:
        try:
            import inspect

            from PIL import Image
            Image.init()
            formats = frozenset(f for f in ("PNG", "JPEG", "GIF", "WEBP") if f in Image.OPEN)
            # open(..., formats=) is Pillow 7.1+: an older one would fail every preview, so it is not used.
            _pillow = (Image, formats) if "formats" in inspect.signature(Image.open).parameters else None
        except Exception:  # noqa: BLE001 - no Pillow, or a broken one: the magic bytes still work
            _pillow = None
        _pillow_looked = True
    return _pillow
