"""The job queue (lib_orchestrator/dispatch/queue.py) on SQLite and PostgreSQL: enqueue, claim, leases, results."""
from __future__ import annotations

from lib_orchestrator.dispatch.jobs import NewJob
from lib_orchestrator.dispatch.queue import JobQueue


def _jobs(batch: str, checkpoints: str) -> list:
    """One job per letter of `checkpoints` (its checkpoint), in run order, all with one needs_key per checkpoint."""
    return [NewJob(batch, i, i, c, (), f"key-{c}") for i, c in enumerate(checkpoints)]


def test_enqueue_claim_complete_round_trip(queue_url):
    with JobQueue(queue_url) as queue:
        assert queue.enqueue(_jobs("b", "AAB")).added == 3
        job = queue.claim("me", "http://s1", ["key-A", "key-B"], "A", 60.0, "b")
        assert (job.image_index, job.status, job.attempts, job.lease_owner) == (0, "leased", 1, "me")
        assert queue.complete(job.id, "me", "b-00000.png", "ab12", 2.0)
        assert [j.status for j in queue.jobs("b")] == ["done", "pending", "pending"]
