"""Running a saved batch inside Forge: one processing job per image, saved to Forge's outputs with full
infotext, Forge's progress state kept up to date, interrupt and skip honoured. The loop and the run state are
lib_orchestrator's (batches/run.py); this only turns a BatchImage into a Forge job."""
from __future__ import annotations

import os
import sys
from typing import Callable, List, Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from modules import processing, shared  # noqa: E402

from lib_orchestrator.batches import Batch, BatchImage, RunState  # noqa: E402
from lib_orchestrator.batches.run import Progress, run_batch  # noqa: E402
from lib_orchestrator.job import KEY_LORAS, KEY_TEMPLATE  # noqa: E402


def generator(batch: Batch) -> Callable[[BatchImage], Optional[str]]:
    def generate(image: BatchImage) -> Optional[str]:
        if getattr(shared.state, "interrupted", False):
            return None
        p = processing.StableDiffusionProcessingTxt2Img(
            prompt=image.prompt, negative_prompt=image.negative_prompt, seed=image.seed, subseed=-1,
            batch_size=1, n_iter=1, do_not_save_grid=True,
            outpath_samples=getattr(shared.opts, "outdir_txt2img_samples", "") or "outputs/txt2img-images",
            outpath_grids=getattr(shared.opts, "outdir_txt2img_grids", "") or "outputs/txt2img-grids",
            **batch.settings.forge_fields())
        checkpoint = batch.checkpoint_of(image)
        if checkpoint:
            p.override_settings = {"sd_model_checkpoint": checkpoint}
        p.extra_generation_params.update(_provenance(batch, image))
        _attach_empty_runner(p)
        processed = processing.process_images(p)
        # Skip stops this image's sampling early (Forge saves the partial image); it is not a finished
        # image, so it is recorded as skipped and made again on resume. The flag is ours to clear: with
        # one image per job, Forge clears it only when the next job starts.
        skipped = bool(getattr(shared.state, "skipped", False))
        shared.state.skipped = False
        if skipped or not processed.images or getattr(shared.state, "interrupted", False):
            return None
        image_out = processed.images[-1]
        return getattr(image_out, "already_saved_as", None) or f"seed-{image.seed} (not saved: Forge's saving is off)"
    return generate


def _provenance(batch: Batch, image: BatchImage) -> dict:
    values = {KEY_LORAS: "; ".join(f"{n}:{w:g}:{r}" for n, w, r in image.loras) or "none",
              "Orchestrator batch": f"{batch.name} #{image.index}"}
    if batch.template:
        values[KEY_TEMPLATE] = batch.template
    return values


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


def saved_batches(folder: str) -> List[str]:
    try:
        return sorted(f for f in os.listdir(folder) if f.endswith((".json", ".txt", ".csv")))
    except OSError:
        return []


__all__ = ["generator", "run_in_forge", "saved_batches"]
