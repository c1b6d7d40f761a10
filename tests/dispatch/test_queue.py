"""The job queue (lib_orchestrator/dispatch/queue.py) on SQLite and PostgreSQL: enqueue, claim order and affinity,
the bypass bound, leases on a moved clock, results, failures, servers.

Expected values come from each test's own construction (which jobs it made, which claims it did), never from the
queue's tables or constants."""
from __future__ import annotations

import threading
from typing import List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib_orchestrator.dispatch.jobs import NewJob
from lib_orchestrator.dispatch.queue import Counts, JobQueue

from .helpers import run_threads


class Clock:
    """Time that moves only when a test moves it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def _jobs(batch: str, checkpoints: str, loras=()) -> List[NewJob]:
    """One job per letter of `checkpoints` ("." = no checkpoint), image_index = seq = position; needs_key names the
    checkpoint, so a server's allowed keys say which checkpoints it has."""
    out = []
    for i, c in enumerate(checkpoints):
        checkpoint = "" if c == "." else c
        out.append(NewJob(batch, i, i, checkpoint, tuple(loras), f"key-{c}"))
    return out


ALL = ["key-A", "key-B", "key-C", "key-."]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(queue_url, clock):
    q = JobQueue(queue_url, clock=clock, max_attempts=3)
    yield q
    q.close()


def _claim(queue, owner="me", loaded="A", keys=ALL, batch="b", lease_s=60.0, **kw):
    return queue.claim(owner, f"http://{owner}", keys, loaded, lease_s, batch, **kw)


# -- enqueue -------------------------------------------------------------------------------------------------------
def test_enqueue_twice_adds_nothing(queue):
    jobs = _jobs("b", "AAB")
    assert (queue.enqueue(jobs).added, queue.enqueue(jobs).added) == (3, 0)
    again = queue.enqueue(jobs + jobs[:1])  # a job given twice is one job
    assert (again.added, again.existing, again.retried) == (0, 3, 0)
    assert [(j.image_index, j.status, j.attempts) for j in queue.jobs("b")] == [(0, "pending", 0), (1, "pending", 0),
                                                                                 (2, "pending", 0)]


def test_enqueue_keeps_fields_and_loras(queue):
    queue.enqueue([NewJob("b", 7, 0, "sdxl.safetensors", ("a lora", "zeta"), "k1")])
    (job,) = queue.jobs("b")
    assert (job.image_index, job.seq, job.checkpoint, job.loras, job.needs_key) == (
        7, 0, "sdxl.safetensors", ("a lora", "zeta"), "k1")
    assert (job.status, job.attempts, job.max_attempts, job.lease_owner, job.file) == ("pending", 0, 3, None, None)


def test_enqueue_adds_only_the_new_images_of_a_batch(queue):
    queue.enqueue(_jobs("b", "AA"))
    result = queue.enqueue(_jobs("b", "AAAA"))
    assert (result.added, result.existing, result.retried) == (2, 2, 0)
    assert queue.counts("b").total == 4


def test_reenqueue_retries_failed_jobs_and_keeps_done_ones(queue):
    queue.enqueue(_jobs("b", "AAA"))
    first = _claim(queue)
    queue.complete(first.id, "me", "b-0.png", "d0", 1.0)
    second = _claim(queue)
    queue.fail(second.id, "me", "CUDA out of memory")
    third = _claim(queue)  # leased: stays leased
    result = queue.enqueue(_jobs("b", "AAA"))
    assert (result.added, result.existing, result.retried) == (0, 2, 1)
    by_index = {j.image_index: j for j in queue.jobs("b")}
    assert (by_index[0].status, by_index[0].file) == ("done", "b-0.png")
    assert (by_index[1].status, by_index[1].attempts, by_index[1].error) == ("pending", 0, None)
    assert (by_index[2].status, by_index[2].lease_owner) == ("leased", "me")
    assert third.image_index == 2


def test_batches_are_apart(queue):
    queue.enqueue(_jobs("one", "AA") + _jobs("two", "A"))
    assert _claim(queue, batch="two").batch_id == "two"
    assert _claim(queue, batch="two") is None
    assert queue.counts("one") == Counts(2, 0, 0, 0, 2)


# -- claim order, keys, affinity -----------------------------------------------------------------------------------
def test_claims_follow_run_order_without_affinity(queue):
    queue.enqueue([NewJob("b", index, seq, "A" if seq % 2 else "B", (), "k")
                   for index, seq in [(0, 3), (1, 0), (2, 2), (3, 1)]])
    taken = [_claim(queue, keys=["k"], affinity=False).image_index for _ in range(4)]
    assert taken == [1, 3, 2, 0]
    assert _claim(queue, keys=["k"]) is None


def test_claim_takes_only_allowed_keys(queue):
    queue.enqueue(_jobs("b", "ABAB"))
    got = [_claim(queue, keys=["key-B"], loaded="A") for _ in range(3)]
    assert [j.image_index if j else None for j in got] == [1, 3, None]
    assert _claim(queue, keys=[]) is None
    assert queue.counts("b").pending == 2


def test_affinity_prefers_the_loaded_checkpoint(queue):
    queue.enqueue(_jobs("b", "BBAAB"))
    assert _claim(queue, loaded="A").image_index == 2
    assert _claim(queue, loaded="A").image_index == 3
    assert _claim(queue, loaded="A").image_index == 0  # no A left: the first in run order
    assert _claim(queue, loaded="B", affinity=False).image_index == 1


def test_a_job_without_checkpoint_suits_any_server(queue):
    queue.enqueue(_jobs("b", "B.A"))
    assert _claim(queue, loaded="C").image_index == 1


def test_affinity_finds_the_loaded_checkpoints_next_job_anywhere_in_the_batch(queue):
    # a server keeps to its checkpoint while the batch has images for it, however far down they are
    queue.enqueue(_jobs("b", "B" * 100 + "A"))
    assert _claim(queue, loaded="A", window=3).image_index == 100
    assert _claim(queue, loaded="A", window=3).image_index == 0  # none left for A: the run order's first


def test_a_checkpoint_whose_job_was_just_done_still_counts_as_worked_on(queue, clock):
    # between completing an image and claiming its next, a server has no job leased: its checkpoint's images are
    # not waiting for anyone, and must not starve into pulling another server over to them
    queue.enqueue(_jobs("b", "AAA" + "B" * 30))
    first = _claim(queue, owner="s1", loaded="A")
    queue.complete(first.id, "s1", "f", "d", 1.0)
    for _ in range(5):
        _claim(queue, owner="s2", loaded="B")
    assert [j.bypassed for j in queue.jobs("b")[1:3]] == [0, 0]
    clock.now += 60  # nobody on A for a minute: its images wait now
    _claim(queue, owner="s2", loaded="B")
    assert [j.bypassed for j in queue.jobs("b")[1:3]] == [1, 1]


def test_without_a_job_for_its_checkpoint_a_server_starts_one_nobody_works_on(queue):
    queue.enqueue(_jobs("b", "BBBCC"))
    assert _claim(queue, owner="s1", loaded="B").image_index == 0
    # s2 has A loaded, which no job needs: it takes C (nobody on it) rather than joining s1 on B
    assert _claim(queue, owner="s2", loaded="A").image_index == 3


def test_jobs_of_a_checkpoint_another_server_is_on_are_not_counted_as_passed_over(queue):
    queue.enqueue(_jobs("b", "A" * 5 + "B" * 60))
    assert _claim(queue, owner="s1", loaded="A").image_index == 0  # s1 is on A
    for k in range(30):  # s2 takes B's jobs past A's four waiting ones, which s1 is making
        assert _claim(queue, owner="s2", loaded="B", max_bypass=5).image_index == 5 + k
    assert {j.image_index: j.bypassed for j in queue.jobs("b") if j.image_index < 5} == {0: 0, 1: 0, 2: 0, 3: 0,
                                                                                           4: 0}


def test_claim_leases_the_job(queue, clock):
    queue.enqueue(_jobs("b", "A"))
    job = queue.claim("owner-1", "http://gpu0:7860", ALL, "A", 30.0, "b")
    stored = queue.jobs("b")[0]
    for j in (job, stored):
        assert (j.status, j.attempts, j.lease_owner, j.server) == ("leased", 1, "owner-1", "http://gpu0:7860")
        assert (j.lease_expires_at, j.started_at) == (clock.now + 30.0, clock.now)


# -- the bypass bound ------------------------------------------------------------------------------------------------
def test_a_job_affinity_skips_is_taken_after_max_bypass_claims(queue):
    queue.enqueue(_jobs("b", "B" + "A" * 40))
    taken = [_claim(queue, loaded="A", max_bypass=5).image_index for _ in range(8)]
    assert taken == [1, 2, 3, 4, 5, 0, 6, 7]


def test_starved_jobs_go_first_in_run_order(queue):
    queue.enqueue(_jobs("b", "BC" + "A" * 10))
    taken = [_claim(queue, loaded="A", max_bypass=2).image_index for _ in range(5)]
    assert taken == [2, 3, 0, 1, 4]


def test_max_bypass_zero_is_plain_run_order(queue):
    queue.enqueue(_jobs("b", "BAB"))
    assert [_claim(queue, loaded="A", max_bypass=0).image_index for _ in range(3)] == [0, 1, 2]


_COUNTER = [0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(checkpoints=st.text(alphabet="ABC", min_size=1, max_size=30),
       loaded=st.lists(st.sampled_from("ABC"), min_size=1, max_size=5),
       max_bypass=st.integers(0, 6), window=st.integers(1, 40))
def test_no_job_waits_behind_more_than_max_bypass_later_jobs(queue, checkpoints, loaded, max_bypass, window):
    """Servers with different loaded checkpoints take turns claiming with affinity (the claims stay leased): every job
    is claimed, and while a job is among the first `window` pending and no leased job has its checkpoint (nobody is
    on it), at most max_bypass claims take a job later in run order than it."""
    _COUNTER[0] += 1
    batch = f"prop{_COUNTER[0]}"
    queue.enqueue(_jobs(batch, checkpoints))
    pending = set(range(len(checkpoints)))
    overtaken = {i: 0 for i in pending}
    leased_checkpoints = set()
    turn = 0
    while True:
        job = _claim(queue, loaded=loaded[turn % len(loaded)], batch=batch, max_bypass=max_bypass, window=window)
        turn += 1
        if job is None:
            break
        in_window = sorted(pending)[:window]  # image_index = seq here
        pending.discard(job.image_index)
        for i in in_window:
            if i < job.image_index and checkpoints[i] not in leased_checkpoints:
                overtaken[i] += 1
        leased_checkpoints.add(checkpoints[job.image_index])
    assert not pending
    assert max(overtaken.values()) <= max_bypass


# -- leases -------------------------------------------------------------------------------------------------------
def test_an_expired_lease_is_claimed_again_and_the_old_owner_loses_it(queue, clock):
    queue.enqueue(_jobs("b", "A"))
    first = _claim(queue, owner="dead", lease_s=60.0)
    clock.advance(59.0)
    assert _claim(queue, owner="alive") is None  # still dead's
    clock.advance(1.0)
    second = _claim(queue, owner="alive")
    assert (second.id, second.attempts, second.lease_owner) == (first.id, 2, "alive")
    assert not queue.renew(first.id, "dead", 60.0)
    assert queue.release(first.id, "dead", "late").lease_owner == "alive"
    assert not queue.fail(first.id, "dead", "late")
    assert queue.jobs("b")[0].status == "leased"


def test_renewing_keeps_the_lease(queue, clock):
    queue.enqueue(_jobs("b", "A"))
    job = _claim(queue, lease_s=10.0)
    for _ in range(5):
        clock.advance(8.0)
        assert queue.renew(job.id, "me", 10.0)
    assert queue.recover_expired() == 0
    assert queue.jobs("b")[0].lease_expires_at == clock.now + 10.0
    clock.advance(10.0)
    assert queue.recover_expired() == 1
    assert not queue.renew(job.id, "me", 10.0)


def test_expired_leases_count_attempts_then_fail_with_the_reason(queue, clock):
    queue.enqueue(_jobs("b", "A"))
    for attempt in (1, 2, 3):
        job = _claim(queue, owner=f"o{attempt}", lease_s=5.0)
        assert job.attempts == attempt
        clock.advance(5.0)
        assert queue.recover_expired() == 1
    (job,) = queue.jobs("b")
    assert job.status == "failed"
    assert job.error.startswith("after 3 attempts: ")
    assert "o3" in job.error
    assert _claim(queue) is None
    assert not queue.unfinished("b")


def test_recovery_returns_a_job_to_pending_with_its_attempts(queue, clock):
    queue.enqueue(_jobs("b", "AA"))
    job = _claim(queue, lease_s=5.0)
    clock.advance(6.0)
    assert queue.recover_expired() == 1
    stored = queue.jobs("b")[0]
    assert (stored.status, stored.attempts, stored.lease_owner, stored.lease_expires_at) == ("pending", 1, None, None)
    assert job.id == stored.id


# -- results ----------------------------------------------------------------------------------------------------------
def test_complete_is_idempotent_and_keeps_the_first_file(queue, clock):
    queue.enqueue(_jobs("b", "A"))
    job = _claim(queue, owner="w")
    clock.advance(3.0)
    assert queue.complete(job.id, "w", "/out/b-00000.png", "aa", 2.5)
    assert queue.complete(job.id, "w", "/out/other.png", "bb", 9.0)
    (stored,) = queue.jobs("b")
    assert (stored.status, stored.file, stored.digest, stored.seconds, stored.finished_at) == (
        "done", "/out/b-00000.png", "aa", 2.5, clock.now)
    assert (stored.lease_owner, stored.lease_expires_at) == (None, None)
    (server,) = queue.servers()
    assert (server.url, server.done, server.seconds_total) == ("http://w", 1, 2.5)
    assert not queue.unfinished("b")


def test_a_late_completion_marks_the_job_done_once(queue, clock):
    """The first worker's lease expired and another claimed the job; the first still delivers: the image exists, so
    the job is done, and the second worker's completion changes nothing."""
    queue.enqueue(_jobs("b", "A"))
    slow = _claim(queue, owner="slow", lease_s=5.0)
    clock.advance(5.0)
    fast = _claim(queue, owner="fast")
    assert queue.complete(slow.id, "slow", "f.png", "d1", 7.0)
    assert not queue.renew(fast.id, "fast", 60.0)  # the second worker learns it can stop
    assert queue.complete(fast.id, "fast", "f.png", "d2", 1.0)
    (stored,) = queue.jobs("b")
    assert (stored.status, stored.digest) == ("done", "d1")
    assert sum(s.done for s in queue.servers()) == 0  # neither held the lease at the end: nobody is credited


def test_complete_of_an_unknown_job_is_false(queue):
    assert not queue.complete(12345, "me", "f", "d", 1.0)


def test_complete_credits_the_server_of_the_claim(queue):
    queue.enqueue(_jobs("b", "AAA"))
    for seconds in (1.0, 2.0):
        job = queue.claim("w1", "http://gpu1", ALL, "A", 60.0, "b")
        queue.complete(job.id, "w1", f"f{job.id}", "d", seconds)
    job = queue.claim("w2", "http://gpu2", ALL, "A", 60.0, "b")
    queue.complete(job.id, "w2", "g", "d", 4.0)
    assert {(s.url, s.done, s.seconds_total) for s in queue.servers()} == {("http://gpu1", 2, 3.0),
                                                                           ("http://gpu2", 1, 4.0)}


# -- failures -----------------------------------------------------------------------------------------------------
def test_release_returns_the_job_until_its_last_attempt(queue):
    queue.enqueue(_jobs("b", "A"))
    for attempt in (1, 2):
        job = _claim(queue)
        released = queue.release(job.id, "me", f"connection refused {attempt}")
        assert (released.status, released.attempts, released.error, released.lease_owner) == (
            "pending", attempt, f"connection refused {attempt}", None)
    job = _claim(queue)
    released = queue.release(job.id, "me", "timed out after 60 s")
    assert (released.status, released.error) == ("failed", "after 3 attempts: timed out after 60 s")
    assert queue.jobs("b")[0] == released


def test_a_clean_stop_gives_the_attempt_back(queue):
    queue.enqueue(_jobs("b", "A"))
    for _ in range(5):  # more than max_attempts: stopping never fails a job
        job = _claim(queue)
        released = queue.release(job.id, "me", "stopped", count_attempt=False)
        assert (released.status, released.attempts) == ("pending", 0)


def test_release_by_another_owner_changes_nothing(queue):
    queue.enqueue(_jobs("b", "A"))
    job = _claim(queue, owner="holder")
    assert queue.release(job.id, "intruder", "x") == queue.jobs("b")[0]
    assert queue.jobs("b")[0].lease_owner == "holder"


def test_fail_ends_the_job_at_once_with_forges_error(queue):
    queue.enqueue(_jobs("b", "AA"))
    job = _claim(queue)
    assert queue.fail(job.id, "me", "Sampler not found: Euler z")
    stored = queue.jobs("b")[0]
    assert (stored.status, stored.error, stored.attempts, stored.lease_owner) == (
        "failed", "Sampler not found: Euler z", 1, None)
    assert queue.counts("b") == Counts(1, 0, 0, 1, 2)


def test_fail_jobs_fails_the_pending_jobs_of_those_keys(queue):
    queue.enqueue(_jobs("b", "ABAB") + _jobs("other", "B"))
    leased = _claim(queue, keys=["key-B"])
    assert queue.fail_jobs("b", ["key-B"], "no server has LoRA 'x'") == 1
    assert queue.fail_jobs("b", [], "nothing") == 0
    assert [(j.image_index, j.status) for j in queue.jobs("b")] == [(0, "pending"), (1, "leased"), (2, "pending"),
                                                                      (3, "failed")]
    assert queue.jobs("b")[3].error == "no server has LoRA 'x'"
    assert leased.image_index == 1
    assert queue.counts("other").pending == 1


# -- reading --------------------------------------------------------------------------------------------------------
def test_counts_and_unfinished(queue):
    assert queue.counts("b") == Counts(0, 0, 0, 0, 0)
    assert not queue.unfinished("b")
    queue.enqueue(_jobs("b", "AAAA"))
    done = _claim(queue)
    queue.complete(done.id, "me", "f", "d", 1.0)
    failed = _claim(queue)
    queue.fail(failed.id, "me", "x")
    _claim(queue)
    c = queue.counts("b")
    assert (c.pending, c.leased, c.done, c.failed, c.total) == (1, 1, 1, 1, 4)
    assert queue.unfinished("b")


def test_jobs_come_by_image_index(queue):
    queue.enqueue([NewJob("b", index, seq, "", (), "k") for index, seq in [(5, 0), (1, 1), (3, 2)]])
    assert [j.image_index for j in queue.jobs("b")] == [1, 3, 5]
    assert queue.jobs("nothing") == []


def test_server_seen_records_state(queue, clock):
    queue.server_seen("http://gpu0", "up", "sdxl.safetensors [abcd]")
    clock.advance(4.0)
    queue.server_seen("http://gpu0", "down", error="connection refused")
    queue.server_seen("http://gpu1", "up")
    rows = {s.url: s for s in queue.servers()}
    gpu0 = rows["http://gpu0"]
    assert (gpu0.status, gpu0.loaded_checkpoint, gpu0.last_seen, gpu0.last_error, gpu0.done) == (
        "down", "sdxl.safetensors [abcd]", clock.now, "connection refused", 0)
    assert (rows["http://gpu1"].status, rows["http://gpu1"].loaded_checkpoint) == ("up", None)
    queue.server_seen("http://gpu0", "up", "other")
    assert {s.url: (s.status, s.last_error, s.loaded_checkpoint) for s in queue.servers()}["http://gpu0"] == (
        "up", None, "other")
    with pytest.raises(ValueError):
        queue.server_seen("http://gpu0", "sleeping")


def test_a_second_queue_object_sees_the_same_rows(queue_url, clock):
    with JobQueue(queue_url, clock=clock) as one, JobQueue(queue_url, clock=clock) as two:
        one.enqueue(_jobs("b", "AB"))
        job = _claim(two)
        assert one.jobs("b")[0].lease_owner == "me"
        assert one.complete(job.id, "me", "f", "d", 1.0)
        assert two.counts("b").done == 1


# -- threads ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shared", [True, False], ids=["one-queue-object", "a-queue-object-each"])
def test_threads_racing_claim_each_job_exactly_once(queue_url, shared):
    n_jobs, n_threads = 300, 8
    with JobQueue(queue_url) as main:
        main.enqueue([NewJob("race", i, i, "ABC"[i % 3], (), "k") for i in range(n_jobs)])
        claimed: List[List[int]] = [[] for _ in range(n_threads)]
        errors: List[BaseException] = []
        start = threading.Barrier(n_threads)

        def work(slot: int) -> None:
            q = main if shared else JobQueue(queue_url)
            try:
                start.wait(timeout=60)
                while True:
                    job = q.claim(f"t{slot}", f"s{slot}", ["k"], "ABC"[slot % 3], 3600.0, "race")
                    if job is None:
                        return
                    claimed[slot].append(job.id)
                    if len(claimed[slot]) % 2:  # half completed at once, half left leased: both paths race
                        assert q.complete(job.id, f"t{slot}", f"f{job.id}", "d", 0.1)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
            finally:
                if not shared:
                    q.close()

        run_threads(work, n_threads, 300, "a claimer")
        assert not errors, errors
        every = [i for ids in claimed for i in ids]
        assert len(every) == n_jobs
        assert len(set(every)) == n_jobs
        rows = main.jobs("race")
        assert all(j.attempts == 1 for j in rows)
        assert {j.status for j in rows} == {"done", "leased"}
