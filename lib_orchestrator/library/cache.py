"""A persistent cache of LoRA records in SQLite, keyed by relative path and validated by a stamp
(size and mtime of the file and of every sidecar) and by `record.RULES_VERSION`.

Two layers. Each file's record (as one file makes it) is a row, so a scan after some files changed reads
only those. Beside the rows, one snapshot holds the finished list of the last scan (problems between files
included), keyed by a digest of the whole listing: a warm scan that finds nothing changed lists and stats
the folder, loads that one blob and is done, without building a record from JSON or comparing files again.

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

import dataclasses
import gc
import hashlib
import io
import json
import os
import pickle
import sqlite3
import stat
import sys
import urllib.parse
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import Location, OrchestratorError
from . import record as record_module
from .problems import Problem
from .record import LoraRecord

# 2: records carry Civitai tags; 3: BLOB keys, ASCII records, the application_id marker; 4: each row says
# which rules made it, and the snapshot of the finished list
SCHEMA_VERSION = 4
APPLICATION_ID = 0x4F524C43  # "ORLC": what `PRAGMA application_id` reads in a cache of ours
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LEGACY_COLUMNS = ["path", "stamp", "record"]

Stamp = str  # an opaque text: equal stamps mean nothing changed
CACHE_FOLDER = "orchestrator"


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
                db.execute("DROP TABLE IF EXISTS snapshot")
                db.execute("CREATE TABLE records (path BLOB PRIMARY KEY, stamp BLOB NOT NULL, rules INTEGER NOT NULL, "
                           "record TEXT NOT NULL)")
                # One row at most: the digest of the listing it was made from, and the records, pickled.
                db.execute("CREATE TABLE snapshot (one INTEGER PRIMARY KEY CHECK (one = 0), digest BLOB NOT NULL, "
                           "records BLOB NOT NULL)")
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

    def snapshot(self, digest: bytes) -> Optional[bytes]:
        """The snapshot of a scan whose listing had this digest, or None (none kept, or another listing).
        `records_from_snapshot` turns it into records; apart, so a caller can let go of the listing first."""
        if self.db is None:
            return None
        try:
            row = self.db.execute("SELECT records FROM snapshot WHERE one = 0 AND digest = ?", (digest,)).fetchone()
        except sqlite3.Error:
            return None
        return row[0] if row is not None and isinstance(row[0], bytes) else None

    def load(self) -> Dict[str, Tuple[Optional[Stamp], str]]:
        """path -> (stamp, record JSON). A row made by other rules (`record.RULES_VERSION`) has no stamp,
        so it never matches and the file is read again; its path still tells what has gone."""
        if self.db is None:
            return {}
        rules = record_module.RULES_VERSION
        try:
            return {_text(p): (_text(s) if r == rules else None, j)
                    for p, s, r, j in self.db.execute("SELECT path, stamp, rules, record FROM records")}
        except (sqlite3.Error, AttributeError, UnicodeDecodeError):  # a row edited by hand is no reason to stop
            return {}

    def save(self, changed: Iterable[Tuple[str, Stamp, LoraRecord]], gone: Iterable[str],
             snapshot: Optional[Tuple[bytes, Sequence[LoraRecord]]] = None) -> None:
        """Rows for the files read this time, none for the files gone, and (when given) the snapshot of
        the finished list with the digest of its listing, all in one transaction."""
        if self.db is None:
            return
        rules = record_module.RULES_VERSION
        changed = list(changed)
        gone = [(_blob(p),) for p in gone]
        if not changed and not gone and snapshot is None:
            return
        # One row's JSON at a time (a generator, not a list): for a cold scan of 30,000 files the list
        # held 75 MB at once. ensure_ascii: a name with surrogate escapes cannot be encoded as UTF-8.
        rows = ((_blob(path), _blob(stamp), rules, json.dumps(record.to_dict())) for path, stamp, record in changed)
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?)", rows)
                self.db.executemany("DELETE FROM records WHERE path = ?", gone)
                if snapshot is not None:
                    digest, records = snapshot
                    self.db.execute("INSERT OR REPLACE INTO snapshot VALUES (0, ?, ?)",
                                    (digest, _dump_records(records)))
        except sqlite3.Error:
            pass  # another process holds it too long: this scan's results are simply not cached

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


def listing_digest(root: str, listing: Iterable[Tuple[str, ...]]) -> bytes:
    """What a snapshot is valid for: the folder (its real path), the rules and the shape of the records, and
    for every listed file what the scan knows of it before reading it: its relative path, its stamp (the
    file, its sidecars, its preview) and which real file it is (the problems between files depend on that:
    one file listed twice is no duplicate of itself). Equal digests mean the scan would build the same list."""
    head = (os.path.realpath(root), SCHEMA_VERSION, record_module.RULES_VERSION, _RECORD_SHAPE)
    digest = hashlib.blake2b(repr(head).encode("utf-8", "surrogatepass"), digest_size=32)
    digest.update("\0".join("\1".join(entry) for entry in sorted(listing)).encode("utf-8", "surrogatepass"))
    return digest.digest()


def default_cache_path(root: str, environ: Optional[Dict[str, str]] = None) -> str:
    """The command line's cache for the LoRA folder `root`: one file per folder, named by a hash of the
    folder's real path, under `$XDG_CACHE_HOME/orchestrator/` (else `~/.cache/orchestrator/`, on Windows
    `%LOCALAPPDATA%\\orchestrator\\cache`). The folder may not exist yet; RecordCache creates it, or does
    without a cache where it cannot."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    if base and os.path.isabs(base):  # the XDG spec: a relative value is to be ignored
        folder = os.path.join(base, CACHE_FOLDER)
    elif os.name == "nt" and env.get("LOCALAPPDATA"):
        folder = os.path.join(env["LOCALAPPDATA"], CACHE_FOLDER, "cache")
    else:
        folder = os.path.join(os.path.expanduser("~"), ".cache", CACHE_FOLDER)
    real = os.path.realpath(root)
    label = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in os.path.basename(real))[:40]
    digest = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    return os.path.join(folder, f"library-{label or 'root'}-{digest}.sqlite")


# The snapshot is a pickle, read with an unpickler that can build nothing but the library's own frozen
# dataclasses (LoraRecord, Problem, and any other dataclass a module of this package defines): every other
# global a pickle may name (os.system, builtins.eval, ...) is refused, so loading runs no code of the file's
# choosing. What a crafted cache can then do is what crafted JSON rows can: make records say false things.
# Pickle rather than JSON or marshal of tuples: it rebuilds the frozen records in C (about 30 ms for 10,000
# here, against 150 ms to parse the same records from JSON), and it needs no change when a field is added.
_PACKAGE = LoraRecord.__module__.rsplit(".", 1)[0] + "."
_RECORD_SHAPE = tuple((cls.__name__, tuple(f.name for f in dataclasses.fields(cls))) for cls in (LoraRecord, Problem))


class _RecordUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        ours = module.startswith(_PACKAGE) and name.isidentifier()  # a dotted name could reach any attribute
        found = getattr(sys.modules.get(module), name, None) if ours else None  # never imports anything
        if not (isinstance(found, type) and dataclasses.is_dataclass(found) and found.__module__.startswith(_PACKAGE)):
            raise pickle.UnpicklingError(f"a library cache holds records only, not {module}.{name}")
        return found


# Pickled in chunks, each a pickle of its own: an unpickler keeps every object it made in its memo until
# it is done, the records' state dicts included, which doubled the memory of a whole-list load (75 MB more
# at 30,000 records). Chunk by chunk, only one chunk's are held at a time.
_CHUNK = 1000


def _dump_records(records: Sequence[LoraRecord]) -> bytes:
    """The records, pickled. Equal values in them should be one object (pool.value_pool): the pickle
    then writes each once, and the snapshot is smaller and loads faster."""
    records = tuple(records)
    return b"".join(pickle.dumps(records[i:i + _CHUNK], protocol=4) for i in range(0, len(records), _CHUNK))


def records_from_snapshot(blob: bytes) -> Optional[Tuple[LoraRecord, ...]]:
    """The records a snapshot holds, or None when it does not load (damaged, crafted, or of other code):
    then the scan works from the rows and writes a new one."""
    records: List[LoraRecord] = []
    stream = io.BytesIO(blob)
    collecting = gc.isenabled()
    gc.disable()  # thousands of new objects and no cycles among them: collections would only cost time
    try:
        while stream.tell() < len(blob):
            chunk = _RecordUnpickler(stream).load()
            if not isinstance(chunk, tuple) or not all(type(r) is LoraRecord for r in chunk):
                return None
            records.extend(chunk)
    except Exception:  # damaged or crafted: pickle raises many kinds; any means "build it again"
        return None
    finally:
        if collecting:
            gc.enable()
    return tuple(records)


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
