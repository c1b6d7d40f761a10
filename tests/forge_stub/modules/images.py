"""modules.images stand-in (Pillow): image_grid, save_image with callbacks, read_info_from_image."""
from __future__ import annotations

import datetime
import math
import os
import re

from modules import script_callbacks, shared


class GridAnnotation:
    def __init__(self, text="", is_active=True):
        self.text = text
        self.is_active = is_active
        self.size = None


def image_grid(imgs, batch_size=1, rows=None):
    from PIL import Image

    if rows is None:
        if shared.opts.n_rows > 0:
            rows = shared.opts.n_rows
        elif shared.opts.n_rows == 0:
            rows = batch_size
        else:
            rows = math.sqrt(len(imgs))
            rows = round(rows)
    if rows > len(imgs):
        rows = len(imgs)
    cols = math.ceil(len(imgs) / rows)

    params = script_callbacks.ImageGridLoopParams(imgs, cols, rows)
    script_callbacks.image_grid_callback(params)

    w, h = map(max, zip(*(img.size for img in imgs)))
    grid = Image.new("RGB", size=(params.cols * w, params.rows * h), color="black")
    for i, img in enumerate(params.imgs):
        grid.paste(img, box=(i % params.cols * w, i // params.cols * h))
    return grid


def draw_grid_annotations(im, width, height, hor_texts, ver_texts, margin=0):
    """Simplified: no text drawn; keeps the geometry (a band on top and on the left)."""
    from PIL import Image

    pad_left = 0 if sum(len(t) for t in ver_texts) == 0 else width * 3 // 4
    pad_top = 0 if sum(len(t) for t in hor_texts) == 0 else height // 2
    cols = im.width // width
    rows = im.height // height
    result = Image.new("RGB", (im.width + pad_left + margin * (cols - 1), im.height + pad_top + margin * (rows - 1)),
                       "white")
    result.paste(im, (pad_left, pad_top))
    return result


_re_token = re.compile(r"\[([^\[\]]+)\]")
_re_nonletters = re.compile(r"[\s,.()\[\]{}<>:;!?|/\\]+")
_INVALID_FILENAME_CHARS = '#<>:"/\\|?*\n\r\t'


def _sanitize(text):
    text = "".join(c for c in str(text) if c not in _INVALID_FILENAME_CHARS)
    return text.lstrip(" ").rstrip(" .")[:128]


def _apply_pattern(pattern, seed, prompt):
    """A small FilenameGenerator: [date], [datetime], [seed], [prompt], [prompt_spaces], [prompt_words]; any other
    [token] stays as written (as Forge leaves tokens it does not know)."""
    now = datetime.datetime.now()
    words = [w for w in _re_nonletters.split(prompt or "") if w] or ["empty"]
    values = {
        "date": now.strftime("%Y-%m-%d"),
        "datetime": now.strftime("%Y%m%d%H%M%S"),
        "seed": "" if seed is None else seed,
        "prompt": _sanitize((prompt or "").replace(" ", "_")),
        "prompt_spaces": _sanitize(prompt or ""),
        "prompt_words": _sanitize(" ".join(words[:8])),
    }
    parts = _re_token.split(pattern)  # text, token, text, token, ..., text
    for i in range(1, len(parts), 2):
        token = parts[i]
        parts[i] = str(values[token.lower()]) if token.lower() in values else f"[{token}]"
    return "".join(parts)


def get_next_sequence_number(path, basename):
    """The next free number: one more than the largest `NNNNN…` (or `basename-NNNN…`) in the folder, from 0."""
    prefix = f"{basename}-" if basename else ""
    largest = -1
    for name in os.listdir(path):
        if name.startswith(prefix):
            first = os.path.splitext(name[len(prefix):])[0].split("-")[0]
            if first.isdigit():
                largest = max(largest, int(first))
    return largest + 1


def _exif_with_comment(text):
    """EXIF bytes holding `text` as UserComment in the Exif IFD, encoded as piexif's "unicode" (UTF-16 BE)."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x8769] = {0x9286: b"UNICODE\x00" + text.encode("utf-16-be")}
    return exif.tobytes()


def save_image(image, path, basename, seed=None, prompt=None, extension="png", info=None, short_filename=False,
               no_prompt=False, grid=False, pnginfo_section_name="parameters", p=None, existing_info=None,
               forced_filename=None, suffix="", save_to_dirs=None):
    """Forge's naming: into a `[date]` subfolder (opts.grid_save_to_dirs for grids, opts.save_to_dirs otherwise),
    `NNNNN-<seed>.png` for images, `<basename>-NNNN[-<seed>].ext` with a basename (grids: no seed when
    short_filename); the infotext goes into a PNG text chunk, or EXIF UserComment for jpg/webp (when
    opts.enable_pnginfo). Returns (fullfn, None); sets image.already_saved_as."""
    from PIL import PngImagePlugin

    opts = shared.opts
    path = path or (opts.outdir_txt2img_grids if grid else opts.outdir_txt2img_samples)
    if save_to_dirs is None:
        save_to_dirs = (grid and opts.grid_save_to_dirs) or (not grid and opts.save_to_dirs and not no_prompt)
    if save_to_dirs:
        subfolder = _apply_pattern(opts.directories_filename_pattern or "[prompt_words]", seed, prompt)
        path = os.path.join(path, subfolder.lstrip(" ").rstrip("\\ /"))
    os.makedirs(path, exist_ok=True)

    if forced_filename is None:
        if short_filename or seed is None:
            decoration = ""
        else:
            decoration = (getattr(p, "override_settings", None) or {}).get("samples_filename_pattern")
            if decoration is None:
                fallback = "[seed]" if opts.save_to_dirs else "[seed]-[prompt_spaces]"
                decoration = opts.samples_filename_pattern or fallback
        decoration = _apply_pattern(decoration, seed, prompt) + suffix
        add_number = opts.save_images_add_number or decoration == ""
        if decoration and add_number:
            decoration = f"-{decoration}"
        if add_number:
            start = get_next_sequence_number(path, basename)
            for i in range(500):
                stem = f"{start + i:05}" if basename == "" else f"{basename}-{start + i:04}"
                fullfn = os.path.join(path, f"{stem}{decoration}.{extension}")
                if not os.path.exists(fullfn):
                    break
        else:
            fullfn = os.path.join(path, f"{decoration}.{extension}")
    else:
        fullfn = os.path.join(path, f"{forced_filename}.{extension}")

    pnginfo = existing_info or {}
    if info is not None:
        pnginfo[pnginfo_section_name] = info

    params = script_callbacks.ImageSaveParams(image, p, fullfn, pnginfo)
    script_callbacks.before_image_saved_callback(params)
    image = params.image
    fullfn = params.filename
    info = params.pnginfo.get(pnginfo_section_name, None)

    ext = os.path.splitext(fullfn)[1].lower()
    if ext == ".png":
        pi = PngImagePlugin.PngInfo()
        for k, v in params.pnginfo.items():
            pi.add_text(k, str(v))
        image.save(fullfn, pnginfo=pi if opts.enable_pnginfo else None)
    elif ext in (".jpg", ".jpeg", ".webp") and opts.enable_pnginfo and info is not None:
        image.convert("RGB").save(fullfn, exif=_exif_with_comment(str(info)))
    else:
        image.convert("RGB").save(fullfn)

    image.already_saved_as = fullfn
    script_callbacks.image_saved_callback(params)
    return fullfn, None


def read_info_from_image(image):
    """(infotext, other info): the PNG "parameters" chunk, else the EXIF UserComment jpg/webp files carry."""
    items = dict(image.info or {})
    geninfo = items.pop("parameters", None)
    if "exif" in items:
        items.pop("exif")
        try:
            comment = image.getexif().get_ifd(0x8769).get(0x9286)
        except Exception:
            comment = None
        if isinstance(comment, bytes) and geninfo is None:
            body = comment[8:]
            if comment.startswith(b"UNICODE\x00"):
                geninfo = body.decode("utf-16-be", errors="ignore")
            else:
                geninfo = body.decode("utf-8", errors="ignore")
    return geninfo, items
