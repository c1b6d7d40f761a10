"""Running a swatch: one generation per cell with its prompt, weight and seed; an interrupt keeps the
finished cells; a failed cell is recorded and can be re-run alone."""
from __future__ import annotations

import json

from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.swatches import plan_swatch
from lib_orchestrator.swatches.run import failed_cells, run_swatch, swatch_record

RECORDS = [LoraRecord(f"{n}.safetensors", n, base_model="SDXL 1.0", family="sdxl") for n in ("ink", "oil", "bad")]
SWATCH = plan_swatch("a lighthouse", 9, RECORDS, (0.5, 1.0), "SDXL 1.0")  # 1 + 3 x 2 cells


def test_one_generation_per_cell_a_failure_recorded_then_re_run_alone():
    calls = []

    def generate(cell):
        calls.append((cell.prompt, cell.weight, cell.seed))
        if cell.lora == "bad" and cell.weight == 1.0:
            raise RuntimeError("Forge could not load bad")
        return f"image {cell.row},{cell.column}", f"{cell.row}-{cell.column}.png"

    results = run_swatch(SWATCH, generate)
    assert len(calls) == 7 and ("a lighthouse <lora:oil:0.5>", 0.5, 9) in calls and ("a lighthouse", 0.0, 9) in calls
    assert failed_cells(results, SWATCH) == ((3, 1),)
    assert results[(3, 1)].error == "RuntimeError: Forge could not load bad"

    calls.clear()
    again = run_swatch(SWATCH, lambda c: ("fixed", "3-1.png"), only=failed_cells(results, SWATCH), previous=results)
    assert not failed_cells(again, SWATCH) and again[(1, 0)].image == "image 1,0" and again[(3, 1)].image == "fixed"
    record = swatch_record(SWATCH, again)
    assert json.loads(json.dumps(record))["cells"][6] == {
        "row": 3, "column": 1, "lora": "bad", "weight": 1.0, "prompt": "a lighthouse <lora:bad:1>",
        "negative_prompt": "", "file": "3-1.png", "error": None}


def test_an_interrupt_keeps_the_finished_cells():
    made = []

    def generate(cell):
        made.append(cell)
        return "image", None

    results = run_swatch(SWATCH, generate, should_stop=lambda: len(made) == 3)
    assert len(results) == 3 and all(r.made for r in results.values())
    assert len(failed_cells(results, SWATCH)) == 4
    assert swatch_record(SWATCH, results)["cells"][5]["error"] == "not run"
