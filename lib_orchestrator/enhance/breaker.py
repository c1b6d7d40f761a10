"""A circuit breaker for the LLM server: after a few failures in a row, stop calling it for a while, so
a batch of 200 images against a server that is off waits out one timeout, not 200."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class Breaker:
    failures_to_open: int = 3
    open_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _failures: int = field(default=0, init=False)
    _open_until: float = field(default=0.0, init=False)
    _last_reason: str = field(default="", init=False)

    def blocked(self) -> Optional[str]:
        """Why the server is not to be called now, or None. After the pause calls go through again: a
        success closes the breaker, a failure opens it again at once."""
        if self._failures >= self.failures_to_open and self.clock() < self._open_until:
            left = self._open_until - self.clock()
            return f"LLM server skipped for {left:.0f} s after {self._failures} failures ({self._last_reason})"
        return None

    def succeeded(self) -> None:
        self._failures = 0
        self._open_until = 0.0

    def failed(self, reason: str) -> None:
        self._failures += 1
        self._last_reason = reason
        if self._failures >= self.failures_to_open:
            self._open_until = self.clock() + self.open_seconds
