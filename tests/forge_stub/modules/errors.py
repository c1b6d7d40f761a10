"""modules.errors stand-in: log only. `reported` (stub-only) keeps every message for assertions."""
import logging
import sys
import traceback

log = logging.getLogger("forge_stub.errors")
reported: list = []  # stub-only: [(message, formatted exception or None)]


def report(message: str, *, exc_info: bool = False) -> None:
    tb = traceback.format_exc() if exc_info and sys.exc_info()[0] is not None else None
    reported.append((message, tb))
    log.error("%s%s", message, "\n" + tb if tb else "")


def display(e: Exception, task, *, full_traceback=False):
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    reported.append((f"{task or 'error'}: {type(e).__name__}: {e}", tb))
    log.error("%s: %s", task, tb)


def display_once(e: Exception, task):
    display(e, task)


def print_error_explanation(message):
    log.error(message)
