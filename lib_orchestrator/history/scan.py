"""Scanning folders of images into the history index: which files are new, changed or gone, what each says
about how it was made, and the rows that hold it.

Incremental the way the library cache is: a file whose (size, mtime_ns) equal its row's costs one stat and
nothing else. The rows of a folder are loaded once as a path -> (size, mtime_ns, present) map, the folder is
listed (os.scandir, linked folders followed, each real folder once, so a link loop is walked once), and only
new or changed files are opened. Reading is done outside any transaction; the rows are then written a batch at
a time (`BATCH_FILES` files, or `BATCH_SECONDS`, whichever comes first), each batch one short write transaction:
a crash (or a kill) loses at most the batch in hand, and a rating made in another process waits for one batch,
not for the scan.

Two processes may scan overlapping folders at once: every write looks the row up again inside its transaction
(`BEGIN IMMEDIATE`, so two writers never interleave), so a file the other process has just written is not
inserted twice, and a row it has just brought up to date is left alone.

Rows are never deleted. A file that is no longer there is `present = 0` (its ratings and comparisons still
count); a new file whose fingerprint (sha1 of its size and parameters text) is that of a row whose file has gone
takes that row over, so a moved image keeps its id, its ratings and its comparisons. A file whose content
changed at the same path keeps its row (and its rating) and is read again.

A file is keyed by its path with its folder's real path (symlinks resolved once per folder, not per file), so a
scan of a linked folder and an image added by the host through the same link meet in one row.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterator, List, Optional, Sequence, Set, Tuple

from .imagefile import ImageInfo, read_image_info
from .infotext import Generation, LoraUse, parse_infotext

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
BATCH_FILES = 256  # files written per transaction
BATCH_SECONDS = 1.0  # ... or fewer, when reading them took this long (a slow disk loses no more on a crash)
PROGRESS_EVERY = 64  # files between two on_progress calls while reading
_INT64 = (-(1 << 63), (1 << 63) - 1)

ShouldStop = Callable[[], bool]
# (size, mtime_ns, mtime): what a scan keeps of a file's stat. Not the stat_result: 100k of them with their paths
# took 67 MB, these 21 MB (the cold scan's peak RSS at 100k images went from 110 to 61 MB).
Stamp = Tuple[int, int, float]
OnProgress = Optional[Callable[[int, Optional[int]], None]]


@dataclass(frozen=True)
class ScanStats:
    folders: int  # folders scanned (one inside another counts once: it is scanned with the outer one)
    seen: int  # image files found
    added: int  # new rows
    updated: int  # rows read again (the file changed), back after being gone, or taken over by a moved file
    unchanged: int  # files that cost a stat only
    gone: int  # rows marked present = 0 this scan
    problems: int  # files read this scan whose row has a problem (corrupt, no generation parameters, ...)
    seconds: float
    stopped: bool = False  # should_stop said so: nothing was marked gone, what was read is kept
    moved: int = 0  # of `updated`: files found at a new path that took over the row of a gone one
    unreadable: Tuple[str, ...] = ()  # folders that could not be listed (missing, no permission); their rows stay


@dataclass(frozen=True)
class ImageRecord:
    """One file as read: what its row holds (the row's id aside)."""

    path: str
    folder: str
    size: int
    mtime_ns: int
    created: float
    format: str
    width: Optional[int]
    height: Optional[int]
    prompt: str
    negative: str
    seed: Optional[int]
    checkpoint: str
    checkpoint_hash: str
    template: str
    batch: str
    swatch: str
    lora_names: str
    group_key: str
    parameters: Optional[str]
    problem: str
    fingerprint: str
    loras: Tuple[LoraUse, ...]


@dataclass(frozen=True)
class Written:
    added: int = 0
    updated: int = 0
    moved: int = 0
    problems: int = 0
    unchanged: int = 0  # already written as they are now (by another process, or the host's add_file)
    rows_changed: bool = False  # an existing row now says something else: ratings may now count for other LoRAs


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def normal_folder(path: str) -> str:
    """How a folder is keyed: its real path (links resolved, absolute, normalised)."""
    return os.path.realpath(os.path.abspath(path))


def normal_file(path: str) -> str:
    """How a file is keyed: its name under its folder's real path (the file itself may be a link)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(normal_folder(folder), name)


def fingerprint(size: int, text: Optional[str]) -> str:
    """Equal for the same image at another path: its size and parameters text. "" without a text, since many
    unrelated images of one size and no parameters would otherwise share one and take over each other's row."""
    if not text:
        return ""
    data = f"{size}\0{text}".encode("utf-8", "surrogatepass")
    return hashlib.sha1(data).hexdigest()


def read_record(path: str, folder: str, stamp: Stamp) -> ImageRecord:
    """What `path` says about how it was made. Never raises: a file that cannot be read is a record with its
    problem, so a scan indexes it (and never reads it again until it changes)."""
    try:
        info = read_image_info(path)
    except Exception as exc:  # noqa: BLE001 (the reader promises not to raise; one bad file must not stop a scan)
        info = ImageInfo(format="", width=None, height=None, text=None, problem=f"unreadable: {exc}")
    gen: Optional[Generation] = None
    if info.text:
        try:
            gen = parse_infotext(info.text)
        except Exception:  # noqa: BLE001 (likewise)
            gen = None
    loras = tuple(gen.loras) if gen is not None else ()
    width = info.width if info.width is not None else (gen.width if gen is not None else None)
    height = info.height if info.height is not None else (gen.height if gen is not None else None)
    seed = gen.seed if gen is not None else None
    if seed is not None and not _INT64[0] <= seed <= _INT64[1]:
        seed = None  # not a seed any sampler took; SQLite cannot hold it
    return ImageRecord(
        path=path, folder=folder, size=stamp[0], mtime_ns=stamp[1], created=stamp[2],
        format=info.format, width=width, height=height,
        prompt=gen.prompt if gen else "", negative=gen.negative if gen else "", seed=seed,
        checkpoint=gen.checkpoint if gen else "", checkpoint_hash=gen.checkpoint_hash if gen else "",
        template=gen.template if gen else "", batch=gen.batch if gen else "", swatch=gen.swatch if gen else "",
        lora_names=" ".join(use.name for use in loras), group_key=gen.group if gen else "",
        parameters=info.text, problem=info.problem, fingerprint=fingerprint(stamp[0], info.text), loras=loras)


# -- writing rows ------------------------------------------------------------------------------------------------

@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction. IMMEDIATE: the write lock is taken (waiting up to the busy timeout) before anything
    is read, so a read-then-write never fails half-way because another process wrote in between. The connection
    must be in autocommit mode (isolation_level None)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.in_transaction:  # some errors (a full disk) have rolled it back already
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


_COLUMNS = ("path", "folder", "size", "mtime_ns", "present", "format", "width", "height", "created", "prompt",
            "negative", "seed", "checkpoint", "checkpoint_hash", "template", "batch", "swatch", "lora_names",
            "group_key", "parameters", "problem", "fingerprint")
_INSERT = f"INSERT INTO images ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_UPDATE = f"UPDATE images SET {', '.join(c + ' = ?' for c in _COLUMNS)} WHERE id = ?"


def _values(rec: ImageRecord) -> Tuple[object, ...]:
    return (rec.path, rec.folder, rec.size, rec.mtime_ns, 1, rec.format, rec.width, rec.height, rec.created,
            rec.prompt, rec.negative, rec.seed, rec.checkpoint, rec.checkpoint_hash, rec.template, rec.batch,
            rec.swatch, rec.lora_names, rec.group_key, rec.parameters, rec.problem, rec.fingerprint)


def _plain(value: object) -> object:
    """Text SQLite can store: a lone surrogate (from a damaged UTF-16 comment) becomes U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def write_records(db: sqlite3.Connection, records: Sequence[ImageRecord]) -> Written:
    """Rows for `records`, inside the caller's write transaction. Each file is looked up again here, under
    the write lock: another process may have written it since this one listed the folder."""
    added = updated = moved = problems = unchanged = 0
    rows_changed = False
    for rec in records:
        found = db.execute("SELECT id, size, mtime_ns, present FROM images WHERE path = ?", (rec.path,)).fetchone()
        if found is not None and tuple(found[1:]) == (rec.size, rec.mtime_ns, 1):
            unchanged += 1
            continue  # written meanwhile, by another process or an add_file of the host
        new = False
        if found is not None:
            image_id = found[0]
            _execute_row(db, _UPDATE, _values(rec) + (image_id,))
            updated += 1
            rows_changed = True
        else:
            twin = _gone_twin(db, rec)
            if twin is not None:
                image_id = twin
                _execute_row(db, _UPDATE, _values(rec) + (image_id,))
                moved += 1
            else:
                image_id = _execute_row(db, _INSERT, _values(rec))
                added += 1
                new = True
        if not new:  # a row made before (this file's, or the moved file's): its LoRAs are replaced
            db.execute("DELETE FROM image_loras WHERE image_id = ?", (image_id,))
        # OR IGNORE: the infotext reader gives one entry a name, but the key is case-insensitive either way.
        db.executemany("INSERT OR IGNORE INTO image_loras (image_id, name, weight, source, reason) "
                       "VALUES (?, ?, ?, ?, ?)",
                       [(image_id, _plain(u.name), u.weight, u.source, _plain(u.reason)) for u in rec.loras])
        problems += bool(rec.problem)
    return Written(added, updated + moved, moved, problems, unchanged, rows_changed)


def _execute_row(db: sqlite3.Connection, sql: str, values: Tuple[object, ...]) -> int:
    try:
        cursor = db.execute(sql, values)
    except UnicodeEncodeError:
        cursor = db.execute(sql, tuple(map(_plain, values)))
    return int(cursor.lastrowid) if sql is _INSERT else int(values[-1])  # type: ignore[arg-type]


def _gone_twin(db: sqlite3.Connection, rec: ImageRecord) -> Optional[int]:
    """The row of the same image at a path where it no longer is (a moved file), or None. A row still marked
    present counts when its file is gone: the move is found before the scan reaches the old path. Rated rows
    first, then the oldest."""
    if not rec.fingerprint:
        return None
    # `fingerprint != ''` repeated: only then does SQLite use the partial index (else a table scan per new file).
    rows = db.execute("SELECT id, path, present FROM images WHERE fingerprint = ? AND fingerprint != '' "
                      "ORDER BY present, EXISTS (SELECT 1 FROM ratings WHERE image_id = images.id) DESC, id",
                      (rec.fingerprint,)).fetchall()
    for image_id, path, present in rows:
        if not present or not os.path.lexists(path):
            return int(image_id)
    return None


# -- walking folders ---------------------------------------------------------------------------------------------

def _identity(path: str, real: str) -> object:
    try:
        st = os.stat(path)
    except OSError:
        return real
    return (st.st_dev, st.st_ino) if st.st_ino else real


def list_images(root: str, should_stop: ShouldStop, unreadable: List[str],
                on_folder: Optional[Callable[[int], None]] = None) -> Iterator[Tuple[str, Stamp]]:
    """(path, stat) of every image file under `root` (already a real path), in a stable order. Linked folders
    are followed, each real folder walked once (a loop ends there). Folders whose names start with a dot are
    skipped (caches, trash). A folder that cannot be listed goes to `unreadable`."""
    visited: Set[object] = {_identity(root, root)}
    stack: List[str] = [root]
    count = 0
    while stack:
        if should_stop():
            return
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            unreadable.append(folder)
            continue
        subfolders: List[str] = []
        for entry in entries:
            if entry.name.startswith(".") or not _utf8(entry.name):
                continue
            try:
                if entry.is_dir():
                    # By what it leads to (a link or a Windows junction too): each real folder once.
                    identity = _identity(entry.path, entry.path)
                    if identity not in visited:
                        visited.add(identity)
                        subfolders.append(entry.path)
                elif is_image_name(entry.name):
                    st = entry.stat()  # follows a linked file: its own size and time
                    if stat.S_ISREG(st.st_mode):
                        count += 1
                        yield entry.path, _stamp(st)
            except OSError:  # a broken link, a loop of links, a file gone meanwhile
                continue
        stack.extend(reversed(subfolders))  # depth first, in name order
        if on_folder is not None:
            on_folder(count)


def _utf8(name: str) -> bool:
    """Whether a name can be stored: a POSIX name that is not UTF-8 comes with surrogate escapes, which SQLite's
    UTF-8 text cannot hold (nor give back as the same path)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _stamp(st: os.stat_result) -> Stamp:
    return st.st_size, st.st_mtime_ns, st.st_mtime


def _prefix_bounds(root: str) -> Tuple[str, str]:
    """Paths under `root`, as a range of the path index: [root/, root0) where 0 is the character after /."""
    prefix = root if root.endswith(os.sep) else root + os.sep
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)


def outermost(folders: Sequence[str]) -> List[str]:
    """The folders with those inside another of them dropped (scanned with it), in a stable order."""
    kept: List[str] = []
    for folder in sorted(set(folders)):
        if not any(folder.startswith(_prefix_bounds(k)[0]) for k in kept):
            kept.append(folder)
    return kept


class _Batch:
    """Records read and not yet written, and the totals so far."""

    def __init__(self, db: sqlite3.Connection, on_write: Callable[[Written], None]) -> None:
        self.db, self.on_write = db, on_write
        self.records: List[ImageRecord] = []
        self.returned: List[str] = []  # unchanged files that were marked gone: present again
        self.since = time.monotonic()

    def add(self, record: ImageRecord) -> None:
        self.records.append(record)
        self._maybe_flush()

    def add_returned(self, path: str) -> None:
        self.returned.append(path)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if (len(self.records) + len(self.returned) >= BATCH_FILES
                or time.monotonic() - self.since >= BATCH_SECONDS):
            self.flush()

    def flush(self) -> None:
        if self.records or self.returned:
            with write_transaction(self.db):
                written = write_records(self.db, self.records)
                cursor = self.db.executemany("UPDATE images SET present = 1 WHERE path = ? AND present = 0",
                                             [(p,) for p in self.returned])
                back = max(cursor.rowcount, 0)  # the rest: made present meanwhile by another process
                written = replace(written, updated=written.updated + back,
                                  unchanged=written.unchanged + len(self.returned) - back)
                self.on_write(written)
            self.records, self.returned = [], []
        self.since = time.monotonic()


def scan_folders(db: sqlite3.Connection, roots: Sequence[str], should_stop: ShouldStop, on_progress: OnProgress,
                 on_write: Callable[[Written], None]) -> ScanStats:
    """Bring the rows of every image under `roots` (real paths, none inside another) up to date with the files.
    `on_write` is called inside each write transaction with what it wrote (the store bumps its version there)."""
    started = time.monotonic()
    totals = {"added": 0, "updated": 0, "moved": 0, "problems": 0, "unchanged": 0}

    def count(written: Written) -> None:
        for key in totals:
            totals[key] += getattr(written, key)
        on_write(written)

    batch = _Batch(db, count)
    seen = unchanged = gone = 0
    unreadable: List[str] = []
    stopped = False
    # Phase 1: list and stat every folder (the reading phase then knows its total, for the progress).
    plans: List[Tuple[str, List[Tuple[str, Stamp]], List[str]]] = []
    for root in roots:
        low, high = _prefix_bounds(root)
        known = {p: (s, m, present) for p, s, m, present in db.execute(
            "SELECT path, size, mtime_ns, present FROM images WHERE path >= ? AND path < ?", (low, high))}
        unseen = set(known)
        to_read: List[Tuple[str, Stamp]] = []
        before = len(unreadable)

        def folder_done(n: int, listed: int = seen) -> None:
            if on_progress is not None:
                on_progress(listed + n, None)

        for path, stamp in list_images(root, should_stop, unreadable, folder_done):
            seen += 1
            unseen.discard(path)
            row = known.get(path)
            if row is not None and row[0] == stamp[0] and row[1] == stamp[1]:
                if row[2]:
                    unchanged += 1
                else:  # back where it was, as it was: present again, without reading it
                    batch.add_returned(path)
            else:
                to_read.append((path, stamp))
        if should_stop():
            stopped = True
            break
        # A folder that exists but could not be listed keeps its rows as they are: nothing is known of its files.
        # One that does not exist (deleted, or a drive not mounted) has none: its rows are gone until it is back.
        blocked = tuple(_prefix_bounds(f)[0] for f in unreadable[before:] if os.path.lexists(f))
        gone_paths = sorted(p for p in unseen if known[p][2] and not p.startswith(blocked))
        plans.append((root, to_read, gone_paths))
    total = seen
    done = seen - sum(len(to_read) for _, to_read, _ in plans)  # stat only: unchanged, or back as it was
    if on_progress is not None:
        on_progress(done, total)
    # Phase 2: read what is new or changed.
    for root, to_read, _ in plans:
        for path, stamp in to_read:
            if should_stop():
                stopped = True
                break
            batch.add(read_record(path, root, stamp))
            done += 1
            if on_progress is not None and done % PROGRESS_EVERY == 0:
                on_progress(done, total)
        if stopped:
            break
    batch.flush()
    # Phase 3: what has gone. Only after a whole scan, and each path looked at once more: a file written since
    # its folder was listed (the host saving an image) is not gone.
    if not stopped:
        for _root, _to_read, gone_paths in plans:
            really = [(p,) for p in gone_paths if not os.path.lexists(p)]
            for i in range(0, len(really), BATCH_FILES * 4):
                with write_transaction(db):
                    cursor = db.executemany("UPDATE images SET present = 0 WHERE path = ? AND present = 1",
                                            really[i:i + BATCH_FILES * 4])
                    gone += max(cursor.rowcount, 0)
    if on_progress is not None:
        on_progress(done, total)
    return ScanStats(folders=len(roots), seen=seen, added=totals["added"], updated=totals["updated"],
                     unchanged=unchanged + totals["unchanged"], gone=gone, problems=totals["problems"],
                     seconds=time.monotonic() - started, stopped=stopped, moved=totals["moved"],
                     unreadable=tuple(unreadable))


def index_file(db: sqlite3.Connection, path: str, folder: str, on_write: Callable[[Written], None]) -> Optional[int]:
    """Index one image now (the host has just saved it): its row's id, or None when it is no image file we index
    or is not there. Read outside the transaction, written in one."""
    if not is_image_name(os.path.basename(path)):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    record = read_record(path, folder, _stamp(st))
    with write_transaction(db):
        on_write(write_records(db, [record]))
        row = db.execute("SELECT id FROM images WHERE path = ?", (path,)).fetchone()
    return int(row[0]) if row else None
