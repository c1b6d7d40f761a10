"""Shared by the fuzz suites: a per-case time budget enforced by the harness (a case that runs past it fails,
whatever the machine's speed otherwise), and the case counts and times each suite ran, printed at the end
of the test run so the CI log shows them."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, List, Tuple

_RECORDS: List[Tuple[str, int, float]] = []


def record(suite: str, cases: int, seconds: float) -> None:
    """Note that `suite` ran `cases` cases in `seconds` (shown in the terminal summary)."""
    _RECORDS.append((suite, cases, seconds))


def budget(seconds: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run fn(*args, **kwargs) in a daemon thread and return its result (or raise its exception); fail if it
    has not finished after `seconds`: a hang or a runaway loop is a bug, not a slow machine (the budgets are
    far above the normal time). The thread cannot be killed; it is left to die with the process."""
    result: List[Any] = []
    error: List[BaseException] = []

    def run() -> None:
        try:
            result.append(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
            error.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise AssertionError(f"{getattr(fn, '__name__', fn)} ran past its {seconds:g} s budget")
    if error:
        raise error[0]
    return result[0] if result else None


class Timer:
    """`with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RECORDS:
        return
    terminalreporter.section("fuzz suites")
    for suite, cases, seconds in _RECORDS:
        terminalreporter.write_line(f"fuzz {suite}: {cases} cases in {seconds:.1f} s")
