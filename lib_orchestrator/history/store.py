"""The history index: one SQLite file of every image scanned or saved, what its infotext says, and the user's
ratings and blind comparisons of them.

The file holds what cannot be made again (the ratings), so unlike the library cache it is never rebuilt or
discarded. A file that is not ours (not SQLite, or SQLite of something else), one made by a newer Orchestrator,
or one too damaged to read is refused with HistoryError, before anything is written to it, saying what to do.
Ours is marked twice: `meta` holds app = "orchestrator-history" and the schema version (what is checked), and
SQLite's `application_id` holds "ORHI" (what the header says when nothing else can be read). An older schema is
brought up to date by the steps in `_MIGRATIONS`, in one transaction that is undone if a step would lose a
rating or a comparison (there is only schema 1 yet: the place is kept for the first migration).

WAL mode and a busy timeout: a search reads while a scan writes, and two processes (Forge and the command line)
may scan and rate at once; every write is one `BEGIN IMMEDIATE` transaction (see scan.py). One connection per
store; a store may be used from any thread (a lock keeps calls apart), but the host keeps one store per thread
(history/service.py), which is what lets a search run while a scan writes.

`version()` is a counter in `meta`, raised in the same transaction as every rating and comparison (and any scan
that changed what an already indexed image says): the LoRA scores are cached under it.
"""
from __future__ import annotations

import os
import random
import sqlite3
import stat
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ..errors import Location, OrchestratorError
from ..sqlite_wal import write_ahead
from .effect import Comparison, RatedImage
from .infotext import LoraUse
from .scan import (
    OnProgress,
    ScanStats,
    ShouldStop,
    Written,
    index_file,
    normal_file,
    normal_folder,
    outermost,
    scan_folders,
    write_transaction,
)

__all__ = ["HistoryError", "HistoryStore", "ImageRow", "ScanStats", "SCHEMA_VERSION", "APP"]

SCHEMA_VERSION = 1
APP = "orchestrator-history"
APPLICATION_ID = 0x4F524849  # "ORHI": what `PRAGMA application_id` reads in an index of ours
_SQLITE_MAGIC = b"SQLite format 3\x00"
OUTCOMES = ("left", "right", "tie", "skip")
_IN_CHUNK = 500  # host parameters per IN (...): under the 999 of SQLite before 3.32
_MAX_GROUP = 64  # members of one prompt group considered for a pair (drawn by the rng beyond that)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE folders (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, source TEXT NOT NULL DEFAULT 'user',
  added REAL NOT NULL);
CREATE TABLE images (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, folder TEXT NOT NULL DEFAULT '',
  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, present INTEGER NOT NULL DEFAULT 1,
  format TEXT NOT NULL DEFAULT '', width INTEGER, height INTEGER, created REAL NOT NULL,
  prompt TEXT NOT NULL DEFAULT '', negative TEXT NOT NULL DEFAULT '', seed INTEGER,
  checkpoint TEXT NOT NULL DEFAULT '', checkpoint_hash TEXT NOT NULL DEFAULT '',
  template TEXT NOT NULL DEFAULT '', batch TEXT NOT NULL DEFAULT '', swatch TEXT NOT NULL DEFAULT '',
  lora_names TEXT NOT NULL DEFAULT '', group_key TEXT NOT NULL DEFAULT '', parameters TEXT,
  problem TEXT NOT NULL DEFAULT '', fingerprint TEXT NOT NULL DEFAULT '');
CREATE INDEX images_fingerprint ON images (fingerprint) WHERE fingerprint != '';
CREATE INDEX images_group ON images (group_key) WHERE present = 1 AND group_key != '';
CREATE INDEX images_created ON images (created);
CREATE INDEX images_present ON images (present, created);
CREATE INDEX images_checkpoint ON images (checkpoint COLLATE NOCASE);
CREATE TABLE image_loras (image_id INTEGER NOT NULL, name TEXT NOT NULL COLLATE NOCASE, weight REAL,
  source TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', PRIMARY KEY (image_id, name));
CREATE INDEX image_loras_name ON image_loras (name);
CREATE VIRTUAL TABLE images_fts USING fts5(prompt, negative, template, lora_names, checkpoint,
  content='images', content_rowid='id');
CREATE TRIGGER images_fts_insert AFTER INSERT ON images BEGIN
  INSERT INTO images_fts (rowid, prompt, negative, template, lora_names, checkpoint)
  VALUES (new.id, new.prompt, new.negative, new.template, new.lora_names, new.checkpoint);
END;
CREATE TRIGGER images_fts_delete AFTER DELETE ON images BEGIN
  INSERT INTO images_fts (images_fts, rowid, prompt, negative, template, lora_names, checkpoint)
  VALUES ('delete', old.id, old.prompt, old.negative, old.template, old.lora_names, old.checkpoint);
END;
CREATE TRIGGER images_fts_update AFTER UPDATE OF prompt, negative, template, lora_names, checkpoint ON images BEGIN
  INSERT INTO images_fts (images_fts, rowid, prompt, negative, template, lora_names, checkpoint)
  VALUES ('delete', old.id, old.prompt, old.negative, old.template, old.lora_names, old.checkpoint);
  INSERT INTO images_fts (rowid, prompt, negative, template, lora_names, checkpoint)
  VALUES (new.id, new.prompt, new.negative, new.template, new.lora_names, new.checkpoint);
END;
CREATE TABLE ratings (image_id INTEGER PRIMARY KEY, stars INTEGER CHECK (stars BETWEEN 1 AND 5),
  rejected INTEGER NOT NULL DEFAULT 0, favourite INTEGER NOT NULL DEFAULT 0, updated REAL NOT NULL);
CREATE TABLE comparisons (id INTEGER PRIMARY KEY, left_id INTEGER NOT NULL, right_id INTEGER NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('left','right','tie','skip')), at REAL NOT NULL);
CREATE INDEX comparisons_left ON comparisons (left_id);
CREATE INDEX comparisons_right ON comparisons (right_id);
CREATE TABLE prompt_vectors (image_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, model TEXT NOT NULL,
  vec BLOB NOT NULL);
CREATE TRIGGER prompt_vectors_stale AFTER UPDATE OF prompt ON images WHEN old.prompt IS NOT new.prompt BEGIN
  DELETE FROM prompt_vectors WHERE image_id = new.id;
  UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'prompt_vectors';
END;
"""

# A file of schema N is brought to N + 1 by _MIGRATIONS[N](db), inside the one transaction that opens it; a
# step must keep every rating and comparison (checked after the last step, the whole undone otherwise).
_MIGRATIONS: Dict[int, Callable[[sqlite3.Connection], None]] = {}


class HistoryError(OrchestratorError):
    """The history index cannot be used as asked (a file that is not ours, a newer one, a bad rating...)."""


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    present: bool  # the file was there at the last scan
    format: str  # "png" | "jpeg" | "webp" | "" (unreadable)
    width: Optional[int]
    height: Optional[int]
    created: float  # the file's mtime, epoch seconds
    prompt: str
    negative: str
    seed: Optional[int]
    checkpoint: str
    checkpoint_hash: str
    template: str
    batch: str
    swatch: str
    group_key: str  # images that differ only in their LoRAs share it ("" for none)
    parameters: Optional[str]  # the whole infotext, as the file holds it
    problem: str  # "" or why the file's parameters could not be read
    loras: Tuple[LoraUse, ...]  # in the infotext's order (Orchestrator LoRAs, then tags, then Lora hashes only)
    stars: Optional[int]
    rejected: bool
    favourite: bool


Ref = Union[int, str, ImageRow]

_ROW_SELECT = ("SELECT i.id, i.path, i.present, i.format, i.width, i.height, i.created, i.prompt, i.negative, i.seed, "
               "i.checkpoint, i.checkpoint_hash, i.template, i.batch, i.swatch, i.group_key, i.parameters, i.problem, "
               "r.stars, r.rejected, r.favourite FROM images i LEFT JOIN ratings r ON r.image_id = i.id")


class HistoryStore:
    def __init__(self, path: str, timeout: float = 30.0) -> None:
        """Opens the index at `path`, making it (and its folder) when there is none. `timeout`: seconds to wait
        for another process's write lock. Raises HistoryError for a file that is not ours, is newer, is damaged,
        or cannot be made or written."""
        self.path = path
        self.timeout = timeout
        self._lock = threading.RLock()
        self._key = os.path.realpath(path)
        with _OPEN_LOCK:
            checked = _OPEN_HERE.get(self._key, 0) > 0
        self._db: Optional[sqlite3.Connection] = _open(path, timeout, probe=not checked)
        with _OPEN_LOCK:
            _OPEN_HERE[self._key] = _OPEN_HERE.get(self._key, 0) + 1

    # -- the connection -----------------------------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """The connection (autocommit; search.py only reads through it)."""
        if self._db is None:
            raise HistoryError("the history index was closed", Location(self.path, 0, 0), "open it again")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
                with _OPEN_LOCK:
                    _OPEN_HERE[self._key] -= 1

    def __enter__(self) -> "HistoryStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def version(self) -> int:
        """Changes whenever rated() or comparisons() may have changed (a rating, a comparison, a scan that read
        an already indexed image again); not with new images (lora_usage() grows without it)."""
        with self._using():
            row = self.db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return int(row[0]) if row else 0

    # -- folders and scanning -----------------------------------------------------------------------------------
    def add_folder(self, path: str, source: str = "user") -> None:
        """Keep `path` indexed (scan() without dirs scans it). Adding it again keeps its first source."""
        with self._using(), self._writing() as db:
            db.execute("INSERT OR IGNORE INTO folders (path, source, added) VALUES (?, ?, ?)",
                       (normal_folder(path), source, time.time()))

    def remove_folder(self, path: str) -> None:
        """Stop scanning `path`; its images stay indexed (and rated) until a scan of an outer folder finds them
        gone."""
        with self._using(), self._writing() as db:
            db.execute("DELETE FROM folders WHERE path = ?", (normal_folder(path),))

    def folders(self) -> List[Tuple[str, str]]:
        """(path, source) of every folder kept indexed, in the order they were added."""
        with self._using():
            return [(p, s) for p, s in self.db.execute("SELECT path, source FROM folders ORDER BY id")]

    def scan(self, dirs: Optional[Sequence[str]] = None, should_stop: ShouldStop = lambda: False,
             on_progress: OnProgress = None) -> ScanStats:
        """Bring the index up to date with the image files under `dirs` (each added as a folder when it is not
        one yet), or under every folder added when None. See scan.py. A folder added before that is not there
        now (a drive not mounted) is reported in `unreadable`; one of `dirs` that is no folder is refused."""
        with self._using():
            if dirs is None:
                roots = [p for p, _ in self.folders()]
            else:
                roots = [normal_folder(d) for d in dirs]
                for given, root in zip(dirs, roots):
                    if not os.path.isdir(root):
                        raise HistoryError("not a folder of images" if os.path.exists(root) else "no such folder",
                                           Location(given, 0, 0), "give a folder that holds the images")
                with self._writing() as db:
                    db.executemany("INSERT OR IGNORE INTO folders (path, source, added) VALUES (?, 'user', ?)",
                                   [(r, time.time()) for r in roots])
            return scan_folders(self.db, outermost(roots), should_stop, on_progress, self._written)

    def add_file(self, path: str, folder: str = "") -> Optional[int]:
        """Index one image now (the host saved it): its id, or None when it is not a .png/.jpg/.jpeg/.webp file
        that is there. `folder` "": the added folder it is in, if any."""
        with self._using():
            path = normal_file(path)
            folder = normal_folder(folder) if folder else self._folder_of(path)
            return index_file(self.db, path, folder, self._written)

    def _folder_of(self, path: str) -> str:
        inside = [p for p, _ in self.folders() if path.startswith(p.rstrip(os.sep) + os.sep)]
        return max(inside, key=len) if inside else ""

    def _written(self, written: Written) -> None:
        if written.rows_changed:
            _bump(self.db)

    # -- reading ------------------------------------------------------------------------------------------------
    def count(self, present_only: bool = True) -> int:
        with self._using():
            sql = "SELECT count(*) FROM images" + (" WHERE present = 1" if present_only else "")
            return int(self.db.execute(sql).fetchone()[0])

    def count_comparisons(self) -> int:
        """Comparisons with a result (skips left out), as comparisons() would list them."""
        with self._using():
            return int(self.db.execute("SELECT count(*) FROM comparisons WHERE outcome != 'skip'").fetchone()[0])

    def image(self, ref: Ref) -> Optional[ImageRow]:
        """The image by id or by path (as given, or as the index keys it: its folder's real path), or None."""
        with self._using():
            image_id = self._id(ref)
            return None if image_id is None else self.images([image_id])[0]

    def images(self, ids: Sequence[int]) -> List[ImageRow]:
        """The rows of `ids`, in that order (ids not in the index left out, repeats once): a page of search hits
        in two queries, not two an image."""
        with self._using():
            wanted = list(dict.fromkeys(int(i) for i in ids))
            rows: Dict[int, tuple] = {}
            for part in _chunks(wanted):
                marks = ",".join("?" * len(part))
                rows.update((r[0], r) for r in self.db.execute(f"{_ROW_SELECT} WHERE i.id IN ({marks})", part))
            loras = self._loras(list(rows))
            return [_image_row(rows[i], loras.get(i, ())) for i in wanted if i in rows]

    def _loras(self, ids: Sequence[int]) -> Dict[int, Tuple[LoraUse, ...]]:
        found: Dict[int, List[LoraUse]] = {}
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            for image_id, name, weight, source, reason in self.db.execute(
                    f"SELECT image_id, name, weight, source, reason FROM image_loras WHERE image_id IN ({marks}) "
                    "ORDER BY rowid", part):
                found.setdefault(image_id, []).append(LoraUse(name, weight, source, reason))
        return {k: tuple(v) for k, v in found.items()}

    def _id(self, ref: Ref) -> Optional[int]:
        if isinstance(ref, ImageRow):
            ref = ref.id
        if isinstance(ref, bool) or not isinstance(ref, (int, str)):
            raise HistoryError(f"an image is named by its id or its path, not by {type(ref).__name__}")
        if isinstance(ref, int):
            row = self.db.execute("SELECT id FROM images WHERE id = ?", (ref,)).fetchone()
            return int(row[0]) if row else None
        for path in dict.fromkeys((ref, normal_file(ref))):
            row = self.db.execute("SELECT id FROM images WHERE path = ?", (path,)).fetchone()
            if row:
                return int(row[0])
        return None

    def _require(self, ref: Ref) -> int:
        image_id = self._id(ref)
        if image_id is None:
            raise HistoryError(f"no image {ref!r} in the history index", Location(self.path, 0, 0),
                               "scan its folder first (history scan DIR), or give an id the index holds")
        return image_id

    # -- ratings and comparisons --------------------------------------------------------------------------------
    def rate(self, ref: Ref, stars: Optional[int] = None, rejected: Optional[bool] = None,
             favourite: Optional[bool] = None, clear: bool = False) -> ImageRow:
        """Set what is given (None: leave it): stars 1..5, rejected, favourite; `clear` forgets the rating first
        (then the others apply). An image left with neither stars nor a flag has no rating. The updated row."""
        if stars is not None and (isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5):
            raise HistoryError(f"stars must be a whole number from 1 to 5, not {stars!r}",
                               hint="use clear=True to take the stars away")
        with self._using():
            with self._writing() as db:
                image_id = self._require(ref)
                row = None if clear else db.execute(
                    "SELECT stars, rejected, favourite FROM ratings WHERE image_id = ?", (image_id,)).fetchone()
                old_stars, old_rejected, old_favourite = row if row else (None, 0, 0)
                new = (old_stars if stars is None else stars,
                       int(bool(old_rejected if rejected is None else rejected)),
                       int(bool(old_favourite if favourite is None else favourite)))
                if new == (None, 0, 0):
                    db.execute("DELETE FROM ratings WHERE image_id = ?", (image_id,))
                else:
                    db.execute("INSERT OR REPLACE INTO ratings (image_id, stars, rejected, favourite, updated) "
                               "VALUES (?, ?, ?, ?, ?)", (image_id,) + new + (time.time(),))
                _bump(db)
            return self.images([image_id])[0]

    def compare(self, left: Ref, right: Ref, outcome: str) -> None:
        """Record a blind comparison: 'left' or 'right' won, 'tie', or 'skip' (kept so the pair is not offered
        again soon, but no result)."""
        if outcome not in OUTCOMES:
            raise HistoryError(f"a comparison's outcome is one of {', '.join(OUTCOMES)}, not {outcome!r}")
        with self._using():
            with self._writing() as db:
                left_id, right_id = self._require(left), self._require(right)
                if left_id == right_id:
                    raise HistoryError(f"an image cannot be compared with itself (image {left_id})",
                                       hint="compare two different images")
                db.execute("INSERT INTO comparisons (left_id, right_id, outcome, at) VALUES (?, ?, ?, ?)",
                           (left_id, right_id, outcome, time.time()))
                _bump(db)

    def next_pair(self, rng: random.Random, lora: str = "") -> Optional[Tuple[ImageRow, ImageRow]]:
        """Two present images of one group (same prompt and seed) whose LoRAs (names and weights) differ: the
        pair compared least often first, pairs ever skipped after all others, ties drawn by `rng`; which is left
        is drawn by `rng` too (blind). `lora`: only pairs that differ in that LoRA (one side has it, or both at
        other weights). None when there is no such pair."""
        with self._using():
            members: Dict[str, List[int]] = {}
            # INDEXED BY: left to itself, SQLite takes the index on (present, created) and a temporary B-tree,
            # 70 + 40 ms at 100k images instead of 17 + 1 through the partial index of grouped present images.
            for image_id, group in self.db.execute(
                    "SELECT id, group_key FROM images INDEXED BY images_group WHERE present = 1 AND group_key != '' "
                    "AND group_key IN (SELECT group_key FROM images INDEXED BY images_group WHERE present = 1 "
                    "AND group_key != '' GROUP BY group_key HAVING count(*) > 1) ORDER BY group_key, id"):
                members.setdefault(group, []).append(image_id)
            if not members:
                return None
            for group, ids in members.items():
                if len(ids) > _MAX_GROUP:
                    members[group] = sorted(rng.sample(ids, _MAX_GROUP))
            sets = self._lora_sets([i for ids in members.values() for i in ids])
            counts: Dict[Tuple[int, int], Tuple[int, int]] = {
                (a, b): (int(skips), int(done)) for a, b, skips, done in self.db.execute(
                    "SELECT min(left_id, right_id), max(left_id, right_id), sum(outcome = 'skip'), "
                    "sum(outcome != 'skip') FROM comparisons GROUP BY 1, 2")}
            wanted = lora.strip().lower()
            best: Optional[Tuple[bool, int]] = None
            ties: List[Tuple[int, int]] = []
            for ids in members.values():
                for n, a in enumerate(ids):
                    for b in ids[n + 1:]:
                        left, right = sets.get(a, {}), sets.get(b, {})
                        if left == right:
                            continue
                        if wanted and (wanted not in left and wanted not in right
                                       or left.get(wanted) == right.get(wanted)):
                            continue
                        skips, done = counts.get((a, b), (0, 0))
                        key = (skips > 0, done)
                        if best is None or key < best:
                            best, ties = key, [(a, b)]
                        elif key == best:
                            ties.append((a, b))
            if not ties:
                return None
            pair = list(rng.choice(ties))
            if rng.random() < 0.5:
                pair.reverse()
            rows = self.images(pair)
            return (rows[0], rows[1]) if len(rows) == 2 else None

    def _lora_sets(self, ids: Sequence[int]) -> Dict[int, Dict[str, Optional[float]]]:
        """image id -> {case-folded LoRA name: weight}."""
        found: Dict[int, Dict[str, Optional[float]]] = {}
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            for image_id, name, weight in self.db.execute(
                    f"SELECT image_id, name, weight FROM image_loras WHERE image_id IN ({marks})", part):
                found.setdefault(image_id, {})[name.lower()] = weight
        return found

    # -- what the LoRA scores are made of -----------------------------------------------------------------------
    def lora_usage(self) -> Dict[str, int]:
        """LoRA name -> how many indexed images used it (gone ones too: they were made), names case-insensitive
        (one spelling of each)."""
        with self._using():
            return {name: int(n) for name, n in self.db.execute(
                "SELECT name, count(*) FROM image_loras GROUP BY name")}

    def rated(self) -> List[RatedImage]:
        """Every rated image (gone ones too) with its LoRAs and its value: the stars; 0 for a reject; 5 for a
        favourite without stars."""
        with self._using():
            ratings = self.db.execute("SELECT image_id, stars, rejected, favourite FROM ratings "
                                      "ORDER BY image_id").fetchall()
            loras = self._lora_refs("SELECT image_id FROM ratings")
        out = []
        for image_id, stars, rejected, favourite in ratings:
            if rejected:
                value = 0.0
            elif stars is not None:
                value = float(stars)
            elif favourite:
                value = 5.0
            else:
                continue
            out.append(RatedImage(loras.get(image_id, ()), value))
        return out

    def comparisons(self) -> List[Comparison]:
        """Every comparison that has a result (skips left out; gone images' still count), oldest first: the
        winner's LoRAs and the loser's (left and right for a tie)."""
        with self._using():
            results = self.db.execute("SELECT left_id, right_id, outcome FROM comparisons WHERE outcome != 'skip' "
                                      "ORDER BY id").fetchall()
            loras = self._lora_refs("SELECT left_id FROM comparisons WHERE outcome != 'skip' UNION "
                                    "SELECT right_id FROM comparisons WHERE outcome != 'skip'")
        out = []
        for left, right, outcome in results:
            winner, loser = (right, left) if outcome == "right" else (left, right)
            out.append(Comparison(loras.get(winner, ()), loras.get(loser, ()), tie=outcome == "tie"))
        return out

    def _lora_refs(self, ids_sql: str) -> Dict[int, Tuple[Tuple[str, Optional[float]], ...]]:
        found: Dict[int, List[Tuple[str, Optional[float]]]] = {}
        for image_id, name, weight in self.db.execute(
                f"SELECT image_id, name, weight FROM image_loras WHERE image_id IN ({ids_sql}) ORDER BY rowid"):
            found.setdefault(image_id, []).append((name, weight))
        return {k: tuple(v) for k, v in found.items()}

    # -- helpers ------------------------------------------------------------------------------------------------
    def _writing(self):  # -> ContextManager[sqlite3.Connection]
        return write_transaction(self.db)

    @contextmanager
    def _using(self) -> Iterator[None]:
        """One call at a time on this connection, and SQLite's errors as HistoryError (locked past the timeout,
        a damaged file found only now): the host catches OrchestratorError, and a pick must never fail on the
        history."""
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise _db_error(self.path, exc) from exc


def _chunks(items: List[int]) -> Iterable[List[int]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield items[i:i + _IN_CHUNK]


def _image_row(row: tuple, loras: Tuple[LoraUse, ...]) -> ImageRow:
    (image_id, path, present, fmt, width, height, created, prompt, negative, seed, checkpoint, checkpoint_hash,
     template, batch, swatch, group_key, parameters, problem, stars, rejected, favourite) = row
    return ImageRow(id=image_id, path=path, present=bool(present), format=fmt, width=width, height=height,
                    created=created, prompt=prompt, negative=negative, seed=seed, checkpoint=checkpoint,
                    checkpoint_hash=checkpoint_hash, template=template, batch=batch, swatch=swatch,
                    group_key=group_key, parameters=parameters, problem=problem, loras=loras, stars=stars,
                    rejected=bool(rejected), favourite=bool(favourite))


def _bump(db: sqlite3.Connection) -> None:
    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")


# -- opening the file -------------------------------------------------------------------------------------------

# Index files this process has open, and how many times. One that is open here was checked when it was first
# opened, and must not be probed again: a read-only connection opened and closed beside this process's other
# connections to a file in WAL mode left them reading an old snapshot for good (ratings made by another process
# went unseen until Forge restarted). Its header cannot say it is ours either: page 1 may be only in the WAL.
_OPEN_HERE: Dict[str, int] = {}
_OPEN_LOCK = threading.Lock()


def _open(path: str, timeout: float, probe: bool = True) -> sqlite3.Connection:
    if probe:
        _refuse_foreign(path, timeout)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise HistoryError(f"cannot make the folder for the history index: {exc.strerror or exc}",
                           Location(folder, 0, 0), "choose an index file in a folder you can write to") from exc
    try:
        db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _db_error(path, exc) from exc
    try:
        found = _schema(db)  # read before anything is written: a newer index is refused as it is
        if found is not None and found > SCHEMA_VERSION:
            raise _newer(path, found)
        write_ahead(db, timeout)
        db.execute("PRAGMA synchronous = NORMAL")  # with WAL: a crash of the process loses nothing committed
        if _schema(db) != SCHEMA_VERSION:
            with write_transaction(db):  # one process lays out or migrates; another waits, then finds it done
                found = _schema(db)
                if found is None:
                    for statement in _statements(_SCHEMA):  # not executescript: it would commit
                        db.execute(statement)
                    db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                   [("app", APP), ("schema", str(SCHEMA_VERSION)), ("version", "0")])
                    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                elif found < SCHEMA_VERSION:
                    _migrate(db, path, found)
                elif found > SCHEMA_VERSION:
                    raise _newer(path, found)
        db.execute("SELECT count(*) FROM images").fetchone()  # fails now, not later, if the file is damaged
    except HistoryError:
        db.close()
        raise
    except sqlite3.Error as exc:
        db.close()
        raise _db_error(path, exc) from exc
    return db


def _statements(script: str) -> List[str]:
    """The statements of `script`, each whole (a trigger's body holds semicolons)."""
    out: List[str] = []
    current = ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return out


def _schema(db: sqlite3.Connection) -> Optional[int]:
    """The schema version of an index of ours; None for a file with nothing in it yet."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    if row is None:
        return None
    try:
        return int(row[0])
    except (TypeError, ValueError):  # damaged: no migration starts from 0, so it is refused with what to do
        return 0


def _migrate(db: sqlite3.Connection, path: str, found: int) -> None:
    """Bring an index of schema `found` up to SCHEMA_VERSION, inside the caller's transaction."""
    kept = _kept(db)
    for version in range(found, SCHEMA_VERSION):
        step = _MIGRATIONS.get(version)
        if step is None:
            raise HistoryError(f"no way to bring a history index of schema {version} up to date",
                               Location(path, 0, 0), "move the file away; a new index is made in its place")
        step(db)
    if _kept(db) != kept:
        raise HistoryError("updating the history index would lose ratings or comparisons; it was left as it was",
                           Location(path, 0, 0), "report this as a bug; the file is unchanged")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))


def _kept(db: sqlite3.Connection) -> Tuple[object, ...]:
    """What a migration must keep: every rating and every comparison, by content."""
    ratings = db.execute("SELECT image_id, stars, rejected, favourite FROM ratings ORDER BY image_id").fetchall()
    compared = db.execute("SELECT id, left_id, right_id, outcome FROM comparisons ORDER BY id").fetchall()
    return tuple(ratings), tuple(compared)


def _refuse_foreign(path: str, timeout: float) -> None:
    """Raise HistoryError unless `path` is missing, empty, an empty SQLite database, or an index of ours of this
    schema or an older one. Only reads (read-only), so a refused file stays byte for byte as it was."""
    try:
        st = os.stat(path)
    except OSError:
        return  # missing (a new index), or a place that cannot hold one: making it will say why
    if stat.S_ISDIR(st.st_mode):
        _refuse(path, "a folder", "give the index a file name, e.g. <folder>/history.sqlite")
    if not stat.S_ISREG(st.st_mode):
        _refuse(path, "not a regular file", "give the index a new file name")
    if st.st_size == 0:
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise HistoryError(f"cannot read the history index: {exc.strerror or exc}", Location(path, 0, 0),
                           "check the file's permissions") from exc
    if not head.startswith(_SQLITE_MAGIC):
        _refuse(path, "not an SQLite database", "give the index a new file name, or move this file away yourself")
    if len(head) >= 72 and int.from_bytes(head[68:72], "big") == APPLICATION_ID:
        return  # ours by its header: _open reads its schema with the connection it keeps, before writing anything
    try:
        db = sqlite3.connect(_readonly_uri(path), uri=True, timeout=timeout)
        try:
            names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}
            meta: Dict[str, str] = {}
            if "meta" in names:
                meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM meta")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        _refuse(path, f"an SQLite database that cannot be read ({exc})",
                "give the index a new file name, or move this file away yourself")
    if not names:
        return  # an empty database: nothing in it to lose
    if meta.get("app") != APP:
        shown = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
        _refuse(path, f"an SQLite database of something else (tables {shown})",
                "give the index a new file name, or move this file away yourself")
    try:
        found = int(meta.get("schema", ""))
    except ValueError:
        found = 0
    if found > SCHEMA_VERSION:
        raise _newer(path, found)
    if found < 1:
        raise HistoryError(f"the history index has no usable schema version ({meta.get('schema')!r})",
                           Location(path, 0, 0), "the file is damaged: move it away; a new index is made in its "
                           "place (`sqlite3 FILE .recover` may save its ratings)")


def _newer(path: str, found: int) -> HistoryError:
    return HistoryError(f"the history index was made by a newer Orchestrator (schema {found}; this one reads "
                        f"{SCHEMA_VERSION}); it was left as it is", Location(path, 0, 0),
                        "update the Orchestrator, or give this one another index file")


def _refuse(path: str, what: str, hint: str) -> None:
    raise HistoryError(f"not a history index of the Orchestrator ({what}); it was left as it is",
                       Location(path, 0, 0), hint)


def _db_error(path: str, exc: sqlite3.Error) -> HistoryError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        hint = "another program holds the index; try again when its scan is done"
    elif "readonly" in text or "read-only" in text:
        hint = "the file or its folder cannot be written: check permissions, or choose another index file"
    elif "unable to open" in text:
        hint = "the file or its folder cannot be made or opened: check the path and its permissions"
    elif "malformed" in text or "not a database" in text or "corrupt" in text:
        hint = ("the file is damaged: move it away (a new index is made in its place); "
                "`sqlite3 FILE .recover` may save its ratings")
    else:
        hint = "check the file; move it away if it keeps failing"
    return HistoryError(f"the history index cannot be used: {text}", Location(path, 0, 0), hint)


def _readonly_uri(path: str) -> str:
    absolute = os.fsencode(os.path.abspath(path))
    if os.name == "nt":
        absolute = b"/" + absolute.replace(b"\\", b"/")  # file:///C:/...
    return "file://" + urllib.parse.quote(absolute, safe="/:") + "?mode=ro"
