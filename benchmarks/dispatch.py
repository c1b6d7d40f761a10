"""Dispatching a saved batch across Forge servers: the dispatcher's own cost per image, throughput from 1 to 8 servers,
and checkpoint switches with and without affinity, in one run, against fake Forge servers (tests/dispatch/fake_forge.py:
real HTTP on 127.0.0.1; they sleep for an image, they do not compute). The fakes run as threads of this process: run
as their own processes instead they gave the same overhead within noise (min of 5 runs each), so threads it is.

1. Orchestration overhead per image (goal ≤ 20 ms). N images on one instant server (0 s an image): the wall time of
   `Dispatcher.run()` (enqueue, inventory; for each image claim, send, write the file temp + fsync + rename, mark
   done; the progress snapshots; the end) minus the anchor, divided by N. The anchor, measured in the same run on the
   same server: a bare loop of the same N requests with the same client (`ForgeClient.txt2img`), no queue, no file;
   the difference is what the queue, the writer and the worker loop add, and the fake's own time (HTTP, JSON, a tiny
   PNG) cancels out. Beside it, where the fastest run's time went (the queue's calls and the writer, timed). On
   SQLite (the default queue, a file beside the batch) and, where a PostgreSQL can be started here
   (tests/dispatch/postgres.py), on PostgreSQL with fsync on (durable=True). Min / median of --repeat runs: on a
   shared machine the min says what the code costs, the median what a user waits.
   The client's poll interval: at the default poll_s (1 s) an instant image answers before the first poll, so it
   costs nothing there; a second figure makes images of 0.1 s polled every 0.02 s (the image time taken off both
   sides), so each image pays its polls and the lease renewed at each (what a real 5-20 s image pays per second).
2. Throughput scaling (goal ≥ 0.9 × linear). 1, 2, 4 and 8 servers, each taking a fixed --image-s an image (a sleep,
   so this 2-core box is not what limits), --per-server images each: images per minute over the whole `run()`, its
   ratio to linear (the 1-server figure × servers) and to the ideal (60 / image-s per server); in brackets how long a
   server sat idle between completing a job and claiming the next (from the queue's rows), so a slow figure tells the
   dispatcher's stall from a slow machine.
3. Checkpoint switches per 100 images, affinity on / off. Batches over 2 or 3 checkpoints in their own run order
   (grouped by checkpoint), servers that have every checkpoint and start with the ones named loaded; an image takes
   --switch-image-s and a switch --switch-s (a few images' time, as 5-30 s against a few seconds on a GPU). Switches
   are counted by the fakes (loads of another checkpoint). In brackets, affinity with its bounds out of reach
   (window and max_bypass 1000): what the bounds cost.

    python benchmarks/dispatch.py [--images 500] [--repeat 3] [--image-s 0.25] [--per-server 30] [--no-postgres]
    python benchmarks/dispatch.py --quick        # small runs: a check that it works, not figures to quote
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib_orchestrator.batches import Batch  # noqa: E402
from lib_orchestrator.dispatch import dispatcher as dispatcher_module  # noqa: E402
from lib_orchestrator.dispatch.dispatcher import DEFAULT_OPTIONS, Dispatcher, Options  # noqa: E402
from lib_orchestrator.dispatch.forge_client import ForgeClient, payload  # noqa: E402
from lib_orchestrator.dispatch.inventory import checkpoint_title  # noqa: E402
from lib_orchestrator.dispatch.jobs import batch_id  # noqa: E402
from lib_orchestrator.dispatch.queue import Job, JobQueue  # noqa: E402
from tests.dispatch.fake_forge import FakeForge  # noqa: E402
from tests.dispatch.helpers import ALPHA, BETA, make_batch  # noqa: E402
from tests.dispatch.postgres import PostgresCluster, PostgresUnavailable  # noqa: E402

GAMMA = "gamma.safetensors [cccccccccc]"
CHECKPOINTS = (ALPHA, BETA, GAMMA)
NAMES = ("alpha.safetensors", "beta.safetensors", "gamma.safetensors")  # as the batch names them
POLL_S = ForgeClient("http://127.0.0.1:1").poll_s  # the client's default, as the CLI builds it
INVENTORY_REQUESTS = 5  # sd-models, loras, options, script-info, internal/progress: the rest of a run's are polls


class Timings:
    """Seconds spent in the queue's calls and the writer during one run, summed over threads; empty claims."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self.missed_claims = 0  # claims that found nothing while jobs of the batch were pending
        self._lock = threading.Lock()

    def add(self, what: str, seconds: float) -> None:
        with self._lock:
            self.seconds[what] = self.seconds.get(what, 0.0) + seconds


class TimedQueue(JobQueue):
    """The queue, its calls timed (a perf_counter pair each: well under a microsecond of the milliseconds measured)."""

    timings = Timings()

    def _timed(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.timings.add(what, time.perf_counter() - start)

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        job = self._timed("claim", super().claim, *args, **kwargs)
        if job is None:  # nothing to claim: the batch is ending, or another claim held the pending jobs (a stall)
            batch = kwargs["batch_id"] if "batch_id" in kwargs else args[5]
            if self.counts(batch).pending:
                with self.timings._lock:
                    self.timings.missed_claims += 1
        return job

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("complete", super().complete, *args, **kwargs)

    def renew(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("renew", super().renew, *args, **kwargs)

    def jobs(self, *args: Any, **kwargs: Any) -> Any:  # the progress snapshots (and the start's dead-owner check)
        return self._timed("progress", super().jobs, *args, **kwargs)

    def servers(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("progress", super().servers, *args, **kwargs)

    def unfinished(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("unfinished", super().unfinished, *args, **kwargs)

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("enqueue", super().enqueue, *args, **kwargs)


_write_image = dispatcher_module.write_image


def _timed_write_image(*args: Any, **kwargs: Any) -> Any:
    start = time.perf_counter()
    try:
        return _write_image(*args, **kwargs)
    finally:
        TimedQueue.timings.add("write", time.perf_counter() - start)


dispatcher_module.write_image = _timed_write_image  # the file written temp + fsync + rename, timed


def fake(loaded: str = ALPHA, **behaviour: float) -> FakeForge:
    return FakeForge(list(CHECKPOINTS), loras=["fluffy"], loaded=loaded, **behaviour).start()  # type: ignore[arg-type]


def stop_all(fakes: Sequence[FakeForge]) -> None:
    for server in fakes:
        server.stop()


class Backend:
    """A fresh queue URL per run: a new SQLite file in the scratch folder, or a new PostgreSQL database."""

    def __init__(self, name: str, new_url: Callable[[], str]) -> None:
        self.name, self.new_url = name, new_url


@dataclass(frozen=True)
class Run:
    wall: float  # seconds of Dispatcher.run()
    dispatcher: Dispatcher
    timings: Timings
    jobs: List[Job]  # the batch's rows afterwards

    def idle_ms(self) -> Tuple[float, float]:
        """Mean and longest time a server waited between one job's completion and its next claim, in ms."""
        gaps: List[float] = []
        for server in {job.server for job in self.jobs}:
            mine = sorted((job for job in self.jobs if job.server == server), key=lambda job: job.started_at or 0.0)
            gaps += [(b.started_at or 0.0) - (a.finished_at or 0.0) for a, b in zip(mine, mine[1:])]
        return (statistics.fmean(gaps) * 1000, max(gaps) * 1000) if gaps else (0.0, 0.0)


def dispatch(url: str, batch: Batch, fakes: Sequence[FakeForge], out: str, options: Options = DEFAULT_OPTIONS,
             poll_s: float = POLL_S) -> Run:
    """One whole `Dispatcher.run()` of `batch` on a fresh queue, as the CLI builds it: its wall time, where the time
    went, the rows."""
    timings = TimedQueue.timings = Timings()
    queue = TimedQueue(url)
    try:
        dispatcher = Dispatcher(queue, batch, batch_id(batch), [ForgeClient(f.url, poll_s=poll_s) for f in fakes],
                                out, options)
        start = time.perf_counter()
        snap = dispatcher.run()
        wall = time.perf_counter() - start
        if snap.done != len(batch.images):
            raise RuntimeError(f"the run ended unfinished: {snap.text()}")
        return Run(wall, dispatcher, timings, queue.jobs(batch_id(batch)))
    finally:
        queue.close()


def bare_loop(server: FakeForge, batch: Batch, poll_s: float = POLL_S) -> float:
    """The anchor: the same requests, one after another, with the same client; no queue, no file."""
    client = ForgeClient(server.url, poll_s=poll_s)
    inventory = client.inventory()
    bodies = [payload(image, batch.settings, checkpoint_title(image.checkpoint or "", inventory),
                      inventory.has_orchestrator) for image in batch.images]
    start = time.perf_counter()
    for i, body in enumerate(bodies):
        client.txt2img(body, f"bench-{i}", 60.0)
    return time.perf_counter() - start


def min_median(values: Sequence[float]) -> Tuple[float, float]:
    ordered = sorted(values)
    return ordered[0], statistics.median_low(ordered)


def ms(seconds: float, images: int) -> str:
    return f"{seconds * 1000 / images:6.2f}"


def overhead_rows(backends: Sequence[Backend], server: FakeForge, batch: Batch, repeat: int, poll_s: float,
                  scratch: str, tag: str, work_s: float = 0.0) -> None:
    """The anchor, then each backend's run: min / median per image and the overhead (`work_s`, the fake's sleep per
    image, taken off both); where the min run's time went (with polls, only what the renewals cost: they run while
    Forge works, so they overlap the image and are no part of a sum)."""
    images = len(batch.images)
    server.seconds_per_image = work_s
    bare = [bare_loop(server, batch, poll_s) - images * work_s for _ in range(repeat)]
    b_min, b_med = min_median(bare)
    print(f"   {'anchor: bare loop of ForgeClient.txt2img':<42} {ms(b_min, images)} / {ms(b_med, images)} ms an image")
    for backend in backends:
        runs: List[Tuple[float, Timings]] = []
        polls = 0
        for k in range(repeat):
            before = server.requests - server.txt2img_requests
            run = dispatch(backend.new_url(), batch, [server], os.path.join(scratch, f"{tag}-{backend.name}-{k}"),
                           poll_s=poll_s)
            polls += server.requests - server.txt2img_requests - before - INVENTORY_REQUESTS
            runs.append((run.wall - images * work_s, run.timings))
        d_min, d_med = min_median([wall for wall, _ in runs])
        print(f"   {backend.name + ': Dispatcher.run':<42} {ms(d_min, images)} / {ms(d_med, images)} ms an image;"
              f" overhead {ms(d_min - b_min, images).strip()} / {ms(d_med - b_med, images).strip()} ms"
              "   (goal ≤ 20 ms)")
        wall, timings = min(runs, key=lambda run: run[0])
        if work_s:
            print(f"   {'':<42} {polls / repeat / images:.1f} polls an image, each renewing the lease: renew "
                  f"{ms(timings.seconds.get('renew', 0.0), images).strip()} ms an image")
            continue
        parts = [(what, timings.seconds.get(what, 0.0)) for what in ("claim", "complete", "write", "progress",
                                                                     "enqueue")]
        rest = wall - sum(seconds for _, seconds in parts)
        shown = ", ".join(f"{what} {ms(seconds, images).strip()}" for what, seconds in parts) \
            + f", the rest (request, payload, infotext, loop) {ms(rest, images).strip()}"
        print(f"   {'':<42} the min run, ms an image: {shown}")


def overhead(backends: Sequence[Backend], images: int, repeat: int, poll_images: int, scratch: str) -> None:
    print(f"1. orchestration overhead per image: Dispatcher.run minus the anchor, 1 fake server, min / median of "
          f"{repeat}")
    batch = make_batch(images, name="overhead", checkpoints=(NAMES[0],))
    server = fake()
    try:
        print(f"   {images} instant images (0 s each), client poll_s {POLL_S:g} s (the default): the answer comes "
              "before the first poll")
        overhead_rows(backends, server, batch, repeat, POLL_S, scratch, "o")
        work_s, poll_s = 0.1, 0.02
        print(f"   {poll_images} images of {work_s:g} s (taken off), poll_s {poll_s:g} s: what progress polls and "
              "lease renewals add")
        overhead_rows(backends, server, make_batch(poll_images, name="polled", checkpoints=(NAMES[0],)), repeat,
                      poll_s, scratch, "p", work_s)
    finally:
        server.stop()


def scaling(backend: Backend, image_s: float, per_server: int, scratch: str) -> None:
    ideal = 60.0 / image_s
    print(f"\n2. throughput scaling on {backend.name}: {image_s:g} s an image, {per_server} images per server "
          f"(ideal {ideal:.0f} images/min per server)")
    base: Optional[float] = None
    for count in (1, 2, 4, 8):
        fakes = [fake(seconds_per_image=image_s) for _ in range(count)]
        try:
            batch = make_batch(per_server * count, name=f"scale{count}", checkpoints=(NAMES[0],))
            run = dispatch(backend.new_url(), batch, fakes, os.path.join(scratch, f"s-{backend.name}-{count}"))
        finally:
            stop_all(fakes)
        rate = len(batch.images) * 60.0 / run.wall
        base = rate if base is None else base
        mean_idle, max_idle = run.idle_ms()
        missed = run.timings.missed_claims
        print(f"   {count} server{'s' if count > 1 else ' '}: {rate:7.1f} images/min in {run.wall:5.2f} s   "
              f"× linear {rate / (base * count):.3f}   × ideal {rate / (ideal * count):.3f}   (goal ≥ 0.9 × linear)"
              f"   [idle between jobs: mean {mean_idle:.0f} ms, max {max_idle:.0f} ms"
              f"{f'; {missed} claims found nothing while jobs were pending' if missed else ''}]")


SWITCH_CASES = (  # (the batch's checkpoints, images of each, the servers' loaded checkpoints)
    (NAMES[:2], 50, (ALPHA, BETA)),
    (NAMES, 100, (ALPHA, ALPHA, BETA, GAMMA)),
    (NAMES, 20, (ALPHA, ALPHA, BETA, GAMMA)),
)
UNBOUNDED = dict(window=1000, max_bypass=1000)  # for comparison: affinity without its bounds in reach


def switches(backend: Backend, image_s: float, switch_s: float, scale: float, scratch: str) -> None:
    print(f"\n3. checkpoint switches per 100 images on {backend.name}: the batch's run order (grouped by checkpoint), "
          f"{image_s:g} s an image, {switch_s:g} s a switch; affinity on / off "
          f"(and on without its bounds: window and max_bypass {UNBOUNDED['window']})")
    for n, (names, each, loaded) in enumerate(SWITCH_CASES):
        each = max(1, round(each * scale))
        images = each * len(names)
        batch = make_batch(images, name=f"switches{n}", checkpoints=names)
        figures = []
        for affinity, extra in ((True, {}), (False, {}), (True, UNBOUNDED)):
            fakes = [fake(loaded=title, seconds_per_image=image_s, switch_s=switch_s) for title in loaded]
            try:
                options = Options(affinity=affinity, **extra)  # type: ignore[arg-type]
                dispatcher = dispatch(backend.new_url(), batch, fakes,
                                      os.path.join(scratch, f"w-{backend.name}-{n}-{len(figures)}"), options).dispatcher
                counted = sum(f.switches for f in fakes)  # the fakes' count of loads of another checkpoint
            finally:
                stop_all(fakes)
            if counted != dispatcher.switches:
                print(f"   (the dispatcher asked for {dispatcher.switches} switches, the fakes made {counted})")
            figures.append(counted * 100 / images)
        servers = ", ".join(title.split(".")[0] for title in loaded)
        what = f"{len(names)} checkpoints × {each} images, {len(loaded)} servers on {servers}:"
        print(f"   {what:<68} {figures[0]:5.1f} / {figures[1]:5.1f}   ({figures[2]:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500, help="images of the overhead runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each overhead figure (min and median)")
    parser.add_argument("--image-s", type=float, default=0.25, help="seconds an image in the scaling runs")
    parser.add_argument("--per-server", type=int, default=30, help="images per server in the scaling runs")
    parser.add_argument("--poll-images", type=int, default=20, help="images of the overhead run with polls")
    parser.add_argument("--switch-scale", type=float, default=1.0, help="times the affinity batches' sizes")
    parser.add_argument("--switch-image-s", type=float, default=0.05, help="seconds an image in the affinity runs")
    parser.add_argument("--switch-s", type=float, default=0.15, help="seconds a checkpoint switch in the affinity runs")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--quick", action="store_true", help="small runs: checks that it works, figures are rough")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeat, args.poll_images, args.per_server, args.switch_scale = 100, 1, 10, 8, 0.3
    logging.basicConfig(level=logging.ERROR)  # a worker's warnings would interleave with the figures
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="orch-bench-dispatch-") as scratch:
        counter = iter(range(1_000_000))
        backends = [Backend("SQLite", lambda: f"sqlite:///{os.path.join(scratch, f'q{next(counter)}.sqlite')}")]
        cluster: Optional[PostgresCluster] = None
        if not args.no_postgres:
            try:
                cluster = PostgresCluster.start(durable=True)
                backends.append(Backend("PostgreSQL", cluster.new_database))
            except PostgresUnavailable as exc:
                print(f"(PostgreSQL figures skipped: {exc})")
        try:
            load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
            print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs{load}; fake servers in-process (threads)\n")
            overhead(backends, args.images, args.repeat, args.poll_images, scratch)
            for backend in backends:
                scaling(backend, args.image_s, args.per_server, scratch)
            for backend in backends:
                switches(backend, args.switch_image_s, args.switch_s, args.switch_scale, scratch)
        finally:
            if cluster is not None:
                cluster.stop()
    print(f"\n(whole benchmark: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
