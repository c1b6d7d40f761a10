"""The batch's progress from the queue's rows: counts, per-server rates, ETA and the one-line text."""
from __future__ import annotations

from types import SimpleNamespace

from lib_orchestrator.dispatch.progress import RATE_WINDOW_S, ServerTally, Tally, duration, from_tally


def snapshot(jobs, servers, now):
    """The snapshot counted here from the rows (`queue.Job`-like: status, server, started_at, finished_at), as the
    queue counts it in SQL: the rates, ETA and text of `from_tally` tested on hand-made rows, and an oracle for
    `JobQueue.progress`."""
    counts = {"pending": 0, "leased": 0, "done": 0, "failed": 0}
    per = {}  # url -> [done, running, recent, earliest start of the recent]
    for job in jobs:
        counts[job.status] += 1
        if not job.server or job.status not in ("done", "leased"):
            continue
        entry = per.setdefault(job.server, [0, 0, 0, None])
        if job.status == "leased":
            entry[1] += 1
        else:
            entry[0] += 1
            if job.finished_at is not None and job.finished_at >= now - RATE_WINDOW_S:
                begun = job.started_at if job.started_at is not None else job.finished_at
                entry[2] += 1
                entry[3] = begun if entry[3] is None else min(entry[3], begun)
    counted = Tally(counts["pending"], counts["leased"], counts["done"], counts["failed"],
                    tuple(ServerTally(url, *per[url]) for url in sorted(per)))
    return from_tally(counted, servers, now)


def job(status, server="", started=None, finished=None):
    return SimpleNamespace(status=status, server=server, started_at=started, finished_at=finished)


def server(url, status="up", loaded="dream"):
    return SimpleNamespace(url=url, status=status, loaded_checkpoint=loaded)


NOW = 10_000.0


def test_counts_per_state_and_per_server():
    jobs = ([job("done", "http://a", NOW - 60 + 6 * i, NOW - 54 + 6 * i) for i in range(10)]  # 10 in the last minute
            + [job("done", "http://b", NOW - 120 + 24 * i, NOW - 96 + 24 * i) for i in range(5)]  # 5 in 2 minutes
            + [job("leased", "http://a", NOW - 3), job("leased", "http://b", NOW - 1)]
            + [job("failed", "http://b")] + [job("pending") for _ in range(32)])
    snap = snapshot(jobs, [server("http://b", loaded="other"), server("http://a")], NOW)
    assert (snap.total, snap.done, snap.running, snap.failed, snap.pending) == (50, 15, 2, 1, 32)
    a, b = snap.servers
    assert (a.url, a.status, a.loaded, a.done, a.running) == ("http://a", "up", "dream", 10, 1)
    assert (b.url, b.status, b.loaded, b.done, b.running) == ("http://b", "up", "other", 5, 1)
    assert abs(a.images_per_min - 10.0) < 1e-9  # 10 images since the first began 60 s ago
    assert abs(b.images_per_min - 2.5) < 1e-9
    assert abs(snap.images_per_min - 12.5) < 1e-9
    assert abs(snap.eta_s - 34 / 12.5 * 60) < 1e-6  # pending and running, at the summed rate
    assert snap.text() == "15/50 done · 2 running · 1 failed · 12.5 img/min · ETA 3 min"  # 163 s


def test_a_down_server_does_not_count_towards_the_eta_and_old_images_not_towards_rates():
    jobs = ([job("done", "http://a", NOW - 30, NOW - 20), job("done", "http://a", NOW - 20, NOW)]
            + [job("done", "http://b", NOW - 40, NOW - 10)]
            + [job("done", "http://a", 0.0, 5.0)]  # a previous run's, hours ago
            + [job("pending") for _ in range(4)])
    snap = snapshot(jobs, [server("http://a"), server("http://b", status="down")], NOW)
    a, b = snap.servers
    assert a.done == 3 and abs(a.images_per_min - 4.0) < 1e-9  # 2 recent images in 30 s
    assert b.status == "down" and b.images_per_min > 0
    assert abs(snap.eta_s - 4 / 4.0 * 60) < 1e-6


def test_nothing_measured_means_no_eta_and_a_finished_batch_shows_none():
    start = snapshot([job("pending") for _ in range(3)], [server("http://a")], NOW)
    assert start.eta_s is None and start.text() == "0/3 done · 0 running · 0 failed · 0.0 img/min · ETA ?"
    stale = snapshot([job("done", "http://a", 0.0, NOW - RATE_WINDOW_S - 1), job("pending")], [], NOW)
    assert stale.servers[0].status == "" and stale.servers[0].images_per_min == 0.0 and stale.eta_s is None
    end = snapshot([job("done", "http://a", NOW - 5, NOW - 1), job("failed")], [server("http://a")], NOW)
    assert end.finished and end.eta_s == 0.0
    assert end.text() == "1/2 done · 0 running · 1 failed · 12.0 img/min"  # 1 image, begun 5 s ago
    empty = snapshot([], [], NOW)
    assert (empty.total, empty.servers, empty.finished) == (0, (), True)


def test_durations_read_naturally():
    assert [duration(s) for s in (None, 0, 44.6, 89, 90, 1900, 5399, 5400, 7500)] == [
        "?", "0 s", "45 s", "89 s", "2 min", "32 min", "1 h 30 min", "1 h 30 min",
        "2 h 05 min"]


def test_a_server_line_reads_as_one_line():
    snap = snapshot([job("done", "http://a", NOW - 12, NOW), job("leased", "http://a", NOW)], [server("http://a")],
                    NOW)
    assert snap.servers[0].text() == "http://a [up] · dream · 1 done · 1 running · 5.0 img/min"


# -- counted by the queue ---------------------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_queue_counts_the_same_snapshot_in_sql(queue_url):
    """`JobQueue.progress` counts in the database what `snapshot` counts from the rows: the expected values are worked
    out by hand from the claims made here, and the rows' snapshot must agree too."""
    from lib_orchestrator.dispatch.jobs import NewJob
    from lib_orchestrator.dispatch.queue import JobQueue

    t0 = 1_000_000.0
    clock = Clock(t0 - 1000)
    with JobQueue(queue_url, clock=clock) as queue:
        queue.enqueue([NewJob("b", i, i, "", (), "k") for i in range(10)]
                      + [NewJob("other", i, i, "", (), "k") for i in range(2)])

        def run(owner, server, start, finish=None):
            clock.now = start
            job = queue.claim(owner, server, ["k"], "", 3600.0, "b")
            if finish is not None:
                clock.now = finish
                assert queue.complete(job.id, owner, f"f{job.id}", "d", finish - start)
            return job

        run("o1", "http://s1", t0 - 1000, t0 - 900)  # done long ago: counts as done, not towards the rate
        run("o1", "http://s1", t0, t0 + 30)
        run("o2", "http://s2", t0 + 30, t0 + 50)
        run("o1", "http://s1", t0 + 50, t0 + 60)
        run("o2", "http://s2", t0 + 60)  # running
        queue.fail(run("o1", "http://s1", t0 + 60).id, "o1", "out of memory")
        made_in_forge = [j for j in queue.jobs("b") if j.status == "pending"][0]
        assert queue.complete(made_in_forge.id, "tab", "f", "d", 1.0)  # done without a server
        clock.now = t0 + 70
        other = queue.claim("o3", "http://s3", ["k"], "", 3600.0, "other")
        assert queue.complete(other.id, "o3", "f", "d", 1.0)  # another batch's: s3 shows, with nothing of this one
        queue.server_seen("http://s2", "down", "X")
        now = t0 + 100
        counted = queue.progress("b", now)
        from_rows = snapshot(queue.jobs("b"), queue.servers(), now)
        empty = queue.progress("no such batch", now)

    assert (counted.total, counted.done, counted.running, counted.failed, counted.pending) == (10, 5, 1, 1, 3)
    s1, s2, s3 = counted.servers
    assert (s1.url, s1.status, s1.done, s1.running) == ("http://s1", "up", 3, 0)
    assert abs(s1.images_per_min - 2 / 100 * 60) < 1e-9  # 2 recent images, the first begun 100 s ago
    assert (s2.url, s2.status, s2.loaded, s2.done, s2.running) == ("http://s2", "down", "X", 1, 1)
    assert abs(s2.images_per_min - 1 / 70 * 60) < 1e-9
    assert (s3.url, s3.status, s3.done, s3.running, s3.images_per_min) == ("http://s3", "up", 0, 0, 0.0)
    assert abs(counted.eta_s - 4 / 1.2 * 60) < 1e-6  # 3 pending + 1 running at s1's rate (s2 is down)
    assert counted.text() == "5/10 done · 1 running · 1 failed · 2.1 img/min · ETA 3 min"
    assert counted == from_rows
    assert (empty.total, empty.eta_s, [line.done for line in empty.servers]) == (0, 0.0, [0, 0, 0])
