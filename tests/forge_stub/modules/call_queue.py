"""modules.call_queue stand-in: non-reentrant queue_lock and the Gradio call wrappers (no Gradio needed)."""
from __future__ import annotations

import html
import threading
import time
import traceback
from functools import wraps

from modules_forge import main_thread

from modules import progress, shared

LOCK_TIMEOUT = 5.0  # stub-only: re-entry fails loudly instead of hanging


class FIFOLock:
    def __init__(self):
        self._lock = threading.Lock()

    def acquire(self, blocking=True, timeout=-1):
        return self._lock.acquire(blocking, timeout)

    def release(self):
        self._lock.release()

    def locked(self):
        return self._lock.locked()

    def __enter__(self):
        if not self._lock.acquire(timeout=LOCK_TIMEOUT):
            raise RuntimeError("queue_lock re-entered or held too long (Forge would deadlock here)")
        return self

    def __exit__(self, *exc):
        self._lock.release()
        return False


queue_lock = FIFOLock()


def wrap_queued_call(func):
    @wraps(func)
    def f(*args, **kwargs):
        with queue_lock:
            return func(*args, **kwargs)

    return f


def wrap_gradio_gpu_call(func, extra_outputs=None):
    @wraps(func)
    def f(*args, **kwargs):
        if args and isinstance(args[0], str) and args[0].startswith("task(") and args[0].endswith(")"):
            id_task = args[0]
            progress.add_task_to_queue(id_task)
        else:
            id_task = None
        with queue_lock:
            shared.state.begin(job=id_task)
            progress.start_task(id_task)
            try:
                res = func(*args, **kwargs)
                progress.record_results(id_task, res)
            finally:
                progress.finish_task(id_task)
            shared.state.end()
        return res

    return wrap_gradio_call(f, extra_outputs=extra_outputs, add_stats=True)


def wrap_gradio_call(func, extra_outputs=None, add_stats=False):
    """Resets the job and the skip/interrupt flags whatever happens, then wrap_gradio_call_no_job."""
    @wraps(func)
    def f(*args, **kwargs):
        try:
            res = func(*args, **kwargs)
        finally:
            shared.state.skipped = False
            shared.state.interrupted = False
            shared.state.stopping_generation = False
            shared.state.job_count = 0
            shared.state.job = ""
        return res

    return wrap_gradio_call_no_job(f, extra_outputs, add_stats)


def wrap_gradio_call_no_job(func, extra_outputs=None, add_stats=False):
    """On an error the outputs are `extra_outputs + [error html]` (a list concatenation: a tuple there fails
    with TypeError, as in the hosts; None means `[None, ""]`). The error shown is main_thread.last_exception
    whenever one is set – even a stale one from an earlier failed generation – else this call's own (printed
    with its traceback). Forge keeps an exception object there, Neo its text. With add_stats the last output
    gets the "Time taken" footer."""
    @wraps(func)
    def f(*args, extra_outputs_array=extra_outputs, **kwargs):
        t = time.perf_counter()
        try:
            res = list(func(*args, **kwargs))
        except Exception as e:
            if main_thread.last_exception is not None:
                shown = main_thread.last_exception
                error_message = shown if isinstance(shown, str) else f"{type(shown).__name__}: {shown}"
            else:
                traceback.print_exc()
                print(e)
                error_message = f"{type(e).__name__}: {e}"
            if extra_outputs_array is None:
                extra_outputs_array = [None, ""]
            res = extra_outputs_array + [f"<div class='error'>{html.escape(error_message)}</div>"]

        if not add_stats:
            return tuple(res)

        elapsed = time.perf_counter() - t
        minutes, seconds = int(elapsed // 60), elapsed % 60
        elapsed_text = (f"{minutes} min. " if minutes > 0 else "") + f"{seconds:.1f} sec."
        res[-1] += f"<div class='performance'><p class='time'>Time taken: <wbr><span class='measurement'>" \
                   f"{elapsed_text}</span></p></div>"
        return tuple(res)

    return f
