"""The library for a long-running host (Forge): indexed in a background thread, refreshed on request,
never making a caller wait. A caller takes whatever index is ready, or None while the first is built."""
from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional, Sequence

from ..selection import LoraIndex
from .record import LoraRecord
from .scan import scan_library


class LibraryService:
    def __init__(self, roots: Callable[[], Sequence[str]], cache_path: Callable[[], Optional[str]],
                 transform: Optional[Callable[[List[LoraRecord]], List[LoraRecord]]] = None) -> None:
        self._roots = roots  # read at each refresh: the folders may change in the settings
        self._cache_path = cache_path
        self._transform = transform  # e.g. the user's overrides, applied before indexing
        self.records: List[LoraRecord] = []
        self._index: Optional[LoraIndex] = None
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._again = False
        self.last_error: Optional[BaseException] = None
        self.last_seconds: float = 0.0

    def current(self) -> Optional[LoraIndex]:
        return self._index

    def refresh(self) -> None:
        """Start a rescan in the background (a second request while one runs schedules one more)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._again = True
                return
            self._thread = threading.Thread(target=self._run, name="orchestrator-library", daemon=True)
            self._thread.start()

    def wait(self, timeout: Optional[float] = None) -> Optional[LoraIndex]:
        """For tests and the CLI: block until the running scan is done."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._index

    def _run(self) -> None:
        while True:
            start = time.perf_counter()
            try:
                records = []
                roots = list(self._roots())
                cache = self._cache_path()
                for k, root in enumerate(roots):
                    # One cache per folder: records are keyed by their path inside it.
                    path = cache if cache is None or k == 0 else f"{cache}.{k}"
                    records.extend(scan_library(root, path).records)
                if self._transform is not None:
                    records = self._transform(records)
                self.records = records
                self._index = LoraIndex(records)
                self.last_error = None
            except Exception as exc:  # a broken folder must not kill the host; the old index stays
                self.last_error = exc
            self.last_seconds = time.perf_counter() - start
            with self._lock:
                if not self._again:
                    return
                self._again = False
