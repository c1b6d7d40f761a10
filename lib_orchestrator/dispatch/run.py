"""Dispatching a saved batch file, as the CLI and the tab both do: its queue, its run state, its servers."""
from __future__ import annotations

import threading
from typing import Callable, Optional, Sequence

from ..batches import Batch, RunState
from .dispatcher import DEFAULT_OPTIONS, Dispatcher, Options
from .forge_client import ForgeClient
from .jobs import batch_id, default_queue
from .progress import Snapshot
from .queue import Job, JobQueue


def dispatch_file(batch: Batch, batch_path: str, servers: Sequence[str], out_dir: str, queue: Optional[str] = None,
                  options: Options = DEFAULT_OPTIONS, stop: Optional[threading.Event] = None,
                  on_snapshot: Callable[[Snapshot], None] = lambda s: None,
                  on_image: Callable[[str], None] = lambda path: None) -> Snapshot:
    """Make what is left of the batch at `batch_path` on `servers`. Images the tab's *Run* already made in Forge
    (its run state) are not made again, and each image made here is written to that run state too, so *Run* and
    `batch show` see it: one batch, one record of what is done, whichever way its images were made."""
    state = RunState(batch_path)
    identity = batch_id(batch)

    def done(job: Job, path: str) -> None:
        state.record(job.image_index, "done", path)
        on_image(path)

    jobs = JobQueue(queue or default_queue(batch_path), max_attempts=options.max_attempts)
    try:
        _catch_up(state, jobs, identity)
        made_in_forge = set(state.done())
        dispatcher = Dispatcher(jobs, batch, identity, [ForgeClient(url) for url in servers], out_dir,
                                options, on_done=done, skip=made_in_forge)
        try:
            return dispatcher.run(stop, on_snapshot)
        finally:
            _catch_up(state, jobs, identity)
    finally:
        jobs.close()


def _catch_up(state: RunState, jobs: JobQueue, identity: str) -> None:
    """Images the queue has done whose `done` never reached the run state (a kill between the two writes, or
    another dispatcher on a shared queue): recorded now, so the tab's Run never makes them a second time."""
    recorded = state.done()
    for job in jobs.jobs(identity):
        if job.status == "done" and job.file and job.image_index not in recorded:
            state.record(job.image_index, "done", job.file)
