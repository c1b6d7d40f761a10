"""modules.images stand-in (Pillow): image_grid, save_image with callbacks, read_info_from_image."""
from __future__ import annotations

import math
import os

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


def save_image(image, path, basename, seed=None, prompt=None, extension="png", info=None, short_filename=False,
               no_prompt=False, grid=False, pnginfo_section_name="parameters", p=None, existing_info=None,
               forced_filename=None, suffix="", save_to_dirs=None):
    """Simplified naming: NNNNN-seed[-basename][suffix].ext (or forced_filename). Returns (fullfn, None)."""
    from PIL import PngImagePlugin

    path = path or (shared.opts.outdir_txt2img_grids if grid else shared.opts.outdir_txt2img_samples)
    os.makedirs(path, exist_ok=True)
    if forced_filename is None:
        seq = len([x for x in os.listdir(path) if x[:5].isdigit()])
        parts = [f"{seq:05}", str(seed) if seed is not None and not short_filename else None, basename or None]
        file_decoration = "-".join(x for x in parts if x)
        fullfn = os.path.join(path, f"{file_decoration}{suffix}.{extension}")
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

    if extension.lower() == "png":
        pi = PngImagePlugin.PngInfo()
        for k, v in params.pnginfo.items():
            pi.add_text(k, str(v))
        image.save(fullfn, pnginfo=pi if shared.opts.enable_pnginfo else None)
    else:
        image.convert("RGB").save(fullfn)

    image.already_saved_as = fullfn
    script_callbacks.image_saved_callback(params)
    return fullfn, None


def read_info_from_image(image):
    items = dict(image.info or {})
    geninfo = items.pop("parameters", None)
    return geninfo, items
