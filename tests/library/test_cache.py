"""The scan cache: warm scans only stat, changes are noticed, a damaged cache is rebuilt, and two
processes can scan at once."""
from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import struct
from contextlib import closing

import pytest

from lib_orchestrator.library import scan_library
from lib_orchestrator.library.cache import CacheError


def safetensors(path, meta, keys=("lora_te1_a.lora_down.weight",)):
    header = {"__metadata__": meta}
    for i, key in enumerate(keys):
        header[key] = {"dtype": "F16", "shape": [2], "data_offsets": [4 * i, 4 * i + 4]}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\1" * (4 * len(keys)))


def library(tmp_path, n=20):
    root = tmp_path / "Lora"
    for i in range(n):
        safetensors(root / ("style" if i % 2 else "character") / f"lora{i}.safetensors",
                    {"ss_base_model_version": "sdxl_base_v1-0", "ss_output_name": f"lora{i}"})
    return root


def test_warm_scan_reads_nothing_and_gives_the_same_records(tmp_path):
    root, cache = library(tmp_path), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    warm = scan_library(str(root), cache)
    assert (cold.read, cold.cached) == (20, 0)
    assert (warm.read, warm.cached) == (0, 20)
    assert warm.records == cold.records


def test_a_changed_file_or_sidecar_is_read_again_and_a_removed_one_forgotten(tmp_path):
    root, cache = library(tmp_path), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    (root / "style" / "lora1.json").write_text('{"activation text": "wet paint"}', encoding="utf-8")
    safetensors(root / "style" / "lora3.safetensors", {"ss_base_model_version": "sd_v1"},
                keys=("lora_te_text_model_x.alpha", "lora_unet_down_blocks_0.alpha"))
    os.remove(root / "character" / "lora0.safetensors")
    again = scan_library(str(root), cache)
    assert again.read == 2 and len(again.records) == 19
    by_name = {r.name: r for r in again.records}
    assert by_name["lora1"].trigger_words == ("wet paint",)
    assert by_name["lora3"].base_model == "SD 1.5"
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 19


def test_a_damaged_or_old_cache_of_ours_is_rebuilt_not_fatal(tmp_path):
    root, cache = library(tmp_path), tmp_path / "cache.sqlite"
    assert scan_library(str(root), str(cache)).read == 20
    with closing(sqlite3.connect(cache)) as db:
        db.execute("PRAGMA user_version = 99")
    assert scan_library(str(root), str(cache)).read == 20  # another schema: rebuilt
    assert scan_library(str(root), str(cache)).read == 0
    assert not os.path.exists(f"{cache}-wal")  # all of it is in the file damaged below
    data = bytearray(cache.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)  # every page after the header trashed
    cache.write_bytes(bytes(data))
    assert scan_library(str(root), str(cache)).read == 20
    assert scan_library(str(root), str(cache)).read == 0


def test_a_cache_from_before_the_marker_is_ours_and_rebuilt(tmp_path):
    root, cache = library(tmp_path), tmp_path / "cache.sqlite"
    with closing(sqlite3.connect(cache)) as db:  # what schema 2 wrote: one table, a user_version, no marker
        db.execute("CREATE TABLE records (path TEXT PRIMARY KEY, stamp TEXT NOT NULL, record TEXT NOT NULL)")
        db.execute("INSERT INTO records VALUES ('x.safetensors', '1:2', '{}')")
        db.execute("PRAGMA user_version = 2")
        db.commit()
    assert scan_library(str(root), str(cache)).read == 20
    assert scan_library(str(root), str(cache)).read == 0


def _foreign_sqlite(path):
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE photos (id INTEGER, title TEXT)")
        db.execute("INSERT INTO photos VALUES (1, 'holiday')")
        db.commit()


@pytest.mark.parametrize("kind", ["text", "binary", "sqlite", "sqlite_damaged", "records_lookalike"])
def test_an_existing_file_that_is_not_our_cache_is_refused_and_left_byte_for_byte(tmp_path, kind):
    root, cache = library(tmp_path, n=3), tmp_path / "notes.db"
    if kind == "text":
        cache.write_text("my notes\n" * 50, encoding="utf-8")
    elif kind == "binary":
        cache.write_bytes(bytes(range(256)) * 8)
    elif kind == "sqlite":
        _foreign_sqlite(cache)
    elif kind == "sqlite_damaged":
        _foreign_sqlite(cache)
        data = bytearray(cache.read_bytes())
        data[100:] = b"\xff" * (len(data) - 100)
        cache.write_bytes(bytes(data))
    else:  # a table of the same name but other columns is someone else's too
        with closing(sqlite3.connect(cache)) as db:
            db.execute("CREATE TABLE records (id INTEGER, amount REAL)")
    before = cache.read_bytes()
    with pytest.raises(CacheError) as caught:
        scan_library(str(root), str(cache))
    assert cache.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Lora", "notes.db"]  # no -wal, -shm or journal
    line = caught.value.one_line()
    assert "\n" not in line and line.startswith(f"{cache}: error: not a LoRA library cache")
    assert "new file name" in line


def test_a_folder_at_the_cache_path_is_refused(tmp_path):
    root, folder = library(tmp_path, n=2), tmp_path / "cache.sqlite"
    folder.mkdir()
    (folder / "keep.txt").write_text("x")
    with pytest.raises(CacheError):
        scan_library(str(root), str(folder))
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_an_empty_file_becomes_the_cache(tmp_path):
    root, cache = library(tmp_path, n=4), tmp_path / "cache.sqlite"
    cache.write_bytes(b"")  # `touch cache.sqlite`: nothing in it to lose
    assert scan_library(str(root), str(cache)).read == 4
    assert scan_library(str(root), str(cache)).read == 0


def test_an_unwritable_cache_location_only_costs_speed(tmp_path):
    root = library(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = scan_library(str(root), str(blocker / "cache.sqlite"))  # its folder is a file
    assert len(result.records) == 20


def _scan(args):
    root, cache = args
    return [r.to_dict() for r in scan_library(root, cache).records]


def test_two_processes_scanning_at_once(tmp_path):
    root, cache = library(tmp_path, n=60), str(tmp_path / "cache.sqlite")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        first, second = pool.map(_scan, [(str(root), cache)] * 2)
    assert first == second and len(first) == 60
    assert scan_library(str(root), cache).read == 0
