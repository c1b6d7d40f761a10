"""One engine, several threads: Forge's generations and the tab refresh and read the same store while
the user edits wildcard files (lib_orchestrator/wildcards/store.py, engine.py)."""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import List

import pytest

from lib_orchestrator.wildcards import PromptEngine

# Two versions of each file, of different sizes so that a rewrite within one mtime tick is still seen.
COLORS = ("red\nblue\n", "green\nyellow\nviolet\n")
SHAPES = ("shape:\n  - round\n", "shape:\n  - square\n  - oval\n")
VALID_COLORS = {"red", "blue", "green", "yellow", "violet"}
VALID_SHAPES = {"round", "square", "oval"}


def replace(path: str, text: str) -> None:
    """As editors save: a new file moved over the old one, so a reader never sees half of it."""
    tmp = path + ".tmp~"  # not a wildcard suffix: the walk ignores it
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


@pytest.fixture
def fast_switching():
    """Switch threads every microsecond instead of every 5 ms: races that took the reviewer 20 s to hit
    75 times now show within a second."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_threads_refreshing_and_generating_while_files_change_see_no_error_and_valid_prompts(
        make_wildcards, fast_switching):
    root = make_wildcards({"colors.txt": COLORS[0], "pack.yaml": SHAPES[0], "stable.txt": "x\n"})
    engine = PromptEngine([root])
    errors: List[BaseException] = []
    bad: List[str] = []
    stop = threading.Event()
    counts = {"prompts": 0, "names": 0, "refreshes": 0}

    def guarded(work):
        def run() -> None:
            try:
                while not stop.is_set():
                    work()
            except BaseException as exc:  # noqa: BLE001 - any exception at all fails the test
                errors.append(exc)
                stop.set()
        return run

    def generate() -> None:
        for mode in ("random", "cyclical"):
            seed = counts["prompts"]
            text = engine.prompt("__colors__ __shape__ __stable__", seed, mode)
            color, shape, stable = text.split(" ")
            if color not in VALID_COLORS or shape not in VALID_SHAPES or stable != "x":
                bad.append(text)
            counts["prompts"] += 1
        listed = [p.text for p in engine.prompts("{a|b} __stable__", "combinatorial", count=5)]
        if listed != ["a x", "b x"]:
            bad.append(repr(listed))

    def list_names() -> None:
        names = engine.store.names()
        if not {"colors", "shape", "stable"} <= set(names) <= {"colors", "shape", "stable", "extra"}:
            bad.append(repr(names))
        counts["names"] += 1

    def refresh() -> None:
        engine.refresh()
        counts["refreshes"] += 1

    def edit() -> None:
        k = counts["refreshes"] % 2
        replace(os.path.join(root, "colors.txt"), COLORS[k])
        replace(os.path.join(root, "pack.yaml"), SHAPES[1 - k])
        extra = os.path.join(root, "extra.txt")
        if os.path.exists(extra):
            os.remove(extra)
        else:
            replace(extra, "e\n")
        time.sleep(0.001)

    threads = [threading.Thread(target=guarded(work), daemon=True)
               for work in (generate, generate, list_names, refresh, refresh, edit)]
    for t in threads:
        t.start()
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (a deadlock?)"
    assert not errors, f"{len(errors)} exception(s), first: {errors[0]!r}"
    assert not bad, bad[:5]
    assert counts["prompts"] > 50 and counts["refreshes"] > 50 and counts["names"] > 20, counts

    # Once the edits stop, a refresh shows the files as they are now.
    replace(os.path.join(root, "colors.txt"), "final-colour-long\n")
    engine.refresh()
    assert engine.prompt("__colors__", 1) == "final-colour-long"
