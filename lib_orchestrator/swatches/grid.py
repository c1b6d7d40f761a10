"""The swatch grid: a baseline row, then one row per LoRA; weights across; names on the left and
weights on top, wrapped to their boxes (drawing.wrap_label)."""
from __future__ import annotations

from typing import Mapping, Optional, Tuple

from PIL import Image, ImageDraw

from ..drawing import draw_lines, load_font, wrap_label
from .plan import Swatch

__all__ = ["BACKGROUND", "MISSING", "swatch_grid", "wrap_label"]
BACKGROUND = (255, 255, 255)
MISSING = (220, 220, 220)


def swatch_grid(swatch: Swatch, images: Mapping[Tuple[int, int], Image.Image], font_path: Optional[str] = None,
                font_size: int = 0) -> Image.Image:
    """The grid for the cells made so far; a missing cell (interrupted or failed) is a grey box."""
    cell_w, cell_h = _cell_size(images)
    size = font_size or max(12, cell_w // 18)
    font = load_font(font_path, size)
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def measure(text: str) -> float:
        return draw_probe.textlength(text, font=font)

    label_w = max(cell_w // 2, 8 * size)
    line_h = int(size * 1.25)
    header_h = line_h * 2 + size
    rows, columns = swatch.row_labels(), swatch.column_labels()
    grid = Image.new("RGB", (label_w + cell_w * len(columns), header_h + cell_h * len(rows)), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for c, label in enumerate(columns):
        draw_lines(draw, wrap_label(label, cell_w - size, measure, 2), font, line_h,
                    (label_w + c * cell_w, 0, cell_w, header_h))
    for r, label in enumerate(rows):
        draw_lines(draw, wrap_label(label, label_w - size, measure), font, line_h,
                    (0, header_h + r * cell_h, label_w, cell_h))
    for cell in swatch.cells:
        box = (label_w + cell.column * cell_w, header_h + cell.row * cell_h)
        image = images.get((cell.row, cell.column))
        if image is None:
            draw.rectangle([box, (box[0] + cell_w - 1, box[1] + cell_h - 1)], fill=MISSING)
        else:
            grid.paste(image.convert("RGB").resize((cell_w, cell_h)) if image.size != (cell_w, cell_h)
                       else image.convert("RGB"), box)
    return grid


def _cell_size(images: Mapping[Tuple[int, int], Image.Image]) -> Tuple[int, int]:
    if not images:
        return 256, 256
    return max(i.width for i in images.values()), max(i.height for i in images.values())
