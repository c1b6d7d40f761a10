"""The queue's schema and its errors: versions and migrations, databases that are not ours, bad URLs, a PostgreSQL
that cannot be reached, psycopg missing. Every refusal says what to do and leaves the database as it was."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from typing import List
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from lib_orchestrator.dispatch import queue as queue_module
from lib_orchestrator.dispatch.jobs import NewJob
from lib_orchestrator.dispatch.queue import JobQueue
from lib_orchestrator.errors import OrchestratorError


def _sql(url: str, statement: str) -> List[tuple]:
    """Run one statement straight on the database, outside the queue's code."""
    engine = sa.create_engine(JobQueue.url_for(url))
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement))
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _files(url: str) -> dict:
    """An SQLite queue's folder, byte for byte (the database and any -wal/-shm beside it)."""
    folder = os.path.dirname(url.removeprefix("sqlite:///"))
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as fh:
            out[name] = fh.read()
    return out


def test_a_new_queue_is_marked_ours_with_schema_1(queue_url):
    JobQueue(queue_url).close()
    assert dict(_sql(queue_url, "SELECT key, value FROM meta")) == {"app": "orchestrator-queue", "schema": "1"}


def test_a_newer_schema_is_refused_with_what_to_do(queue_url):
    with JobQueue(queue_url) as queue:
        queue.enqueue([NewJob("b", 0, 0, "", (), "k")])
    _sql(queue_url, "UPDATE meta SET value = '7' WHERE key = 'schema'")
    before = _files(queue_url) if queue_url.startswith("sqlite") else None
    with pytest.raises(OrchestratorError) as error:
        JobQueue(queue_url)
    text = str(error.value)
    assert "schema version 7" in text and "newer Orchestrator" in text and "reads up to version 1" in text
    assert "update the Orchestrator" in error.value.hint
    if before is not None:
        assert _files(queue_url) == before
    assert _sql(queue_url, "SELECT value FROM meta WHERE key = 'schema'") == [("7",)]
    assert _sql(queue_url, "SELECT count(*) FROM jobs") == [(1,)]


def test_a_damaged_schema_version_is_refused(queue_url):
    JobQueue(queue_url).close()
    _sql(queue_url, "UPDATE meta SET value = 'x' WHERE key = 'schema'")
    with pytest.raises(OrchestratorError, match="no usable schema version"):
        JobQueue(queue_url)


def test_an_older_schema_is_migrated_once_keeping_the_jobs(queue_url, monkeypatch):
    with JobQueue(queue_url) as queue:
        queue.enqueue([NewJob("b", i, i, "", (), "k") for i in range(3)])
    ran = []

    def add_priority(conn):
        ran.append(1)
        conn.execute(sa.text("ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0"))

    monkeypatch.setattr(queue_module, "MIGRATIONS", queue_module.MIGRATIONS + ((2, add_priority),))
    monkeypatch.setattr(queue_module, "SCHEMA_VERSION", 2)
    for _ in range(2):
        with JobQueue(queue_url) as queue:
            assert [j.image_index for j in queue.jobs("b")] == [0, 1, 2]
    assert ran == [1]
    assert _sql(queue_url, "SELECT value FROM meta WHERE key = 'schema'") == [("2",)]
    assert _sql(queue_url, "SELECT count(*) FROM jobs WHERE priority = 0") == [(3,)]


def test_a_failing_migration_leaves_the_old_schema(queue_url, monkeypatch):
    JobQueue(queue_url).close()

    def broken(conn):
        conn.execute(sa.text("ALTER TABLE jobs ADD COLUMN half INTEGER"))
        raise RuntimeError("step failed half way")

    monkeypatch.setattr(queue_module, "MIGRATIONS", queue_module.MIGRATIONS + ((2, broken),))
    monkeypatch.setattr(queue_module, "SCHEMA_VERSION", 2)
    with pytest.raises(RuntimeError):
        JobQueue(queue_url)
    assert _sql(queue_url, "SELECT value FROM meta WHERE key = 'schema'") == [("1",)]
    monkeypatch.undo()
    JobQueue(queue_url).close()  # still usable by this version: the half step was rolled back with the rest


def test_many_openers_of_a_new_queue_lay_it_out_once(queue_url):
    errors: List[BaseException] = []
    start = threading.Barrier(6)

    def open_it():
        try:
            start.wait(timeout=60)
            with JobQueue(queue_url) as queue:
                queue.enqueue([NewJob("b", 0, 0, "", (), "k")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "an opener hung"
    assert errors == []
    assert _sql(queue_url, "SELECT count(*) FROM jobs") == [(1,)]
    assert _sql(queue_url, "SELECT count(*) FROM meta") == [(2,)]


def test_tables_of_another_program_are_refused_and_left_alone(queue_url):
    _sql(queue_url, "CREATE TABLE jobs (name TEXT)")
    _sql(queue_url, "INSERT INTO jobs VALUES ('theirs')")
    with pytest.raises(OrchestratorError, match="not an Orchestrator job queue") as error:
        JobQueue(queue_url)
    assert "another file or database" in error.value.hint
    assert _sql(queue_url, "SELECT name FROM jobs") == [("theirs",)]
    assert "meta" not in sa.inspect(sa.create_engine(JobQueue.url_for(queue_url))).get_table_names()


def test_a_meta_table_of_another_program_is_refused(queue_url):
    _sql(queue_url, "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    _sql(queue_url, "INSERT INTO meta VALUES ('app', 'something-else')")
    with pytest.raises(OrchestratorError, match="not an Orchestrator job queue"):
        JobQueue(queue_url)


def test_other_tables_in_the_database_do_not_matter(queue_url):
    _sql(queue_url, "CREATE TABLE images (name TEXT)")
    with JobQueue(queue_url) as queue:
        assert queue.enqueue([NewJob("b", 0, 0, "", (), "k")]).added == 1


# -- SQLite specifics ----------------------------------------------------------------------------------------------
def test_sqlite_queue_uses_write_ahead_logging(tmp_path):
    path = tmp_path / "q.sqlite"
    JobQueue(str(path)).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_a_file_that_is_not_sqlite_is_refused_unchanged(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"my notes, not a database\n" * 50)
    with pytest.raises(OrchestratorError, match="not a database") as error:
        JobQueue(str(path))
    assert "another file" in error.value.hint
    assert path.read_bytes() == b"my notes, not a database\n" * 50


def test_a_queue_in_a_missing_folder_says_so(tmp_path):
    with pytest.raises(OrchestratorError, match="does not exist") as error:
        JobQueue(str(tmp_path / "nowhere" / "q.sqlite"))
    assert str(tmp_path / "nowhere") in str(error.value)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_queue_is_refused(url):
    with pytest.raises(OrchestratorError, match="must be a file"):
        JobQueue(url)


# -- URLs ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given, expected", [
    ("queue.sqlite", "sqlite:///" + os.path.abspath("queue.sqlite")),
    ("/data/q.sqlite", "sqlite:////data/q.sqlite" if os.name != "nt" else None),
    ("sqlite:///rel.sqlite", "sqlite:///rel.sqlite"),
    ("postgresql://orch@db.lan/queue", "postgresql+psycopg://orch@db.lan/queue"),
    ("postgres://u:p@h:5433/q", "postgresql+psycopg://u:p@h:5433/q"),
    ("postgresql+psycopg://u@h/q", "postgresql+psycopg://u@h/q"),
])
def test_url_for(given, expected):
    if expected is not None:
        assert JobQueue.url_for(given) == expected


@pytest.mark.parametrize("url, message", [
    ("mysql://u@h/db", "cannot use 'mysql'"),
    ("redis://h/0", "cannot use 'redis'"),
    ("ab cd://x", "not a queue URL"),
    ("", "no queue given"),
])
def test_a_bad_url_says_which_ones_work(url, message):
    with pytest.raises(OrchestratorError, match=message) as error:
        JobQueue(url)
    if url:
        assert "sqlite:///FILE" in error.value.hint and "postgresql://" in error.value.hint


# -- PostgreSQL errors ---------------------------------------------------------------------------------------------
def test_an_unreachable_postgresql_says_what_to_check(tmp_path):
    pytest.importorskip("psycopg")
    url = f"postgresql://orch:secret@/queue?host={tmp_path}&port=5999"  # a folder with no server socket in it
    with pytest.raises(OrchestratorError) as error:
        JobQueue(url)
    text = str(error.value)
    assert "is the PostgreSQL server running" in text
    assert str(tmp_path) in text
    assert "secret" not in text


def test_a_missing_database_says_to_create_it(postgres_cluster):
    with pytest.raises(OrchestratorError, match="does not exist") as error:
        JobQueue(postgres_cluster.url("no_such_queue"))
    assert "createdb" in error.value.hint


def test_missing_psycopg_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(OrchestratorError, match="needs the psycopg package") as error:
        JobQueue("postgresql://orch@db.lan/queue")
    assert error.value.hint == "pip install 'psycopg[binary]'"


@pytest.mark.parametrize("driver", ["psycopg2", "pg8000", "asyncpg"])
def test_a_driver_other_than_psycopg_3_is_refused_saying_which_url_works(driver):
    """The queue's connection settings (prepared statements off, lock and idle timeouts, keepalives) are psycopg 3's:
    another driver is refused before it is loaded, not failed with a hint about installing it."""
    with pytest.raises(OrchestratorError, match=f"psycopg 3 only, not {driver}") as error:
        JobQueue(f"postgresql+{driver}://orch@db.lan/queue")
    assert error.value.hint.startswith("use postgresql://… with psycopg 3")


def test_sqlalchemy_older_than_2_is_refused_at_import_with_the_install_hint(tmp_path):
    """A Forge venv may hold SQLAlchemy 1.4: importing the queue says what to install, as a missing one does."""
    fake = tmp_path / "sqlalchemy"
    fake.mkdir()
    (fake / "__init__.py").write_text('__version__ = "1.4.54"\n')
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    probe = ("from lib_orchestrator.errors import OrchestratorError\n"
             "try:\n    import lib_orchestrator.dispatch.queue\n"
             "except OrchestratorError as e:\n    print(str(e)); print(e.hint)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), root])})
    assert done.returncode == 0, done.stderr
    assert "needs SQLAlchemy 2; this Python has 1.4.54" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "pip install 'SQLAlchemy>=2.0'"


# -- PostgreSQL's waits are bounded --------------------------------------------------------------------------------
def _with_options(url: str, options: str) -> str:
    return f"{url}&options={quote(options)}"


def test_postgresql_sessions_bound_their_lock_waits_and_keep_alive(postgres_url):
    with JobQueue(postgres_url) as queue:
        with queue._engine.connect() as conn:
            settings = {name: conn.exec_driver_sql(f"SHOW {name}").scalar()
                        for name in ("lock_timeout", "idle_in_transaction_session_timeout")}
            parameters = conn.connection.driver_connection.info.get_parameters()
    assert settings == {"lock_timeout": "30s", "idle_in_transaction_session_timeout": "1min"}
    assert {k: parameters.get(k) for k in ("keepalives", "keepalives_idle", "keepalives_interval",
                                           "keepalives_count")} == {"keepalives": "1", "keepalives_idle": "30",
                                                                    "keepalives_interval": "10",
                                                                    "keepalives_count": "3"}
    with JobQueue(_with_options(postgres_url, "-c lock_timeout=5s")) as queue:  # the URL's own options win
        with queue._engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "5s"


def test_a_postgresql_lock_held_too_long_fails_as_locked_not_hanging(postgres_url):
    """Another session holding the jobs table, or one job's row, past the lock timeout: the claim or completion
    fails with SQLite's "locked" message and hint instead of waiting without end; once it lets go, all works."""
    import psycopg

    with JobQueue(postgres_url) as queue:
        queue.enqueue([NewJob("b", i, i, "", (), "k") for i in range(3)])
        job = queue.claim("me", "http://s", ["k"], "", 60.0, "b")
    url = _with_options(postgres_url, "-c lock_timeout=200ms")
    parsed = sa.engine.make_url(JobQueue.url_for(postgres_url))
    other = psycopg.connect(host=parsed.query["host"], port=parsed.query["port"], user=parsed.username,
                            dbname=parsed.database)
    try:
        with JobQueue(url) as queue:
            other.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (job.id,))
            with pytest.raises(OrchestratorError, match="database is locked") as error:
                queue.complete(job.id, "me", "f", "d", 1.0)
            assert error.value.hint == "another process held the queue's write lock for over 30 s; try again"
            other.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(OrchestratorError, match="database is locked"):
                queue.claim("me", "http://s", ["k"], "", 60.0, "b")
            other.rollback()
            assert queue.complete(job.id, "me", "f", "d", 1.0)
            assert queue.claim("me", "http://s", ["k"], "", 60.0, "b") is not None
    finally:
        other.close()


# -- opening only to read ------------------------------------------------------------------------------------------
def test_reading_a_missing_sqlite_queue_says_so_and_makes_no_file(tmp_path):
    path = tmp_path / "q.sqlite"
    with pytest.raises(OrchestratorError, match="there is no job queue at") as error:
        JobQueue(str(path), create=False)
    assert str(path) in str(error.value) and "batch dispatch" in error.value.hint
    assert os.listdir(tmp_path) == []


def test_reading_an_empty_database_finds_no_jobs_and_lays_nothing_out(queue_url):
    if queue_url.startswith("sqlite"):
        open(queue_url.removeprefix("sqlite:///"), "wb").close()  # an empty file is an empty database
    with JobQueue(queue_url, create=False) as reader:
        assert reader.jobs("b") == [] and reader.servers() == [] and not reader.unfinished("b")
        assert reader.counts("b").total == 0 and reader.progress("b", 0.0).total == 0
        with pytest.raises(OrchestratorError, match="reading only"):
            reader.enqueue([NewJob("b", 0, 0, "", (), "k")])
        assert _tables(queue_url) == []
        with JobQueue(queue_url) as writer:  # a dispatch starts meanwhile: the reader sees its jobs from then on
            writer.enqueue([NewJob("b", i, i, "", (), "k") for i in range(2)])
        assert [j.image_index for j in reader.jobs("b")] == [0, 1]


def test_reading_a_queue_changes_nothing_in_it(queue_url):
    with JobQueue(queue_url) as writer:
        writer.enqueue([NewJob("b", i, i, "", (), "k") for i in range(3)])
        writer.claim("me", "http://s", ["k"], "", 60.0, "b")
    path = queue_url.removeprefix("sqlite:///") if queue_url.startswith("sqlite") else None
    before = open(path, "rb").read() if path else _sql(queue_url, "SELECT * FROM jobs ORDER BY id")
    with JobQueue(queue_url, create=False) as reader:
        assert [j.status for j in reader.jobs("b")] == ["leased", "pending", "pending"]
        assert reader.counts("b").leased == 1 and reader.progress("b", 0.0).running == 1
        with pytest.raises(OrchestratorError, match="reading only"):
            reader.claim("me", "http://s", ["k"], "", 60.0, "b")
    after = open(path, "rb").read() if path else _sql(queue_url, "SELECT * FROM jobs ORDER BY id")
    assert after == before


def test_reading_a_sqlite_file_leaves_its_journal_mode(tmp_path):
    """A reader never switches a file to WAL, nor writes it at all (SQLite's query_only)."""
    path = tmp_path / "q.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (x)")
    db.commit()
    db.close()
    with JobQueue(str(path), create=False) as reader:
        assert reader.jobs("b") == []
        with reader._engine.connect() as conn:
            with pytest.raises(sa.exc.OperationalError, match="readonly"):
                conn.exec_driver_sql("CREATE TABLE jobs (x)")
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["notes"]
    finally:
        db.close()


def test_reading_refuses_what_opening_refuses(queue_url):
    with JobQueue(queue_url) as queue:
        queue.enqueue([NewJob("b", 0, 0, "", (), "k")])
    _sql(queue_url, "UPDATE meta SET value = '7' WHERE key = 'schema'")
    with pytest.raises(OrchestratorError, match="schema version 7"):
        JobQueue(queue_url, create=False)


def _tables(url: str) -> List[str]:
    engine = sa.create_engine(JobQueue.url_for(url))
    try:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
