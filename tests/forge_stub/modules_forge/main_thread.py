"""modules_forge.main_thread stand-in: runs the function inline instead of on Forge's main thread.

`last_exception` as the hosts keep it: set by a failed task, cleared only by a later task that succeeds, and read
by call_queue's error path even when the error it reports came from elsewhere. Forge keeps the exception object,
Neo the text `"TypeName: message"`.
"""
import traceback

import stub_control

last_exception = None
last_error = None  # stub-only: the exception object of the last failed task, in every variant (for tests)


def run_and_wait_result(func, *args, **kwargs):
    """The task's result, or None if it raised (the traceback is printed, the error kept in last_exception)."""
    global last_exception, last_error
    try:
        result = func(*args, **kwargs)
    except Exception as e:
        traceback.print_exc()
        last_error = e
        last_exception = f"{type(e).__name__}: {e}" if stub_control.current_variant() == "neo" else e
        return None
    last_exception = None
    last_error = None
    return result


def async_run(func, *args, **kwargs):
    return run_and_wait_result(func, *args, **kwargs)


def reset():
    """Stub-only: no failed task remembered."""
    global last_exception, last_error
    last_exception = None
    last_error = None
