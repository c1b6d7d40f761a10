"""Writing a file so that it is never seen half-written: a temporary file beside it, then a rename."""
from __future__ import annotations

import contextlib
import os
import tempfile


def write_text_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".orchestrator-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            os.unlink(tmp)  # a failed write leaves the old file as it was, and no stray temporary
        raise
