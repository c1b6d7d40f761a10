"""The wildcard store: named lists from several root folders, read lazily, cached, reloaded on change.

Names are the `/`-joined path below a root without the extension (dynamicprompts' rule). A name is
only ever looked up in the index built by walking the roots, never joined onto a file system path, so
`__../../etc/passwd__` cannot reach outside a root; such names are refused outright.

Files are read only when a name needs them, so that one bad file spoils only the templates that name
it. Walking the folders reads nothing. A `.txt` file's name is its path, so it is read when a template
names it. A YAML/JSON file defines names below its own folder (`dir/pack.yaml` defines `dir/…`), so it
is read when a name lies below that folder, or when every name is wanted (globs, fallbacks, the list
of names, the linter). A structured file that cannot be read is set aside with its error: it defines
nothing, a lookup that could have used it carries the error as a warning, and a name that only that
file could define (its own, `__pack__` for pack.yaml) fails with the file's error.

Big packs (tens of thousands of files): the walk is done at the first lookup, not before, and lists each
folder once (os.scandir; 0.1 s for 50,000 files in 450 folders). A file's lists are kept by its (mtime,
size), a folder's listing by its mtime: refresh() stats the folders walked and the files read, and a change
lists again only the folders that changed. Every lookup still sees the whole walk, because a .txt name's
owner depends on every root before it, YAML files above it, symlinks met earlier in the walk and the case
fallback; the walk is a tenth of the first prompt's 1 s budget, so no lookup takes a shortcut around it.

Forge's generations and the tab use one store from several threads: one lock guards all of its state.
Nothing in the sampling loop takes it; only resolving a name (once per template) does.
"""
from __future__ import annotations

import fnmatch
import os
import stat
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from ..errors import Location, WildcardFileError
from .diagnostics import Finding
from .files import WILDCARD_SUFFIXES, Entry, read_file

_GLOB_CHARS = frozenset("*?[")

Holder = Tuple[str, str, str]  # (file, display path, key inside a structured file or "" for .txt)


@dataclass(frozen=True)
class Lookup:
    """What a wildcard name resolved to: the names matched and their merged, sorted entries."""

    pattern: str
    names: Tuple[str, ...]
    entries: Tuple[Entry, ...]
    note: str = ""  # set when a fallback (case, `**/`) was needed
    skipped: Tuple[WildcardFileError, ...] = ()  # files that might have added to it but could not be read


class _File(NamedTuple):
    """A wildcard file the walk found (a tuple: a big pack has tens of thousands, made at every walk)."""

    path: str
    display: str
    root: str
    order: int  # position in the walk: holders of a name keep the walk's order
    name: str  # the path below the root without extension: a .txt's name, a flat YAML/JSON list's name
    prefix: str  # for YAML/JSON, the folder the keys hang below ("" or "dir/")
    structured: bool  # YAML/JSON rather than .txt


@dataclass(frozen=True)
class _Folder:
    """One folder's listing as it was at `mtime`: listed again only when the folder's mtime changes (a file
    added, removed or renamed in it), so a refresh after one change lists one folder, not the whole pack."""

    mtime: int
    files: Tuple[str, ...]  # wildcard file names, sorted
    folders: Tuple[Tuple[str, bool], ...]  # (sub-folder name, is a symlink), sorted


@dataclass(frozen=True)
class _FileState:
    stamp: Tuple[int, int]
    lists: Dict[str, List[Entry]]
    warnings: Tuple[Finding, ...] = ()
    error: Optional[WildcardFileError] = None


def bad_name_reason(name: str) -> str:
    """Why a wildcard name is refused, or "" when it is fine."""
    if "\x00" in name or "\\" in name:
        return "wildcard names may not contain '\\' or NUL"
    if name.startswith("/") or any(part == ".." for part in name.split("/")):
        return "wildcard names may not start with '/' or contain '..'"
    return ""


class WildcardStore:
    def __init__(self, roots: Sequence[str]) -> None:
        self.roots: Tuple[str, ...] = tuple(os.path.abspath(r) for r in roots)
        self.generation = 0
        self._lock = threading.RLock()
        self._walked: Optional[Tuple[_File, ...]] = None
        self._by_path: Dict[str, _File] = {}
        self._txt: Dict[str, List[_File]] = {}
        self._structured: List[_File] = []
        self._dirs: Dict[str, int] = {}  # every folder walked, with its mtime: what refresh() watches
        self._listings: Dict[str, _Folder] = {}  # kept across refreshes: unchanged folders are not listed again
        self._index: Optional[Dict[str, List[Holder]]] = None  # every name: built only when asked for
        self._lower: Dict[str, List[str]] = {}
        self._files: Dict[str, _FileState] = {}
        self._cache: Dict[str, Lookup] = {}

    # -- the walk: which files exist, nothing read -------------------------------------------------
    def _files_found(self) -> Tuple[_File, ...]:
        if self._walked is None:
            found: List[_File] = []
            dirs: Dict[str, int] = {}
            listings: Dict[str, _Folder] = {}
            for root in self.roots:
                dirs[root] = _mtime(root)  # a root that does not exist yet is watched too
                for folder, prefix, names in _walk(root, self._listings, listings, dirs):
                    display = _display_folder(folder)
                    folder = os.path.join(folder, "")  # with its separator: a join per file cost 15%
                    for filename in names:
                        path = folder + filename
                        found.append(_File(path, path if display is None else display + filename, root, len(found),
                                           prefix + filename[:filename.rindex(".")], prefix,
                                           not filename.endswith(".txt")))
            self._dirs, self._listings = dirs, listings
            self._walked = tuple(found)
            self._by_path = {f.path: f for f in found}
            self._txt = {}
            self._structured = []
            for f in found:
                if f.structured:
                    self._structured.append(f)
                else:
                    self._txt.setdefault(f.name, []).append(f)
        return self._walked

    # -- files ---------------------------------------------------------------------------------------
    def _read(self, f: _File) -> _FileState:
        """The file's lists, read again only when its size or mtime changed; an unreadable file's error
        is kept the same way, so a bad file is not parsed again at every lookup."""
        try:
            st = os.stat(f.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (-1, -1)
        state = self._files.get(f.path)
        if state is None or state.stamp != stamp:
            try:
                result = read_file(f.path, f.display)
                state = _FileState(stamp, result.collections, result.warnings)
            except WildcardFileError as exc:
                state = _FileState(stamp, {}, error=exc)
            self._files[f.path] = state
        return state

    def _holders(self, name: str) -> Tuple[List[Holder], List[_File]]:
        """Who defines `name` exactly, reading only the files that could; and the unreadable ones among
        those. The first root that has the name owns it; within a root, same-named lists merge."""
        self._files_found()
        skipped: List[_File] = []
        for root in self.roots:
            found: List[Tuple[int, Holder]] = [(f.order, (f.path, f.display, ""))
                                               for f in self._txt.get(name, ()) if f.root == root]
            for f in self._structured:
                if f.root != root or not name.startswith(f.prefix):
                    continue
                state = self._read(f)
                key = name[len(f.prefix):]
                if state.error is not None:
                    skipped.append(f)
                elif key in state.lists:
                    found.append((f.order, (f.path, f.display, key)))
            if found:
                return [h for _, h in sorted(found)], skipped
        return [], skipped

    def _full_index(self) -> Dict[str, List[Holder]]:
        if self._index is None:
            index: Dict[str, List[Holder]] = {}
            owner: Dict[str, str] = {}
            for f in self._files_found():
                if f.structured:
                    state = self._read(f)
                    keys: Iterable[Tuple[str, str]] = [(f.prefix + key, key) for key in state.lists]
                else:
                    keys = [(f.name, "")]
                for name, key in keys:
                    holders = index.setdefault(name, [])
                    if owner.setdefault(name, f.root) == f.root:
                        holders.append((f.path, f.display, key))
            self._lower = {}
            for name in sorted(index):
                self._lower.setdefault(name.lower(), []).append(name)
            self._index = index
        return self._index

    def index(self) -> Dict[str, List[Holder]]:
        """Every name and who defines it; reads every structured file. The dict is never changed once
        built (a refresh makes a new one), so it is safe to read after the lock is let go."""
        with self._lock:
            return self._full_index()

    def names(self) -> List[str]:
        with self._lock:
            return sorted(self._full_index())

    def entries_of(self, name: str) -> List[Entry]:
        """The raw entries of one exact name, in file order, duplicates kept (for the linter)."""
        with self._lock:
            return self._entries(self._holders(name)[0])

    def _entries(self, holders: List[Holder]) -> List[Entry]:
        out: List[Entry] = []
        self._files_found()
        for path, _, key in holders:
            state = self._read(self._by_path[path])
            if state.error is not None:  # a .txt the template names: its error is the template's
                raise state.error
            out.extend(state.lists.get(key, []) if key else next(iter(state.lists.values()), []))
        return out

    @property
    def unreadable(self) -> Dict[str, WildcardFileError]:
        """Files read so far that could not be read, by display path (every one after names())."""
        with self._lock:
            return {f.display: self._files[f.path].error for f in self._files_found()  # type: ignore[misc]
                    if f.path in self._files and self._files[f.path].error is not None}

    @property
    def empty_files(self) -> List[str]:
        """Structured files read so far that define no list."""
        with self._lock:
            return [f.display for f in self._structured if f.path in self._files
                    and self._files[f.path].error is None and not self._files[f.path].lists]

    def file_warnings(self) -> List[Finding]:
        """Warnings of the files read so far (encoding fallbacks, ignored items)."""
        with self._lock:
            return [w for state in self._files.values() for w in state.warnings]

    # -- lookup ------------------------------------------------------------------------------------
    def lookup(self, pattern: str) -> Lookup:
        """Entries of every name the pattern matches, de-duplicated and sorted as dynamicprompts does."""
        with self._lock:
            cached = self._cache.get(pattern)
            if cached is not None:
                return cached
            holders, skipped = ([], []) if _GLOB_CHARS & set(pattern) else self._holders(pattern)
            names, note = [pattern], ""
            if not holders:  # a glob, or a fallback: they need every name
                names, note = self._match(pattern)
                index = self._full_index()
                holders = [h for name in names for h in index[name]]
                skipped = [f for f in self._structured if self._read(f).error is not None]
                for f in skipped if not names else ():
                    if f.name == pattern:  # the template names that very file: its error is the answer
                        raise self._read(f).error  # type: ignore[misc]
            merged: Dict[Tuple[str, float], Entry] = {}
            for entry in self._entries(holders):
                merged.setdefault((entry.text, entry.weight), entry)
            entries = tuple(sorted(merged.values(), key=lambda e: e.text))
            errors = tuple(self._read(f).error for f in skipped)
            found = Lookup(pattern, tuple(names), entries, note, errors)  # type: ignore[arg-type]
            self._cache[pattern] = found
            return found

    def _match(self, pattern: str) -> Tuple[List[str], str]:
        index = self._full_index()
        if not (_GLOB_CHARS & set(pattern)):
            if pattern in index:
                return [pattern], ""
            folded = self._lower.get(pattern.lower())
            if folded:
                return folded, f"matched {folded[0]!r} ignoring case"
        else:
            names = sorted(n for n in index if fnmatch.fnmatchcase(n, pattern))
            if names:
                return names, ""
            low = pattern.lower()
            names = sorted(n for n in index if fnmatch.fnmatchcase(n.lower(), low))
            if names:
                return names, "matched ignoring case"
        if pattern.startswith("**"):
            return [], ""
        suffix_names = self._match("**/" + pattern)[0]
        if suffix_names:
            return suffix_names, f"no {pattern!r} at the top; used {', '.join(suffix_names[:3])}"
        return [], ""

    def suggestions(self, pattern: str, limit: int = 3) -> List[str]:
        import difflib

        return difflib.get_close_matches(pattern, self.names(), n=limit, cutoff=0.6)

    # -- change detection -------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Forget whatever changed on disk since the last look; True when something did."""
        with self._lock:
            changed = any(_mtime(d) != mtime for d, mtime in self._dirs.items())
            for path, state in list(self._files.items()):
                try:
                    st = os.stat(path)
                    stale = (st.st_mtime_ns, st.st_size) != state.stamp
                except OSError:
                    stale = True
                if stale:
                    del self._files[path]
                    changed = True
            if changed:
                self._walked = None
                self._index = None
                self._cache.clear()
                self.generation += 1
            return changed


def _mtime(path: str) -> int:
    """A folder's mtime, or -1 while it does not exist."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _display_folder(folder: str) -> Optional[str]:
    """What a file's display path starts with in this folder: the folder relative to the working folder with
    a separator ("" for the working folder itself), or None when the folder is outside it (the file's display
    is then its absolute path). Once per folder: os.path.relpath per file was most of a big pack's walk."""
    try:
        rel = os.path.relpath(folder)
    except ValueError:  # another drive on Windows
        return None
    if rel.startswith(".."):
        return None
    return "" if rel == os.curdir else rel + os.sep


def _walk(root: str, listings: Dict[str, _Folder], listed: Dict[str, _Folder],
          dirs: Dict[str, int]) -> Iterator[Tuple[str, str, Tuple[str, ...]]]:
    """(folder, its name prefix "" or "a/b/", its wildcard file names) in os.walk's top-down order, sub-folders
    sorted; hidden folders and files skipped, symlinks followed, a folder reached again (a symlink loop, two
    links to one folder) walked only the first time. A folder is listed again only when its mtime is not the
    one in `listings`; each folder walked goes into `listed` and `dirs` (its mtime).

    A folder's real path is its parent's plus its name unless it is a symlink: realpath() is called only for
    those, not once per folder."""
    seen = set()
    todo: List[Tuple[str, str, Optional[str]]] = [(root, "", None)]
    while todo:
        folder, prefix, real = todo.pop()
        if real is None:
            real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        mtime = _mtime(folder)
        if mtime == -1:  # gone since its parent was listed (or the root does not exist yet)
            continue
        dirs[folder] = mtime
        listing = listings.get(folder)
        if listing is None or listing.mtime != mtime:
            listing = _list(folder, mtime)
        listed[folder] = listing
        yield folder, prefix, listing.files
        for name, is_link in reversed(listing.folders):  # popped in sorted order
            todo.append((os.path.join(folder, name), f"{prefix}{name}/",
                         None if is_link else os.path.join(real, name)))


def _list(folder: str, mtime: int) -> _Folder:
    """The folder's wildcard files and sub-folders (hidden ones left out); an unreadable folder has none."""
    files: List[str] = []
    folders: List[Tuple[str, bool]] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    is_dir = entry.is_dir()  # follows symlinks, as os.walk(followlinks=True) does
                except OSError:
                    is_dir = False
                if is_dir:
                    folders.append((entry.name, _is_link(entry)))
                elif entry.name.endswith(WILDCARD_SUFFIXES):
                    files.append(entry.name)
    except OSError:
        pass
    return _Folder(mtime, tuple(sorted(files)), tuple(sorted(folders)))


# Windows: a junction (`mklink /J`, how packs are usually shared there) is a reparse point that is_symlink()
# does not report before Python 3.12; realpath() resolves it, so it must be taken for a link like a symlink.
_REPARSE_POINT = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0) if os.name == "nt" else 0


def _is_link(entry: "os.DirEntry[str]") -> bool:
    if entry.is_symlink():
        return True
    if not _REPARSE_POINT:
        return False
    try:
        return bool(entry.stat(follow_symlinks=False).st_file_attributes & _REPARSE_POINT)  # type: ignore[attr-defined]
    except OSError:
        return True  # unknown: resolving it costs one realpath(), never a loop


def location_of(entry: Entry) -> Location:
    return Location(entry.source, entry.line or 1, 1)
