"""Scanning a LoRA folder: list like Forge, read what changed, resolve, then the problems between files."""
from __future__ import annotations

import functools
import os
import re
import stat
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from .cache import RecordCache, listing_digest, records_from_snapshot, well_formed
from .hashing import file_sha256
from .header import HeaderError, read_header
from .pool import value_pool
from .previews import PreviewIndex, image_problem
from .previews import checker as preview_checker
from .problems import (
    ALIAS_COLLISION,
    BAD_NAME,
    BROKEN_PREVIEW,
    CORRUPT_HEADER,
    CORRUPT_SIDECAR,
    DUPLICATE,
    NOT_SAFETENSORS,
    PARTIAL_DOWNLOAD,
    STEM_COLLISION,
    SYMLINK_LOOP,
    UNREADABLE,
    Problem,
)
from .record import LoraRecord
from .resolve import resolve
from .sidecars import Sidecars, read_sidecars

LORA_EXTENSIONS = (".safetensors", ".pt", ".ckpt")  # what Forge lists
PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".download")
OTHER_MODEL_EXTENSIONS = (".gguf", ".zip", ".bin", ".pth", ".onnx")
SIDECAR_SUFFIXES = (".civitai.info", ".json", ".metadata.json", ".cm-info.json", ".txt", ".description.txt")
_CROSS_CODES = {STEM_COLLISION, ALIAS_COLLISION, DUPLICATE}
_DIGITS = re.compile(r"(\d+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Where DirEntry.stat() fills st_ino and st_dev (POSIX), a file is known by them for free; on Windows they
# are zero there, and the real path, kept along the walk, stands in (hard links are then not seen).
_BY_INODE = os.name != "nt"


@dataclass(frozen=True)
class ScanResult:
    root: str
    records: Tuple[LoraRecord, ...]
    read: int  # files whose metadata was read this time
    cached: int  # files taken from the cache
    seconds: float
    snapshot: bool = False  # nothing had changed: the records are the cache's snapshot of the last scan

    def by_name(self, name: str) -> List[LoraRecord]:
        return [r for r in self.records if r.name == name or r.alias == name or r.path == name]


@dataclass(frozen=True)
class _Found:
    """A file the scan reports, with the sidecars found beside it."""

    rel: str
    path: str
    stem: str
    # "lora", "partial", "other", "unreadable" (named like a LoRA, but not a file that opens), "loop" (a folder
    # entry leading back up), "appledouble" (a macOS ._ file)
    kind: str
    folders: Tuple[str, ...]
    sidecars: Dict[str, str]  # suffix -> path
    preview: Optional[str]  # path
    stamp: str
    # The real file: one file listed under two paths (a linked folder, a file link, a hard link) is one
    # LoRA, never a collision or a duplicate of itself. None where it is not known.
    identity: object = None
    note: str = ""  # for a folder loop: the listed folder it leads back to


def natural_key(text: str) -> list:
    """Forge's natural sort: digits as numbers, the rest case-insensitive."""
    # The odd parts of the split are the digit runs. Testing `isdigit()` instead would also take '²',
    # which int() refuses: one file named `1²3.safetensors` stopped the whole scan.
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(_DIGITS.split(text))]


def scan_library(root: str, cache_path: Optional[str] = None, include_hidden: bool = True,
                 compute_hashes: bool = False) -> ScanResult:
    """Every LoRA under `root` (and every file that should be one but is not). Metadata is read only for
    files whose stamp changed since the cache saw them; full SHA-256 only with `compute_hashes`. When no
    file changed at all, the cache's snapshot of the last finished list is the answer: the scan then only
    lists and stats the folder (no record is built from its row, no check between files runs again).

    A file that cannot be read is a problem on that file's record, never an exception: nothing in the
    folder can stop the scan. The one error raised is `CacheError`, for a `cache_path` that names a file
    which is not our cache (it is left untouched)."""
    start = time.perf_counter()
    root = os.path.abspath(root)
    cache = RecordCache(cache_path) if cache_path else None
    try:
        found = list(_find(root, include_hidden))
        digest = _digest(root, found) if cache else b""
        blob = cache.snapshot(digest) if cache else None
        if blob is not None:
            listed = len(found)
            found = []  # 30,000 listed files weigh 40 MB: let go of them before the records are built
            kept = records_from_snapshot(blob)
            del blob
            if kept is not None and not (compute_hashes and any(_unhashed(r) for r in kept)):
                return ScanResult(root, kept, 0, listed, time.perf_counter() - start, snapshot=True)
            found = list(_find(root, include_hidden))  # rare: a snapshot that does not load, or --hash
            digest = _digest(root, found)
        found.sort(key=lambda f: natural_key(f.rel))
        known = cache.load() if cache else {}
        share = value_pool()  # each record's values shared as it is made: a fifth of the memory at 30,000
        records: List[LoraRecord] = []
        changed = []
        read = 0
        from_rows: List[int] = []
        for item in found:
            hit = known.pop(item.rel, None)  # its row's JSON is freed at once; what is left at the end is gone
            record = _from_cache(hit[1]) if hit is not None and hit[0] == item.stamp else None
            if record is None:
                record = _read_safely(item)
                read += 1
                changed.append((item.rel, item.stamp, record))
            else:
                from_rows.append(len(records))
            if compute_hashes and _unhashed(record):
                try:
                    record = replace(record, sha256=file_sha256(item.path))
                    changed.append((item.rel, item.stamp, record))
                except OSError:
                    pass  # gone or unreadable since it was listed: it is simply not hashed
            records.append(share(record))
        # A row edited by hand can parse into a record of the wrong types (`"name": 12345`), which would
        # stop the checks between files: such a file is read again. One check of all rows costs ~15 ms for
        # 10,000; record by record only when that finds something.
        if from_rows and not well_formed([records[i] for i in from_rows]):
            for i in from_rows:
                if not well_formed([records[i]]):
                    records[i] = share(_read_safely(found[i]))
                    read += 1
                    changed.append((found[i].rel, found[i].stamp, records[i]))
        made = {id(r) for r in records}  # the records _between_files replaces have new problems to share
        records = [r if id(r) in made else share(r) for r in _between_files(records, [f.identity for f in found])]
        if cache:
            cache.save(changed, list(known), (digest, records))
        return ScanResult(root, tuple(records), read, len(found) - read, time.perf_counter() - start)
    finally:
        if cache:
            cache.close()


def _unhashed(record: LoraRecord) -> bool:
    return record.is_lora and record.sha256 is None and bool(record.size)


def _digest(root: str, found: List[_Found]) -> bytes:
    # Everything of the listing that a record or a problem between files depends on: a new field of _Found
    # that changes records must be in the stamp, or here.
    return listing_digest(root, ((f.rel, f.stamp, repr(f.identity)) for f in found))


def _find(root: str, include_hidden: bool) -> Iterator[_Found]:
    """Every file Forge lists under `root`, as `os.walk(root, followlinks=True)` finds them: linked folders
    are walked, and a folder reachable by two paths is listed under both. Unlike os.walk, which walks a
    loop until the path grows too long, an entry that leads back to a folder on the path walked to it is
    reported once (`symlink_loop`) and not walked."""
    root_real = os.path.realpath(root)
    # Each folder travels with its real path and the identities of the folders from the root down to it: a
    # loop is a folder whose identity is among them. A folder reached twice by separate paths is no loop.
    stack: List[Tuple[str, Tuple[str, ...], str, Tuple[object, ...]]] = [
        (root, (), root_real, (_folder_identity(root, root_real),))]
    while stack:
        folder, parts, real, ancestors = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        files: Dict[str, os.DirEntry] = {}
        odd: List[os.DirEntry] = []  # neither a folder nor a regular file: a broken or looping link, a FIFO
        loops: List[Tuple[os.DirEntry, int]] = []  # (entry, depth of the folder it leads back to)
        for entry in entries:
            try:
                if entry.is_dir():
                    if include_hidden or not entry.name.startswith("."):
                        # Only a link moves elsewhere: below a plain folder the real path grows by the name,
                        # without a system call.
                        sub = os.path.realpath(entry.path) if _is_link(entry) else os.path.join(real, entry.name)
                        identity = _folder_identity(entry.path, sub)
                        if identity in ancestors:
                            loops.append((entry, ancestors.index(identity)))
                        else:
                            stack.append((entry.path, parts + (entry.name,), sub, ancestors + (identity,)))
                elif entry.is_file():
                    files[entry.name] = entry
                else:
                    odd.append(entry)
            except OSError:  # a link loop raises here
                odd.append(entry)
        if files:
            yield from _in_folder(root, parts, files, real)
        prefix = "/".join(parts) + "/" if parts else ""
        for entry, depth in loops:
            back = "/".join(parts[:depth])
            yield _Found(prefix + entry.name, entry.path, entry.name, "loop", parts, {}, None, "loop:" + back,
                         note=back)
        for entry in odd:
            # Forge lists such a LoRA (os.walk puts it among the files) and then fails to load it: it is
            # reported, and never opened: opening a FIFO would block the scan for ever.
            if entry.name.lower().endswith(LORA_EXTENSIONS):
                kind = "appledouble" if entry.name.startswith("._") else "unreadable"
                yield _Found(prefix + entry.name, entry.path, os.path.splitext(entry.name)[0], kind,
                             parts, {}, None, "unreadable")


def _folder_identity(path: str, real: str) -> object:
    """Which folder this is: (device, inode), so that `loop -> ../LIB` on a case-insensitive volume (macOS),
    whose real path is spelled differently, is still the folder it leads back to. Where the system gives no
    inode (some Windows file systems), the real path."""
    try:
        st = os.stat(path)
    except OSError:
        return real
    return (st.st_dev, st.st_ino) if st.st_ino else real


def _is_link(entry: os.DirEntry) -> bool:
    if entry.is_symlink():
        return True
    if os.name == "nt":  # a junction leads elsewhere too, but is_symlink() says no before Python 3.12
        try:
            return bool(entry.stat(follow_symlinks=False).st_file_attributes & stat.FILE_ATTRIBUTE_REPARSE_POINT)
        except (OSError, AttributeError):
            return False
    return False


def _in_folder(root: str, parts: Tuple[str, ...], files: Dict[str, os.DirEntry],
               real: str) -> Iterator[_Found]:
    previews = PreviewIndex(files)
    prefix = "/".join(parts) + "/" if parts else ""
    for name, entry in files.items():
        low = name.lower()
        kind = stem = None
        if low.endswith(LORA_EXTENSIONS):
            kind, stem = "lora", os.path.splitext(name)[0]
        elif low.endswith(PARTIAL_SUFFIXES):
            kind, stem = "partial", _strip_model_ext(os.path.splitext(name)[0])
        elif low.endswith(OTHER_MODEL_EXTENSIONS):
            kind, stem = "other", os.path.splitext(name)[0]
        if kind is None or stem is None:
            continue
        if name.startswith("._"):  # macOS's AppleDouble file beside a copied file: never a model, whatever it holds
            kind = "appledouble"
        sidecars: Dict[str, str] = {}
        try:
            st: Optional[os.stat_result] = entry.stat()  # cached on the entry: the identity below is free
        except OSError:
            st = None
        stamp = [f"{st.st_size}:{st.st_mtime_ns}" if st is not None else "?"]
        preview = None
        identity = None
        if kind == "lora":
            for suffix in SIDECAR_SUFFIXES:
                side = files.get(stem + suffix)
                if side is not None:
                    sidecars[suffix] = side.path
                    stamp.append(suffix + _stat_stamp(side))
            preview_name = previews.find(stem) if previews else None
            if preview_name is not None:
                preview = files[preview_name].path
                stamp.append(preview_name + _stat_stamp(files[preview_name]) + "@" + preview_checker())
            if _BY_INODE:
                identity = (st.st_dev, st.st_ino) if st is not None else None
            else:
                identity = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(real, name)
        yield _Found(prefix + name, entry.path, stem, kind, parts, sidecars, preview, "|".join(stamp), identity)


def _strip_model_ext(stem: str) -> str:
    base, ext = os.path.splitext(stem)
    return base if ext.lower() in LORA_EXTENSIONS + OTHER_MODEL_EXTENSIONS else stem


@functools.cache
def _stat_stamp(entry: os.DirEntry) -> str:
    try:
        st = entry.stat()
    except OSError:
        return "?"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _from_cache(text: str) -> Optional[LoraRecord]:
    """A cached record, or None when the row does not parse (then the file is simply read again)."""
    try:
        return LoraRecord.from_json(text)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _read_safely(item: _Found) -> LoraRecord:
    """The file's record. Whatever goes wrong while reading one file stays on that file: the README
    promises that a broken file never stops a scan, and in Forge nobody would see the error."""
    try:
        return _read(item)
    except Exception as exc:  # the readers report what they expect as problems already; this is the rest
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        return LoraRecord(item.rel, item.stem, is_lora=False, size=_size(item.path),
                          problems=(Problem(UNREADABLE, item.rel,
                                            f"could not be read ({type(exc).__name__}: {reason}); skipped"),))


def _name_problem(stem: str) -> Optional[str]:
    """Why `<lora:stem>` cannot be written in a prompt or an infotext, or None."""
    try:
        stem.encode("utf-8")
    except UnicodeEncodeError:  # a name that was not UTF-8 on disk, kept with surrogate escapes
        return f"the name {ascii(stem)} is not valid UTF-8, so no prompt can name it; rename the file"
    if _CONTROL.search(stem):
        return (f"the name {ascii(stem)} holds a control character (a newline?), which breaks prompts and "
                "infotexts; rename the file")
    return None


def _read(item: _Found) -> LoraRecord:
    if item.kind == "loop":
        back = f"'{item.note}/'" if item.note else "the library folder itself"
        return LoraRecord(item.rel, item.stem, is_lora=False, problems=(Problem(
            SYMLINK_LOOP, item.rel, f"leads back to {back}, a folder it is inside: Forge walks it again and again "
            "until the path is too long, listing every LoRA below it each time; it was not walked (remove the "
            "link that makes the loop)"),))
    if item.kind == "appledouble":  # never opened: its bytes are Finder's, whatever the name says
        return LoraRecord(item.rel, item.stem, is_lora=False, size=_size(item.path), problems=(Problem(
            NOT_SAFETENSORS, item.rel, "a macOS AppleDouble file ('._' and a file's name: Finder's data about a "
            "file copied from a Mac), not a model; Forge lists it and fails to load it; it can be deleted"),))
    if item.kind == "unreadable":
        try:
            os.stat(item.path)
            why = "not a regular file (a FIFO, a socket or a device)"
        except OSError as exc:
            why = f"cannot be opened: {exc.strerror} (a broken or looping link?)"
        return LoraRecord(item.rel, item.stem, is_lora=False,
                          problems=(Problem(UNREADABLE, item.rel, f"{why}; Forge lists it but cannot load it"),))
    size = _size(item.path)
    if item.kind == "partial":
        return LoraRecord(item.rel, item.stem, is_lora=False, size=size,
                          problems=(Problem(PARTIAL_DOWNLOAD, item.rel, "an unfinished download, not a LoRA"),))
    if item.kind == "other":
        return LoraRecord(item.rel, item.stem, is_lora=False, size=size,
                          problems=(Problem(NOT_SAFETENSORS, item.rel, "a model file of another kind, not a LoRA"),))
    problems: List[Problem] = []
    header = None
    if item.rel.lower().endswith(".safetensors"):
        try:
            header = read_header(item.path, size)
            problems.extend(Problem(CORRUPT_HEADER, item.rel, note) for note in header.notes)
            if header.data_problem:
                problems.append(Problem(CORRUPT_HEADER, item.rel, header.data_problem))
        except HeaderError as exc:
            code = NOT_SAFETENSORS if exc.not_safetensors else CORRUPT_HEADER
            problems.append(Problem(code, item.rel, str(exc)))
        except OSError as exc:
            problems.append(Problem(CORRUPT_HEADER, item.rel, f"cannot read: {exc.strerror}"))
    else:
        problems.append(Problem(NOT_SAFETENSORS, item.rel, "a pickle-format LoRA: no metadata can be read safely"))
    side = read_sidecars(item.sidecars) if item.sidecars else Sidecars()
    folder = item.rel.rsplit("/", 1)[0] + "/" if "/" in item.rel else ""
    for suffix, note in side.problems:
        problems.append(Problem(CORRUPT_SIDECAR, folder + item.stem + suffix, note))
    preview = None
    if item.preview is not None:
        preview_rel = folder + os.path.basename(item.preview)
        broken = image_problem(item.preview)
        if broken:
            problems.append(Problem(BROKEN_PREVIEW, preview_rel, broken))
        else:
            preview = preview_rel
    record = resolve(item.rel, item.stem, size, header, side, item.folders, preview, problems)
    if header is not None and header.data_problem:  # resolved, so the user sees what it is, but never picked
        record = replace(record, excluded=True)
    bad_name = _name_problem(item.stem)
    if bad_name:  # indexed, so the user sees it, but never picked: the pick could not be written
        record = replace(record, excluded=True, problems=record.problems + (Problem(BAD_NAME, item.rel, bad_name),))
    return record


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _between_files(records: List[LoraRecord], identities: Optional[Sequence[object]] = None) -> List[LoraRecord]:
    """Problems no single file shows: shared stems, shared aliases, the same LoRA twice. `identities`, one
    per record, names each record's real file (None: unknown, so only itself): two listings of one real
    file (a linked folder listed under two paths) are one LoRA, never a collision or a duplicate of itself.

    The cross-file codes a record carries are recomputed here every time, so a record served from the
    cache never keeps a clash whose other file has gone."""
    ident: List[object] = [("#", i) if x is None else x
                           for i, x in enumerate(identities if identities is not None else [None] * len(records))]
    by_stem: Dict[str, List[int]] = defaultdict(list)
    by_lower_stem: Dict[str, List[int]] = defaultdict(list)
    # lower-cased alias -> (stem, whether the alias is exactly that stem) -> LoRAs
    by_alias: Dict[str, Dict[Tuple[str, bool], List[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(records):
        if r.is_lora:
            by_stem[r.name].append(i)
            by_lower_stem[r.name.lower()].append(i)
            if r.alias:
                by_alias[r.alias.lower()][(r.name, r.alias == r.name)].append(i)
    extra: Dict[int, List[Problem]] = defaultdict(list)
    for stem, idx in by_stem.items():
        if len(idx) > 1:
            files = len({ident[i] for i in idx})
            if files > 1:
                winner = records[idx[-1]].path
                for i in idx:
                    extra[i].append(Problem(STEM_COLLISION, records[i].path,
                                            f"{files} files are named '{stem}'; <lora:{stem}> means {winner}"))
    for i, r in enumerate(records):
        if not (r.is_lora and r.alias):
            continue
        key = r.alias.lower()
        own = r.alias == r.name
        # The same alias on another file, whatever the case or the stems; but two files of one stem whose
        # alias is exactly that stem clash only as stems.
        other = next((j for group, idx in by_alias[key].items() if not (own and group == (r.name, True))
                      for j in idx if ident[j] != ident[i]), None)
        if other is not None:
            extra[i].append(Problem(ALIAS_COLLISION, r.path, f"alias '{r.alias}' is also the alias of "
                                    f"{records[other].path}; Forge refuses an alias two files share"))
            continue
        if not own:  # an alias that is another file's name (an alias that is its own name names itself)
            other = next((j for j in by_lower_stem.get(key, ()) if ident[j] != ident[i]), None)
            if other is not None:
                extra[i].append(Problem(ALIAS_COLLISION, r.path, f"alias '{r.alias}' is also the name of "
                                        f"{records[other].path}; Forge refuses it"))
    group = _duplicate_groups(records, ident)
    members: Dict[str, List[int]] = defaultdict(list)
    for i, key in group.items():
        members[key].append(i)
    for idx in members.values():
        for i in idx:
            differ = [j for j in idx if ident[j] != ident[i]]
            others = [records[j].path for j in differ[:3]]
            more = f" and {len(differ) - len(others)} more" if len(differ) > len(others) else ""
            extra[i].append(Problem(DUPLICATE, records[i].path, f"the same LoRA as {', '.join(others)}{more}"))
    out = []
    for i, r in enumerate(records):
        if i in extra or i in group or r.duplicate_group is not None or any(p.code in _CROSS_CODES
                                                                             for p in r.problems):
            base = tuple(p for p in r.problems if p.code not in _CROSS_CODES)
            r = replace(r, problems=base + tuple(extra.get(i, ())), duplicate_group=group.get(i))
        out.append(r)
    return out


def _duplicate_groups(records: List[LoraRecord], ident: Sequence[object]) -> Dict[int, str]:
    """Index -> group id for LoRAs that share a tensor hash or a full hash (either joins them), when the
    group holds two real files or more. The id is the group's smallest tensor hash, else its smallest
    full hash."""
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: Dict[str, int] = {}
    for i, r in enumerate(records):
        if not r.is_lora:
            continue
        for key in ("t" + r.tensor_hash if r.tensor_hash else "", "s" + r.sha256 if r.sha256 else ""):
            if key:
                if key in first:
                    parent[root(i)] = root(first[key])
                else:
                    first[key] = i
    clusters: Dict[int, List[int]] = defaultdict(list)
    for i, r in enumerate(records):
        if r.is_lora and (r.tensor_hash or r.sha256):
            clusters[root(i)].append(i)
    out: Dict[int, str] = {}
    for idx in clusters.values():
        if len(idx) > 1 and len({ident[i] for i in idx}) > 1:
            tensor = sorted(records[i].tensor_hash for i in idx if records[i].tensor_hash)
            key = tensor[0] if tensor else sorted(records[i].sha256 for i in idx if records[i].sha256)[0]
            for i in idx:
                out[i] = key  # type: ignore[assignment]
    return out
