"""Where a dispatched batch stands, from the queue's rows alone: the CLI's bar and the tab show the same numbers,
and any process reading the queue (another machine's, on PostgreSQL) sees what the dispatchers see.

Rates are measured, not assumed: a server's images per minute are the batch's images it finished in the last
`RATE_WINDOW_S`, over the time since the first of them started. A server that stops finishing images decays to 0
on its own, and a batch resumed after hours is not slowed by the old images' timestamps."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

RATE_WINDOW_S = 600.0


@dataclass(frozen=True)
class ServerLine:
    url: str
    status: str  # "up" | "down" | "" (a server that ran jobs but has no row)
    loaded: str  # its loaded checkpoint, as last seen
    done: int  # images of this batch it finished
    images_per_min: float
    running: int  # jobs of this batch leased to it now

    def text(self) -> str:
        loaded = f" · {self.loaded}" if self.loaded else ""
        return (f"{self.url} [{self.status or '?'}]{loaded} · {self.done} done · {self.running} running · "
                f"{self.images_per_min:.1f} img/min")


@dataclass(frozen=True)
class Snapshot:
    total: int
    done: int
    running: int
    failed: int
    pending: int
    eta_s: Optional[float]  # None: nothing measured yet (or no server finishing images)
    servers: Tuple[ServerLine, ...]
    problems: Tuple[str, ...] = ()  # what the dispatcher could not do at all (images no server can make)

    @property
    def images_per_min(self) -> float:
        return sum(line.images_per_min for line in self.servers)

    @property
    def finished(self) -> bool:
        """No image waits or runs: every one is done or failed."""
        return self.pending == 0 and self.running == 0

    def text(self) -> str:
        """One line: `37/200 done · 2 running · 1 failed · 5.1 img/min · ETA 32 min`."""
        parts = [f"{self.done}/{self.total} done", f"{self.running} running", f"{self.failed} failed",
                 f"{self.images_per_min:.1f} img/min"]
        if not self.finished:
            parts.append(f"ETA {duration(self.eta_s)}")
        return " · ".join(parts)


def duration(seconds: Optional[float]) -> str:
    """`45 s`, `32 min`, `2 h 05 min`; `?` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def snapshot(jobs: Sequence, servers: Sequence, now: float) -> Snapshot:  # type: ignore[type-arg]
    """The batch's state from its jobs (`queue.Job` rows of one batch) and the queue's servers (`queue.ServerRow`).
    ETA: the images still to make over the summed rate of the servers that are up."""
    counts = {"pending": 0, "leased": 0, "done": 0, "failed": 0}
    done_by: Dict[str, List] = {}  # type: ignore[type-arg]
    running_by: Dict[str, int] = {}
    for job in jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
        if job.status == "done" and job.server:
            done_by.setdefault(job.server, []).append(job)
        elif job.status == "leased" and job.server:
            running_by[job.server] = running_by.get(job.server, 0) + 1
    rows = {row.url: row for row in servers}
    lines = []
    for url in sorted(set(rows) | set(done_by) | set(running_by)):
        row = rows.get(url)
        finished = done_by.get(url, [])
        lines.append(ServerLine(url, row.status if row else "", (row.loaded_checkpoint or "") if row else "",
                                len(finished), _rate(finished, now), running_by.get(url, 0)))
    remaining = counts["pending"] + counts["leased"]
    rate = sum(line.images_per_min for line in lines if line.status != "down")
    eta = remaining / rate * 60.0 if rate > 0 else (0.0 if remaining == 0 else None)
    return Snapshot(len(jobs), counts["done"], counts["leased"], counts["failed"], counts["pending"], eta,
                    tuple(lines))


def _rate(finished: Sequence, now: float) -> float:  # type: ignore[type-arg]
    """Images per minute: those finished in the last RATE_WINDOW_S, over the time since the first of them began."""
    recent = [job for job in finished if job.finished_at is not None and now - job.finished_at <= RATE_WINDOW_S]
    if not recent:
        return 0.0
    begun = min(job.started_at if job.started_at is not None else job.finished_at for job in recent)
    span = now - begun
    return len(recent) / span * 60.0 if span > 0 else 0.0
