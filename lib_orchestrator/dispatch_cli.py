"""`python -m lib_orchestrator batch dispatch BATCH --forge URL …`: a saved batch made across several Forge servers
from a durable queue; the same command continues a stopped or killed run. Also what `batch show` reads of it."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, Iterator, List, Optional, TextIO

from .errors import Location, OrchestratorError

if TYPE_CHECKING:
    from .batches import Batch
    from .dispatch.progress import Snapshot
    from .dispatch.queue import Job


def add_dispatch_parser(batch_sub: "argparse._SubParsersAction", positive: Callable[[str], int]) -> None:
    dispatch = batch_sub.add_parser(
        "dispatch", help="make a saved batch on several Forge servers at once (resumable: run it again to continue)")
    dispatch.add_argument("file", metavar="BATCH", help="the batch file (.json, .txt or .csv)")
    dispatch.add_argument("--forge", action="append", required=True, metavar="URL",
                          help="a Forge server started with --api, e.g. http://127.0.0.1:7860 or "
                               "http://user:pass@host:7861 for --api-auth; give it once per server (required)")
    dispatch.add_argument("--queue", metavar="URL",
                          help="sqlite:///FILE, a file path, or postgresql://user@host/db to share one queue "
                               "between machines (default: BATCH.queue.sqlite beside the batch)")
    dispatch.add_argument("--out", metavar="DIR", help="where the images go (default: a folder named like the "
                                                       "batch, beside it)")
    dispatch.add_argument("--max-attempts", type=positive, default=3, metavar="N",
                          help="how often an image is tried when servers fail before it is marked failed "
                               "(default: 3)")
    dispatch.add_argument("--no-affinity", action="store_true",
                          help="take images strictly in order instead of preferring each server's loaded "
                               "checkpoint (switching costs 5-30 s)")
    dispatch.add_argument("--wait", type=positive, default=60, metavar="S",
                          help="seconds to wait at the start for a first server to answer before giving up with "
                               "why each did not (default: 60; servers that go down later are waited for)")
    dispatch.add_argument("--lease", type=positive, default=60, metavar="S",
                          help="seconds an image stays claimed without news from its server before another may "
                               "take it (default: 60; renewed every second while Forge works)")


def queue_jobs(batch: "Batch", batch_path: str, queue: Optional[str]) -> Optional[Dict[int, "Job"]]:
    """Image index -> its queue row, when the batch was dispatched (the default queue file exists, or `queue`
    is given); None otherwise."""
    from .dispatch.jobs import batch_id, default_queue

    if queue is None:
        queue = default_queue(batch_path)
        if not os.path.exists(queue):
            return None
    from .dispatch.queue import JobQueue

    jobs = JobQueue(queue, create=False)  # reading: nothing created or written
    try:
        return {job.image_index: job for job in jobs.jobs(batch_id(batch))}
    finally:
        jobs.close()


def run_dispatch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .batches import load_batch
    from .dispatch.dispatcher import Options
    from .dispatch.jobs import default_out
    from .dispatch.run import dispatch_file
    from .dispatch.servers import parse_servers

    servers = parse_servers("\n".join(args.forge), "--forge")
    batch = load_batch(args.file)
    if not batch.images:
        raise OrchestratorError("the batch has no images", Location(args.file, 0, 0), "plan it with a --count")
    out_dir = args.out or default_out(args.file)
    if not any(batch.checkpoint_of(image) for image in batch.images):
        err.write("note: the batch names no checkpoint: each server makes its images with the one it has loaded\n")
    options = Options(lease_s=float(args.lease), affinity=not args.no_affinity, max_attempts=args.max_attempts,
                      first_contact_s=float(args.wait))
    bar = _Bar(err)
    stop = threading.Event()
    start = time.monotonic()
    with _stopped_by_sigterm(stop):
        try:
            result = dispatch_file(batch, args.file, servers, out_dir, args.queue, options, stop, bar.update)
        except KeyboardInterrupt:
            stop.set()
            bar.close()
            err.write("stopped: the images being made were handed back; run the same command to continue\n")
            return 130
        finally:
            bar.close()
    return _summary(result, len(batch.images), args.file, out_dir, time.monotonic() - start, out, err)


@contextlib.contextmanager
def _stopped_by_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM (a service manager, `kill`) and SIGHUP (the terminal closed) stop the run as Ctrl-C does: the images
    being made are handed back at once instead of waiting out their leases."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {name: signal.signal(getattr(signal, name), lambda *_: stop.set()) for name in names}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def _summary(result: "Snapshot", images: int, batch_path: str, out_dir: str, seconds: float, out: TextIO,
             err: TextIO) -> int:
    elsewhere = images - result.total  # made by the tab's Run in Forge: never queued
    out.write(f"{result.done + elsewhere:,}/{images:,} images done in {seconds:,.0f} s, in {out_dir}"
              + (f" ({elsewhere:,} made earlier by Run in Forge)" if elsewhere else "") + "\n")
    for line in result.servers:
        out.write(f"  {line.url}: {line.done:,} images, {line.images_per_min:.1f}/min ({line.status or '?'})\n")
    for problem in result.problems:  # nothing fell back to another model or LoRA: say what is missing where
        err.write(f"error: {problem}\n")
    if result.failed:
        out.write(f"{result.failed:,} images failed; `batch show {batch_path}` says why; run the same command to "
                  "try them again\n")
        return 1
    if not result.finished:
        out.write("stopped before the end: run the same command to continue\n")
        return 130
    return 0


class _Bar:
    """One tqdm bar for the batch on a terminal; elsewhere (a log) a line now and then."""

    def __init__(self, err: TextIO) -> None:
        self.err, self.last_line = err, 0.0
        self.bar: Any = None
        self.tty = bool(getattr(err, "isatty", lambda: False)())

    def update(self, snapshot: "Snapshot") -> None:
        from .dispatch.progress import duration

        if self.tty and self.bar is None:
            from tqdm import tqdm

            # tqdm's own rate and ETA would count a resumed batch's earlier images as made in the first second:
            # the bar shows the snapshot's, measured from the queue as the tab's are
            self.bar = tqdm(total=snapshot.total, initial=snapshot.done, unit="img", file=self.err,
                            dynamic_ncols=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}")
        if self.bar is not None:
            self.bar.n = snapshot.done
            rates = " ".join(f"{_host(s.url)} {s.images_per_min:.1f}/min{'' if s.status == 'up' else ' down'}"
                             for s in snapshot.servers)
            self.bar.set_postfix_str(f"{snapshot.running} running, {snapshot.failed} failed · "
                                     f"{snapshot.images_per_min:.1f} img/min · ETA {duration(snapshot.eta_s)} · "
                                     f"{rates}", refresh=True)
            return
        now = time.monotonic()
        if now - self.last_line >= 30 or snapshot.pending + snapshot.running == 0:
            self.last_line = now
            self.err.write(snapshot.text() + "\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or url)


def show_lines(batch: "Batch", jobs: Dict[int, "Job"], made_in_forge: Collection[int]) -> List[str]:
    """`batch show`: each image's state (made by the tab's Run in `made_in_forge`, else its queue row), and for
    a dispatched one its server, attempts and last error."""
    lines = []
    for image in batch.images:
        job = jobs.get(image.index)
        if job is not None and job.status != "pending":
            state = "running" if job.status == "leased" else job.status
        else:
            state = "done" if image.index in made_in_forge else "todo"
        where = ""
        if job is not None and job.server:
            where = f" · {_host(job.server)} · {job.attempts} attempt{'s' if job.attempts != 1 else ''}"
        loras = ", ".join(f"{n}:{w:g}" for n, w, _ in image.loras)
        line = f"[{state}] #{image.index} seed {image.seed}{where}: {image.prompt}" + (f"  ({loras})" if loras else "")
        if job is not None and job.status == "failed" and job.error:
            line += f"\n    error: {job.error}"
        lines.append(line)
    return lines
