"""Claims racing between processes and between threads with expiring leases: no job is ever leased to two owners at
once, and every job ends claimed. On SQLite (one file, BEGIN IMMEDIATE) and PostgreSQL (SKIP LOCKED)."""
from __future__ import annotations

import multiprocessing
import random
import threading
from typing import Dict, List, Tuple

from lib_orchestrator.dispatch.jobs import NewJob
from lib_orchestrator.dispatch.queue import JobQueue

from .helpers import run_threads

N_PROCESSES = 4
N_JOBS = 400


def _claimer(url: str, slot: int, barrier, results) -> None:
    """One process: claim until nothing is left, completing every other job (both paths then race the claims)."""
    try:
        queue = JobQueue(url)
        claimed: List[int] = []
        barrier.wait(120)  # all processes start claiming together, their engines already open
        while True:
            job = queue.claim(f"p{slot}", f"http://s{slot}", ["k1", "k2"], "AB"[slot % 2], 3600.0, "race")
            if job is None:
                break
            claimed.append(job.id)
            if len(claimed) % 2 and not queue.complete(job.id, f"p{slot}", f"f{job.id}", "d", 0.1):
                raise AssertionError(f"complete of job {job.id} failed")
        queue.close()
        results.put((slot, claimed, ""))
    except BaseException as exc:  # the parent asserts on it
        results.put((slot, [], repr(exc)))


def test_processes_racing_claim_each_job_exactly_once(queue_url):
    with JobQueue(queue_url) as queue:
        queue.enqueue([NewJob("race", i, i, "AB"[i % 2], (), f"k{1 + i % 2}") for i in range(N_JOBS)])
    context = multiprocessing.get_context("spawn")  # no engine or connection is inherited across a fork
    barrier = context.Barrier(N_PROCESSES)
    results = context.Queue()
    processes = [context.Process(target=_claimer, args=(queue_url, slot, barrier, results))
                 for slot in range(N_PROCESSES)]
    for p in processes:
        p.start()
    got = [results.get(timeout=300) for _ in processes]  # a deadline for a hang, not a timing: it ends far sooner
    for p in processes:
        p.join(timeout=60)
    assert [p.exitcode for p in processes] == [0] * N_PROCESSES
    assert [error for _, _, error in got if error] == []
    every = [job_id for _, ids, _ in got for job_id in ids]
    assert len(every) == N_JOBS
    assert len(set(every)) == N_JOBS
    with JobQueue(queue_url) as queue:
        rows = queue.jobs("race")
        assert len(rows) == N_JOBS
        assert all(j.attempts == 1 for j in rows)
        owners = {j.id: j.lease_owner for j in rows if j.status == "leased"}
        by_slot = {job_id: f"p{slot}" for slot, ids, _ in got for job_id in ids}
        assert all(by_slot[job_id] == owner for job_id, owner in owners.items())


class TickingClock:
    """Fake time that moves on by `tick` at every reading: leases expire as the workers work, with no sleeping."""

    def __init__(self, tick: float) -> None:
        self.now = 0.0
        self.tick = tick
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.tick
            return self.now


def test_threads_with_expiring_leases_never_hold_one_job_at_once(queue_url):
    """Workers abandon some jobs (a dying server) and are slow on others (a lease running out while Forge works):
    the job goes to another worker only after its lease expired, its late completion is still the job's result,
    and every job ends done or failed after max_attempts."""
    clock = TickingClock(0.01)
    n_threads, n_jobs = 6, 120
    with JobQueue(queue_url, clock=clock, max_attempts=3) as queue:
        queue.enqueue([NewJob("lease", i, i, "", (), "k") for i in range(n_jobs)])
        leases: Dict[int, List[Tuple[float, float, str]]] = {}
        log_lock = threading.Lock()
        errors: List[BaseException] = []

        def work(slot: int) -> None:
            rng = random.Random(slot)
            owner = f"w{slot}"
            try:
                while queue.unfinished("lease"):
                    job = queue.claim(owner, owner, ["k"], "", 1.0, "lease")  # a lease of 100 clock readings
                    if job is None:
                        continue  # the rest is leased: their leases run out as the clock moves on
                    with log_lock:
                        leases.setdefault(job.id, []).append((job.started_at, job.lease_expires_at, owner))
                    roll = rng.random()
                    if roll < 0.2:
                        continue  # died: the lease runs out
                    if roll < 0.3:
                        for _ in range(120):  # slow: the lease runs out meanwhile, then the image arrives anyway
                            clock()
                    assert queue.complete(job.id, owner, f"f{job.id}", f"d{job.id}", 0.1)
            except BaseException as exc:
                errors.append(exc)

        run_threads(work, n_threads, 600, "a worker")
        assert not errors, errors
        rows = queue.jobs("lease")
    assert len(rows) == n_jobs
    assert {j.status for j in rows} <= {"done", "failed"}
    for job_id, spans in leases.items():
        spans.sort()
        for (_start, expires, _owner), (next_start, _next_expires, _next_owner) in zip(spans, spans[1:]):
            assert next_start >= expires, (job_id, spans)  # claimed again only once the previous lease ran out
    for job in rows:
        assert job.attempts == len(leases[job.id])
        if job.status == "failed":
            assert job.attempts == 3 and job.error.startswith("after 3 attempts: ")
        else:
            assert job.digest == f"d{job.id}"
