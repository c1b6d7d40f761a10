"""Small cached thumbnails of the users' preview images, for the library browser.

Made on demand (the browser asks per visible card), cached by the source's path, size and mtime, so a
page never waits for more than its own cards and a second visit costs one `stat`.
"""
from __future__ import annotations

import hashlib
import os
from typing import Optional

SIZE = 256


def thumbnail(source: str, cache_dir: str, size: int = SIZE) -> Optional[str]:
    """The path of a JPEG thumbnail of `source`, or None when it cannot be read as an image."""
    try:
        st = os.stat(source)
    except OSError:
        return None
    key = hashlib.sha1(f"{os.path.abspath(source)}|{st.st_size}|{st.st_mtime_ns}|{size}".encode()).hexdigest()
    target = os.path.join(cache_dir, key[:2], key + ".jpg")
    if os.path.exists(target):
        return target
    try:
        from PIL import Image
    except ImportError:  # Forge ships Pillow; without it, the original file is shown
        return source
    try:
        with Image.open(source) as image:
            image.thumbnail((size, size))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = target + ".tmp"
            image.convert("RGB").save(tmp, "JPEG", quality=85)
            os.replace(tmp, target)
    except Exception:  # a corrupt or exotic image: no thumbnail, never an error on the page
        return None
    return target


CARD_BACKGROUND = (226, 232, 240)
CARD_TEXT = (30, 41, 59)


def name_card(cache_dir: str, name: str, detail: str = "", size: int = SIZE) -> Optional[str]:
    """A light card with the LoRA's name written on it (wrapped, never cut to "misty_for…"), for LoRAs
    without a preview: the gallery then shows what each one is. Cached by its text."""
    key = hashlib.sha1(f"{name}|{detail}|{size}".encode()).hexdigest()
    target = os.path.join(cache_dir, "cards", key[:2], key + ".png")
    if os.path.exists(target):
        return target
    try:
        from PIL import Image, ImageDraw

        from ..drawing import draw_lines, load_font, wrap_label
    except ImportError:
        return None
    card = Image.new("RGB", (size, size), CARD_BACKGROUND)
    draw = ImageDraw.Draw(card)
    big, small = load_font(None, size // 11), load_font(None, size // 16)
    margin = size // 12
    lines = wrap_label(name, size - 2 * margin, lambda t: draw.textlength(t, font=big), 5)
    draw_lines(draw, lines, big, int(size / 11 * 1.3), (margin, 0, size - 2 * margin, size * 3 // 4), CARD_TEXT)
    if detail:
        draw_lines(draw, [detail], small, size // 12, (margin, size * 3 // 4, size - 2 * margin, size // 6), CARD_TEXT)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    card.save(target + ".tmp.png", "PNG")
    os.replace(target + ".tmp.png", target)
    return target
