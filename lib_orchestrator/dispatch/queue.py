"""The durable job queue of a dispatched batch: one row per image, claimed under a lease, on SQLite or PostgreSQL.

One schema and one code path (SQLAlchemy Core) for both databases; the research (dispatch-queue.md §6) explains why a
plain table with an atomic leased claim beats a queue library here: affinity lives in the claim.

- **SQLite** (the default, one file next to the batch): WAL, a 30 s busy wait, and every writing transaction opened
  with `BEGIN IMMEDIATE`, so claims of several processes on one file take the write lock in turn instead of failing
  with "database is locked" when a reader tries to write. pysqlite's own transaction handling is switched off for
  that (SQLAlchemy's documented recipe: isolation_level None on connect, our BEGIN on the engine's begin event).
- **PostgreSQL** (several dispatchers or machines on one queue, psycopg 3 only): claims of one batch take turns on
  an advisory lock (as BEGIN IMMEDIATE makes them on SQLite) and read rows `FOR UPDATE SKIP LOCKED`. Every wait is
  bounded as SQLite's is: a 30 s lock timeout, a 60 s idle-in-transaction timeout, TCP keepalives (PG_OPTIONS).
- `JobQueue(url, create=False)` only reads (`batch show`): it creates, lays out and writes nothing.

Crash semantics (§7): a claim is a lease (owner, expiry) renewed while Forge works; an expired lease goes back to
pending (attempts already counted the claim) or to failed after max_attempts. Results are exactly once because the
image file is named by (batch_id, image_index) and `complete` is idempotent: a job done stays done with its first file.
Times are epoch seconds from an injectable clock, so tests move time instead of sleeping.
"""
from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Collection, Dict, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import unquote

from ..errors import OrchestratorError
from .jobs import NewJob
from .progress import ServerTally, Snapshot, Tally, from_tally, window_start

_NEED_SQLALCHEMY = "pip install 'SQLAlchemy>=2.0'"
try:
    import sqlalchemy as sa
except ImportError as _exc:  # Forge does not ship SQLAlchemy: say what to install instead of a bare traceback
    raise OrchestratorError("the job queue needs SQLAlchemy 2", hint=_NEED_SQLALCHEMY) from _exc
# A Forge venv may hold 1.4 (another extension's pin): its 2.0-style API is partial, and what fails then is a
# confusing error deep inside a claim, so it is refused here, as a missing one is.
if not str(getattr(sa, "__version__", "0")).split(".")[0].isdigit() or int(sa.__version__.split(".")[0]) < 2:
    raise OrchestratorError(f"the job queue needs SQLAlchemy 2; this Python has {getattr(sa, '__version__', '?')}",
                            hint=_NEED_SQLALCHEMY)
from sqlalchemy import event  # noqa: E402 (after the version check)
from sqlalchemy.engine import Connection, Engine, make_url  # noqa: E402
from sqlalchemy.exc import ArgumentError, DBAPIError  # noqa: E402

__all__ = ["APP", "SCHEMA_VERSION", "Counts", "Enqueued", "Job", "JobQueue", "ServerRow", "STATUSES"]

APP = "orchestrator-queue"  # meta's `app`: a database of something else is refused, not written into
SCHEMA_VERSION = 1
STATUSES = ("pending", "leased", "done", "failed")
SERVED_S = 10.0  # a checkpoint with a job done this recently is still being worked on (affinity)
SQLITE_BUSY_S = 30.0  # how long a claim waits for another process's write lock before it reports "locked"
# PostgreSQL's waits, bounded as SQLite's busy wait is (libpq `options`; a URL's own options= come after and win):
# a lock held by a stalled process fails after 30 s with "locked" instead of hanging the dispatcher, and a
# transaction left open by a stopped process (SIGSTOP, a laptop asleep) is ended by the server after 60 s,
# releasing its row and advisory locks. Our transactions last milliseconds.
PG_OPTIONS = "-c lock_timeout=30s -c idle_in_transaction_session_timeout=60s"
# A machine that vanishes (power, network) leaves its TCP connection open for hours without keepalives: its
# server-side session, and the locks of a transaction in it, would stay. libpq's defaults are the system's (2 h).
PG_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
_PG_MIGRATION_LOCK = 0x4F524348  # "ORCH": pg_advisory_xact_lock key, so two processes migrate one after the other

# ---------------------------------------------------------------------------------------------------------------
# schema 1. A later schema changes these through a new migration step; the step for 1 then keeps its own frozen copy.
metadata = sa.MetaData()
meta_t = sa.Table(
    "meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
jobs_t = sa.Table(
    "jobs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.Text, nullable=False),
    sa.Column("image_index", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("checkpoint", sa.Text, nullable=False),
    sa.Column("loras", sa.Text, nullable=False),  # json list of names
    sa.Column("needs_key", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("bypassed", sa.Integer, nullable=False, default=0),  # claims that took a later job over this one
    sa.Column("lease_owner", sa.Text),
    sa.Column("lease_expires_at", sa.Float),
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("server", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("file", sa.Text),
    sa.Column("digest", sa.Text),
    sa.Column("seconds", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.UniqueConstraint("batch_id", "image_index", name="jobs_batch_image"),
    sa.CheckConstraint("status IN ('pending', 'leased', 'done', 'failed')", name="jobs_status"),
    sa.Index("jobs_claim", "batch_id", "status", "seq"),  # the claim's window, in run order
    sa.Index("jobs_affinity", "batch_id", "status", "checkpoint", "seq"),  # the loaded checkpoint's next job
    sa.Index("jobs_starved", "batch_id", "status", "bypassed"),  # jobs bypassed max_bypass times: usually none
    sa.Index("jobs_leases", "status", "lease_expires_at"),  # expired leases: a range that is usually empty
    # Every column progress counts (JobQueue.tally): its queries read this index alone, never a row (20,000 jobs:
    # 2.9 ms on SQLite where the rows cost 5.9 ms).
    sa.Index("jobs_progress", "batch_id", "status", "server", "finished_at", "started_at"),
)
servers_t = sa.Table(
    "servers", metadata,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("loaded_checkpoint", sa.Text),
    sa.Column("last_seen", sa.Float),
    sa.Column("last_error", sa.Text),
    sa.Column("done", sa.Integer, nullable=False, default=0),
    sa.Column("seconds_total", sa.Float, nullable=False, default=0.0),
)
_OURS = ("meta", "jobs", "servers")


def _schema_1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[jobs_t, servers_t])


# (version it brings the database to, step): run in order inside one transaction, from the stored version up.
MIGRATIONS: Tuple[Tuple[int, Callable[[Connection], None]], ...] = ((1, _schema_1),)


# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    id: int
    batch_id: str
    image_index: int
    seq: int
    checkpoint: str
    loras: Tuple[str, ...]
    needs_key: str
    status: str  # pending | leased | done | failed
    attempts: int  # claims so far (a claim counts when it is made; a clean stop gives it back)
    max_attempts: int
    lease_owner: Optional[str]
    lease_expires_at: Optional[float]
    server: Optional[str]  # the server of the last claim
    error: Optional[str]  # the last error; for failed: why
    file: Optional[str]
    digest: Optional[str]
    seconds: Optional[float]
    started_at: Optional[float]  # the last claim
    finished_at: Optional[float]
    bypassed: int = 0
    heartbeat_at: Optional[float] = None
    created_at: Optional[float] = None


@dataclass(frozen=True)
class Enqueued:
    added: int  # new rows
    existing: int  # already queued (pending, leased or done): left as they were
    retried: int  # were failed: back to pending with attempts 0. added + existing + retried = the distinct jobs given


@dataclass(frozen=True)
class Counts:
    pending: int
    leased: int
    done: int
    failed: int
    total: int


@dataclass(frozen=True)
class ServerRow:
    url: str
    status: str  # up | down
    loaded_checkpoint: Optional[str]
    last_seen: Optional[float]
    last_error: Optional[str]
    done: int
    seconds_total: float


_JOB_COLUMNS = [jobs_t.c[name] for name in (
    "id", "batch_id", "image_index", "seq", "checkpoint", "loras", "needs_key", "status", "attempts", "max_attempts",
    "lease_owner", "lease_expires_at", "server", "error", "file", "digest", "seconds", "started_at", "finished_at",
    "bypassed", "heartbeat_at", "created_at")]


def _job(row: Any, **changed: Any) -> Job:
    values = dict(row._mapping)
    values.update(changed)
    values["loras"] = tuple(json.loads(values["loras"]))
    return Job(**values)


def _after(error: str, attempts: int) -> str:
    return f"after {attempts} attempt{'s' if attempts != 1 else ''}: {error}"


# ---------------------------------------------------------------------------------------------------------------
class JobQueue:
    """The queue at `url` ("sqlite:///FILE" or "postgresql://…"); thread-safe (one engine, a connection per call)."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time, max_attempts: int = 3,
                 create: bool = True) -> None:
        """create=False opens an existing queue for reading only (`batch show`): nothing is created, laid out,
        migrated or written, the SQLite file is never switched to WAL; a missing SQLite file is an error, a
        database without the queue's tables reads as empty (no jobs, no servers) until a dispatch lays them out."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.url = JobQueue.url_for(url)
        self._clock = clock
        self.max_attempts = max_attempts
        self.create = create
        self._ready = False  # our tables are there, at this schema
        self._shown = _shown(url if "://" in str(url) else self.url)  # as the user wrote it, password hidden
        self._engine = _engine(self.url, self._shown, create)
        self.dialect = self._engine.dialect.name
        self._insert = _insert_for(self.dialect)
        try:
            self._prepare()
        except BaseException:
            self._engine.dispose()
            raise

    # -- url and connections ------------------------------------------------------------------------------------
    @staticmethod
    def url_for(path_or_url: str) -> str:
        """A plain path -> sqlite:///its absolute path; postgresql:// (or postgres://) -> postgresql+psycopg://,
        SQLAlchemy's psycopg 3 dialect (its default would be psycopg2); anything else as it is."""
        text = str(path_or_url).strip()
        if "://" not in text:
            if not text:
                raise OrchestratorError("no queue given", hint="give a file path or sqlite:///FILE or postgresql://…")
            return "sqlite:///" + os.path.abspath(os.path.expanduser(text))
        scheme, rest = text.split("://", 1)
        if scheme in ("postgresql", "postgres"):
            return "postgresql+psycopg://" + rest
        return text

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One writing transaction: BEGIN IMMEDIATE on SQLite (the begin listener), plain BEGIN on PostgreSQL."""
        if not self.create:
            raise OrchestratorError(f"the job queue {self._shown} was opened for reading only",
                                    hint="open it with JobQueue(url) to change it")
        try:
            with self._engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise _db_error(exc, self._shown) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """One reading transaction: on SQLite a deferred BEGIN, so a reader never takes the write lock."""
        try:
            with self._engine.connect() as conn:
                conn.execution_options(orch_read=True)
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            raise _db_error(exc, self._shown) from exc

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "JobQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Refuse a database of something else or of a newer schema before writing anything; create or migrate
        ours in one transaction (one process does it, another waits for it and then finds it done)."""
        with self._read() as conn:
            found = self._found(conn)
        if found == SCHEMA_VERSION:
            self._ready = True
            return
        if not self.create:
            if found is not None:  # only a queue laid out halfway: schema 1 is laid out in one transaction
                raise OrchestratorError(
                    f"the job queue {self._shown} has schema version {found}, older than this Orchestrator's "
                    f"{SCHEMA_VERSION}; opened for reading only, it was left as it is",
                    hint="dispatch with it once (batch dispatch) to update it")
            return  # no queue here yet: it reads as empty
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            found = self._found(conn)
            if found == SCHEMA_VERSION:
                return
            if found is None:
                metadata.create_all(conn, tables=[meta_t])
                conn.execute(meta_t.insert(), [{"key": "app", "value": APP}, {"key": "schema", "value": "0"}])
                found = 0
            for version, step in MIGRATIONS:
                if version > found:
                    step(conn)
            conn.execute(meta_t.update().where(meta_t.c.key == "schema").values(value=str(SCHEMA_VERSION)))
        self._ready = True

    def _readable(self) -> bool:
        """Our tables are there (always after a creating open; a reading-only open looks again until they are)."""
        if not self._ready:
            with self._read() as conn:
                self._ready = self._found(conn) == SCHEMA_VERSION
        return self._ready

    def _found(self, conn: Connection) -> Optional[int]:
        """The stored schema version; None for a database with none of our tables yet. Raises for a newer schema
        or for tables of ours' names that another program made."""
        names = set(sa.inspect(conn).get_table_names())
        if "meta" not in names:
            clash = sorted(n for n in _OURS if n in names)
            if clash:
                raise OrchestratorError(
                    f"{self._shown} is not an Orchestrator job queue (it has table {', '.join(clash)} of something "
                    "else); it was left as it is", hint="give the queue another file or database")
            return None
        meta = {row.key: row.value for row in conn.execute(sa.select(meta_t.c.key, meta_t.c.value))}
        if meta.get("app") != APP:
            raise OrchestratorError(f"{self._shown} is not an Orchestrator job queue (its meta table is another "
                                    "program's); it was left as it is", hint="give the queue another file or database")
        try:
            found = int(meta.get("schema", ""))
        except ValueError:
            found = -1
        if found > SCHEMA_VERSION:
            raise OrchestratorError(
                f"the job queue {self._shown} has schema version {found}, made by a newer Orchestrator; this one "
                f"reads up to version {SCHEMA_VERSION}; it was left as it is",
                hint="update the Orchestrator on this machine, or give this run another queue")
        if found < 0:
            raise OrchestratorError(f"the job queue {self._shown} has no usable schema version "
                                    f"({meta.get('schema')!r})", hint="the queue is damaged: give this run a new one")
        return found

    # -- enqueue ------------------------------------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[NewJob]) -> Enqueued:
        """Add the jobs not queued yet, keyed (batch_id, image_index). The batch's failed jobs go back to pending
        with attempts 0 (a rerun retries them); pending, leased and done ones stay as they are."""
        now = self._clock()
        given: Dict[Tuple[str, int], NewJob] = {}
        for job in jobs:
            given.setdefault((job.batch_id, job.image_index), job)
        batches = sorted({key[0] for key in given})
        with self._write() as conn:
            if self.dialect == "postgresql":  # two enqueuers of one batch count their own rows, not each other's
                for batch in batches:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:b))"), {"b": batch})
            stored = {(r.batch_id, r.image_index): r.status for r in conn.execute(
                sa.select(jobs_t.c.batch_id, jobs_t.c.image_index, jobs_t.c.status)
                .where(jobs_t.c.batch_id.in_(batches)))} if batches else {}
            new = [{"batch_id": j.batch_id, "image_index": j.image_index, "seq": j.seq, "checkpoint": j.checkpoint,
                    "loras": json.dumps(list(j.loras), ensure_ascii=False), "needs_key": j.needs_key,
                    "status": "pending", "attempts": 0, "max_attempts": self.max_attempts, "bypassed": 0,
                    "created_at": now}
                   for key, j in given.items() if key not in stored]
            if new:
                conn.execute(self._insert(jobs_t).on_conflict_do_nothing(
                    index_elements=["batch_id", "image_index"]), new)
            failed = [key for key in given if stored.get(key) == "failed"]
            for batch in batches:
                indexes = [i for b, i in failed if b == batch]
                for start in range(0, len(indexes), 500):  # bounded IN lists
                    conn.execute(jobs_t.update().where(
                        jobs_t.c.batch_id == batch, jobs_t.c.status == "failed",
                        jobs_t.c.image_index.in_(indexes[start:start + 500])).values(
                        status="pending", attempts=0, max_attempts=self.max_attempts, bypassed=0, error=None,
                        lease_owner=None, lease_expires_at=None, finished_at=None))
        return Enqueued(len(new), len(given) - len(new) - len(failed), len(failed))

    # -- the hot path -------------------------------------------------------------------------------------------
    def claim(self, owner: str, server: str, allowed_keys: Collection[str], loaded_checkpoint: str,
              lease_s: float, batch_id: str, affinity: bool = True, window: int = 64, max_bypass: int = 24
              ) -> Optional[Job]:
        """Lease the next job of `batch_id` this server can run, or None.

        Expired leases (of anyone) are recovered first. Then, in one transaction, among the pending jobs whose
        needs_key is allowed:
        1. a job passed over `max_bypass` times is taken first (the lowest seq of them), whatever the affinity;
        2. with `affinity`, the first in run order (seq) for the loaded checkpoint (or for "", any), however far
           down the batch it is: a server keeps to its checkpoint while the batch has images for it;
        3. else, of the first `window` in run order, the first whose checkpoint nobody works on (no job of it
           leased or done in the last SERVED_S), rather than joining another server's, else the first.
        Each job of the window before the chosen one whose checkpoint nobody works on is passed over once more: it
        waits for someone to switch, and waits past no more than `max_bypass` claims once in the window. A job whose
        checkpoint is being made elsewhere is not counted: that server takes it in run order. The chosen job becomes
        leased by `owner` until now + lease_s, with attempts + 1."""
        keys = list(allowed_keys)
        with self._write() as conn:
            if self.dialect == "postgresql":
                # One claim of a batch at a time, as BEGIN IMMEDIATE makes it on SQLite: two servers claiming at
                # once would each lock half the window (SKIP LOCKED) and take the other's checkpoint (affinity
                # lost), and `now` is read once the claim may proceed, so leases begin in the order they are made.
                # The two-key form keeps it apart from enqueue's lock on the same batch.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(1, hashtext(:b))"), {"b": batch_id})
            now = self._clock()
            self._recover(conn, now)
            if not keys:
                return None
            pending = sa.select(*_JOB_COLUMNS).where(
                jobs_t.c.batch_id == batch_id, jobs_t.c.status == "pending", jobs_t.c.needs_key.in_(keys))
            # SKIP LOCKED on PostgreSQL: a row another transaction is deciding on is not a candidate here (SQLite's
            # compiler leaves FOR UPDATE out: BEGIN IMMEDIATE already made this claim the only writer).
            # Starved jobs are few (each claim bypasses fewer than `window`, and the next claim takes one), so they
            # are read without ORDER BY and the first picked here: sorted by seq, PostgreSQL walks the run-order
            # index through every pending job instead of the short range of the bypass index.
            starved = conn.execute(pending.where(jobs_t.c.bypassed >= max_bypass).limit(max(1, window))
                                   .with_for_update(skip_locked=True)).all() if max_bypass > 0 else []
            before: List[int] = []
            if starved:
                chosen = min(starved, key=lambda r: r.seq)
            else:
                rows = conn.execute(pending.order_by(jobs_t.c.seq).limit(max(1, window))
                                    .with_for_update(skip_locked=True)).all()
                if not rows:
                    return None
                # A checkpoint someone works on: a job of it leased, or done a moment ago (its server is between
                # completing one and claiming the next; counted as waiting, its jobs would starve and pull another
                # server over to it)
                served = {r.checkpoint for r in conn.execute(sa.select(jobs_t.c.checkpoint).distinct().where(
                    jobs_t.c.batch_id == batch_id, sa.or_(jobs_t.c.status == "leased", sa.and_(
                        jobs_t.c.status == "done", jobs_t.c.finished_at >= now - SERVED_S))))}
                chosen = None
                affinity = affinity and max_bypass > 0  # no bypass allowed: plain run order
                if affinity:
                    chosen = next((r for r in rows if r.checkpoint in ("", loaded_checkpoint)), None)
                    if chosen is None:  # further down the batch (the affinity index: one short range)
                        chosen = conn.execute(pending.where(jobs_t.c.checkpoint.in_(("", loaded_checkpoint)))
                                              .order_by(jobs_t.c.seq).limit(1)
                                              .with_for_update(skip_locked=True)).first()
                if chosen is None:
                    chosen = next((r for r in rows if r.checkpoint not in served), rows[0]) if affinity else rows[0]
                # Only the window's: the starved are then never more than `window`, all read by the cheap query
                # above, and a job further down reaches the window as those before it are made.
                before = [r.id for r in rows if r.seq < chosen.seq and r.checkpoint not in served]
            changed = {"status": "leased", "attempts": chosen.attempts + 1, "lease_owner": owner,
                       "lease_expires_at": now + lease_s, "heartbeat_at": now, "server": server, "started_at": now}
            conn.execute(jobs_t.update().where(jobs_t.c.id == chosen.id).values(**changed))
            if before:  # one statement shape whatever their number (an IN list would be a new statement each time)
                conn.execute(jobs_t.update().where(jobs_t.c.id == sa.bindparam("job_id"))
                             .values(bypassed=jobs_t.c.bypassed + 1), [{"job_id": i} for i in before])
        return _job(chosen, **changed)

    def renew(self, job_id: int, owner: str, lease_s: float) -> bool:
        """Extend `owner`'s lease to now + lease_s. False: the lease is no longer ours (recovered, taken by another
        claim, released, done): stop working on it."""
        with self._write() as conn:
            now = self._clock()
            result = conn.execute(jobs_t.update().where(
                jobs_t.c.id == job_id, jobs_t.c.status == "leased", jobs_t.c.lease_owner == owner).values(
                lease_expires_at=now + lease_s, heartbeat_at=now))
            return result.rowcount == 1

    def complete(self, job_id: int, owner: str, file: str, digest: str, seconds: float) -> bool:
        """Mark the job done with its file, in the same transaction as the server's done/seconds_total. Idempotent: a
        job already done stays done with its first file. The image exists whoever holds the lease now, so a late
        completion (lease expired, the job claimed again or failed meanwhile) still marks it done; the server is
        credited only when the lease was still `owner`'s (else which server made it is not known here).
        True when the job is done afterwards; False only for a job that is not in the queue."""
        with self._write() as conn:
            now = self._clock()
            # FOR UPDATE (PostgreSQL): a second completion of the job waits for this one, then finds it done.
            row = conn.execute(sa.select(jobs_t.c.status, jobs_t.c.lease_owner, jobs_t.c.server)
                               .where(jobs_t.c.id == job_id).with_for_update()).first()
            if row is None:
                return False
            if row.status == "done":
                return True
            conn.execute(jobs_t.update().where(jobs_t.c.id == job_id).values(
                status="done", file=file, digest=digest, seconds=seconds, finished_at=now, error=None,
                lease_owner=None, lease_expires_at=None))
            if row.status == "leased" and row.lease_owner == owner and row.server:
                conn.execute(self._insert(servers_t).values(
                    url=row.server, status="up", last_seen=now, done=1, seconds_total=seconds
                ).on_conflict_do_update(index_elements=["url"], set_={
                    "done": servers_t.c.done + 1, "seconds_total": servers_t.c.seconds_total + seconds,
                    "last_seen": now}))
            return True

    def release(self, job_id: int, owner: str, error: str, count_attempt: bool = True) -> Job:
        """The server failed (down, timeout, died mid-request): back to pending with `error` as its last error, or
        failed "after N attempts: <error>" once attempts reached max_attempts. Only while the lease is `owner`'s;
        the job as it is afterwards either way. count_attempt=False (a clean stop: Ctrl-C, the dispatcher told to
        stop) gives the claim back: attempts - 1, and always pending."""
        with self._write() as conn:
            now = self._clock()
            row = conn.execute(sa.select(*_JOB_COLUMNS).where(jobs_t.c.id == job_id).with_for_update()).first()
            if row is None:
                raise OrchestratorError(f"job {job_id} is not in the queue {self._shown}")
            if row.status != "leased" or row.lease_owner != owner:
                return _job(row)
            if not count_attempt:
                changed: Dict[str, Any] = {"status": "pending", "attempts": max(0, row.attempts - 1)}
            elif row.attempts >= row.max_attempts:
                changed = {"status": "failed", "finished_at": now}
                error = _after(error, row.attempts)
            else:
                changed = {"status": "pending"}
            changed.update(error=error, lease_owner=None, lease_expires_at=None)
            conn.execute(jobs_t.update().where(jobs_t.c.id == job_id).values(**changed))
            return _job(row, **changed)

    def fail(self, job_id: int, owner: str, error: str) -> bool:
        """Forge refused the job itself (out of memory, unknown sampler): failed now, no retry elsewhere. Only while
        the lease is `owner`'s; True when it was."""
        with self._write() as conn:
            result = conn.execute(jobs_t.update().where(
                jobs_t.c.id == job_id, jobs_t.c.status == "leased", jobs_t.c.lease_owner == owner).values(
                status="failed", error=error, finished_at=self._clock(), lease_owner=None, lease_expires_at=None))
            return result.rowcount == 1

    def fail_jobs(self, batch_id: str, needs_keys: Collection[str], error: str) -> int:
        """The batch's pending jobs with these needs_keys fail with `error` (no server can run them); how many."""
        keys = list(needs_keys)
        if not keys:
            return 0
        with self._write() as conn:
            return conn.execute(jobs_t.update().where(
                jobs_t.c.batch_id == batch_id, jobs_t.c.status == "pending", jobs_t.c.needs_key.in_(keys)).values(
                status="failed", error=error, finished_at=self._clock())).rowcount

    def recover_expired(self) -> int:
        """Expired leases, of any owner: back to pending (attempts stay: they count the claims), or failed once
        attempts reached max_attempts. How many."""
        with self._write() as conn:
            return self._recover(conn, self._clock())

    def _recover(self, conn: Connection, now: float) -> int:
        # The ids first, SKIP LOCKED: two recoveries at once on PostgreSQL take disjoint rows and cannot deadlock.
        expired = conn.execute(sa.select(jobs_t.c.id, jobs_t.c.attempts, jobs_t.c.max_attempts, jobs_t.c.server,
                                         jobs_t.c.lease_owner)
                               .where(jobs_t.c.status == "leased", jobs_t.c.lease_expires_at <= now)
                               .with_for_update(skip_locked=True)).all()
        for row in expired:
            error = f"the lease of {row.lease_owner} on {row.server} expired"
            if row.attempts >= row.max_attempts:
                changed: Dict[str, Any] = {"status": "failed", "error": _after(error, row.attempts), "finished_at": now}
            else:
                changed = {"status": "pending", "error": error}
            conn.execute(jobs_t.update().where(jobs_t.c.id == row.id, jobs_t.c.status == "leased",
                                               jobs_t.c.lease_expires_at <= now)
                         .values(lease_owner=None, lease_expires_at=None, **changed))
        return len(expired)

    # -- reading ------------------------------------------------------------------------------------------------
    def jobs(self, batch_id: str) -> List[Job]:
        if not self._readable():
            return []
        with self._read() as conn:
            rows = conn.execute(sa.select(*_JOB_COLUMNS).where(jobs_t.c.batch_id == batch_id)
                                .order_by(jobs_t.c.image_index)).all()
        return [_job(row) for row in rows]

    def job(self, job_id: int) -> Optional[Job]:
        if not self._readable():
            return None
        with self._read() as conn:
            row = conn.execute(sa.select(*_JOB_COLUMNS).where(jobs_t.c.id == job_id)).first()
        return None if row is None else _job(row)

    def counts(self, batch_id: str) -> Counts:
        if not self._readable():
            return Counts(0, 0, 0, 0, 0)
        with self._read() as conn:
            found = dict(conn.execute(sa.select(jobs_t.c.status, sa.func.count())
                                      .where(jobs_t.c.batch_id == batch_id).group_by(jobs_t.c.status)).all())
        by = {status: int(found.get(status, 0)) for status in STATUSES}
        return Counts(by["pending"], by["leased"], by["done"], by["failed"], sum(by.values()))

    def progress(self, batch_id: str, now: Optional[float] = None) -> Snapshot:
        """Where the batch stands (progress.Snapshot), counted by the database in one read: the CLI's bar and the tab
        ask for it every second, so it reads no job rows (at 20,000 jobs the rows took 225 ms; this takes 3 ms on
        SQLite, 7-9 ms on PostgreSQL)."""
        now = self._clock() if now is None else now
        if not self._readable():
            return from_tally(Tally(0, 0, 0, 0, ()), [], now)
        with self._read() as conn:
            counted = self._tally(conn, batch_id, now)
            servers = self._servers(conn)
        return from_tally(counted, servers, now)

    def tally(self, batch_id: str, now: Optional[float] = None) -> Tally:
        """The batch's jobs counted by status and per server (progress.Tally), without reading its rows."""
        now = self._clock() if now is None else now
        if not self._readable():
            return Tally(0, 0, 0, 0, ())
        with self._read() as conn:
            return self._tally(conn, batch_id, now)

    def _tally(self, conn: Connection, batch_id: str, now: float) -> Tally:
        by = {status: 0 for status in STATUSES}
        for status, n in conn.execute(sa.select(jobs_t.c.status, sa.func.count())
                                      .where(jobs_t.c.batch_id == batch_id).group_by(jobs_t.c.status)):
            by[status] = int(n)
        per: Dict[str, List[Any]] = {}  # url -> [done, running, recent, recent_begun], as progress.tally counts
        on_server = (jobs_t.c.batch_id == batch_id, jobs_t.c.server.is_not(None), jobs_t.c.server != "")
        for server, status, n in conn.execute(
                sa.select(jobs_t.c.server, jobs_t.c.status, sa.func.count())
                .where(*on_server, jobs_t.c.status.in_(("done", "leased")))
                .group_by(jobs_t.c.server, jobs_t.c.status)):
            per.setdefault(server, [0, 0, 0, None])[0 if status == "done" else 1] = int(n)
        # The rate counts only the images finished in the window (their number and earliest start per server).
        for server, n, begun in conn.execute(
                sa.select(jobs_t.c.server, sa.func.count(),
                          sa.func.min(sa.func.coalesce(jobs_t.c.started_at, jobs_t.c.finished_at)))
                .where(*on_server, jobs_t.c.status == "done", jobs_t.c.finished_at >= window_start(now))
                .group_by(jobs_t.c.server)):
            entry = per.setdefault(server, [0, 0, 0, None])
            entry[2], entry[3] = int(n), float(begun)
        return Tally(by["pending"], by["leased"], by["done"], by["failed"],
                     tuple(ServerTally(url, *per[url]) for url in sorted(per)))

    def unfinished(self, batch_id: str) -> bool:
        """Any job of the batch pending or leased (by anyone: another process on a shared queue too)."""
        if not self._readable():
            return False
        with self._read() as conn:
            return conn.execute(sa.select(jobs_t.c.id).where(
                jobs_t.c.batch_id == batch_id, jobs_t.c.status.in_(("pending", "leased"))).limit(1)).first() is not None

    # -- servers ------------------------------------------------------------------------------------------------
    def server_seen(self, url: str, status: str, loaded_checkpoint: Optional[str] = None, error: str = "") -> None:
        """Record a server's state: up or down, what it has loaded (None: unchanged), its last error."""
        if status not in ("up", "down"):
            raise ValueError(f"server status must be 'up' or 'down', not {status!r}")
        now = self._clock()
        values: Dict[str, Any] = {"status": status, "last_seen": now, "last_error": error or None}
        if loaded_checkpoint is not None:
            values["loaded_checkpoint"] = loaded_checkpoint
        with self._write() as conn:
            conn.execute(self._insert(servers_t).values(url=url, done=0, seconds_total=0.0, **values)
                         .on_conflict_do_update(index_elements=["url"], set_=values))

    def servers(self) -> List[ServerRow]:
        if not self._readable():
            return []
        with self._read() as conn:
            return self._servers(conn)

    def _servers(self, conn: Connection) -> List[ServerRow]:
        rows = conn.execute(sa.select(servers_t).order_by(servers_t.c.url)).all()
        return [ServerRow(r.url, r.status, r.loaded_checkpoint, r.last_seen, r.last_error, int(r.done),
                          float(r.seconds_total)) for r in rows]


# ---------------------------------------------------------------------------------------------------------------
def _shown(url: str) -> str:
    """The URL for messages: the password hidden, the rest as readable as it was written (no %2F for a socket
    folder)."""
    try:
        return unquote(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return url


_HINT_URL = "give a file path, sqlite:///FILE or postgresql://USER@HOST/DATABASE"


def _engine(url: str, shown: str, create: bool = True) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise OrchestratorError(f"not a queue URL: {shown}", hint=_HINT_URL) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:") or (parsed.query or {}).get("mode") == "memory":
            raise OrchestratorError(f"the job queue must be a file, not an in-memory database: {shown}",
                                    hint="give sqlite:///FILE or a path")
        path = os.path.abspath(parsed.database)
        if not create:
            if not os.path.isfile(path):
                raise OrchestratorError(f"there is no job queue at {path}",
                                        hint="dispatch the batch first (batch dispatch), or check the path")
            # mode=rw: SQLite opens the file only if it exists, so a file removed meanwhile is not made anew.
            uri = pathlib.Path(path).as_uri() + "?mode=rw"
            engine = sa.create_engine(url, pool_size=10, max_overflow=20, creator=lambda: sqlite3.connect(
                uri, uri=True, timeout=SQLITE_BUSY_S, check_same_thread=False))
            _sqlite_transactions(engine, read_only=True)
            return engine
        if not os.path.isdir(os.path.dirname(path)):
            raise OrchestratorError(f"the folder of the job queue {path} does not exist",
                                    hint="make the folder first, or give the queue another path")
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_S, "check_same_thread": False},
                                  pool_size=10, max_overflow=20)
        _sqlite_transactions(engine)
        return engine
    if backend != "postgresql":
        raise OrchestratorError(f"the job queue cannot use {backend!r}: {shown}", hint=_HINT_URL)
    driver = parsed.get_driver_name()
    if driver != "psycopg":  # the settings below are psycopg 3's; another driver would fail on them obscurely
        raise OrchestratorError(f"the job queue talks to PostgreSQL through psycopg 3 only, not {driver}: {shown}",
                                hint="use postgresql://… with psycopg 3 (pip install 'psycopg[binary]')")
    # A host that drops packets would otherwise hold the first connection for the system's TCP timeout (minutes).
    connect_args: Dict[str, Any] = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
    connect_args.update({key: value for key, value in PG_KEEPALIVES.items() if key not in parsed.query})
    options = PG_OPTIONS + ("" if create else " -c default_transaction_read_only=on")  # reading only: enforced
    if "options" in parsed.query:  # the URL's own come last, so a lock_timeout there wins
        given = parsed.query["options"]
        options += " " + (" ".join(given) if isinstance(given, tuple) else given)
    connect_args["options"] = options
    # No server-side prepared statements: after 5 runs psycopg would prepare the claim's queries, and PostgreSQL's
    # generic plan for "bypassed >= $n" walked every pending job of a 10k batch (2 ms a claim, growing with the
    # batch) where the plan for the actual values reads an empty index range. Planning them costs ~0.05 ms.
    connect_args["prepare_threshold"] = None
    try:
        return sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, connect_args=connect_args)
    except ImportError as exc:
        raise OrchestratorError(f"a PostgreSQL queue needs the psycopg package (psycopg 3): {exc}",
                                hint="pip install 'psycopg[binary]'") from exc


_WAL_LOCK = threading.Lock()


def _sqlite_transactions(engine: Engine, read_only: bool = False) -> None:
    """SQLAlchemy's recipe for pysqlite: its own BEGIN handling off, ours on the engine's begin event. read_only:
    the file is left in its journal mode and SQLite itself refuses any write (query_only)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # pysqlite emits no BEGIN/COMMIT of its own; ours below
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_S * 1000)}")
            if read_only:
                cursor.execute("PRAGMA query_only = ON")
                return
            with _WAL_LOCK:
                from ..sqlite_wal import write_ahead
                write_ahead(dbapi_conn, SQLITE_BUSY_S)
            # With WAL, NORMAL loses nothing when the process dies; a power cut may lose the last commits: a lost
            # `done` makes a rerun redo the image (same name, same bytes), a lost claim is claimed again.
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at BEGIN (waiting up to busy_timeout), so a claim never reads a window and
        # then fails to write it because another process wrote first. Readers begin deferred: no lock at all.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("orch_read") else "BEGIN IMMEDIATE")


def _insert_for(dialect: str) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT with ON CONFLICT: the same statement shape on SQLite and PostgreSQL."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


_LOCKED_HINT = f"another process held the queue's write lock for over {SQLITE_BUSY_S:.0f} s; try again"


def _db_error(exc: DBAPIError, shown: str) -> OrchestratorError:
    """A database error as one line that says what to do."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    lowered = text.lower()
    sqlstate = getattr(exc.orig, "sqlstate", None)  # psycopg's SQLSTATE code
    if sqlstate == "55P03" or "lock timeout" in lowered:  # PostgreSQL's lock_timeout (PG_OPTIONS): as SQLite's busy
        return OrchestratorError(f"job queue {shown}: database is locked ({first})", hint=_LOCKED_HINT)
    if sqlstate == "25P03" or "idle-in-transaction" in lowered:
        hint = ("PostgreSQL ended a transaction of this process that stalled for over 60 s (the process was "
                "stopped or starved); try again")
    elif "locked" in lowered or "busy" in lowered:
        hint = _LOCKED_HINT
    elif "database" in lowered and "does not exist" in lowered:
        hint = "create the database first (createdb NAME), or check its name in the URL"
    elif "password" in lowered or "authentication" in lowered or "role" in lowered:
        hint = "check the user and password in the URL"
    elif "connection" in lowered or "could not connect" in lowered or "no such file or directory" in lowered \
            or "server closed" in lowered or "timeout" in lowered:
        hint = "is the PostgreSQL server running, and do host, port, user and database in the URL match it?"
    elif "not a database" in lowered or "malformed" in lowered:
        hint = "this file is not an SQLite database: give the queue another file"
    elif "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        hint = "the queue's file or folder cannot be written: check its permissions"
    else:
        hint = "the queue database failed; try again, or give this run a new queue"
    return OrchestratorError(f"job queue {shown}: {first}", hint=hint)
