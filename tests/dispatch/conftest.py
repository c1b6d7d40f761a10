"""Fixtures of the dispatch tests: a real PostgreSQL for the session (tests/dispatch/postgres.py) and `queue_url`,
one fresh queue per test on each backend, so every queue and dispatcher test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

from typing import Iterator

import pytest

from .postgres import PostgresCluster, PostgresUnavailable


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One server for the whole run (it starts in about 2 s); skipped, saying why, only where PostgreSQL or psycopg
    cannot be had. A server that is there but fails to start is an error, not a skip."""
    try:
        cluster = PostgresCluster.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty PostgreSQL database for one test: "postgresql://orch@/tN?host=DIR&port=PORT"."""
    return postgres_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh queue for one test: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def fakes():
    """fakes(...) -> a started fake Forge (helpers.fake's arguments); every one is stopped after the test."""
    from .helpers import fake

    started = []

    def start(**kwargs):  # type: ignore[no-untyped-def]
        server = fake(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
