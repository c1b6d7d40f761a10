"""The image history inside a long-running host (Forge): the index opened once per thread, folders scanned
in the background, images added as they are saved without the generation waiting, and the LoRA scores
(the leaderboard, the picks' feedback) computed once per change of the ratings.

No Forge here: the host hands in where the index lives, which folders to watch and the embedder to use.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import OrchestratorError

if TYPE_CHECKING:
    from ..embeddings.base import Embedder
    from ..selection import LoraIndex
    from .effect import LoraScore
    from .store import HistoryStore

Folders = Callable[[], Sequence[Tuple[str, str]]]  # (folder, source: forge | user) to keep indexed


class HistoryService:
    def __init__(self, path: Callable[[], str], folders: Folders,
                 embedder: Callable[[], Optional["Embedder"]] = lambda: None,
                 enabled: Callable[[], bool] = lambda: True) -> None:
        self._path, self._folders, self._embedder, self._enabled = path, folders, embedder, enabled
        self._local = threading.local()
        self._lock = threading.Lock()
        self._scanning: Optional[threading.Thread] = None
        self._again = False  # a refresh asked for while a scan runs: scan once more after it
        self._stop = threading.Event()
        self._saved: "queue.Queue[Tuple[str, str]]" = queue.Queue()  # (index, image)
        self._writer: Optional[threading.Thread] = None
        self._progress = ""
        self._error: Optional[str] = None
        self._scores: Dict[Tuple[str, int, bool], List["LoraScore"]] = {}
        self._applied: Dict[int, Tuple[int, Any, "LoraIndex"]] = {}
        self._effects: Optional[Tuple[Tuple[str, int], Dict[str, float]]] = None

    # -- the index ------------------------------------------------------------------------------------
    def store(self, path: Optional[str] = None) -> "HistoryStore":
        """The calling thread's connection to the index (SQLite connections stay in their thread) at `path`, by
        default where the host says now; raises HistoryError when the file cannot be used (the status line says
        why)."""
        from .store import HistoryStore

        path = os.path.abspath(path or self._path())
        store = getattr(self._local, "store", None)
        if store is None or getattr(self._local, "path", None) != path:
            if store is not None:
                store.close()
            self._local.store, self._local.path = None, None
            try:
                store = HistoryStore(path)
            except OrchestratorError as exc:
                self._error = exc.one_line()
                raise
            self._local.store, self._local.path = store, path
        return store

    def embedder(self) -> Optional["Embedder"]:
        try:
            return self._embedder()
        except OrchestratorError:
            return None

    # -- background work ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Scan every folder (the host's and the user's) in the background: new and changed files are read,
        the rest cost a stat. A refresh during a scan runs one more scan after it."""
        if not self._enabled():
            return
        with self._lock:
            if self._scanning is not None and self._scanning.is_alive():
                self._again = True
                return
            # the index is the one named now: background work never follows a setting changed after it was asked
            self._scanning = threading.Thread(target=self._scan_loop, args=(self._path(),),
                                              name="orchestrator-history-scan", daemon=True)
            self._scanning.start()

    def _scan_loop(self, path: str) -> None:
        try:
            while True:
                try:
                    self._scan_once(path)
                except Exception as exc:  # noqa: BLE001 (a background thread: said in the status and the console)
                    self._error = f"{type(exc).__name__}: {exc}"
                    print(f"[Orchestrator] history scan failed: {self._error}", file=sys.stderr)
                with self._lock:
                    if not self._again or self._stop.is_set():
                        self._progress = ""
                        return
                    self._again = False
        finally:
            self._close_thread_store()

    def _close_thread_store(self) -> None:
        """Close the ending thread's connection now. Left to the garbage collector, a connection of a thread that
        is gone was seen to keep another thread's connection in this process on an old snapshot of the index
        (ratings made by the command line went unseen until Forge restarted)."""
        store = getattr(self._local, "store", None)
        if store is not None:
            store.close()
            self._local.store, self._local.path = None, None

    def _scan_once(self, path: str) -> None:
        store = self.store(path)
        self._error = None
        for folder, source in self._folders():
            if os.path.isdir(folder):
                store.add_folder(os.path.abspath(folder), source)
        started = time.monotonic()

        def progress(done: int, total: Optional[int]) -> None:
            self._progress = f"scanning: {done:,}" + (f" of {total:,}" if total else "") + " files"

        stats = store.scan(should_stop=self._stop.is_set, on_progress=progress)
        self._progress = (f"last scan: {stats.added:,} added, {stats.updated:,} updated, {stats.gone:,} gone "
                          f"in {time.monotonic() - started:.1f} s")
        embedder = self.embedder()
        if embedder is not None and not self._stop.is_set():
            from .search import embed_prompts

            self._progress = "embedding prompts for search by meaning"
            embed_prompts(store, embedder, should_stop=self._stop.is_set)

    def add_file(self, path: str) -> None:
        """Index an image the host has just saved, in the background (a generation never waits on it)."""
        if not self._enabled():
            return
        with self._lock:  # with the writer's exit: an image put as it stops starts the next writer
            self._saved.put((self._path(), os.path.abspath(path)))
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="orchestrator-history-add",
                                                daemon=True)
                self._writer.start()

    def _write_loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    index, path = self._saved.get(timeout=5)
                except queue.Empty:
                    with self._lock:
                        if self._saved.empty():
                            self._writer = None
                            return
                    continue
                try:
                    self.store(index).add_file(path)
                except Exception as exc:  # noqa: BLE001 (one image not indexed: the next scan finds it)
                    print(f"[Orchestrator] history: {path} not indexed: {type(exc).__name__}: {exc}",
                          file=sys.stderr)
                finally:
                    self._saved.task_done()
        finally:
            with self._lock:  # stopped: a later image starts a writer again
                if self._writer is threading.current_thread():
                    self._writer = None
            self._close_thread_store()

    def wait(self, timeout: float = 60.0) -> None:
        """Until the background scan is over and every saved image is indexed (tests, the CLI): an image taken
        off the queue counts until its row is written."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            scanning = self._scanning is not None and self._scanning.is_alive()
            if not scanning and not self._saved.unfinished_tasks:
                return
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()

    # -- what the tab shows ---------------------------------------------------------------------------
    def status(self) -> str:
        if not self._enabled():
            return "the history is off (Settings › Orchestrator)"
        if self._error:
            return f"history unavailable: {self._error}"
        try:
            count = self.store().count()
        except OrchestratorError as exc:
            return f"history unavailable: {exc.one_line()}"
        return f"{count:,} images indexed" + (f" · {self._progress}" if self._progress else "")

    def add_folder(self, path: str) -> str:
        path = os.path.abspath(os.path.expanduser(path.strip()))
        if not os.path.isdir(path):
            return f"not a folder: {path}"
        self.store().add_folder(path, "user")
        self.refresh()
        return f"added {path}; scanning it in the background"

    # -- LoRA scores ----------------------------------------------------------------------------------
    def scores(self, by_weight: bool = False) -> List["LoraScore"]:
        """Every LoRA's score from the ratings and comparisons, best first; recomputed only when they change."""
        from .effect import lora_scores

        store = self.store()
        # the version moves with ratings and comparisons, the count with new images (their usage counts)
        key = (store.path, store.version(), store.count(present_only=False), by_weight)
        found = self._scores.get(key)
        if found is None:
            found = lora_scores(store.lora_usage(), store.rated(), store.comparisons(), by_weight=by_weight)
            self._scores = {k: v for k, v in self._scores.items() if k[:3] == key[:3]}
            self._scores[key] = found
        return found

    def score_of(self, name: str) -> Optional["LoraScore"]:
        name = name.lower()
        return next((s for s in self.scores() if s.name.lower() == name), None)

    def effects(self) -> Dict[str, float]:
        """LoRA name -> score, for the picks' feedback ({} when the history cannot be read: picks as before).
        Made again only when ratings or comparisons change: a score does not depend on usage, and every saved
        image changes usage, so a large history would otherwise be scored again before every generation."""
        if not self._enabled():
            return {}
        try:
            store = self.store()
            key = (store.path, store.version())
            if self._effects is None or self._effects[0] != key:
                self._effects = (key, {s.name: s.score for s in self.scores() if s.score})
            return self._effects[1]
        except OrchestratorError:
            return {}

    def with_feedback(self, index: "LoraIndex") -> "LoraIndex":
        """`index` with the user's verdicts attached, made once per index and change of the ratings."""
        try:
            version = self.store().version() if self._enabled() else -1
        except OrchestratorError:
            return index
        found = self._applied.get(id(index))
        if found is not None and found[0] == version and found[1] is index:
            return found[2]
        applied = index.with_feedback(self.effects())
        self._applied = {id(index): (version, index, applied)}  # one library at a time
        return applied
