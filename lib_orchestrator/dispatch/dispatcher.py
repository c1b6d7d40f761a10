"""One saved batch made across several Forge servers: a worker thread per server claims jobs from the queue, sends
each to its server, writes the image and marks the job done; the queue's leases make it exactly-once.

What each worker does, and why (research dispatch-queue.md §3, §7):
- It claims only jobs its server can run (the needs_keys whose checkpoint and LoRAs its inventory has), preferring
  the checkpoint the server has loaded (affinity: a switch costs 5-30 s), which the queue bounds so no job starves.
  After a job, the loaded checkpoint is the job's: the payload sends override_settings_restore_afterwards false.
- While Forge works, every progress poll renews the lease: a lease expires only when this process stops hearing
  from its server (or dies), never because a generation is long.
- The server failing (refused, reset, timed out, 5xx) releases the job (attempts count) and marks the server down;
  the worker then probes it every `probe_s` and, when it answers, reads its inventory again and goes on. Forge
  refusing the job itself (out of memory, unknown sampler) fails that job and keeps the server.
- An unexpected error inside a worker (a bug, a full disk, a lost database) releases its job and the worker goes
  on after a pause; after `MAX_WORKER_ERRORS` in a row its server is marked down and probed like a failed one. A
  worker thread that dies anyway is started again by the main loop: never a silent hang.
- Jobs that no reachable server can run fail at once with what each server lacks (`Unrunnable`): in the queue's
  error column, in the result's `problems`, and in the log. Nothing falls back to another model. This is decided
  again whenever a server answers after being down (its models may have changed), so no job waits for nobody.
- At the start, the leases of a dispatcher of this host that is gone (killed) come back at once, and the temporary
  files it left are removed: a rerun after a kill goes on without waiting for leases to expire.

`run` returns when no job of the batch is pending or leased, by anyone: other dispatcher processes sharing a
PostgreSQL queue (or one SQLite file) finish the same batch together. While every server that can run the remaining
jobs is down it keeps probing; `stop()` (or the `stop` event) ends it, handing the leases back without counting
the attempt.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Collection, Dict, List, Optional, Sequence, Set, Tuple

from ..batches.model import Batch, BatchImage
from ..errors import OrchestratorError
from ..provenance import batch_provenance
from .forge_client import ForgeClient, JobRejected, ServerDown, payload
from .inventory import Inventory, checkpoint_title, missing, missing_settings
from .jobs import NewJob, batch_jobs, image_stem
from .progress import Snapshot
from .queue import Job, JobQueue
from .writer import pid_alive, sweep_temps, with_params, write_image

log = logging.getLogger("lib_orchestrator.dispatch")

MAX_WORKER_ERRORS = 3  # unexpected errors in a row before a worker's server is treated as down
ERROR_PAUSE_S = 1.0  # a worker's pause after an unexpected error, so a persistent one does not spin


@dataclass(frozen=True)
class Options:
    lease_s: float = 60.0  # a claim lasts this long without news from its server; renewed on every progress poll
    affinity: bool = True  # prefer jobs for the checkpoint a server has loaded
    max_bypass: int = 24  # a job is passed over at most this many times for affinity
    probe_s: float = 5.0  # how often a down server is asked whether it is back
    timeout_floor_s: float = 60.0  # a request's timeout is never shorter
    timeout_factor: float = 4.0  # ... and otherwise this many times the server's mean seconds per image
    first_timeout_s: float = 600.0  # before a server's first image nothing says how slow it is (a big model at
    # high resolution on a small GPU takes minutes): a hung server is found late rather than a slow one refused
    switch_allowance_s: float = 120.0  # added when the job needs another checkpoint than the one loaded
    max_attempts: int = 3  # the queue's (JobQueue(max_attempts=)): claims of one job before it fails
    window: int = 64  # how many pending jobs a claim looks at for affinity
    idle_s: float = 1.0  # how often a worker with nothing to claim looks again (others may hand jobs back)
    snapshot_s: float = 1.0  # how often `run` reports progress
    first_contact_s: float = 60.0  # no server answered this long after the start: the addresses are wrong, say so
    max_refusals: int = 3  # images a server refuses in a row before it counts as broken rather than the images
    recheck_s: float = 30.0  # how often what no server can make is decided again (another dispatcher may be gone)


DEFAULT_OPTIONS = Options()


@dataclass(frozen=True)
class Unrunnable:
    """Images no reachable server can run, and what each server lacks for them."""

    checkpoint: str
    loras: Tuple[str, ...]
    images: int
    lacking: Tuple[Tuple[str, Tuple[str, ...]], ...]  # (server url, what it lacks; ("unreachable: …",) when down)

    def text(self) -> str:
        """`4 images no server can make: http://a lacks LoRA 'x'; http://b unreachable: connection refused`."""
        what = "; ".join(f"{url} {names[0]}" if names and names[0].startswith("unreachable")
                         else f"{url} lacks {', '.join(names)}" for url, names in self.lacking)
        return f"{self.images} image{'s' if self.images != 1 else ''} no server can make: {what}"


class _Worker:
    """One server's state, owned by its thread (the main loop only reads it)."""

    def __init__(self, client: ForgeClient, index: int, run_id: str) -> None:
        self.client = client
        self.url = _shown_url(client)
        self.owner = f"{run_id}/{index}"
        self.inventory: Optional[Inventory] = None
        self.allowed: Set[str] = set()  # needs_keys this server can run
        self.loaded = ""  # the server's title of its loaded checkpoint
        self.claim_key = ""  # the batch's name for that checkpoint (what the queue compares), else the title
        self.up = False
        self.mean_s: Optional[float] = None  # seconds per image without a checkpoint switch
        self.job: Optional[Job] = None  # the job in flight
        self.errors = 0  # unexpected errors in a row
        self.thread: Optional[threading.Thread] = None
        self.switches = 0  # checkpoint switches this worker asked for (for the benchmark and the tests)
        self.refusals = 0  # images Forge refused in a row


def _shown_url(client: ForgeClient) -> str:
    """The server's URL without a password, as the queue's rows show it."""
    return getattr(client, "url", "") or str(client)


class Dispatcher:
    def __init__(self, queue: JobQueue, batch: Batch, batch_id: str, servers: Sequence[ForgeClient], out_dir: str,
                 options: Options = DEFAULT_OPTIONS, on_done: Callable[[Job, str], None] = lambda job, path: None,
                 clock: Callable[[], float] = time.time, skip: Collection[int] = ()) -> None:
        # skip: image indexes made some other way (the tab's Run in Forge): never enqueued, and marked done where an
        # earlier dispatch enqueued them, so never made twice
        if not servers:
            raise ValueError("the dispatcher needs at least one server")
        self.queue, self.batch, self.batch_id, self.out_dir = queue, batch, batch_id, out_dir
        self.options, self.on_done, self.clock = options, on_done, clock
        self.run_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.workers = [_Worker(client, i, self.run_id) for i, client in enumerate(servers)]
        self.images: Dict[int, BatchImage] = {image.index: image for image in batch.images}
        self.skip = frozenset(skip)
        self.jobs: List[NewJob] = [job for job in batch_jobs(batch) if job.image_index not in self.skip]
        if any(job.batch_id != batch_id for job in self.jobs):
            raise ValueError(f"batch_id {batch_id!r} is not this batch's ({self.jobs[0].batch_id!r})")
        self.by_key: Dict[str, NewJob] = {}
        for job in self.jobs:
            self.by_key.setdefault(job.needs_key, job)
        self.names_by_title: Dict[str, Dict[str, str]] = {}  # per server: title -> the batch's checkpoint name
        self.problems: List[Unrunnable] = []
        self.waiting: Dict[str, Unrunnable] = {}  # needs_key -> what this dispatcher's servers lack, while another
        # dispatcher's servers on a shared queue may make those images
        self._answered = False  # some server answered since the start
        self._down: Dict[str, str] = {}  # why each server that is down is, for the message of what cannot run
        self._stop = threading.Event()
        self._wake = threading.Event()  # a worker found nothing left to do: the run may be over
        self._lock = threading.Lock()

    # -- the run ------------------------------------------------------------------------------------------------
    def run(self, stop: Optional[threading.Event] = None,
            on_snapshot: Callable[[Snapshot], None] = lambda s: None) -> Snapshot:
        """Make the batch (see the module's docstring); the last snapshot, with `problems` of what cannot run."""
        if stop is not None:  # the caller's event is this run's: setting it stops the workers at once
            self._stop = stop
        self.queue.enqueue(self.jobs)
        sweep_temps(self.out_dir)
        self._release_dead_owners()
        self._settle_skipped()
        self._first_inventories()
        for worker in self.workers:
            self._start(worker)
        started, checked = time.monotonic(), time.monotonic()
        try:
            while True:
                snap = self.snapshot()
                on_snapshot(snap)
                if snap.finished or self._stop.is_set():
                    break
                if not self._answered and time.monotonic() - started > self.options.first_contact_s:
                    raise OrchestratorError(
                        "no server answered in {:g} s: {}".format(self.options.first_contact_s, "; ".join(
                            f"{w.url}: {self._down.get(w.url, 'no answer')}" for w in self.workers)),
                        hint="check the addresses, that each Forge runs with --api, and the user and password of "
                             "one started with --api-auth")
                if time.monotonic() - checked > self.options.recheck_s and self._answered:
                    checked = time.monotonic()
                    self._fail_unrunnable()
                for worker in self.workers:
                    if worker.thread is not None and not worker.thread.is_alive() and not self._stop.is_set():
                        log.error("the worker of %s ended unexpectedly: started again", worker.url)
                        self._start(worker)
                self._wake.wait(self.options.snapshot_s)
                self._wake.clear()
        finally:
            self.stop()
        return self.snapshot()

    def snapshot(self) -> Snapshot:
        snap = self.queue.progress(self.batch_id, self.clock())  # counted in SQL: no rows read every second
        waiting = tuple(f"{p.text()}; they wait for the other dispatchers' servers" for p in self.waiting.values())
        return dataclasses.replace(snap, problems=tuple(p.text() for p in self.problems) + waiting)

    def stop(self) -> None:
        """Stop claiming; the jobs in flight go back to pending without counting the attempt (their servers finish
        them unseen: nothing is written). Waits a moment for the workers, never for a generation."""
        self._stop.set()
        self._wake.set()
        for worker in self.workers:
            job = worker.job
            if job is not None:
                try:
                    self.queue.release(job.id, worker.owner, "the dispatcher was stopped", count_attempt=False)
                except Exception:  # the lease expires on its own; nothing is lost
                    log.exception("could not hand back image %s of %s", job.image_index, worker.url)
        deadline = time.monotonic() + 2.0
        for worker in self.workers:  # one waiting on a generation is not waited for: it ends with the process
            if worker.thread is not None and worker.thread is not threading.current_thread() and worker.job is None:
                worker.thread.join(timeout=max(0.0, deadline - time.monotonic()))

    @property
    def switches(self) -> int:
        return sum(worker.switches for worker in self.workers)

    def _settle_skipped(self) -> None:
        """An image made some other way that an earlier dispatch left pending or failed in the queue is done: no
        server makes it again. Its file is wherever that other way wrote it (the run state knows), not recorded here.
        One being made right now (leased) is left to finish: its file has the same name and bytes."""
        if not self.skip:
            return
        for job in self.queue.jobs(self.batch_id):
            if job.image_index in self.skip and job.status in ("pending", "failed"):
                self.queue.complete(job.id, self.run_id, "", "", 0.0)

    def _release_dead_owners(self) -> None:
        """Hand back at once the leases of a dispatcher of this host that is gone (killed, crashed): its jobs would
        otherwise wait for their leases to expire. Owners are `host:pid:…`; another host's are left to expiry."""
        if sys.platform == "win32":
            return
        host = socket.gethostname()
        for job in self.queue.jobs(self.batch_id):
            if job.status != "leased" or not job.lease_owner:
                continue
            parts = job.lease_owner.split(":")
            if len(parts) >= 3 and parts[0] == host and parts[1].isdigit() and int(parts[1]) != os.getpid() \
                    and not pid_alive(int(parts[1])):
                # not the image's fault: a batch killed three times with one image in flight still finishes
                self.queue.release(job.id, job.lease_owner, f"its dispatcher (process {parts[1]}) is gone",
                                   count_attempt=False)

    # -- inventories ----------------------------------------------------------------------------------------------
    def _first_inventories(self) -> None:
        """Every server's inventory, read at once (a down one costs its connect timeout, not the sum); then the
        jobs none of the reachable servers can run fail. With no server reachable nothing is failed: the workers
        probe, and this is decided when the first one answers."""
        def read(worker: _Worker) -> None:
            try:
                self._take_inventory(worker, worker.client.inventory())
            except ServerDown as error:
                self._mark_down(worker, str(error))
            except Exception as error:  # an address requests cannot use, a bug: that server is down, with why
                self._mark_down(worker, f"{type(error).__name__}: {error}")

        threads = [threading.Thread(target=read, args=(w,), daemon=True) for w in self.workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(w.up for w in self.workers):
            self._fail_unrunnable()
        else:
            log.warning("no server answers: probing every %g s", self.options.probe_s)

    def _take_inventory(self, worker: _Worker, inventory: Inventory) -> None:
        names: Dict[str, str] = {}
        for name in sorted({job.checkpoint for job in self.jobs if job.checkpoint}):
            title = checkpoint_title(name, inventory)
            if title is not None:
                names.setdefault(title, name)
        # the batch's sampler, scheduler or hires upscaler missing: Forge would quietly use another, so nothing
        allowed = set() if missing_settings(self.batch.settings, inventory) else \
            {key for key, job in self.by_key.items() if not missing(job, inventory)}
        with self._lock:
            worker.inventory, worker.allowed = inventory, allowed
            self.names_by_title[worker.url] = names
            self._set_loaded(worker, inventory.loaded)
            worker.up = True
            self._answered = True
        self.queue.server_seen(worker.url, "up", inventory.loaded)

    def _set_loaded(self, worker: _Worker, title: str) -> None:
        worker.loaded = title
        worker.claim_key = self.names_by_title.get(worker.url, {}).get(title, title)

    def _fail_unrunnable(self) -> None:
        """Fail the pending jobs no server can run, saying what each lacks. What a server can run is what its last
        inventory said: one unreachable since the start counts as having nothing (the jobs fail now, loudly, and a
        rerun tries them again), one that went down later as having what it had (its jobs wait for it). Decided
        once a server answers, and again whenever one answers after being down (its models may have changed)."""
        with self._lock:
            runnable: Set[str] = set()
            for worker in self.workers:
                runnable |= worker.allowed
        counts: Dict[str, int] = {}
        for job in self.jobs:
            counts[job.needs_key] = counts.get(job.needs_key, 0) + 1
        for key in sorted(set(self.by_key) - runnable):
            job = self.by_key[key]
            lacking = []
            for worker in self.workers:
                if worker.inventory is None:
                    lacking.append((worker.url, (f"unreachable: {self._down.get(worker.url, 'down')}",)))
                else:
                    lacking.append((worker.url, tuple(missing_settings(self.batch.settings, worker.inventory)
                                                      + missing(job, worker.inventory))))
            problem = Unrunnable(job.checkpoint, job.loras, counts[key], tuple(lacking))
            others = self._other_servers()
            if others:  # a shared queue: another dispatcher's servers may have what ours lack
                if key not in self.waiting:
                    log.warning("%s; left to the other dispatchers' servers (%s)", problem.text(), ", ".join(others))
                self.waiting[key] = problem
                continue
            self.waiting.pop(key, None)
            failed = self.queue.fail_jobs(self.batch_id, [key], problem.text())
            if failed:
                self.problems.append(dataclasses.replace(problem, images=failed))
                log.error("%s", self.problems[-1].text())

    def _other_servers(self) -> List[str]:
        """Servers another dispatcher on this queue used lately (up, seen within two leases): they may make what
        this dispatcher's servers cannot, so those images wait for them instead of failing."""
        ours = {worker.url for worker in self.workers}
        now = self.clock()
        return sorted(row.url for row in self.queue.servers() if row.url not in ours and row.status == "up"
                      and row.last_seen is not None and now - row.last_seen <= 2 * self.options.lease_s)

    # -- one worker -------------------------------------------------------------------------------------------------
    def _start(self, worker: _Worker) -> None:
        worker.thread = threading.Thread(target=self._work, args=(worker,), daemon=True,
                                         name=f"dispatch {worker.url}")
        worker.thread.start()

    def _work(self, worker: _Worker) -> None:
        """The worker loop: probe while down, claim, make, repeat; an unexpected error never ends it."""
        try:
            self._loop(worker)
        except BaseException:  # the thread ends (the main loop starts another): its job goes back first
            self._release(worker, "the dispatcher's worker ended")
            raise

    def _loop(self, worker: _Worker) -> None:
        while not self._stop.is_set():
            try:
                if not worker.up:
                    self._probe(worker)
                    continue
                if not self._work_once(worker):
                    self._wait_for_work()
                worker.errors = 0
            except Exception as error:  # a bug, a full disk, a lost database: hand the job back, go on
                worker.errors += 1
                log.exception("worker of %s: unexpected error", worker.url)
                self._release(worker, f"dispatcher error: {type(error).__name__}: {error}")
                if worker.errors >= MAX_WORKER_ERRORS:
                    self._mark_down(worker, f"{worker.errors} dispatcher errors in a row, the last: {error}")
                    worker.errors = 0
                self._stop.wait(ERROR_PAUSE_S)

    def _wait_for_work(self) -> None:
        if not self.queue.unfinished(self.batch_id):
            self._wake.set()  # the main loop ends the run now rather than at its next snapshot
        self._stop.wait(self.options.idle_s)

    def _probe(self, worker: _Worker) -> None:
        if self._stop.wait(self.options.probe_s):
            return
        if not worker.client.probe():
            return
        try:
            inventory = worker.client.inventory()
        except ServerDown as error:
            self.queue.server_seen(worker.url, "down", error=str(error))
            return
        self._take_inventory(worker, inventory)
        log.warning("%s answers again", worker.url)
        self._fail_unrunnable()

    def _mark_down(self, worker: _Worker, error: str) -> None:
        worker.up = False
        self._down[worker.url] = error
        log.warning("%s is down (%s): probing every %g s", worker.url, error, self.options.probe_s)
        try:
            self.queue.server_seen(worker.url, "down", error=error)
        except Exception:
            log.exception("could not record %s as down", worker.url)

    def _release(self, worker: _Worker, error: str, count_attempt: bool = True) -> None:
        job, worker.job = worker.job, None
        if job is None:
            return
        try:
            self.queue.release(job.id, worker.owner, error, count_attempt=count_attempt)
        except Exception:  # the lease expires on its own and the job is taken again
            log.exception("could not hand back image %s of %s", job.image_index, worker.url)

    def _work_once(self, worker: _Worker) -> bool:
        """Claim one job and make it; False when there was none to claim."""
        options = self.options
        job = self.queue.claim(worker.owner, worker.url, worker.allowed, worker.claim_key, options.lease_s,
                               self.batch_id, options.affinity, options.window, options.max_bypass)
        if job is None:
            return False
        worker.job = job
        if self._stop.is_set():  # stop() came between its release and this claim
            self._release(worker, "the dispatcher was stopped", count_attempt=False)
            return True
        image = self.images[job.image_index]
        assert worker.inventory is not None
        title = checkpoint_title(job.checkpoint, worker.inventory) if job.checkpoint else None
        switching = title is not None and title != worker.loaded
        if worker.mean_s is None:
            timeout = max(options.timeout_floor_s, options.first_timeout_s)
        else:
            timeout = max(options.timeout_floor_s, options.timeout_factor * worker.mean_s)
        if switching:
            timeout += options.switch_allowance_s
            worker.switches += 1
        body = payload(image, self.batch.settings, title, worker.inventory.has_orchestrator)
        task_id = f"orchestrator-{job.id}-{uuid.uuid4().hex[:12]}"

        def renew(_progress: float) -> None:
            # False when another process recovered the lease meanwhile: the image, if it comes, is still right
            # (the same bytes under the same name), so the work goes on.
            self.queue.renew(job.id, worker.owner, options.lease_s)

        try:
            made = worker.client.txt2img(body, task_id, timeout, renew)
        except ServerDown as error:
            self._release(worker, f"{worker.url}: {error}")
            self._mark_down(worker, str(error))
            return True
        except JobRejected as error:
            worker.refusals += 1
            if worker.refusals >= options.max_refusals:  # the server is broken, not every image it gets
                self._release(worker, f"{worker.url} refused it: {error}")
                self._mark_down(worker, f"refused {worker.refusals} images in a row, the last: {error}")
                worker.refusals = 0
                return True
            worker.job = None
            self.queue.fail(job.id, worker.owner, f"{worker.url} refused it: {error}")
            if title is not None:  # Forge loads the checkpoint before it fails a generation: assume it did
                self._set_loaded(worker, title)
            return True
        worker.refusals = 0
        if self._stop.is_set():  # the run was stopped while Forge worked: the image goes back, unwritten
            self._release(worker, "the dispatcher was stopped", count_attempt=False)
            return True
        if made.interrupted:  # someone pressed Interrupt or Skip in that Forge: a partial image
            self._release(worker, f"{worker.url}: the image was interrupted in Forge")
            return True
        current = self.queue.job(job.id)
        if current is not None and current.status == "done":  # another server made it while this lease had lapsed
            worker.job = None  # its file stays as the row says: not overwritten by this second copy
            return True
        if title is not None:
            self._set_loaded(worker, title)
            if switching:
                self.queue.server_seen(worker.url, "up", title)
        if not switching:
            worker.mean_s = made.seconds if worker.mean_s is None else 0.8 * worker.mean_s + 0.2 * made.seconds
        infotext = with_params(made.infotext, batch_provenance(self.batch, image))
        path, digest = write_image(self.out_dir, image_stem(self.batch_id, job.image_index), made.image, infotext)
        self.queue.complete(job.id, worker.owner, path, digest, made.seconds)
        worker.job = None
        self.on_done(job, path)
        return True
