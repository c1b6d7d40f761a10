"""Scanning a LoRA folder: list like Forge, read what changed, resolve, then the problems between files."""
from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Dict, Iterator, List, Optional, Tuple

from .cache import RecordCache
from .hashing import file_sha256
from .header import HeaderError, read_header
from .previews import PreviewIndex, image_problem
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


@dataclass(frozen=True)
class ScanResult:
    root: str
    records: Tuple[LoraRecord, ...]
    read: int  # files whose metadata was read this time
    cached: int  # files taken from the cache
    seconds: float

    def by_name(self, name: str) -> List[LoraRecord]:
        return [r for r in self.records if r.name == name or r.alias == name or r.path == name]


@dataclass(frozen=True)
class _Found:
    """A file the scan reports, with the sidecars found beside it."""

    rel: str
    path: str
    stem: str
    kind: str  # "lora", "partial", "other", "unreadable" (named like a LoRA, but not a file that opens)
    folders: Tuple[str, ...]
    sidecars: Dict[str, str]  # suffix -> path
    preview: Optional[str]  # path
    stamp: str


def natural_key(text: str) -> list:
    """Forge's natural sort: digits as numbers, the rest case-insensitive."""
    # The odd parts of the split are the digit runs. Testing `isdigit()` instead would also take '²',
    # which int() refuses: one file named `1²3.safetensors` stopped the whole scan.
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(_DIGITS.split(text))]


def scan_library(root: str, cache_path: Optional[str] = None, include_hidden: bool = True,
                 compute_hashes: bool = False) -> ScanResult:
    """Every LoRA under `root` (and every file that should be one but is not). Metadata is read only for
    files whose stamp changed since the cache saw them; full SHA-256 only with `compute_hashes`.

    A file that cannot be read is a problem on that file's record, never an exception: nothing in the
    folder can stop the scan. The one error raised is `CacheError`, for a `cache_path` that names a file
    which is not our cache (it is left untouched)."""
    start = time.perf_counter()
    root = os.path.abspath(root)
    cache = RecordCache(cache_path) if cache_path else None
    known = cache.load() if cache else {}
    found = sorted(_find(root, include_hidden), key=lambda f: natural_key(f.rel))
    records: List[LoraRecord] = []
    changed = []
    read = 0
    for item in found:
        hit = known.get(item.rel)
        record = _from_cache(hit[1]) if hit is not None and hit[0] == item.stamp else None
        if record is None:
            record = _read_safely(item)
            read += 1
            changed.append((item.rel, item.stamp, record))
        if compute_hashes and record.is_lora and record.sha256 is None and record.size:
            try:
                record = replace(record, sha256=file_sha256(item.path))
                changed.append((item.rel, item.stamp, record))
            except OSError:
                pass  # gone or unreadable since it was listed: it is simply not hashed
        records.append(record)
    if cache:
        present = {f.rel for f in found}
        cache.save(changed, [p for p in known if p not in present])
        cache.close()
    records = _between_files(records)
    return ScanResult(root, tuple(records), read, len(found) - read, time.perf_counter() - start)


def _find(root: str, include_hidden: bool) -> Iterator[_Found]:
    seen = set()
    stack = [(root, ())]
    while stack:
        folder, parts = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:  # a symlink loop, or a folder linked twice
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        files: Dict[str, os.DirEntry] = {}
        odd: List[os.DirEntry] = []  # neither a folder nor a regular file: a broken or looping link, a FIFO
        for entry in entries:
            try:
                if entry.is_dir():
                    if include_hidden or not entry.name.startswith("."):
                        stack.append((entry.path, parts + (entry.name,)))
                elif entry.is_file():
                    files[entry.name] = entry
                else:
                    odd.append(entry)
            except OSError:  # a link loop raises here
                odd.append(entry)
        if files:
            yield from _in_folder(root, parts, files)
        prefix = "/".join(parts) + "/" if parts else ""
        for entry in odd:
            # Forge lists such a LoRA (os.walk puts it among the files) and then fails to load it: it is
            # reported, and never opened: opening a FIFO would block the scan for ever.
            if entry.name.lower().endswith(LORA_EXTENSIONS):
                yield _Found(prefix + entry.name, entry.path, os.path.splitext(entry.name)[0], "unreadable",
                             parts, {}, None, "unreadable")


def _in_folder(root: str, parts: Tuple[str, ...], files: Dict[str, os.DirEntry]) -> Iterator[_Found]:
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
        sidecars: Dict[str, str] = {}
        stamp = [_stat_stamp(entry)]
        preview = None
        if kind == "lora":
            for suffix in SIDECAR_SUFFIXES:
                side = files.get(stem + suffix)
                if side is not None:
                    sidecars[suffix] = side.path
                    stamp.append(suffix + _stat_stamp(side))
            preview_name = previews.find(stem) if previews else None
            if preview_name is not None:
                preview = files[preview_name].path
                stamp.append(preview_name + _stat_stamp(files[preview_name]))
        yield _Found(prefix + name, entry.path, stem, kind, parts, sidecars, preview, "|".join(stamp))


def _strip_model_ext(stem: str) -> str:
    base, ext = os.path.splitext(stem)
    return base if ext.lower() in LORA_EXTENSIONS + OTHER_MODEL_EXTENSIONS else stem


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
    bad_name = _name_problem(item.stem)
    if bad_name:  # indexed, so the user sees it, but never picked: the pick could not be written
        record = replace(record, excluded=True, problems=record.problems + (Problem(BAD_NAME, item.rel, bad_name),))
    return record


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _between_files(records: List[LoraRecord]) -> List[LoraRecord]:
    """Problems no single file shows: shared stems, shared aliases, the same LoRA twice."""
    by_stem: Dict[str, List[int]] = defaultdict(list)
    names: Dict[str, List[int]] = defaultdict(list)  # lower-cased stems and aliases, for alias clashes
    for i, r in enumerate(records):
        if r.is_lora:
            by_stem[r.name].append(i)
            names[r.name.lower()].append(i)
            if r.alias and r.alias != r.name:
                names[r.alias.lower()].append(i)
    extra: Dict[int, List[Problem]] = defaultdict(list)
    for stem, idx in by_stem.items():
        if len(idx) > 1:
            winner = records[idx[-1]].path
            for i in idx:
                extra[i].append(Problem(STEM_COLLISION, records[i].path,
                                        f"{len(idx)} files are named '{stem}'; <lora:{stem}> means {winner}"))
    for i, r in enumerate(records):
        if r.is_lora and r.alias and r.alias != r.name:
            others = [j for j in names[r.alias.lower()] if j != i]
            if others:
                extra[i].append(Problem(ALIAS_COLLISION, r.path,
                                        f"alias '{r.alias}' is also {records[others[0]].path}; Forge refuses it"))
    group = _duplicate_groups(records)
    members: Dict[str, List[int]] = defaultdict(list)
    for i, key in group.items():
        members[key].append(i)
    for idx in members.values():
        for i in idx:
            others = [records[j].path for j in idx[:4] if j != i][:3]
            more = f" and {len(idx) - 1 - len(others)} more" if len(idx) - 1 > len(others) else ""
            extra[i].append(Problem(DUPLICATE, records[i].path, f"the same LoRA as {', '.join(others)}{more}"))
    out = []
    for i, r in enumerate(records):
        if i in extra or i in group or r.duplicate_group is not None:
            base = tuple(p for p in r.problems if p.code not in _CROSS_CODES)
            r = replace(r, problems=base + tuple(extra.get(i, ())), duplicate_group=group.get(i))
        out.append(r)
    return out


def _duplicate_groups(records: List[LoraRecord]) -> Dict[int, str]:
    """Index -> group id for LoRAs that share a tensor hash or a full hash (either joins them). The id is
    the group's smallest tensor hash, else its smallest full hash."""
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
        if len(idx) > 1:
            tensor = sorted(records[i].tensor_hash for i in idx if records[i].tensor_hash)
            key = tensor[0] if tensor else sorted(records[i].sha256 for i in idx if records[i].sha256)[0]
            for i in idx:
                out[i] = key  # type: ignore[assignment]
    return out
