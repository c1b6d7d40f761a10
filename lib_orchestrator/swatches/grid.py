"""The swatch grid: a baseline row, then one row per LoRA; weights across; names on the left and
weights on top. Labels wrap to their box (by word, or by character for CJK names without spaces) and
end in an ellipsis when they still do not fit, so a long name never spills into the images."""
from __future__ import annotations

from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

from .plan import Swatch

MAX_LABEL_LINES = 4
FONT_CANDIDATES = ("NotoSansCJK-Regular.ttc", "NotoSansCJKjp-Regular.otf", "DejaVuSans.ttf")
BACKGROUND = (255, 255, 255)
MISSING = (220, 220, 220)


def wrap_label(text: str, width: float, measure: Callable[[str], float],
               max_lines: int = MAX_LABEL_LINES) -> List[str]:
    """Lines of `text` no wider than `width`: words where they fit, else characters; the last line
    ends in "…" when the text is longer than `max_lines`."""
    lines: List[str] = []
    line = ""
    for token in _tokens(text):
        candidate = line + token if line else token.lstrip()
        if line and measure(candidate) > width:
            lines.append(line.rstrip())
            candidate = token.lstrip()
        while len(candidate) > 1 and measure(candidate) > width:  # a word wider than the box
            k = _fitting(candidate, width, measure)
            lines.append(candidate[:k])
            candidate = candidate[k:]
        line = candidate
    if line.strip():
        lines.append(line.rstrip())
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and measure(last + "…") > width:
            last = last[:-1]
        lines = lines[:max_lines - 1] + [last + "…"]
    return lines


def swatch_grid(swatch: Swatch, images: Mapping[Tuple[int, int], Image.Image], font_path: Optional[str] = None,
                font_size: int = 0) -> Image.Image:
    """The grid for the cells made so far; a missing cell (interrupted or failed) is a grey box."""
    cell_w, cell_h = _cell_size(images)
    size = font_size or max(12, cell_w // 18)
    font = _font(font_path, size)
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
        _draw_lines(draw, wrap_label(label, cell_w - size, measure, 2), font, line_h,
                    (label_w + c * cell_w, 0, cell_w, header_h))
    for r, label in enumerate(rows):
        _draw_lines(draw, wrap_label(label, label_w - size, measure), font, line_h,
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


def _tokens(text: str) -> List[str]:
    """Words with their leading space; a CJK character is a word of its own."""
    tokens: List[str] = []
    for ch in text:
        if ch.isspace() or ch in "_-/" or not tokens:
            tokens.append(ch)
        elif _is_wide(ch) or _is_wide(tokens[-1][-1]):
            tokens.append(ch)
        else:
            tokens[-1] += ch
    return tokens


def _is_wide(ch: str) -> bool:
    return ord(ch) >= 0x2E80  # CJK radicals onwards: Chinese, Japanese and Korean break anywhere


def _fitting(text: str, width: float, measure: Callable[[str], float]) -> int:
    """How many leading characters fit in `width` (at least one, so wrapping always moves on)."""
    k = 1
    while k < len(text) and measure(text[:k + 1]) <= width:
        k += 1
    return k


def _draw_lines(draw: ImageDraw.ImageDraw, lines: Sequence[str], font: ImageFont.ImageFont, line_h: int,
                box: Tuple[int, int, int, int]) -> None:
    x, y, w, h = box
    top = y + max(0, (h - line_h * len(lines)) // 2)
    for k, line in enumerate(lines):
        width = draw.textlength(line, font=font)
        draw.text((x + (w - width) / 2, top + k * line_h), line, fill=(0, 0, 0), font=font)


def _cell_size(images: Mapping[Tuple[int, int], Image.Image]) -> Tuple[int, int]:
    if not images:
        return 256, 256
    return max(i.width for i in images.values()), max(i.height for i in images.values())


def _font(path: Optional[str], size: int) -> ImageFont.ImageFont:
    """The given font (Forge's own setting), else one with CJK glyphs, else DejaVu, else Pillow's."""
    for candidate in ((path,) if path else ()) + FONT_CANDIDATES:
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    return ImageFont.load_default()
