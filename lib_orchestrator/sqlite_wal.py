"""Switching an SQLite file of ours (the library cache, the history index) to write-ahead logging."""
from __future__ import annotations

import sqlite3
import time


def write_ahead(db: sqlite3.Connection, timeout: float) -> None:
    """WAL mode, waiting up to `timeout` seconds for it. SQLite answers "locked" at once, without its busy
    wait, when another process is switching a new file to WAL at the same moment: two processes opening a
    new cache together lost it about once in 400 tries (one then worked without a cache)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
