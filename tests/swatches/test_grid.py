"""The swatch grid: its size, where each cell lands, grey boxes for cells not made, and labels that
wrap inside their box, long names and CJK included."""
from __future__ import annotations

from PIL import Image

from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.swatches import plan_swatch
from lib_orchestrator.swatches.grid import MISSING, swatch_grid, wrap_label

LONG = "ultra_detailed_cinematic_film_grain_kodak_portra_400_style_v3_final_really_final"
CJK = "水彩画風スタイル・ローラ水彩画風スタイル"
RECORDS = [LoraRecord(f"{n}.safetensors", n, base_model="SDXL 1.0", family="sdxl") for n in ("ink", LONG, CJK)]


def width_of(text):  # a monospace stand-in for a font: 10 px per character, 20 for CJK
    return sum(20 if ord(ch) >= 0x2E80 else 10 for ch in text)


def test_labels_wrap_inside_their_box():
    assert wrap_label("ink", 100, width_of) == ["ink"]
    assert wrap_label("soft pastel light", 100, width_of) == ["soft", "pastel", "light"]
    for text in (LONG, CJK, "a " + LONG):
        lines = wrap_label(text, 120, width_of)
        assert 1 < len(lines) <= 4 and all(width_of(line) <= 120 for line in lines), lines
    assert wrap_label(LONG, 120, width_of)[-1].endswith("…")
    assert "".join(wrap_label(CJK, 200, width_of, max_lines=10)) == CJK  # nothing lost when it fits


def test_the_grid_has_a_row_per_lora_a_column_per_weight_and_grey_boxes_for_missing_cells():
    swatch = plan_swatch("a lighthouse", 5, RECORDS, (0.5, 1.0), "SDXL 1.0")
    colours = {(c.row, c.column): (40 * c.row, 100 * c.column, 200) for c in swatch.cells}
    images = {key: Image.new("RGB", (64, 48), colour) for key, colour in colours.items() if key != (2, 1)}
    grid = swatch_grid(swatch, images, font_size=10)
    label_w, header_h = grid.width - 2 * 64, grid.height - 4 * 48
    assert label_w >= 80 and header_h > 0
    for (row, column), colour in colours.items():
        centre = (label_w + column * 64 + 32, header_h + row * 48 + 24)
        assert grid.getpixel(centre) == (MISSING if (row, column) == (2, 1) else colour)
    assert grid.getpixel((label_w + 64 + 32, header_h + 24)) == (255, 255, 255)  # the baseline has one cell
