"""Following a batch run from a UI: the run works in a thread of its own and the UI is a generator that
shows each step as it arrives (Gradio streams a generator's yields; a handler that blocked until the end
would show nothing until then)."""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

_DONE = object()


class WorkFailed(Exception):
    """What the work raised, carried to the reader's thread."""


def stream(work: Callable[[Callable[[Any], None]], None], name: str = "orchestrator-batch") -> Iterator[Any]:
    """Start `work(emit)` in a daemon thread now, and return what it emits, in order, as it comes. If it
    raises, the last item is a WorkFailed carrying the error (never raised here: the reader decides what
    the user sees). The work runs to its end even if nobody reads: a closed browser tab stops no batch."""
    events: "queue.Queue[Any]" = queue.Queue()

    def run() -> None:
        try:
            work(events.put)
        except Exception as exc:  # noqa: BLE001 (handed to the reader as a value)
            events.put(WorkFailed(f"{type(exc).__name__}: {exc}"))
        finally:
            events.put(_DONE)

    threading.Thread(target=run, name=name, daemon=True).start()

    def read() -> Iterator[Any]:
        while True:
            event = events.get()
            if event is _DONE:
                return
            yield event

    return read()
