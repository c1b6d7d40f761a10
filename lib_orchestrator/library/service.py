"""The library for a long-running host (Forge): indexed in a background thread, refreshed on request,
never making a caller wait. A caller takes whatever index is ready, or None while the first is built.

Inside Forge nobody reads an exception from a background thread, so `status()` says what the scan did
and what went wrong, for the tab and the script to show.

With an embedder, each scan is followed by embedding the LoRAs' texts (only those not in the cache's
vectors); the keyword index is published first, so picks never wait for vectors, and the index with
vectors replaces it when they are ready.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple

from ..errors import OrchestratorError
from ..selection import LoraIndex
from .cache import CacheError
from .record import LoraRecord
from .scan import scan_library

if TYPE_CHECKING:
    from ..embeddings.base import Embedder


@dataclass(frozen=True)
class LibraryStatus:
    """What the background library is doing and how its last scan went, in words a user can act on.

    - `ready`: an index exists (from the last scan that succeeded); selection can use it.
    - `scanning`: a scan is running, or is requested and about to start.
    - `records`: every file the index holds: the LoRAs and the files reported as not being LoRAs.
    - `loras`: the records that are LoRAs (`is_lora`), excluded ones included.
    - `skipped`: files reported but not indexed as LoRAs: partial downloads, other model files, and files
      that could not be read (their problems say why).
    - `with_problems`: files with at least one problem (warning); the skipped ones are among them.
    - `failed`: the last scan stopped with an error; the previous index, if any, is kept.
    - `last_error`: one line, never a traceback: why the last scan failed, or (with `failed` false) what
      it had to do without, such as a cache it refused. None when all went well.
    - `seconds`: how long the last finished scan took (0.0 before the first).
    - `semantic`: what semantic matching has to work with, in words (`412 LoRAs embedded by builtin …`,
      `embedding 412 LoRAs…`, `keywords only: …`); None without an embedder.
    """

    ready: bool = False
    scanning: bool = False
    records: int = 0
    loras: int = 0
    skipped: int = 0
    with_problems: int = 0
    failed: bool = False
    last_error: Optional[str] = None
    seconds: float = 0.0
    semantic: Optional[str] = None

    def text(self) -> str:
        """One short line for the UI, e.g. `412 LoRAs · 3 files skipped (see Problems) · scanned in 0.4 s`."""
        if self.failed:
            kept = "the previous index is kept" if self.ready else "no LoRAs are indexed yet"
            return f"LoRA library scan failed: {self.last_error}; {kept}"
        if not self.ready:
            return "Indexing the LoRA library…" if self.scanning else "The LoRA library is not indexed yet"
        parts = [_count(self.loras, "LoRA", "LoRAs")]
        warned = self.with_problems - self.skipped
        if self.skipped:
            parts.append(_count(self.skipped, "file", "files") + " skipped")
        if warned > 0:
            parts.append(f"{warned:,} with warnings")
        if len(parts) > 1:
            parts[-1] += " (see Problems)"
        parts.append(f"scanned in {self.seconds:.1f} s")
        if self.last_error:
            parts.append(self.last_error)
        if self.semantic:
            parts.append(self.semantic)
        if self.scanning:
            parts.append("rescanning…")
        return " · ".join(parts)


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def one_line(exc: BaseException) -> str:
    """An error as one line a user can read: ours with its place and hint, others with their type."""
    if isinstance(exc, OrchestratorError):
        text = exc.one_line()
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= 300 else first[:299] + "…"


def _reason(exc: BaseException) -> str:
    """Why vectors are missing, in one line: ours say it plainly, others with their type."""
    if isinstance(exc, OrchestratorError):
        return exc.message[:300]
    return one_line(exc)


class LibraryService:
    def __init__(self, roots: Callable[[], Sequence[str]], cache_path: Callable[[], Optional[str]],
                 transform: Optional[Callable[[List[LoraRecord]], List[LoraRecord]]] = None,
                 embedder: Optional[Callable[[], "Optional[Embedder]"]] = None,
                 notes: Callable[[LoraRecord], str] = lambda record: "") -> None:
        """`embedder()` is asked at each scan for the embedder to use (None: keywords only; it may raise
        EmbedError, which is said in the status); `notes(record)` is the user's own text on a LoRA."""
        self._roots = roots  # read at each refresh: the folders may change in the settings
        self._cache_path = cache_path
        self._transform = transform  # e.g. the user's overrides, applied before indexing
        self.records: List[LoraRecord] = []
        self._index: Optional[LoraIndex] = None
        # One condition guards the request count and the running flag together: the worker decides to
        # stop and clears `_running` in one step, so a refresh() can never see a worker that is still
        # alive but has already stopped looking for requests (and lose its request).
        self._changed = threading.Condition()
        self._running = False
        self._requested = 0  # refresh() calls so far
        self._thread: Optional[threading.Thread] = None
        self.last_error: Optional[BaseException] = None  # why the last scan failed (the object, for tests)
        self._note: Optional[str] = None  # what the last good scan did without (a refused cache)
        self.last_seconds: float = 0.0
        self._embedder = embedder
        self._notes = notes
        self._semantic: Optional[str] = None  # the status's `semantic` line

    def current(self) -> Optional[LoraIndex]:
        return self._index

    def refresh(self) -> None:
        """Start a rescan in the background. Requests made while one runs are served by one more scan,
        which starts after the last of them: the index always ends up as fresh as the last request."""
        with self._changed:
            self._requested += 1
            if self._running:
                return
            self._running = True
            self._thread = threading.Thread(target=self._run, name="orchestrator-library", daemon=True)
            self._thread.start()

    def wait(self, timeout: Optional[float] = None) -> Optional[LoraIndex]:
        """For tests and the CLI: block until no scan is running or requested (or `timeout` passes)."""
        with self._changed:
            self._changed.wait_for(lambda: not self._running, timeout)
        return self._index

    def status(self) -> LibraryStatus:
        with self._changed:
            records, index, error = self.records, self._index, self.last_error
            return LibraryStatus(
                ready=index is not None,
                scanning=self._running,
                records=len(records),
                loras=sum(1 for r in records if r.is_lora),
                skipped=sum(1 for r in records if not r.is_lora),
                with_problems=sum(1 for r in records if r.problems),
                failed=error is not None,
                last_error=one_line(error) if error is not None else self._note,
                seconds=self.last_seconds,
                semantic=self._semantic,
            )

    def _run(self) -> None:
        while True:
            with self._changed:
                serving = self._requested  # every request up to here is served by the scan below
            start = time.perf_counter()
            try:
                records, note = self._scan()
                index = LoraIndex(records)
                embedder = self._embedder_now()
                if embedder is not None:  # keywords serve at once; vectors follow
                    index = index.with_semantic(None, f"embedding {len(index.records):,} LoRAs")
                with self._changed:
                    self.records, self._index, self.last_error, self._note = records, index, None, note
                    self.last_seconds = time.perf_counter() - start
                if embedder is not None:
                    self._embed(index, embedder)
            except Exception as exc:  # a broken folder must not kill the host; the old index stays
                with self._changed:
                    self.last_error = exc
            with self._changed:
                if self.last_error is not None:
                    self.last_seconds = time.perf_counter() - start
                if self._requested == serving:
                    self._running = False
                    self._changed.notify_all()
                    return

    def _embedder_now(self) -> "Optional[Embedder]":
        if self._embedder is None:
            return None
        try:
            embedder = self._embedder()
        except Exception as exc:  # noqa: BLE001 (not installed, a bad address: the scan goes on, with keywords)
            self._semantic = f"keywords only: {_reason(exc)}"
            return None
        self._semantic = None if embedder is None else "embedding LoRAs…"
        return embedder

    def _embed(self, index: LoraIndex, embedder: "Embedder") -> None:
        """The index with vectors, published when ready; the keyword index stays on any failure."""
        from ..selection.semantic import SemanticIndex
        from .cache import VectorCache

        path = self._cache_path()
        cache = None
        try:
            try:
                cache = VectorCache(path) if path else None
            except CacheError:  # the records' scan has said so already: vectors are only slower without it
                cache = None
            semantic = SemanticIndex.build(index.records, embedder, cache, self._notes)
        except Exception as exc:  # noqa: BLE001 (EmbedError, or worse: the keyword index must stay)
            why = _reason(exc)
            with self._changed:
                self._index, self._semantic = index.with_semantic(None, why), f"keywords only: {why}"
            return
        finally:
            if cache is not None:
                cache.close()
        stats = semantic.stats
        done = f"{len(index.records):,} LoRAs embedded by {semantic.label}"
        if stats is not None and stats.embedded:
            done += f" ({stats.embedded:,} new, {stats.seconds:.1f} s)"
        with self._changed:
            self._index, self._semantic = index.with_semantic(semantic), done

    def _scan(self) -> Tuple[List[LoraRecord], Optional[str]]:
        records: List[LoraRecord] = []
        note = None
        roots = list(self._roots())
        cache = self._cache_path()
        for k, root in enumerate(roots):
            # One cache per folder: records are keyed by their path inside it.
            path = cache if cache is None or k == 0 else f"{cache}.{k}"
            try:
                result = scan_library(root, path)
            except CacheError as exc:  # a setting naming someone else's file: work without the cache
                note = f"cache not used: {one_line(exc)}"
                result = scan_library(root, None)
            records.extend(result.records)
        if self._transform is not None:
            records = self._transform(records)
        return records, note
