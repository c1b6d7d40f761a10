"""The queue's schema and its errors: versions and migrations, databases that are not ours, bad URLs, a PostgreSQL
that cannot be reached, psycopg missing. Every refusal says what to do and leaves the database as it was."""
from __future__ import annotations

import os
import sqlite3
import sys
import threading
from typing import List

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


def test_a_driver_other_than_psycopg_3_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(OrchestratorError, match="not installed") as error:
        JobQueue("postgresql+psycopg2://orch@db.lan/queue")
    assert "postgresql://" in error.value.hint
