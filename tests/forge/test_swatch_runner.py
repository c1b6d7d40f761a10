"""A swatch run inside the Forge stand-in: one image per cell with the right prompt, LoRA weight and
seed, saved with Forge's infotext; the grid and its JSON record saved; an interrupt keeps the finished
cells, and re-running the missing ones completes the grid."""
from __future__ import annotations

import json

from PIL import Image

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.batches import Settings
from lib_orchestrator.library import scan_library
from lib_orchestrator.swatches import plan_swatch
from lib_orchestrator.swatches.run import failed_cells


def swatch_of(names):
    records = {r.name: r for r in scan_library(SAMPLE_LORAS).records}
    return plan_swatch("a lighthouse keeper at dusk", 321, [records[n] for n in names], (0.5, 1.0), "SDXL 1.0")


def test_every_cell_is_one_forge_image_and_the_grid_is_saved_with_its_record(runner):
    from modules import infotext_utils

    swatch = swatch_of(["watercolor_wash_xl", "lighthouse_keeper_xl"])
    settings = Settings(steps=2, width=64, height=96)
    results, grid_file, record_file = runner.run_swatch_in_forge(swatch, settings)
    assert not failed_cells(results, swatch) and len(results) == 5
    for cell in swatch.cells:
        with Image.open(results[(cell.row, cell.column)].file) as saved:
            params = infotext_utils.parse_generation_parameters(saved.info["parameters"])
        assert params["Prompt"] == cell.prompt and params["Seed"] == "321"
        if cell.lora:
            assert f"<lora:{cell.lora}:{cell.weight:g}>" in params["Prompt"] and params.get("Lora hashes")
        else:
            assert "<lora:" not in params["Prompt"] and "Lora hashes" not in params
    with Image.open(grid_file) as grid:
        assert grid.width > 2 * 64 and grid.height > 3 * 96
        grid_params = infotext_utils.parse_generation_parameters(grid.info["parameters"])
    assert grid_params["Orchestrator swatch"] == "watercolor_wash_xl, lighthouse_keeper_xl × 0.5, 1"
    assert grid_params["Prompt"] == "a lighthouse keeper at dusk"  # the baseline's infotext, as X/Y/Z does
    with open(record_file, encoding="utf-8") as fh:
        record = json.load(fh)
    assert [c["file"] for c in record["cells"]] == [results[(c.row, c.column)].file for c in swatch.cells]


def test_an_interrupt_keeps_finished_cells_and_the_rest_can_be_made_alone(runner):
    from modules import shared

    swatch = swatch_of(["watercolor_wash_xl", "lighthouse_keeper_xl"])
    texts = []

    def stop_after_3(text):
        texts.append(text)
        if len(texts) == 4:  # the user presses Interrupt while the 4th cell runs
            shared.state.interrupt()

    results, grid_file, _ = runner.run_swatch_in_forge(swatch, Settings(steps=2, width=64, height=96),
                                                       on_cell=stop_after_3)
    assert sum(r.made for r in results.values()) == 3 and grid_file
    assert texts[1] == "swatch cell 2/5 · watercolor_wash_xl at 0.5"
    shared.state.interrupted = False
    missing = failed_cells(results, swatch)
    assert len(missing) == 2
    texts.clear()
    kept = {key: r.without_image() for key, r in results.items()}  # what the tab keeps between runs
    again, grid_file, _ = runner.run_swatch_in_forge(swatch, Settings(steps=2, width=64, height=96), only=missing,
                                                     previous=kept, on_cell=texts.append)
    assert len(texts) == 2 and not failed_cells(again, swatch)
    with Image.open(grid_file) as grid:  # the earlier cells were read back from their files into the grid
        label_w, header_h = grid.width - 2 * 64, grid.height - 3 * 96
        assert grid.convert("RGB").getpixel((label_w + 32, header_h + 24)) != (220, 220, 220)


def test_incompatible_loras_are_left_out_with_a_note(runner):
    records = scan_library(SAMPLE_LORAS).records
    sd15 = next(r for r in records if r.base_model == "SD 1.5")
    swatch = plan_swatch("a cat", 1, [sd15], (1.0,), "SDXL 1.0")
    assert swatch.loras == () and "does not load on a SDXL 1.0 checkpoint" in swatch.notes[0]
    results, _, _ = runner.run_swatch_in_forge(swatch, Settings(steps=2, width=64, height=96))
    assert list(results) == [(0, 0)]
