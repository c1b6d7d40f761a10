"""modules_forge.main_thread stand-in: runs the function inline instead of on Forge's main thread."""
import traceback

last_exception = None


def run_and_wait_result(func, *args, **kwargs):
    global last_exception
    try:
        return func(*args, **kwargs)
    except Exception as e:
        last_exception = e
        traceback.print_exc()
        return None


def async_run(func, *args, **kwargs):
    return run_and_wait_result(func, *args, **kwargs)
