"""Running a saved batch or a swatch inside Forge: one processing job per image, saved to Forge's outputs with full
infotext, Forge's progress state kept up to date, interrupt and skip honoured. The loop and the run state are
lib_orchestrator's (batches/run.py); this only turns a BatchImage into a Forge job."""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Collection, Dict, List, Optional, Tuple

from modules import processing, sd_models, shared

from lib_orchestrator.atomic import write_text_atomic
from lib_orchestrator.batches import Batch, BatchImage, RunState, Settings
from lib_orchestrator.batches.run import Progress, run_batch
from lib_orchestrator.provenance import KEY_GROUP, KEY_SWATCH, batch_provenance, group_value
from lib_orchestrator.swatches import Swatch, SwatchCell
from lib_orchestrator.swatches.grid import swatch_grid
from lib_orchestrator.swatches.run import CellResult, Key, run_swatch, swatch_record


def generator(batch: Batch) -> Callable[[BatchImage], Optional[str]]:
    def generate(image: BatchImage) -> Optional[str]:
        made = make_image(image.prompt, image.negative_prompt, image.seed, batch.settings,
                          batch.checkpoint_of(image), batch_provenance(batch, image))
        if made is None:
            return None
        return made[1] or f"seed-{image.seed} (not saved: Forge's saving is off)"
    return generate


def make_image(prompt: str, negative: str, seed: int, settings: Settings, checkpoint: Optional[str],
               provenance: dict) -> Optional[Tuple[Any, Optional[str]]]:
    """One Forge job of one image: (the image, the file Forge saved it to, if saving is on), or None when
    it was interrupted or skipped."""
    if getattr(shared.state, "interrupted", False):
        return None
    p = processing.StableDiffusionProcessingTxt2Img(
        prompt=prompt, negative_prompt=negative, seed=seed, subseed=-1, batch_size=1, n_iter=1,
        do_not_save_grid=True, outpath_samples=outdir("samples"), outpath_grids=outdir("grids"),
        **settings.forge_fields())
    if checkpoint:
        info = sd_models.get_closet_checkpoint_match(checkpoint)
        if info is None:  # Forge would quietly make it with the loaded checkpoint instead
            raise ValueError(f"this Forge has no checkpoint named {checkpoint!r}")
        p.override_settings = {"sd_model_checkpoint": info.name}  # an exact alias: Forge ignores any other
    p.extra_generation_params.update(provenance)
    _attach_empty_runner(p)
    processed = processing.process_images(p)
    # Skip stops this image's sampling early; it is not a finished image, so it is recorded as skipped
    # and made again on resume. The flag is ours to clear: with one image per job, Forge clears it only
    # when the next job starts.
    skipped = bool(getattr(shared.state, "skipped", False))
    shared.state.skipped = False
    if skipped or not processed.images or getattr(shared.state, "interrupted", False):
        return None
    image = processed.images[-1]
    return image, getattr(image, "already_saved_as", None)


def outdir(kind: str) -> str:
    """Where Forge's txt2img saves images ("samples") or grids: the one folder for all if set, else txt2img's."""
    opts = shared.opts
    return (getattr(opts, f"outdir_{kind}", "") or getattr(opts, f"outdir_txt2img_{kind}", "")
            or f"outputs/txt2img-{'images' if kind == 'samples' else 'grids'}")


def _attach_empty_runner(p) -> None:  # type: ignore[no-untyped-def]
    """Forge re-slices the prompts (with their <lora:…> tags) for the infotext only when `p.scripts` is
    set; an empty runner gets the full prompt into the saved image without running any AlwaysOn script
    (which would compose the already composed prompt again)."""
    try:
        from modules import scripts

        p.scripts = scripts.ScriptRunner()
        p.script_args = ()
    except Exception:  # another variant's runner: the images are still right, only their infotext is shorter
        p.scripts = None


def run_in_forge(batch: Batch, batch_path: str, on_progress: Callable[[Progress], None] = lambda p: None) -> List[str]:
    """Run what is left of a batch; Forge's progress text shows "image 37/200 · LoRAs … · ETA"."""
    state = shared.state
    todo = RunState(batch_path).remaining(batch)
    state.job_count = len(todo)

    def progress(p: Progress) -> None:
        state.textinfo = p.text()
        on_progress(p)

    return run_batch(batch, RunState(batch_path), generator(batch),
                     should_stop=lambda: bool(getattr(state, "interrupted", False)), on_progress=progress)


def run_swatch_in_forge(swatch: Swatch, settings: Settings, checkpoint: Optional[str] = None,
                        only: Optional[Collection[Key]] = None, previous: Optional[Dict[Key, CellResult]] = None,
                        on_cell: Callable[[str], None] = lambda text: None
                        ) -> Tuple[Dict[Key, CellResult], Optional[str], Optional[str]]:
    """Make the swatch's cells (or `only` some of them, keeping `previous` results), each saved to
    Forge's outputs with full infotext; then save the grid with its infotext and the swatch's JSON
    record beside it. Returns (results, grid file, record file); an interrupt keeps the cells made."""
    state = shared.state
    if state.job_count <= 0:  # else the caller counted the cells of several grids
        state.job_count = len([c for c in swatch.cells if only is None or (c.row, c.column) in only])

    def progress(k: int, n: int, cell: SwatchCell) -> None:
        state.textinfo = f"swatch cell {k + 1}/{n} · {cell.lora or 'no LoRA'}" + (
            f" at {cell.weight:g}" if cell.lora else "")
        on_cell(state.textinfo)

    group = group_value(swatch.prompt, swatch.negative, str(swatch.seed), checkpoint or "")

    def generate(cell: SwatchCell) -> Optional[Tuple[Any, Optional[str]]]:
        provenance = {KEY_SWATCH: f"{cell.lora}:{cell.weight:g}" if cell.lora else "baseline",
                      KEY_GROUP: group}
        return make_image(cell.prompt, cell.negative_prompt, cell.seed, settings, checkpoint, provenance)

    results = run_swatch(swatch, generate, should_stop=lambda: bool(getattr(state, "interrupted", False)),
                         on_cell=progress, only=only, previous=previous)
    images_made = {key: r.image if r.image is not None else _open(r.file) for key, r in results.items() if r.made}
    images_made = {key: image for key, image in images_made.items() if image is not None}
    if not images_made:
        return results, None, None
    from modules import images, infotext_utils

    grid = swatch_grid(swatch, images_made, font_path=getattr(shared.opts, "font", "") or None)
    first = images_made.get((0, 0)) or next(iter(images_made.values()))  # X/Y/Z's way: the first image's infotext
    info = (getattr(first, "info", {}) or {}).get("parameters", swatch.prompt)
    axes = f"{', '.join(swatch.loras) or 'none'} × {', '.join(swatch.column_labels())}"
    info += f", {KEY_SWATCH}: {infotext_utils.quote(axes)}"  # quoted: its commas are not new keys
    grid_file, _ = images.save_image(grid, outdir("grids"),
                                     "swatch", seed=swatch.seed, prompt=swatch.prompt,
                                     extension=getattr(shared.opts, "grid_format", "png") or "png", info=info,
                                     short_filename=False, grid=True)
    record_file = os.path.splitext(grid_file)[0] + ".swatch.json"
    write_text_atomic(record_file, json.dumps(swatch_record(swatch, results), indent=2, ensure_ascii=False) + "\n")
    return results, grid_file, record_file


def _open(file: Optional[str]) -> Any:
    """A cell made in an earlier run, read back from Forge's outputs (None if it is gone)."""
    from PIL import Image

    try:
        with Image.open(file) as image:  # type: ignore[arg-type]
            image.load()
            return image.copy()
    except (OSError, TypeError, ValueError):
        return None


def saved_batches(folder: str) -> List[str]:
    try:
        return sorted(f for f in os.listdir(folder) if f.endswith((".json", ".txt", ".csv")))
    except OSError:
        return []


__all__ = ["generator", "make_image", "run_in_forge", "run_swatch_in_forge", "saved_batches"]
