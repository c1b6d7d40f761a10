"""Text drawn into images (swatch grid labels, library name cards): a font that has the glyphs, and labels
wrapped to their box (by word, or by character for CJK names without spaces), ending in an ellipsis when
they still do not fit, so a long name never spills out."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from PIL import ImageDraw, ImageFont

MAX_LABEL_LINES = 4
FONT_CANDIDATES = ("NotoSansCJK-Regular.ttc", "NotoSansCJKjp-Regular.otf", "DejaVuSans.ttf")


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


def draw_lines(draw: ImageDraw.ImageDraw, lines: Sequence[str], font: ImageFont.ImageFont, line_h: int,
               box: Tuple[int, int, int, int], fill: Tuple[int, int, int] = (0, 0, 0)) -> None:
    """`lines` centred in `box` (x, y, width, height)."""
    x, y, w, h = box
    top = y + max(0, (h - line_h * len(lines)) // 2)
    for k, line in enumerate(lines):
        width = draw.textlength(line, font=font)
        draw.text((x + (w - width) / 2, top + k * line_h), line, fill=fill, font=font)


def load_font(path: Optional[str], size: int) -> ImageFont.ImageFont:
    """The given font (Forge's own setting), else one with CJK glyphs, else DejaVu, else Pillow's."""
    for candidate in ((path,) if path else ()) + FONT_CANDIDATES:
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    return ImageFont.load_default()
