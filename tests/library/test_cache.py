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


def safetensors(path, meta, keys=None):
    if keys is None:  # tensors of the architecture the metadata names: the tensors decide the family
        sd1 = meta.get("ss_base_model_version") == "sd_v1"
        keys = ("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight" if sd1
                else "lora_te1_a.lora_down.weight",)
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


# -- the snapshot: a warm scan that finds nothing changed loads the last finished list whole ---------------


def test_nothing_changed_the_snapshot_is_the_answer(tmp_path):
    root, cache = library(tmp_path), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    warm = scan_library(str(root), cache)
    again = scan_library(str(root), cache)
    assert not cold.snapshot and (warm.snapshot, again.snapshot) == (True, True)
    assert (warm.read, warm.cached) == (0, 20)
    assert warm.records == cold.records == again.records
    assert [r.path for r in warm.records] == [r.path for r in cold.records]  # the same order too


def test_a_changed_file_is_the_only_one_read_and_the_problems_between_files_follow(tmp_path):
    root, cache = library(tmp_path, n=6), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    # A second file named lora2 elsewhere: both lora2 files now collide, though only one of them is new.
    safetensors(root / "extra" / "lora2.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"})
    added = scan_library(str(root), cache)
    assert (added.read, added.snapshot) == (1, False)
    by_path = {r.path: r for r in added.records}
    assert by_path["character/lora2.safetensors"].warnings == ("stem_collision",)
    assert by_path["extra/lora2.safetensors"].warnings == ("stem_collision",)
    assert scan_library(str(root), cache).snapshot  # and that list is the next snapshot
    os.remove(root / "extra" / "lora2.safetensors")
    removed = scan_library(str(root), cache)
    assert (removed.read, removed.snapshot, len(removed.records)) == (0, False, 6)
    assert {r.path: r.warnings for r in removed.records}["character/lora2.safetensors"] == ()


def test_a_sidecar_added_beside_an_unchanged_lora_is_a_change(tmp_path):
    root, cache = library(tmp_path, n=4), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    (root / "style" / "lora1.json").write_text('{"activation text": "wet paint"}', encoding="utf-8")
    again = scan_library(str(root), cache)
    assert (again.read, again.snapshot) == (1, False)
    assert {r.name: r for r in again.records}["lora1"].trigger_words == ("wet paint",)


def test_new_rules_read_every_file_again(tmp_path, monkeypatch):
    from lib_orchestrator.library import record

    root, cache = library(tmp_path), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    monkeypatch.setattr(record, "RULES_VERSION", record.RULES_VERSION + 1)
    newer = scan_library(str(root), cache)
    assert (newer.read, newer.snapshot) == (20, False) and newer.records == cold.records
    assert scan_library(str(root), cache).snapshot
    os.remove(root / "character" / "lora0.safetensors")  # rows of the older rules are replaced, not piled up
    scan_library(str(root), cache)
    with closing(sqlite3.connect(cache)) as db:
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 19


def test_new_rules_are_not_served_from_rows_of_the_older_ones(tmp_path, monkeypatch):
    """A row made by older rules is read again even when the snapshot cannot help (some file changed)."""
    from lib_orchestrator.library import record

    root, cache = library(tmp_path, n=4), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    monkeypatch.setattr(record, "RULES_VERSION", record.RULES_VERSION + 1)
    safetensors(root / "style" / "lora1.safetensors", {"ss_base_model_version": "sd_v1"})
    assert scan_library(str(root), cache).read == 4


def _set_snapshot(cache, blob):
    with closing(sqlite3.connect(cache)) as db:
        db.execute("UPDATE snapshot SET records = ?", (blob,))
        db.commit()


class _RunsCode:
    """A pickle that would run a shell command when loaded by a plain pickle.loads."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "runs_code", "wrong_type"])
def test_a_damaged_or_crafted_snapshot_is_built_again_and_runs_nothing(tmp_path, damage):
    import pickle

    root, cache = library(tmp_path, n=6), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    with closing(sqlite3.connect(cache)) as db:
        good = db.execute("SELECT records FROM snapshot").fetchone()[0]
    marker = tmp_path / "ran"
    blob = {"garbage": b"\x80\x04not a pickle at all",
            "truncated": good[: len(good) // 2],
            "runs_code": pickle.dumps((_RunsCode(marker),), protocol=4),
            "wrong_type": pickle.dumps(("a", "tuple", "of", "text"), protocol=4)}[damage]
    _set_snapshot(cache, blob)
    again = scan_library(str(root), cache)
    assert not marker.exists()
    assert (again.snapshot, again.read) == (False, 0)  # from the rows, which are fine
    assert again.records == cold.records
    rebuilt = scan_library(str(root), cache)
    assert rebuilt.snapshot and rebuilt.records == cold.records


def test_hashing_on_request_is_not_skipped_by_a_snapshot_without_hashes(tmp_path):
    import hashlib

    root, cache = library(tmp_path, n=3), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    hashed = scan_library(str(root), cache, compute_hashes=True)
    path = root / "character" / "lora0.safetensors"
    assert {r.path: r.sha256 for r in hashed.records}["character/lora0.safetensors"] == \
        hashlib.sha256(path.read_bytes()).hexdigest()
    again = scan_library(str(root), cache, compute_hashes=True)
    assert again.snapshot and again.records == hashed.records


def test_the_snapshot_belongs_to_one_folder(tmp_path):
    """Two folders with the same files (a copy) through one cache file: each gets its own records."""
    import shutil

    root, cache = library(tmp_path, n=4), str(tmp_path / "cache.sqlite")
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, copy_function=shutil.copy2)  # same names, sizes and mtimes
    scan_library(str(root), cache)
    other = scan_library(str(copy), cache)
    assert not other.snapshot and other.root == str(copy)


# -- where the command line keeps its cache ----------------------------------------------------------------


def test_default_cache_path_follows_xdg_then_home(tmp_path, monkeypatch):
    from lib_orchestrator.library.cache import default_cache_path

    root = tmp_path / "My Loras"
    root.mkdir()
    xdg = default_cache_path(str(root), {"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert os.path.dirname(xdg) == str(tmp_path / "xdg" / "orchestrator")
    assert os.path.basename(xdg).startswith("library-My_Loras-") and xdg.endswith(".sqlite")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    relative = default_cache_path(str(root), {"XDG_CACHE_HOME": "relative/dir"})  # ignored, as the spec says
    assert os.path.dirname(relative) == str(tmp_path / "home" / ".cache" / "orchestrator")
    assert os.path.basename(relative) == os.path.basename(xdg)


def test_default_cache_path_on_windows_is_under_localappdata(tmp_path, monkeypatch):
    from lib_orchestrator.library import cache as cache_module

    monkeypatch.setattr(cache_module.os, "name", "nt")
    path = cache_module.default_cache_path(str(tmp_path), {"LOCALAPPDATA": str(tmp_path / "local")})
    assert os.path.dirname(path) == os.path.join(str(tmp_path / "local"), "orchestrator", "cache")


def test_default_cache_path_is_one_file_per_real_folder(tmp_path):
    from lib_orchestrator.library.cache import default_cache_path

    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    (tmp_path / "a" / "Lora").mkdir(parents=True)
    (tmp_path / "b" / "Lora").mkdir(parents=True)
    os.symlink(tmp_path / "a" / "Lora", tmp_path / "link")
    a, b = (default_cache_path(str(tmp_path / x / "Lora"), env) for x in "ab")
    assert a != b
    assert default_cache_path(str(tmp_path / "link"), env) == a  # the same folder reached by a link
    assert default_cache_path(str(tmp_path / "a" / "Lora") + os.sep, env) == a


def test_a_copy_replaced_by_a_link_to_the_original_is_a_change(tmp_path):
    """Same paths, sizes and mtimes, but now one real file listed twice: the problems between files differ,
    so the snapshot must not answer. Whatever changed, the cached scan says what an uncached one says."""
    import shutil

    root, cache = library(tmp_path, n=4), str(tmp_path / "cache.sqlite")
    shutil.copytree(root / "style", root / "copy", copy_function=shutil.copy2)
    first = scan_library(str(root), cache)
    assert first.records == scan_library(str(root)).records
    shutil.rmtree(root / "copy")
    os.symlink(root / "style", root / "copy")
    linked = scan_library(str(root), cache)
    assert not linked.snapshot and linked.read == 0
    assert linked.records == scan_library(str(root)).records
    assert scan_library(str(root), cache).snapshot


# -- equal values, one object: what keeps 30,000 records and their snapshot small ---------------------------


def _fresh(text):
    return "".join(list(text))  # an equal string that is another object


def test_the_pool_makes_equal_values_one_object_and_changes_nothing_else():
    from dataclasses import dataclass

    from lib_orchestrator.library.pool import value_pool
    from lib_orchestrator.library.problems import Problem
    from lib_orchestrator.library.record import LoraRecord

    def record(path):
        return LoraRecord(path, _fresh("name"), base_model=_fresh("SD 1.5"), tags=(_fresh("anime"), _fresh("girl")),
                          problems=(Problem(_fresh("stem_collision"), _fresh("a"), _fresh("same")),))

    first, second = record("a.safetensors"), record("b.safetensors")
    before = (first.to_dict(), second.to_dict())
    share = value_pool()
    assert share(first) is first and share(second) is second  # in place
    assert (first.to_dict(), second.to_dict()) == before
    assert second.base_model is first.base_model and second.tags is first.tags
    assert second.problems is first.problems

    @dataclass(frozen=True)
    class Numbers:
        values: tuple

    one, true, real = Numbers((1,)), Numbers((True,)), Numbers((1.0,))  # equal keys of different types
    for item in (one, true, real):
        share(item)
    assert [type(n.values[0]) for n in (one, true, real)] == [int, bool, float]
