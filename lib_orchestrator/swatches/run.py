"""Running a swatch: one image per cell, in order, independent of who makes the images.

`generate(cell) -> image` is the host's (Forge runs one processing job per call) and returns None
when the cell was skipped or interrupted. A cell whose generation raises is recorded as failed with
its error and the run goes on; an interrupt stops it and keeps the cells already made. Re-running
`only` some cells (the failed ones) fills them in without touching the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Collection, Dict, Optional, Tuple

from .plan import Swatch, SwatchCell

Key = Tuple[int, int]  # (row, column)


@dataclass(frozen=True)
class CellResult:
    cell: SwatchCell
    image: Any = None  # the host's image (a PIL image in Forge) while it is in memory
    file: Optional[str] = None  # where the host saved it
    error: Optional[str] = None

    @property
    def made(self) -> bool:
        return self.image is not None or self.file is not None

    def without_image(self) -> "CellResult":
        """The result kept between runs: its file is enough (images held for a session add up fast)."""
        return replace(self, image=None) if self.file is not None else self


def run_swatch(swatch: Swatch, generate: Callable[[SwatchCell], Optional[Tuple[Any, Optional[str]]]],
               should_stop: Callable[[], bool] = lambda: False,
               on_cell: Callable[[int, int, SwatchCell], None] = lambda k, n, c: None,
               only: Optional[Collection[Key]] = None,
               previous: Optional[Dict[Key, CellResult]] = None) -> Dict[Key, CellResult]:
    """Results by (row, column): `previous` ones kept, the cells in `only` (default: all) made again."""
    results: Dict[Key, CellResult] = dict(previous or {})
    todo = [c for c in swatch.cells if only is None or (c.row, c.column) in only]
    for k, cell in enumerate(todo):
        if should_stop():
            break
        on_cell(k, len(todo), cell)
        try:
            made = generate(cell)
        except Exception as exc:  # one bad cell (a LoRA Forge cannot load) must not end the swatch
            results[(cell.row, cell.column)] = CellResult(cell, error=f"{type(exc).__name__}: {exc}")
            continue
        if made is None:
            results.setdefault((cell.row, cell.column), CellResult(cell, error="skipped"))
            continue
        image, file = made
        results[(cell.row, cell.column)] = CellResult(cell, image, file)
    return results


def failed_cells(results: Dict[Key, CellResult], swatch: Swatch) -> Tuple[Key, ...]:
    """The cells to re-run: failed, skipped or never reached."""
    return tuple((c.row, c.column) for c in swatch.cells
                 if not (results.get((c.row, c.column)) and results[(c.row, c.column)].made))


def swatch_record(swatch: Swatch, results: Dict[Key, CellResult]) -> Dict[str, Any]:
    """The small JSON record saved beside the grid: what was asked and what each cell became."""
    return {"schema": "orchestrator-swatch", "version": 1, "prompt": swatch.prompt, "negative": swatch.negative,
            "seed": swatch.seed, "weights": list(swatch.weights), "loras": list(swatch.loras),
            "notes": list(swatch.notes),
            "cells": [{"row": c.row, "column": c.column, "lora": c.lora, "weight": c.weight, "prompt": c.prompt,
                       "negative_prompt": c.negative_prompt,
                       "file": results[(c.row, c.column)].file if (c.row, c.column) in results else None,
                       "error": results[(c.row, c.column)].error if (c.row, c.column) in results else "not run"}
                      for c in swatch.cells]}
