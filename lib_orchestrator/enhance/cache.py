"""A persistent cache of the model's answers: the same request never waits on the LLM twice.

The key is a hash of everything that changes the answer (what is sent, the template and its version,
the model, the server, the sampling values and the seed). The file is append-only JSON lines: a line
cut short by a crash is skipped when read, the next answer starts on a line of its own after it, and a
file that cannot be written only costs speed.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from typing import Any, Dict, Optional, Tuple


def answer_key(**fields: Any) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class AnswerCache:
    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path  # None: this process only
        self._answers: Optional[Dict[str, str]] = None
        self._lock = threading.Lock()  # one cache serves Forge's generations and the tab's previews

    def get(self, key: str) -> Optional[str]:
        with self._lock:
            return self._load().get(key)

    def put(self, key: str, answer: str) -> None:
        with self._lock:
            self._put(key, answer)

    def _put(self, key: str, answer: str) -> None:
        answers = self._load()
        if answers.get(key) == answer:
            return
        answers[key] = answer
        if not self.path:
            return
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            # ASCII escapes: a lone surrogate in an answer cannot break the write
            line = (json.dumps({"key": key, "answer": answer}) + "\n").encode("ascii")
            with open(self.path, "ab+") as f:
                # a crash mid-write leaves a last line without its newline: glued onto it, this answer
                # would be lost with it
                if f.seek(0, os.SEEK_END) > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        line = b"\n" + line
                f.write(line)  # append mode: at the end, wherever the last seek left off
        except OSError as exc:
            print(f"[Orchestrator] LLM answer cache not saved to {self.path}: {exc.strerror}", file=sys.stderr)
            self.path = None

    def _load(self) -> Dict[str, str]:
        if self._answers is None:
            self._answers = {}
            if self.path and os.path.isfile(self.path):
                try:
                    with open(self.path, encoding="utf-8", errors="replace") as f:
                        lines = f.readlines()
                except OSError as exc:
                    print(f"[Orchestrator] LLM answer cache {self.path} not read: {exc.strerror}", file=sys.stderr)
                    lines = []
                for line in lines:
                    entry = _entry(line)
                    if entry is not None:
                        self._answers[entry[0]] = entry[1]
        return self._answers


_START = '{"key": '  # how every line this cache writes begins; never inside one (its quotes are escaped)


def _entry(line: str) -> Optional[Tuple[str, str]]:
    """(key, answer) of one line, or None for a line that holds none. A line that is not JSON may be a
    torn line with a whole one glued after it (written before appends started on a new line): the
    last start of an entry is tried alone."""
    start = line.rfind(_START)
    for text in (line, line[start:]) if start > 0 else (line,):
        try:
            entry = json.loads(text)
            return str(entry["key"]), str(entry["answer"])
        except (ValueError, KeyError, TypeError, IndexError, RecursionError):
            continue
    return None
