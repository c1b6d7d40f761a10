"""A persistent cache of LoRA records in SQLite, keyed by relative path and validated by a stamp
(size and mtime of the file and of every sidecar). A warm scan only stats files.

A cache that is corrupt, of another schema, or locked too long is rebuilt or skipped, never fatal.
WAL mode and one transaction per save keep two processes scanning at once from corrupting it.
"""
from __future__ import annotations

import os
import sqlite3
from typing import Dict, Iterable, Optional, Tuple

from .record import LoraRecord

SCHEMA_VERSION = 2  # 2: records carry Civitai tags

Stamp = str  # an opaque text: equal stamps mean nothing changed


class RecordCache:
    def __init__(self, path: str) -> None:
        self.path = path
        self.db: Optional[sqlite3.Connection] = None
        try:
            self.db = self._open()
        except sqlite3.DatabaseError:  # damaged: start again
            self._discard()
            try:
                self.db = self._open()
            except (sqlite3.Error, OSError):
                self.db = None
        except (sqlite3.Error, OSError):
            self.db = None  # unusable (read-only folder, a file in the way, …): scan without a cache

    def _open(self) -> sqlite3.Connection:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            db.execute("DROP TABLE IF EXISTS records")
            db.execute("CREATE TABLE records (path TEXT PRIMARY KEY, stamp TEXT NOT NULL, record TEXT NOT NULL)")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.commit()
        db.execute("SELECT count(*) FROM records").fetchone()  # fails now if the file is damaged
        return db

    def _discard(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(self.path + suffix)
            except OSError:
                pass

    def load(self) -> Dict[str, Tuple[Stamp, str]]:
        """path -> (stamp, record JSON)."""
        if self.db is None:
            return {}
        try:
            return {p: (s, r) for p, s, r in self.db.execute("SELECT path, stamp, record FROM records")}
        except sqlite3.Error:
            return {}

    def save(self, changed: Iterable[Tuple[str, Stamp, LoraRecord]], gone: Iterable[str]) -> None:
        if self.db is None:
            return
        rows = [(path, stamp, record.to_json()) for path, stamp, record in changed]
        gone = [(p,) for p in gone]
        if not rows and not gone:
            return
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?)", rows)
                self.db.executemany("DELETE FROM records WHERE path = ?", gone)
        except sqlite3.Error:
            pass  # another process holds it too long: this scan's results are simply not cached

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
