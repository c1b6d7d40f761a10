"""A swatch session in the tab: one or more grids run one after another, what to show of them (the
gallery and a status line per grid), and what to keep so *Re-run missing cells* makes only those.

The host makes each grid (`make_grid`: Forge runs and saves the cells, then the grid). Between runs
the session keeps files, never images, so a long session does not hold every image in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .plan import Swatch
from .run import CellResult, Key, failed_cells

# (results, grid file, record file) of one grid
GridRun = Tuple[Dict[Key, CellResult], Optional[str], Optional[str]]
MakeGrid = Callable[[Swatch, Any, Optional[str], Optional[Sequence[Key]], Optional[Dict[Key, CellResult]]], GridRun]


@dataclass(frozen=True)
class PlannedGrid:
    swatch: Swatch
    checkpoint: Optional[str]  # None: the selected one
    settings: Any  # the batches.Settings its cells are made with
    results: Optional[Dict[Key, CellResult]] = None  # from an earlier run: only its missing cells are made


@dataclass(frozen=True)
class SessionView:
    gallery: List[Tuple[str, str]]  # (file, caption): each grid, then its cells
    status: str
    grids: List[PlannedGrid]  # to re-run later
    chosen: List[Tuple[Optional[str], Optional[str]]]  # per gallery item: (LoRA, file) of a cell, else (None, None)

    def state(self) -> Dict[str, Any]:
        """What the tab keeps between runs (a Gradio State)."""
        return {"grids": self.grids, "gallery": self.chosen}


def run_grids(planned: Sequence[PlannedGrid], make_grid: MakeGrid, stopped: Callable[[], bool] = lambda: False,
              on_start: Callable[[int], None] = lambda cells: None, note: str = "") -> SessionView:
    """Make every grid (a grid run before makes only its missing cells; a complete one is kept as it is),
    and say for each how many cells were made."""
    todo = [failed_cells(g.results, g.swatch) if g.results is not None else None for g in planned]
    on_start(sum(len(g.swatch.cells) if only is None else len(only) for g, only in zip(planned, todo)))
    gallery: List[Tuple[str, str]] = []
    chosen: List[Tuple[Optional[str], Optional[str]]] = []
    kept: List[PlannedGrid] = []
    lines = [note] if note else []
    for grid, only in zip(planned, todo):
        results, grid_file, record_file = grid.results or {}, None, None
        if only is None or (only and not stopped()):
            results, grid_file, record_file = make_grid(grid.swatch, grid.settings, grid.checkpoint, only,
                                                        grid.results)
        kept.append(PlannedGrid(grid.swatch, grid.checkpoint, grid.settings,
                                {k: r.without_image() for k, r in results.items()}))
        title = grid.checkpoint or (grid.swatch.prompt if len(planned) > 1 else "")
        if grid_file:
            gallery.append((grid_file, f"grid · {title}" if title else "grid"))
            chosen.append((None, None))
        for r in results.values():
            if r.made and r.file:
                gallery.append((r.file, f"{r.cell.lora} @ {r.cell.weight:g}" if r.cell.lora else "no LoRA"))
                chosen.append((r.cell.lora, r.file))
        missing = failed_cells(results, grid.swatch)
        errors = sorted({r.error for r in results.values() if r.error and r.error != "skipped"})
        lines.append(f"{title + ': ' if title else ''}{len(grid.swatch.cells) - len(missing)}/"
                     f"{len(grid.swatch.cells)} cells made"
                     + (f"; {len(missing)} missing: re-run them alone" if missing else "")
                     + (f" ({'; '.join(errors)})" if errors else ""))
        if record_file:
            lines.append(f"saved `{grid_file}` and `{record_file}`")
    return SessionView(gallery, "\n\n".join(lines), kept, chosen)
