"""The wildcard store: named lists from several root folders, read lazily, cached, reloaded on change.

Names are the `/`-joined path below a root without the extension (dynamicprompts' rule). A name is
only ever looked up in the index built by walking the roots, never joined onto a file system path, so
`__../../etc/passwd__` cannot reach outside a root; such names are refused outright.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import Location, WildcardFileError
from .diagnostics import Finding
from .files import WILDCARD_SUFFIXES, Entry, read_file

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Lookup:
    """What a wildcard name resolved to: the names matched and their merged, sorted entries."""

    pattern: str
    names: Tuple[str, ...]
    entries: Tuple[Entry, ...]
    note: str = ""  # set when a fallback (case, `**/`) was needed


@dataclass
class _FileState:
    stamp: Tuple[int, int]
    lists: Dict[str, List[Entry]]


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
        # name -> [(file, display path, key inside a structured file or "" for .txt)]
        self._index: Optional[Dict[str, List[Tuple[str, str, str]]]] = None
        self._lower: Dict[str, List[str]] = {}
        self._files: Dict[str, _FileState] = {}
        self._dirs: Dict[str, int] = {}
        self._warnings: Dict[str, Tuple[Finding, ...]] = {}
        # Structured files that could not be read, and files that define nothing: for the linter.
        self.unreadable: Dict[str, WildcardFileError] = {}
        self.empty_files: List[str] = []
        self._cache: Dict[str, Lookup] = {}

    # -- index -------------------------------------------------------------------------------
    def _build_index(self) -> Dict[str, List[Tuple[str, str, str]]]:
        index: Dict[str, List[Tuple[str, str, str]]] = {}
        owner: Dict[str, str] = {}
        self._dirs = {}
        self.unreadable = {}
        self.empty_files = []
        for root in self.roots:
            self._dirs[root] = _mtime(root)  # a root that does not exist yet is watched too
            for path, rel in _walk(root, self._dirs):
                display = _display(path)
                rel_stem = os.path.splitext(rel)[0].replace(os.sep, "/")
                if path.endswith(".txt"):
                    keys: Iterable[Tuple[str, str]] = [(rel_stem, "")]
                else:
                    folder = os.path.dirname(rel_stem)
                    prefix = folder + "/" if folder else ""
                    try:  # one broken YAML file must not hide the others
                        keys = [(prefix + key, key) for key in self._lists(path, display)]
                    except WildcardFileError as exc:
                        self.unreadable[display] = exc
                        continue
                    if not keys:
                        self.empty_files.append(display)
                for name, key in keys:
                    holders = index.setdefault(name, [])
                    # The first root that has a name owns it; within a root, same-named lists merge.
                    if owner.setdefault(name, root) == root:
                        holders.append((path, display, key))
        self._lower = {}
        for name in sorted(index):
            self._lower.setdefault(name.lower(), []).append(name)
        return index

    def index(self) -> Dict[str, List[Tuple[str, str, str]]]:
        if self._index is None:
            self._index = self._build_index()
        return self._index

    def names(self) -> List[str]:
        return sorted(self.index())

    # -- files -------------------------------------------------------------------------------
    def _lists(self, path: str, display: str) -> Dict[str, List[Entry]]:
        st = os.stat(path)
        stamp = (st.st_mtime_ns, st.st_size)
        state = self._files.get(path)
        if state is None or state.stamp != stamp:
            result = read_file(path, display)
            state = _FileState(stamp, result.collections)
            self._files[path] = state
            self._warnings[path] = result.warnings
        return state.lists

    def entries_of(self, name: str) -> List[Entry]:
        """The raw entries of one exact name, in file order, duplicates kept (for the linter)."""
        out: List[Entry] = []
        for path, display, key in self.index().get(name, []):
            lists = self._lists(path, display)
            out.extend(lists.get(key, []) if key else next(iter(lists.values()), []))
        return out

    def file_warnings(self) -> List[Finding]:
        """Warnings of the files read so far (encoding fallbacks, NUL characters, ignored items)."""
        return [w for ws in self._warnings.values() for w in ws]

    # -- lookup ------------------------------------------------------------------------------
    def lookup(self, pattern: str) -> Lookup:
        """Entries of every name the pattern matches, de-duplicated and sorted as dynamicprompts does."""
        cached = self._cache.get(pattern)
        if cached is not None:
            return cached
        names, note = self._match(pattern)
        merged: Dict[Tuple[str, float], Entry] = {}
        for name in names:
            for entry in self.entries_of(name):
                merged.setdefault((entry.text, entry.weight), entry)
        entries = tuple(sorted(merged.values(), key=lambda e: e.text))
        found = Lookup(pattern, tuple(names), entries, note)
        self._cache[pattern] = found
        return found

    def _match(self, pattern: str) -> Tuple[List[str], str]:
        index = self.index()
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

    # -- change detection -------------------------------------------------------------------
    def refresh(self) -> bool:
        """Forget whatever changed on disk since the last look; True when something did."""
        changed = any(_mtime(d) != mtime for d, mtime in self._dirs.items())
        for path, state in list(self._files.items()):
            try:
                st = os.stat(path)
                if (st.st_mtime_ns, st.st_size) != state.stamp:
                    del self._files[path]
                    changed = True
            except OSError:
                del self._files[path]
                changed = True
        if changed:
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


def _display(path: str) -> str:
    """The path as a user would type it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


def _walk(root: str, dirs: Dict[str, int]) -> Iterable[Tuple[str, str]]:
    """(path, path relative to root) of wildcard files; hidden folders skipped, symlink loops cut."""
    seen = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        try:
            dirs[dirpath] = os.stat(dirpath).st_mtime_ns
        except OSError:
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.startswith(".") or not filename.endswith(WILDCARD_SUFFIXES):
                continue
            path = os.path.join(dirpath, filename)
            yield path, os.path.relpath(path, root)


def location_of(entry: Entry) -> Location:
    return Location(entry.source, entry.line or 1, 1)
