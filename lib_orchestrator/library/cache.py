"""A persistent cache of LoRA records in SQLite, keyed by relative path and validated by a stamp
(size and mtime of the file and of every sidecar). A warm scan only stats files.

The cache file is named by the user (`--cache FILE`, a Forge setting), so a typo can point it at any
file. A file that is not ours (not SQLite, or SQLite with other tables) is refused with `CacheError` and
never opened for writing. Ours is marked with SQLite's `application_id`; a cache from before the marker is
recognised by its one `records` table. A cache of ours that is corrupt, of another schema, or locked too
long is rebuilt or skipped, never fatal. WAL mode and one transaction per save keep two processes scanning
at once from corrupting it.

Paths and stamps are stored as BLOBs (UTF-8, surrogates passed through) and records as ASCII JSON, so a
file name that is not UTF-8 (Python keeps it with surrogate escapes) round-trips exactly.
"""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import urllib.parse
from typing import Dict, Iterable, Optional, Tuple

from ..errors import Location, OrchestratorError
from .record import LoraRecord

SCHEMA_VERSION = 3  # 2: records carry Civitai tags; 3: BLOB keys, ASCII records, the application_id marker
APPLICATION_ID = 0x4F524C43  # "ORLC": what `PRAGMA application_id` reads in a cache of ours
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LEGACY_COLUMNS = ["path", "stamp", "record"]

Stamp = str  # an opaque text: equal stamps mean nothing changed


class CacheError(OrchestratorError):
    """The cache path names a file that is not a LoRA library cache; it was left as it was."""


class RecordCache:
    def __init__(self, path: str) -> None:
        """Raises CacheError when `path` is an existing file that is not our cache."""
        self.path = path
        self.db: Optional[sqlite3.Connection] = None
        refuse_foreign(path)
        try:
            self.db = self._open()
        except sqlite3.OperationalError:
            self.db = None  # locked too long, a read-only folder, a file in the way: scan without a cache
        except sqlite3.DatabaseError:  # ours, but damaged: start again
            self._discard()
            try:
                self.db = self._open()
            except (sqlite3.Error, OSError):
                self.db = None
        except OSError:
            self.db = None

    def _open(self) -> sqlite3.Connection:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")  # one process decides the schema; a second waits, then sees it
            version = db.execute("PRAGMA user_version").fetchone()[0]
            marker = db.execute("PRAGMA application_id").fetchone()[0]
            if version != SCHEMA_VERSION or marker != APPLICATION_ID:
                db.execute("DROP TABLE IF EXISTS records")
                db.execute("CREATE TABLE records (path BLOB PRIMARY KEY, stamp BLOB NOT NULL, record TEXT NOT NULL)")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.commit()
            db.execute("SELECT count(*) FROM records").fetchone()  # fails now if the file is damaged
        except BaseException:
            db.close()
            raise
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
            return {_text(p): (_text(s), r) for p, s, r in self.db.execute("SELECT path, stamp, record FROM records")}
        except (sqlite3.Error, AttributeError, UnicodeDecodeError):  # a row edited by hand is no reason to stop
            return {}

    def save(self, changed: Iterable[Tuple[str, Stamp, LoraRecord]], gone: Iterable[str]) -> None:
        if self.db is None:
            return
        # ensure_ascii: a record may hold a name with surrogate escapes, which UTF-8 cannot encode.
        rows = [(_blob(path), _blob(stamp), json.dumps(record.to_dict())) for path, stamp, record in changed]
        gone = [(_blob(p),) for p in gone]
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


def refuse_foreign(path: str) -> None:
    """Raise CacheError unless `path` is missing, empty, or a cache of ours (damaged or old ones too).
    Only reads: the file is opened read-only, so a refused file stays byte for byte as it was."""
    try:
        st = os.stat(path)
    except OSError:
        return  # missing (a new cache), or a place that cannot hold one: opening it will tell
    if not stat.S_ISREG(st.st_mode):
        _refuse(path, "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
    if st.st_size == 0:
        return  # nothing in it to lose
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError:
        return
    if not head.startswith(_SQLITE_MAGIC):
        _refuse(path, "not an SQLite database")
    try:
        db = sqlite3.connect(_readonly_uri(path), uri=True, timeout=30)
        try:
            marker = db.execute("PRAGMA application_id").fetchone()[0]
            names = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
            columns = [row[1] for row in db.execute("PRAGMA table_info(records)")]
        finally:
            db.close()
    except sqlite3.Error:
        # Too damaged to read: ours only if its header says so (application_id is at byte 68).
        if int.from_bytes(head[68:72], "big") == APPLICATION_ID:
            return
        _refuse(path, "an SQLite database that cannot be read and is not marked as ours")
    if marker == APPLICATION_ID:
        return
    if marker == 0 and (not names or (names == {"records"} and columns == _LEGACY_COLUMNS)):
        return  # an empty database, or a cache written before the marker
    _refuse(path, "an SQLite database of something else" + (f", with tables {', '.join(sorted(names))}"
                                                               if names else ""))


def _refuse(path: str, what: str) -> None:
    raise CacheError(f"not a LoRA library cache ({what}); it was left as it is", Location(path, 0, 0),
                     "give the cache a new file name, or move this file away yourself")


def _readonly_uri(path: str) -> str:
    absolute = os.fsencode(os.path.abspath(path))
    if os.name == "nt":
        absolute = b"/" + absolute.replace(b"\\", b"/")  # file:///C:/…
    return "file://" + urllib.parse.quote(absolute, safe="/:") + "?mode=ro"


def _blob(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _text(blob: bytes) -> str:
    return blob.decode("utf-8", "surrogatepass")
