"""A persistent cache of LoRA records in SQLite, keyed by relative path and validated by a stamp
(size and mtime of the file and of every sidecar) and by `record.RULES_VERSION`.

Two layers. Each file's record (as one file makes it) is a row, so a scan after some files changed reads
only those. Beside the rows, one snapshot holds the finished list of the last scan (problems between files
included), keyed by a digest of the whole listing: a warm scan that finds nothing changed lists and stats
the folder, loads that one blob and is done, without building a record from JSON or comparing files again.
The snapshot is a pickle, so it is signed: only a snapshot this user's own scans wrote is ever unpickled
(see `snapshot_key`).

The cache file is named by the user (`--cache FILE`, a Forge setting), so a typo can point it at any
file. A file that is not ours (not SQLite, or SQLite with other tables) is refused with `CacheError` and
never opened for writing. Ours is marked with SQLite's `application_id`; a cache from before the marker is
recognised by its one `records` table. A cache of ours that is corrupt, of another schema, or locked too
long is rebuilt or skipped, never fatal. WAL mode and one transaction per save keep two processes scanning
at once from corrupting it.

Paths and stamps are stored as BLOBs (UTF-8, surrogates passed through) and records as ASCII JSON, so a
file name that is not UTF-8 (Python keeps it with surrogate escapes) round-trips exactly.

The same file keeps the library's embeddings (`VectorCache`, table `embeddings`): one vector per (embedder
kind, model, hash of the text). The table has its own check, by its exact CREATE statement, so adding it
changed neither SCHEMA_VERSION nor anything a RecordCache keeps, and an older Orchestrator opening the file
sees a cache of its own schema and leaves the table alone. `_open_cache` lays out the whole file, for
either class, whichever opens it first.
"""
from __future__ import annotations

import dataclasses
import gc
import hashlib
import hmac
import io
import itertools
import json
import operator
import os
import pickle
import secrets
import sqlite3
import stat
import threading
import typing
import urllib.parse
from typing import TYPE_CHECKING, Dict, FrozenSet, Iterable, List, Optional, Sequence, Tuple

from ..errors import Location, OrchestratorError
from ..sqlite_wal import write_ahead
from . import record as record_module
from .base_models import Candidate
from .problems import Problem
from .record import LoraRecord

if TYPE_CHECKING:  # numpy is imported where vectors are handled: a scan without embeddings never loads it
    import numpy

# 2: records carry Civitai tags; 3: BLOB keys, ASCII records, the application_id marker; 4: each row says
# which rules made it, and the snapshot of the finished list; 5: the snapshot is signed (its `mac`).
# Of the records layer only: the embeddings table is checked apart (`_EMBEDDINGS_TABLE`), so adding it did not
# raise this, which would have thrown away every user's rows and snapshot for a table they do not touch.
SCHEMA_VERSION = 5
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
        self.key: Optional[bytes] = None  # signs the snapshot; without one, rows only
        self.db: Optional[sqlite3.Connection] = _connect_or_rebuild(path, timeout=30)
        if self.db is not None:
            self.key = snapshot_key(os.path.dirname(os.path.abspath(path)))

    def snapshot(self, digest: bytes) -> Optional[bytes]:
        """The snapshot of a scan whose listing had this digest, or None (none kept, another listing, no
        key, or a signature that does not match: a snapshot not written under this key is never unpickled).
        `records_from_snapshot` turns it into records; apart, so a caller can let go of the listing first."""
        if self.db is None or self.key is None:
            return None
        try:
            row = self.db.execute("SELECT records, mac FROM snapshot WHERE one = 0 AND digest = ?",
                                  (digest,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None or not isinstance(row[0], bytes) or not isinstance(row[1], bytes):
            return None
        return row[0] if hmac.compare_digest(row[1], _mac(self.key, digest, row[0])) else None

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
                if snapshot is not None and self.key is not None:
                    digest, records = snapshot
                    blob = _dump_records(records)
                    self.db.execute("INSERT OR REPLACE INTO snapshot VALUES (0, ?, ?, ?)",
                                    (digest, blob, _mac(self.key, digest, blob)))
        except sqlite3.Error:
            pass  # another process holds it too long: this scan's results are simply not cached

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


# -- one file, two tables' worth of layers: opened and laid out in one place ------------------------------------

# Checked by its exact text (SQLite keeps the statement as written, less IF NOT EXISTS): a table of any other
# layout is dropped and made again, costing only a re-embedding. A future layout should take a new table name,
# so that two versions sharing a file do not drop each other's vectors in turn.
_EMBEDDINGS_TABLE = ("CREATE TABLE embeddings (kind TEXT NOT NULL, model TEXT NOT NULL, text_hash BLOB NOT NULL, "
                     "dim INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (kind, model, text_hash))")


def _connect_or_rebuild(path: str, timeout: float, same_thread: bool = True) -> Optional[sqlite3.Connection]:
    """A connection to the cache at `path`, laid out for both layers, or None where there can be none (locked
    longer than `timeout` seconds, a read-only folder, a file in the way): then the caller works without a
    cache. A cache of ours too damaged to open is deleted and made again. Raises CacheError, before opening
    anything for writing, when `path` is an existing file that is not ours."""
    refuse_foreign(path, timeout)
    try:
        return _open_cache(path, timeout, same_thread)
    except sqlite3.OperationalError:  # locked, read-only, no folder (before DatabaseError: it is one of those)
        return None
    except sqlite3.DatabaseError:  # ours, but damaged: start again
        _discard(path)
        try:
            return _open_cache(path, timeout, same_thread)
        except (sqlite3.Error, OSError):
            return None
    except OSError:
        return None


def _open_cache(path: str, timeout: float, same_thread: bool) -> sqlite3.Connection:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    db = sqlite3.connect(path, timeout=timeout, check_same_thread=same_thread)
    try:
        write_ahead(db, timeout)
        # Read first, without the write lock: a cache already laid out opens while another connection writes
        # (a scan saving its rows as the embeddings load). Only a layout to change takes the lock.
        if not _laid_out(db):
            db.execute("BEGIN IMMEDIATE")  # one process decides the schema; a second waits, then sees it
            version = db.execute("PRAGMA user_version").fetchone()[0]
            marker = db.execute("PRAGMA application_id").fetchone()[0]
            if version != SCHEMA_VERSION or marker != APPLICATION_ID:
                db.execute("DROP TABLE IF EXISTS records")
                db.execute("DROP TABLE IF EXISTS snapshot")
                db.execute("CREATE TABLE records (path BLOB PRIMARY KEY, stamp BLOB NOT NULL, rules INTEGER NOT NULL, "
                           "record TEXT NOT NULL)")
                # One row at most: the digest of the listing it was made from, the records, pickled, and the
                # HMAC of both under this user's key (`_mac`).
                db.execute("CREATE TABLE snapshot (one INTEGER PRIMARY KEY CHECK (one = 0), digest BLOB NOT NULL, "
                           "records BLOB NOT NULL, mac BLOB NOT NULL)")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if _table_sql(db, "embeddings") != _EMBEDDINGS_TABLE:
                db.execute("DROP TABLE IF EXISTS embeddings")
                db.execute(_EMBEDDINGS_TABLE)
            db.commit()
        db.execute("SELECT count(*) FROM records").fetchone()  # fails now if the file is damaged
    except BaseException:
        db.close()
        raise
    return db


def _laid_out(db: sqlite3.Connection) -> bool:
    return (db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            and db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            and _table_sql(db, "embeddings") == _EMBEDDINGS_TABLE)


def _table_sql(db: sqlite3.Connection, name: str) -> Optional[str]:
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row[0] if row else None


def _discard(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except OSError:
            pass


# -- the embeddings ---------------------------------------------------------------------------------------------
#
# float32, little-endian, as the embedder returned it: a vector read back is bit for bit the one computed, so a
# warm start ranks and scores exactly as a cold one (float16 would halve the file, 5 MB for 10,000 256-d
# vectors, and shift every similarity by up to about 1e-3), and loading is a frombuffer with no conversion.
_VECTOR_DTYPE = "<f4"
_MAX_DIM = 65536  # far above any embedding model; a larger `dim` is a damaged row, not a vector to allocate
_IN_CHUNK = 500  # host parameters per lookup: under the 999 of SQLite before 3.32


class VectorCache:
    """Embedding vectors kept in the library cache file, keyed by (embedder kind, model, text hash).

    Never fatal after the constructor: a cache that is locked or read-only answers nothing and keeps nothing,
    and a row that does not hold a whole finite vector of its `dim` is a miss (its text is embedded again and
    the row replaced). A file found damaged is made again, as RecordCache does when it opens one: else a
    table SQLite cannot read (nor drop) would cost a whole re-embedding at every start. One connection,
    meant for one thread at a time; it may be made in one thread and used in another (Forge's background
    embedding), and a lock keeps overlapping calls apart."""

    def __init__(self, path: str, timeout: float = 30) -> None:
        """Raises CacheError when `path` is an existing file that is not our cache, as RecordCache does.
        `timeout`: seconds to wait for another process's write lock before working without the cache."""
        self.path = path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._made_again = False
        self.db: Optional[sqlite3.Connection] = _connect_or_rebuild(path, timeout, same_thread=False)

    def get(self, kind: str, model: str, hashes: Sequence[bytes]) -> Dict[bytes, "numpy.ndarray"]:
        """hash -> vector (float32, 1-D, read-only) for those of `hashes` that are cached and sound."""
        import numpy

        wanted = list(dict.fromkeys(hashes))
        if self.db is None or not wanted:
            return {}
        rows: List[Tuple[bytes, int, bytes]] = []
        with self._lock:
            try:
                for i in range(0, len(wanted), _IN_CHUNK):
                    part = wanted[i:i + _IN_CHUNK]
                    rows.extend(self.db.execute(
                        "SELECT text_hash, dim, vector FROM embeddings WHERE kind = ? AND model = ? AND text_hash IN "
                        f"({','.join('?' * len(part))})", [kind, model] + part))
            except sqlite3.Error as exc:  # locked past the timeout, or damaged
                self._failed(exc)
                return {}
            except ValueError:  # a kind or model name that is not text SQLite can take (lone surrogates)
                return {}
        found: Dict[bytes, numpy.ndarray] = {}
        by_dim: Dict[int, List[Tuple[bytes, bytes]]] = {}
        for text_hash, dim, vector in rows:
            if (type(dim) is int and 0 < dim <= _MAX_DIM and type(vector) is bytes and len(vector) == 4 * dim
                    and type(text_hash) is bytes):
                by_dim.setdefault(dim, []).append((text_hash, vector))
        for dim, group in by_dim.items():
            # All of one dim as one matrix: the finiteness check and the split into rows run in numpy.
            matrix = numpy.frombuffer(b"".join(v for _, v in group), dtype=_VECTOR_DTYPE).reshape(len(group), dim)
            sound = numpy.isfinite(matrix).all(axis=1)
            found.update((h, row) for (h, _), row, ok in zip(group, matrix.astype(numpy.float32, copy=False), sound)
                         if ok)
        return found

    def put(self, kind: str, model: str, items: Sequence[Tuple[bytes, "numpy.ndarray"]]) -> None:
        """Keep these vectors (replacing any of the same key), in one transaction. A vector that is empty or
        not finite is not kept: its text is embedded again next time."""
        import numpy

        rows = []
        for text_hash, vector in items:
            flat = numpy.asarray(vector, dtype=_VECTOR_DTYPE).reshape(-1)
            if 0 < flat.size <= _MAX_DIM and numpy.isfinite(flat).all():
                rows.append((kind, model, bytes(text_hash), flat.size, flat.tobytes()))
        if self.db is None or not rows:
            return
        with self._lock:
            try:
                with self.db:
                    self.db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?)", rows)
            except sqlite3.Error as exc:  # locked too long, read-only, full: computed again next time
                self._failed(exc)
            except ValueError:
                pass

    def keep(self, kind: str, model: str, hashes: Iterable[bytes]) -> int:
        """Delete the vectors of (kind, model) whose hash is not among `hashes` (the texts of the whole
        library), so LoRAs removed or edited do not grow the file for ever; the pages freed are reused by
        later vectors. Other embedders' and models' vectors are left. Returns how many were deleted."""
        keep = set(hashes)
        if self.db is None:
            return 0
        with self._lock:
            try:
                with self.db:
                    held = self.db.execute("SELECT text_hash FROM embeddings WHERE kind = ? AND model = ?",
                                           (kind, model)).fetchall()
                    gone = [(kind, model, h) for (h,) in held if h not in keep]
                    self.db.executemany("DELETE FROM embeddings WHERE kind = ? AND model = ? AND text_hash = ?", gone)
            except sqlite3.Error as exc:
                self._failed(exc)
                return 0
            except ValueError:
                return 0
        return len(gone)

    def _failed(self, exc: sqlite3.Error) -> None:
        """After a call failed: a file SQLite calls damaged (a plain DatabaseError: SQLITE_CORRUPT or NOTADB;
        locked, read-only and full are OperationalErrors) is deleted and made again, once per VectorCache.
        The next scan then reads every LoRA again, as after any damaged cache."""
        if type(exc) is not sqlite3.DatabaseError or self._made_again or self.db is None:
            return
        self._made_again = True
        self.db.close()
        _discard(self.path)  # held open elsewhere on Windows, it stays: then this process does without vectors
        try:
            self.db = _connect_or_rebuild(self.path, self.timeout, same_thread=False)
        except CacheError:
            self.db = None

    def close(self) -> None:
        with self._lock:
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
    # repr, not a join with separators: a file name may hold any separator (a name with \x01 made two
    # listings one text), while the repr of a list of tuples of text is a Python literal that reads back to
    # exactly that list, so two listings never give the same bytes. Lone surrogates come out as escapes.
    digest.update(repr(sorted(listing)).encode("utf-8", "surrogatepass"))
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


# -- the snapshot's key -------------------------------------------------------------------------------------
#
# A snapshot is a pickle, and an unpickler is no parser to hand bytes from elsewhere: even one that builds
# only our records can be made to allocate gigabytes by nine bytes (a memo index of 2**28), or to build a
# record with fields missing or of the wrong type, which every later use of it trips over. So a snapshot is
# unpickled only when its HMAC-SHA256 matches under a key that never leaves this user: 32 random bytes in a
# file beside the cache, readable by its owner only. A cache file copied from elsewhere, edited by hand or
# written by another user was signed under another key, or not at all, and is rebuilt from the rows. The
# rows stay unsigned: JSON, parsed into records by scan.py, never unpickled; `well_formed` can tell a
# record parsed from a hand-edited row whose values are of the wrong type.

KEY_FILE = "orchestrator-snapshot.key"
_KEY_SIZE = 32


def snapshot_key(folder: str) -> Optional[bytes]:
    """This user's snapshot key for caches in `folder`, made the first time, or None when it can be neither
    read nor made (a read-only folder, a key file of another user's): then no snapshot is read or written."""
    path = os.path.join(folder, KEY_FILE)
    try:
        key = _read_key(path)
        if key is not None:
            return key
        stale = True  # ours, but to be made again
    except FileNotFoundError:
        stale = False
    except OSError:
        return None  # not ours to trust, nor to replace
    try:
        _write_key(path, replace=stale)
        return _read_key(path)  # whichever key won, when two processes made one at once
    except OSError:
        return None


def _read_key(path: str) -> Optional[bytes]:
    """The key in `path`; None for a key file of ours that must be made again (loose permissions, so others
    may have read it, or the wrong size: a crash while it was made). Raises OSError when it is missing,
    not a plain file (a link is not followed) or, on POSIX, not this user's."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path}: not a plain file")
        if os.name != "nt":  # on Windows the per-user folder's ACL stands in for owner and mode
            if st.st_uid != os.geteuid():
                raise OSError(f"{path}: another user's")
            if st.st_mode & 0o077:
                return None
        key = os.read(fd, _KEY_SIZE + 1)
    finally:
        os.close(fd)
    return key if len(key) == _KEY_SIZE else None


def _write_key(path: str, replace: bool) -> None:
    """A new random key at `path`, made whole beside it first (mode 0600 from the start, never wider) so no
    reader sees a part of one. `replace`: the key there is one of ours that `_read_key` refused; else a key
    another process put there meanwhile is kept, as it may have signed a snapshot already."""
    temp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        try:
            os.write(fd, secrets.token_bytes(_KEY_SIZE))
            os.fsync(fd)  # else a crash could leave an empty key under the final name
        finally:
            os.close(fd)
        if replace:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # fails if it exists now: never overwrites a key just made
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links
                os.replace(temp, path)
    finally:
        try:
            os.remove(temp)
        except OSError:
            pass


def _mac(key: bytes, digest: bytes, blob: bytes) -> bytes:
    """HMAC-SHA256 of the listing digest and the pickled records, so a signed snapshot cannot be moved to
    another listing either. About 2 ms for the 4 MB snapshot of 10,000 generated LoRAs (OpenSSL's SHA-256)."""
    mac = hmac.new(key, b"orchestrator library snapshot\0%d\0" % len(digest), "sha256")
    mac.update(digest)
    mac.update(blob)
    return mac.digest()


# -- the snapshot's contents ----------------------------------------------------------------------------------
#
# Pickle rather than JSON or marshal of tuples: it rebuilds the frozen records in C (about 30 ms for 10,000
# here, against 150 ms to parse the same records from JSON), and it needs no change when a field is added.
# Signed or not, it is read with an unpickler that can build these three classes and nothing else (no
# os.system, no builtins.eval), and what it built is checked field by field before it is served: a record
# served from a snapshot has exactly the fields and the value types a scan gives it.
_CLASSES = (LoraRecord, Problem, Candidate)
_BY_NAME = {(cls.__module__, cls.__qualname__): cls for cls in _CLASSES}
# Part of the listing digest: a field added, removed or retyped in any of them makes old snapshots unusable.
_RECORD_SHAPE = tuple((cls.__name__, tuple((f.name, str(f.type)) for f in dataclasses.fields(cls)))
                      for cls in _CLASSES)


class _RecordUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        found = _BY_NAME.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"a library cache holds records only, not {module}.{name}")
        return found


def _value_types(hint: object) -> Tuple[FrozenSet[type], FrozenSet[type]]:
    """(the types a field's value may have, the types its items may have when it is a tuple), from the
    field's annotation: `Optional[X]` is X or None, `Tuple[X, ...]` a tuple of X, and a float may be an
    int (JSON and the sidecars give `1` for 1.0)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        parts = [_value_types(arg) for arg in args]
        return frozenset().union(*(p[0] for p in parts)), frozenset().union(*(p[1] for p in parts))
    if origin is tuple:
        return frozenset({tuple}), _value_types(args[0])[0]
    if hint is float:
        return frozenset({float, int}), frozenset()
    if not isinstance(hint, type):  # Any, a TypeVar, ...: say so when the field is added, not let all through
        raise TypeError(f"the snapshot check knows no field of type {hint!r}")
    return frozenset({hint}), frozenset()


class _Shape:
    """What one class's objects must hold: exactly its fields, each of its types."""

    def __init__(self, cls: type) -> None:
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        self.size = len(names)
        # For each field: state -> its value (KeyError when it is missing), the value's types, its items' types
        self.fields = tuple((operator.itemgetter(name),) + _value_types(hints[name]) for name in names)


_SHAPES = {cls: _Shape(cls) for cls in _CLASSES}


def well_formed(records: Sequence[object]) -> bool:
    """Whether every one of `records` is a LoraRecord holding exactly its fields, each of its declared type
    (text as str, problems as Problems, base-model candidates as Candidates, and so on inside them): what
    a scan makes, and what every use of a record may take for granted."""
    try:
        return _well_formed(records, LoraRecord)
    except KeyError:  # a field missing
        return False


def _well_formed(objects: Sequence[object], cls: type) -> bool:
    """Whether every one of `objects` is a `cls` holding exactly its fields, each of its types, the records
    inside them too. Field by field over all objects at once, so the loops run in C: 10,000 records in
    15-20 ms, where a walk object by object took 40. Raises KeyError for a missing field."""
    shape = _SHAPES[cls]
    if not set(map(type, objects)) <= {cls}:
        return False
    states = list(map(vars, objects))
    if not set(map(len, states)) <= {shape.size}:  # with every field present below: no field too many
        return False
    for value_of, types, item_types in shape.fields:
        if not item_types:
            if not set(map(type, map(value_of, states))) <= types:
                return False
            continue
        column = list(map(value_of, states))
        if not (set(map(type, column)) <= types and _items_fit(column, item_types)):
            return False
    return True


def _items_fit(column: List[object], types: FrozenSet[type]) -> bool:
    """Whether the items of the tuples in `column` are all of `types`, records among them well formed.
    Each tuple and each record once: the pool made equal ones one object, which the pickle keeps."""
    tuples = dict(zip(map(id, column), column)).values()
    items = list(itertools.chain.from_iterable(value for value in tuples if type(value) is tuple))
    kinds = set(map(type, items))
    if not kinds <= types:
        return False
    for kind in kinds & _SHAPES.keys():
        records = items if len(kinds) == 1 else [i for i in items if type(i) is kind]
        if not _well_formed(list(dict(zip(map(id, records), records)).values()), kind):
            return False
    return True


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
    """The records a snapshot holds, or None when it does not load (damaged, of other code, or not what a
    scan makes): then the scan works from the rows and writes a new one. Only a blob whose signature
    `RecordCache.snapshot` checked should come here."""
    records: List[LoraRecord] = []
    stream = io.BytesIO(blob)
    collecting = gc.isenabled()
    gc.disable()  # thousands of new objects and no cycles among them: collections would only cost time
    try:
        while stream.tell() < len(blob):
            chunk = _RecordUnpickler(stream).load()
            if type(chunk) is not tuple:
                return None
            records.extend(chunk)
        if not well_formed(records):
            return None
    except Exception:  # damaged: pickle raises many kinds (MemoryError too); any means "build it again"
        return None
    finally:
        if collecting:
            gc.enable()
    return tuple(records)


def refuse_foreign(path: str, timeout: float = 30) -> None:
    """Raise CacheError unless `path` is missing, empty, or a cache of ours (damaged or old ones too).
    Only reads: the file is opened read-only, so a refused file stays byte for byte as it was. One locked
    longer than `timeout` seconds is judged by its header."""
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
        db = sqlite3.connect(_readonly_uri(path), uri=True, timeout=timeout)
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
