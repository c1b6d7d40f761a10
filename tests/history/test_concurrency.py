"""The history index across processes: a scan killed (SIGKILL) mid-way loses nothing it had committed and leaves
a sound file a rescan finishes, and two processes scanning overlapping folders while rating at the same time make
no errors, no duplicate rows and lose no rating. Real child processes, as Forge and the command line would be."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from lib_orchestrator.history.store import HistoryStore

from .forge_images import write_png

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")


def text_of(n: int) -> str:
    return (f"a castle number {n} <lora:Ink:0.{n % 9 + 1}> <lora:Style{n % 7}:1>\nNegative prompt: lowres\n"
            f"Steps: 20, Sampler: Euler, Seed: {n}, Size: 8x8, Model: dream")


def images(folder: Path, first: int, count: int) -> List[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_png(str(folder / f"{n:05}.png"), text_of(n)) for n in range(first, first + count)]


def child(script: str, *args: str) -> subprocess.Popen:
    code = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + textwrap.dedent(script)
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(ROOT))


def committed(db: Path) -> Dict[str, tuple]:
    """Every committed image row and its LoRAs, by path, read by a connection of its own (not the store)."""
    raw = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = {r[1]: r for r in raw.execute("SELECT * FROM images")}
        loras: Dict[int, list] = {}
        for image_id, name, weight in raw.execute("SELECT image_id, name, weight FROM image_loras ORDER BY rowid"):
            loras.setdefault(image_id, []).append((name, weight))
    finally:
        raw.close()
    return {path: (row, tuple(loras.get(row[0], ()))) for path, row in rows.items()}


def sound(store: HistoryStore) -> None:
    assert store.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    store.db.execute("INSERT INTO images_fts (images_fts, rank) VALUES ('integrity-check', 1)")
    rows, paths = store.db.execute("SELECT count(*), count(DISTINCT path) FROM images").fetchone()
    assert rows == paths


# Kills itself nowhere: the test kills it with SIGKILL at a moment it says it has reached. `reading`: while it
# reads a file (between transactions); `writing`: inside a write transaction, the batch written but not committed.
CRASHING_SCAN = """
import time
from lib_orchestrator.history import scan
from lib_orchestrator.history.store import HistoryStore

db, folder, where = sys.argv[1], sys.argv[2], sys.argv[3]
real_read, real_write = scan.read_image_info, scan.write_records
count = {"read": 0, "write": 0}

def read(path):
    count["read"] += 1
    if where == "reading" and count["read"] == 900:
        print("now", flush=True)
        time.sleep(60)
    return real_read(path)

def write(db, records):
    written = real_write(db, records)
    count["write"] += 1
    if where == "writing" and count["write"] == 4:
        print("now", flush=True)
        time.sleep(60)
    return written

scan.read_image_info, scan.write_records = read, write
store = HistoryStore(db)
store.scan([folder])
print("finished", flush=True)
"""


@pytest.mark.parametrize("where", ["reading", "writing"])
def test_a_scan_killed_mid_way_loses_nothing_it_committed(tmp_path: Path, where: str) -> None:
    folder, db = tmp_path / "out", tmp_path / "data" / "history.sqlite"
    paths = images(folder, 0, 1500)
    with HistoryStore(str(db)) as store:  # rated before the scan: a crash must not touch it either
        rated = store.add_file(paths[-1])
        store.rate(rated, stars=3)
    proc = child(CRASHING_SCAN, str(db), str(folder), where)
    try:
        line = proc.stdout.readline()
        assert line == "now\n", proc.stderr.read()
        before = committed(db)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert 1 < len(before) < len(paths)  # a batch or more was committed, and the scan was far from done
    with HistoryStore(str(db)) as store:
        sound(store)
        after = committed(db)
        assert {p: after.get(p) for p in before} == before  # every committed row intact, byte for byte
        if where == "writing":  # the batch in hand when it died: all of it or none of it
            assert len(after) == len(before)
        assert store.image(rated).stars == 3
        stats = store.scan([str(folder)])
        assert not stats.stopped and stats.seen == len(paths)
        assert stats.added == len(paths) - len(after) and stats.unchanged == len(after)
        assert store.count() == len(paths)
        sound(store)


# Scans its folders in a thread while the main thread rates its images and compares pairs, each call its own
# transaction; prints what it set, so the test knows what must be there.
SCAN_AND_RATE = """
import json, threading, time
from lib_orchestrator.history.store import HistoryStore

db, start, parity = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
folders = sys.argv[4:]
scanning = HistoryStore(db)
rating = HistoryStore(db)
ids = [i for (i,) in rating.db.execute("SELECT id FROM images ORDER BY id") if i % 2 == parity]
failures = []
scans = []

def scan():
    try:
        for _ in range(3):
            got = scanning.scan(folders)
            scans.append((got.added, got.updated, got.unchanged))
    except Exception as exc:
        failures.append(repr(exc))

while time.time() < start:
    time.sleep(0.001)
thread = threading.Thread(target=scan)
thread.start()
stars = {}
for n, image_id in enumerate(ids):
    stars[image_id] = n % 5 + 1
    rating.rate(image_id, stars=stars[image_id], favourite=n % 3 == 0)
    if n % 10 == 0 and n + 2 < len(ids):
        rating.compare(image_id, ids[n + 1], "left")
thread.join()
compared = sum(1 for n in range(len(ids)) if n % 10 == 0 and n + 2 < len(ids))
print(json.dumps({"stars": stars, "failures": failures, "scans": scans, "compared": compared}))
"""


def test_two_processes_scanning_and_rating_at_once_are_safe(tmp_path: Path) -> None:
    db = tmp_path / "data" / "history.sqlite"
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    images(a, 0, 200)
    images(b, 200, 500)
    images(c, 700, 300)
    with HistoryStore(str(db)) as store:
        store.scan([str(a)])  # the images both rate
        version = store.version()
    start = str(time.time() + 1.5)  # both begin at once, after their imports
    procs = [child(SCAN_AND_RATE, str(db), start, "0", str(a), str(b)),
             child(SCAN_AND_RATE, str(db), start, "1", str(b), str(c))]
    outs: List[Tuple[str, str]] = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, outs):
        assert proc.returncode == 0 and err == "", err
    results = [json.loads(out) for out, _ in outs]
    for r, seen in zip(results, (700, 800)):  # what the other wrote meanwhile counts as unchanged
        assert all(added + updated + unchanged == seen for added, updated, unchanged in r["scans"])
    assert [r["failures"] for r in results] == [[], []]
    expected = {int(k): v for r in results for k, v in r["stars"].items()}
    assert len(expected) == 200
    with HistoryStore(str(db)) as store:
        sound(store)
        assert store.count() == 1000
        assert store.db.execute("SELECT count(*) FROM image_loras").fetchone()[0] == 2000  # no image's twice
        got = dict(store.db.execute("SELECT image_id, stars FROM ratings"))
        assert got == expected  # every rating of both, none lost
        compared = sum(r["compared"] for r in results)
        assert len(store.comparisons()) == compared
        assert store.version() == version + len(expected) + compared
        assert store.scan([str(a), str(b), str(c)]).unchanged == 1000
