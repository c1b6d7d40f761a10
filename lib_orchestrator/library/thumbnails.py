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


def placeholder(cache_dir: str, size: int = SIZE) -> Optional[str]:
    """A plain card for LoRAs without a preview, so the gallery still shows them."""
    target = os.path.join(cache_dir, f"placeholder-{size}.png")
    if os.path.exists(target):
        return target
    try:
        from PIL import Image
    except ImportError:
        return None
    os.makedirs(cache_dir, exist_ok=True)
    Image.new("RGB", (size, size), (58, 62, 70)).save(target, "PNG")
    return target
