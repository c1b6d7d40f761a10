"""Running a batch: the loop, its progress text and its run state, independent of who makes the images.

`generate(image) -> saved file` is the host's (Forge runs one processing job per call). Every image is
recorded `started` before and `done` after, so stopping at any point, by an interrupt, a crash or a
restart, loses nothing and repeats nothing on resume.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional

from .model import Batch, BatchImage
from .state import RunState


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    image: Optional[BatchImage]
    eta_seconds: Optional[float]

    def text(self) -> str:
        if self.image is None:
            return f"{self.done:,}/{self.total:,} images done"
        loras = ", ".join(f"{n}:{w:g}" for n, w, _ in self.image.loras) or "no LoRAs"
        eta = f" · ETA {self.eta_seconds:.0f} s" if self.eta_seconds is not None else ""
        return f"image {self.done + 1:,}/{self.total:,} · seed {self.image.seed} · LoRAs {loras}{eta}"


def run_batch(batch: Batch, state: RunState, generate: Callable[[BatchImage], Optional[str]],
              should_stop: Callable[[], bool] = lambda: False,
              on_progress: Callable[[Progress], None] = lambda p: None,
              clock: Callable[[], float] = time.monotonic) -> List[str]:
    """Generate what is left, in checkpoint order; returns the files made this time."""
    total = len(batch.images)
    todo = state.remaining(batch)
    done = total - len(todo)
    made: List[str] = []
    start = clock()
    for k, image in enumerate(todo):
        if should_stop():
            break
        elapsed = clock() - start
        eta = elapsed / k * (len(todo) - k) if k else None
        on_progress(Progress(done, total, image, eta))
        state.record(image.index, "started")
        file = generate(image)
        if file is None:  # the host skipped or failed it: it stays to do
            state.record(image.index, "skipped")
            continue
        state.record(image.index, "done", file)
        made.append(file)
        done += 1
    on_progress(Progress(done, total, None, None))
    return made
