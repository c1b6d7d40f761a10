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


def _snapshot_row(cache):
    with closing(sqlite3.connect(cache)) as db:
        return db.execute("SELECT digest, records, mac FROM snapshot").fetchone()


def _set_snapshot(cache, blob, signed=False):
    """Put `blob` in the cache's snapshot; `signed`: with a valid signature under the cache folder's key, as
    a process of this user could write it (so that what stops it is the unpickler or the check after it)."""
    from lib_orchestrator.library import cache as cache_module

    digest = _snapshot_row(cache)[0]
    key = cache_module.snapshot_key(os.path.dirname(os.path.abspath(cache)))
    mac = cache_module._mac(key, digest, blob) if signed else b"\0" * 32
    with closing(sqlite3.connect(cache)) as db:
        db.execute("UPDATE snapshot SET records = ?, mac = ?", (blob, mac))
        db.commit()


class _RunsCode:
    """A pickle that would run a shell command when loaded by a plain pickle.loads."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "runs_code", "wrong_type", "another_class_of_ours"])
def test_a_damaged_or_crafted_snapshot_is_built_again_and_runs_nothing(tmp_path, damage, signed):
    import pickle

    from lib_orchestrator.library.sidecars import Sidecars

    root, cache = library(tmp_path, n=6), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    good = _snapshot_row(cache)[1]
    marker = tmp_path / "ran"
    blob = {"garbage": b"\x80\x04not a pickle at all",
            "truncated": good[: len(good) // 2],
            "runs_code": pickle.dumps((_RunsCode(marker),), protocol=4),
            "wrong_type": pickle.dumps(("a", "tuple", "of", "text"), protocol=4),
            # a frozen dataclass of the library, but no record: only LoraRecord, Problem and Candidate load
            "another_class_of_ours": pickle.dumps((Sidecars(),), protocol=4)}[damage]
    _set_snapshot(cache, blob, signed)
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


# -- the snapshot is read only when this user's key signed it, and served only when well formed --------------


def _record_pickle(**change):
    """A pickled one-record snapshot chunk, the record changed past its constructor as a crafted pickle could
    (`NEWOBJ` then `BUILD` with this state): a value per field name, `None` to leave the field out."""
    import pickle

    from lib_orchestrator.library.record import LoraRecord

    record = LoraRecord("character/lora0.safetensors", "lora0")
    for name, value in change.items():
        if value is None:
            del vars(record)[name]
        else:
            vars(record)[name] = value
    return pickle.dumps((record,), protocol=4)


def _crafted(kind):
    import pickle

    from lib_orchestrator.library.base_models import Candidate
    from lib_orchestrator.library.problems import Problem
    from lib_orchestrator.library.record import LoraRecord

    shared = ("shared",)  # one tuple in two fields: text is fine for triggers, not for problems
    return {
        # NEWOBJ, no BUILD: a record without a single field (every use of it raised AttributeError)
        "no_state": pickle.dumps((LoraRecord.__new__(LoraRecord),), protocol=4),
        "name_not_text": _record_pickle(name=12345),
        "path_not_text": _record_pickle(path=b"character/lora0.safetensors"),
        "a_field_missing": _record_pickle(category=None),
        "a_field_too_many": _record_pickle(extra="x"),
        "size_not_a_number": _record_pickle(size="12"),
        "triggers_a_list": _record_pickle(trigger_words=["a"]),
        "a_trigger_not_text": _record_pickle(trigger_words=("a", 1)),
        "problems_not_problems": _record_pickle(problems=("stem_collision",)),
        "one_tuple_in_two_fields": _record_pickle(trigger_words=shared, problems=shared),
        "a_problem_not_text": _record_pickle(problems=(Problem("duplicate", "a", None),)),
        "a_problem_without_state": _record_pickle(problems=(Problem.__new__(Problem),)),
        "candidates_not_candidates": _record_pickle(base_model_candidates=(Problem("a", "b", "c"),)),
        "a_candidate_not_text": _record_pickle(base_model_candidates=(Candidate("header", "Pony", "lineage", 3),)),
        "a_problem_for_a_record": pickle.dumps((Problem("duplicate", "a", "b"),), protocol=4),
        "a_list_of_records": pickle.dumps([LoraRecord("a.safetensors", "a")], protocol=4),
        # 9 bytes: LONG_BINPUT of an empty tuple at memo index 2**28, which makes the C unpickler allocate
        # a memo of some 2 GB first
        "memo_bomb": b"\x80\x04)r\x00\x00\x00\x10.",
    }[kind]


def test_well_formed_tells_a_record_as_a_scan_makes_it_from_one_parsed_from_an_edited_row(tmp_path):
    """For the rows too (JSON, parsed by scan.py): a number where the name should be is caught."""
    from lib_orchestrator.library.cache import well_formed
    from lib_orchestrator.library.record import LoraRecord

    records = scan_library(str(library(tmp_path, n=4))).records
    assert well_formed(records) and well_formed([LoraRecord.from_json(r.to_json()) for r in records])
    edited = records[0].to_dict()
    edited["name"] = 12345
    assert not well_formed(list(records) + [LoraRecord.from_dict(edited)])
    edited["name"], edited["problems"] = "x", [{"code": "duplicate", "file": "a", "message": 7}]
    assert not well_formed([LoraRecord.from_dict(edited)])
    assert well_formed([])


def test_a_row_edited_into_wrong_types_is_read_again_not_a_crash(tmp_path):
    root, cache = library(tmp_path, n=4), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    with closing(sqlite3.connect(cache)) as db:
        path, text = db.execute("SELECT path, record FROM records ORDER BY path LIMIT 1").fetchone()
        row = json.loads(text)
        row["name"] = 12345
        db.execute("UPDATE records SET record = ? WHERE path = ?", (json.dumps(row), path))
        db.execute("DELETE FROM snapshot")
        db.commit()
    again = scan_library(str(root), cache)
    assert (again.read, again.records) == (1, cold.records)
    assert scan_library(str(root), cache).snapshot


def test_the_crafted_pickles_are_what_they_say():
    """The constructions above, checked by disassembly: no BUILD after the NEWOBJ; the memo index."""
    import pickletools

    ops = [op.name for op, _, _ in pickletools.genops(_crafted("no_state"))]
    assert "NEWOBJ" in ops and "BUILD" not in ops
    ops = [op.name for op, _, _ in pickletools.genops(_crafted("name_not_text"))]
    assert ops.index("NEWOBJ") < ops.index("BUILD")
    (put,) = [arg for op, arg, _ in pickletools.genops(_crafted("memo_bomb")) if op.name == "LONG_BINPUT"]
    assert put == 2 ** 28


def test_the_unpickler_builds_records_problems_and_candidates_and_nothing_else():
    import io
    import pickle

    from lib_orchestrator.library.base_models import Candidate
    from lib_orchestrator.library.cache import _RecordUnpickler
    from lib_orchestrator.library.problems import Problem
    from lib_orchestrator.library.record import LoraRecord
    from lib_orchestrator.library.scan import ScanResult
    from lib_orchestrator.library.sidecars import Sidecars

    def load(obj):
        return _RecordUnpickler(io.BytesIO(pickle.dumps(obj, protocol=4))).load()

    for obj in (LoraRecord("a.safetensors", "a"), Problem("duplicate", "a", "b"),
                Candidate("header", "Pony", "lineage", "x")):
        assert load(obj) == obj
    for obj in (Sidecars(), ScanResult("/lib", (), 0, 0, 0.0), _RunsCode("/tmp/x"), set, os.system):
        with pytest.raises(pickle.UnpicklingError):
            load(obj)


_MALFORMED = ["no_state", "name_not_text", "path_not_text", "a_field_missing", "a_field_too_many",
              "size_not_a_number", "triggers_a_list", "a_trigger_not_text", "problems_not_problems",
              "one_tuple_in_two_fields", "a_problem_not_text", "a_problem_without_state",
              "candidates_not_candidates", "a_candidate_not_text", "a_problem_for_a_record", "a_list_of_records"]


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("kind", _MALFORMED)
def test_a_snapshot_of_malformed_records_is_never_served(tmp_path, kind, signed):
    """Unsigned, the key keeps it out; signed (as only this user's processes could), the check after loading
    does: the scan answers from the rows, as it would without a snapshot, and writes a good one."""
    root, cache = library(tmp_path, n=6), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    _set_snapshot(cache, _crafted(kind), signed)
    again = scan_library(str(root), cache)
    assert (again.snapshot, again.read) == (False, 0)
    assert again.records == cold.records
    assert [r.name for r in again.records] == [r.name for r in cold.records]
    rebuilt = scan_library(str(root), cache)
    assert rebuilt.snapshot and rebuilt.records == cold.records


def test_a_good_snapshot_signed_again_is_served(tmp_path):
    """The control for the test above: what `_set_snapshot(signed=True)` writes is a valid signature, so
    there the check, not the key, refused the records."""
    root, cache = library(tmp_path, n=6), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    _set_snapshot(cache, _snapshot_row(cache)[1], signed=True)
    warm = scan_library(str(root), cache)
    assert warm.snapshot and warm.records == cold.records


def test_a_realistic_library_is_served_from_its_snapshot(tmp_path):
    """Everything a real scan puts in a record (candidates, problems, weights, Civitai ids, links, loops)
    passes the check: else every warm scan would silently build the list again."""
    from tests.library_fixtures import generate

    generate(tmp_path / "gen", "tiny")
    root, cache = tmp_path / "gen" / "Lora", str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    assert any(r.base_model_candidates for r in cold.records) and any(r.problems for r in cold.records)
    warm = scan_library(str(root), cache)
    assert warm.snapshot and warm.records == cold.records


_MEMO_BOMB_CHILD = """
    import json, sys
    from lib_orchestrator.library import cache as cache_module, scan_library

    loads = []
    real_load = cache_module._RecordUnpickler.load
    cache_module._RecordUnpickler.load = lambda self: loads.append(1) or real_load(self)
    result = scan_library(sys.argv[1], sys.argv[2])
    with open("/proc/self/status") as fh:  # this process's own high-water mark
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    print(json.dumps({"snapshot": result.snapshot, "read": result.read, "records": len(result.records),
                      "loads": len(loads), "peak_kib": peak}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs RLIMIT_AS and /proc (Linux)")
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_the_memo_bomb_snapshot_is_built_again_in_a_capped_process(tmp_path, signed):
    """Nine bytes that make the C unpickler allocate some 2 GB, in a child whose address space is capped at
    1 GiB. Unsigned (all that someone without the key can write) it is never unpickled: the peak stays
    small. Signed, it is unpickled and fails with MemoryError under the cap, which means "build it again"."""
    import subprocess
    import sys
    import textwrap

    from tests.wildcards.hostile import isolated

    root, cache = library(tmp_path, n=6), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    _set_snapshot(cache, _crafted("memo_bomb"), signed)
    code = textwrap.dedent(_MEMO_BOMB_CHILD).replace("sys.argv[1], sys.argv[2]", f"{str(root)!r}, {cache!r}")
    try:
        child = isolated(code, timeout=60, memory_mb=1024)
    except subprocess.TimeoutExpired:
        pytest.fail("the child ran past 60 s")
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout)
    assert (result["snapshot"], result["read"], result["records"]) == (False, 0, 6)
    assert result["loads"] == (1 if signed else 0)
    assert result["peak_kib"] < 300 * 1024
    assert sys.executable  # the child ran this interpreter (isolated uses sys.executable)
    assert scan_library(str(root), cache).snapshot  # written again, good


def test_a_snapshot_from_another_cache_file_is_built_again(tmp_path):
    """A cache file copied from another folder (another machine, another user: another key) keeps its rows,
    which are only facts about files, but its snapshot is not read until this key has signed one."""
    import shutil

    root = library(tmp_path, n=6)
    here, there = tmp_path / "here", tmp_path / "there"
    mine = scan_library(str(root), str(here / "cache.sqlite"))
    scan_library(str(root), str(there / "cache.sqlite"))
    assert (here / "orchestrator-snapshot.key").read_bytes() != (there / "orchestrator-snapshot.key").read_bytes()
    shutil.copy(there / "cache.sqlite", here / "cache.sqlite")
    copied = scan_library(str(root), str(here / "cache.sqlite"))
    assert (copied.snapshot, copied.read) == (False, 0) and copied.records == mine.records
    assert scan_library(str(root), str(here / "cache.sqlite")).snapshot


def test_a_snapshot_moved_to_another_listing_is_built_again(tmp_path):
    """The signature covers the listing digest too: last scan's (signed) records under this scan's digest
    would leave out the file just added."""
    root, cache = library(tmp_path, n=4), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    _, old_records, old_mac = _snapshot_row(cache)
    safetensors(root / "extra" / "new.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"})
    scan_library(str(root), cache)
    with closing(sqlite3.connect(cache)) as db:
        db.execute("UPDATE snapshot SET records = ?, mac = ?", (old_records, old_mac))
        db.commit()
    again = scan_library(str(root), cache)
    assert not again.snapshot and len(again.records) == 5
    assert again.records == scan_library(str(root)).records


def test_the_key_is_made_once_for_its_owner_only(tmp_path):
    import stat as stat_module

    root, cache = library(tmp_path, n=2), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    key = tmp_path / "orchestrator-snapshot.key"
    first = key.read_bytes()
    assert len(first) == 32
    if os.name != "nt":
        assert stat_module.S_IMODE(key.stat().st_mode) == 0o600
    assert scan_library(str(root), cache).snapshot and key.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_key_others_could_read_is_replaced_and_its_snapshot_built_again(tmp_path):
    root, cache = library(tmp_path, n=3), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    key = tmp_path / "orchestrator-snapshot.key"
    old = key.read_bytes()
    key.chmod(0o644)
    again = scan_library(str(root), cache)
    assert (again.snapshot, again.read) == (False, 0) and again.records == cold.records
    assert key.read_bytes() != old and key.stat().st_mode & 0o777 == 0o600
    assert scan_library(str(root), cache).snapshot


def _rows_only(root, cache):
    """Scans that work from the rows (nothing read twice) but never write or serve a snapshot."""
    cold = scan_library(str(root), cache)
    warm = scan_library(str(root), cache)
    assert (warm.snapshot, warm.read) == (False, 0) and warm.records == cold.records
    with closing(sqlite3.connect(cache)) as db:
        assert db.execute("SELECT count(*) FROM snapshot").fetchone()[0] == 0


@pytest.mark.parametrize("blocker", ["folder", "dangling_link", "link_to_a_key", "another_users"])
def test_a_key_that_cannot_be_read_or_made_means_rows_only(tmp_path, monkeypatch, blocker):
    root, cache = library(tmp_path / "lib", n=3), str(tmp_path / "cache.sqlite")
    key = tmp_path / "orchestrator-snapshot.key"
    if blocker == "folder":
        key.mkdir()
    elif blocker == "dangling_link":
        key.symlink_to(tmp_path / "nowhere")
    elif blocker == "link_to_a_key":  # someone else's key, perhaps: a link is not followed
        (tmp_path / "elsewhere").write_bytes(b"k" * 32)
        (tmp_path / "elsewhere").chmod(0o600)
        key.symlink_to(tmp_path / "elsewhere")
    else:
        if os.name == "nt":
            pytest.skip("POSIX owners")
        key.write_bytes(b"k" * 32)
        key.chmod(0o600)
        monkeypatch.setattr(os, "geteuid", lambda: os.stat(key).st_uid + 1)
    _rows_only(root, cache)
    assert key.is_dir() if blocker == "folder" else key.is_symlink() or key.read_bytes() == b"k" * 32


def test_a_key_that_cannot_be_written_means_rows_only(tmp_path, monkeypatch):
    """A read-only cache folder as root sees it: writing the key fails (root's writes would not)."""
    from lib_orchestrator.library import cache as cache_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_module.os, "open", refuse)  # the key is the one file cache.py opens itself
    _rows_only(library(tmp_path / "lib", n=3), str(tmp_path / "cache.sqlite"))
    assert not (tmp_path / "orchestrator-snapshot.key").exists()


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="POSIX permissions, which root ignores")
def test_a_cache_folder_where_no_key_can_be_made_means_rows_only(tmp_path):
    root, folder = library(tmp_path / "lib", n=3), tmp_path / "cache"
    folder.mkdir()
    cache = folder / "cache.sqlite"
    scan_library(str(root), str(cache))  # makes the cache and its key
    (folder / "orchestrator-snapshot.key").unlink()
    folder.chmod(0o500)  # the cache file stays writable, the folder takes no new file
    try:
        warm = scan_library(str(root), str(cache))
        assert (warm.snapshot, warm.read) == (False, 0)
    finally:
        folder.chmod(0o700)


# -- what else a record depends on: the preview checker; a listing told apart whatever its names hold --------


def _library_with_a_broken_preview(tmp_path):
    root = library(tmp_path, n=4)
    # PNG magic, then bytes no PNG decoder accepts: the magic bytes say image, Pillow says broken
    (root / "character" / "lora0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png chunk" * 8)
    return root


def test_the_preview_checker_is_part_of_the_stamp(tmp_path, monkeypatch):
    """Installing or removing Pillow changes what a preview is judged by, so the LoRAs with a preview (and
    only those) are read again."""
    from lib_orchestrator.library import scan

    root, cache = _library_with_a_broken_preview(tmp_path), str(tmp_path / "cache.sqlite")
    monkeypatch.setattr(scan, "preview_checker", lambda: "magic")
    scan_library(str(root), cache)
    assert scan_library(str(root), cache).snapshot
    monkeypatch.setattr(scan, "preview_checker", lambda: "pillow-10.4.0")
    installed = scan_library(str(root), cache)
    assert (installed.snapshot, installed.read) == (False, 1)
    assert scan_library(str(root), cache).snapshot
    monkeypatch.setattr(scan, "preview_checker", lambda: "magic")
    assert scan_library(str(root), cache).read == 1


def test_a_broken_preview_is_found_once_pillow_is_installed(tmp_path, monkeypatch):
    """The whole story, Pillow's absence simulated: without it the magic bytes pass the preview; with it the
    cached scan says broken_preview, as an uncached one does."""
    pytest.importorskip("PIL.Image")
    from lib_orchestrator.library import previews, scan

    root, cache = _library_with_a_broken_preview(tmp_path), str(tmp_path / "cache.sqlite")
    monkeypatch.setattr(previews, "_pillow", None)
    monkeypatch.setattr(previews, "_pillow_looked", True)
    monkeypatch.setattr(scan, "preview_checker", lambda: "magic")
    without = {r.name: r for r in scan_library(str(root), cache).records}
    assert without["lora0"].warnings == () and without["lora0"].preview == "character/lora0.png"
    monkeypatch.setattr(previews, "_pillow_looked", False)  # Pillow found on the next preview
    monkeypatch.undo()
    with_pillow = {r.name: r for r in scan_library(str(root), cache).records}
    assert with_pillow["lora0"].warnings == ("broken_preview",) and with_pillow["lora0"].preview is None
    assert list(with_pillow.values()) == list(scan_library(str(root)).records)


def test_the_preview_checker_names_the_installed_pillow():
    from lib_orchestrator.library.scan import preview_checker

    try:
        import PIL
    except ImportError:
        assert preview_checker() == "magic"
    else:
        assert preview_checker() == f"pillow-{PIL.__version__}"


def test_listings_that_differ_give_different_digests_whatever_the_names_hold():
    """Every listing of up to two entries of two short fields, the fields made of the characters the old
    digest used as separators: equal digests exactly for equal listings (in any order)."""
    import itertools

    from lib_orchestrator.library.cache import listing_digest

    texts = ["", "a", "\x00", "\x01", "a\x01", "\x01a", "a\x00\x01", "'", "\\", "\udcff"]
    entries = list(itertools.product(texts, repeat=2))
    listings = [()] + [(e,) for e in entries] + list(itertools.combinations(entries, 2))
    digests = {}
    for listing in listings:
        digests.setdefault(listing_digest("/lib", listing), set()).add(tuple(sorted(listing)))
    assert all(len(same) == 1 for same in digests.values())
    assert len(digests) == len(listings)
    # the case the reviewer found: one name with \x01 against two entries joined by the old separators
    assert listing_digest("/lib", [("a", "1"), ("b", "2")]) != listing_digest("/lib", [("a", "1\x00b\x012")])
    assert listing_digest("/lib", [("a\x01b", "c")]) != listing_digest("/lib", [("a", "b\x01c")])
    assert listing_digest("/lib", [("b", "2"), ("a", "1")]) == listing_digest("/lib", [("a", "1"), ("b", "2")])


def test_the_digest_covers_the_shape_of_every_class_in_a_snapshot():
    """A field added to a record, a problem or a base-model candidate makes old snapshots unusable."""
    import dataclasses

    from lib_orchestrator.library.base_models import Candidate
    from lib_orchestrator.library.cache import _RECORD_SHAPE
    from lib_orchestrator.library.problems import Problem
    from lib_orchestrator.library.record import LoraRecord

    named = {name: [field for field, _ in fields] for name, fields in _RECORD_SHAPE}
    for cls in (LoraRecord, Problem, Candidate):
        assert named[cls.__name__] == [f.name for f in dataclasses.fields(cls)]


# -- the embeddings table: vectors in the same file, beside the records, neither disturbing the other ----------


def _vectors(n, dim=4, seed=0):
    """n (hash, vector) pairs: hashes of the texts "text 0".., float32 unit vectors."""
    import hashlib

    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        vector = rng.standard_normal(dim).astype(np.float32)
        out.append((hashlib.sha256(f"text {i}".encode()).digest(), vector / np.linalg.norm(vector)))
    return out


def _vector_count(cache):
    with closing(sqlite3.connect(cache)) as db:
        return db.execute("SELECT count(*) FROM embeddings").fetchone()[0]


def test_vectors_come_back_bit_for_bit_by_kind_model_and_hash(tmp_path):
    np = pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    path = str(tmp_path / "cache.sqlite")
    small, large = _vectors(5, dim=4), _vectors(3, dim=1024, seed=1)
    with closing(VectorCache(path)) as cache:
        cache.put("builtin", "m", small)
        cache.put("url", "nomic-embed-text", [(h, v.astype(np.float64)) for h, v in large])  # kept as float32
    with closing(VectorCache(path)) as cache:
        got = cache.get("builtin", "m", [h for h, _ in small] + [b"\0" * 32, small[0][0]])
        assert set(got) == {h for h, _ in small}  # the unknown hash is missing; a hash asked twice is one key
        for h, v in small:
            assert got[h].dtype == np.float32 and got[h].tobytes() == v.tobytes()
        other = cache.get("url", "nomic-embed-text", [h for h, _ in large])
        assert all(other[h].shape == (1024,) and other[h].tobytes() == v.tobytes() for h, v in large)
        assert cache.get("builtin", "other-model", [h for h, _ in small]) == {}
        assert cache.get("url", "m", [h for h, _ in small]) == {}
        assert cache.get("builtin", "m", []) == {}


@pytest.mark.parametrize("damage", ["short", "long", "dim_zero", "dim_negative", "dim_huge", "dim_text", "nan", "inf",
                                    "vector_text"])
def test_a_vector_row_that_is_not_a_whole_finite_vector_is_a_miss(tmp_path, damage):
    import math

    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    path = str(tmp_path / "cache.sqlite")
    items = _vectors(3)
    with closing(VectorCache(path)) as cache:
        cache.put("builtin", "m", items)
    column, value = {"short": ("vector", b"\0" * 12), "long": ("vector", b"\0" * 20), "dim_zero": ("dim", 0),
                     "dim_negative": ("dim", -4), "dim_huge": ("dim", 2 ** 40), "dim_text": ("dim", "four"),
                     "nan": ("vector", struct.pack("<4f", 0.5, math.nan, 0.5, 0.5)),
                     "inf": ("vector", struct.pack("<4f", 0.5, math.inf, 0.5, 0.5)),
                     "vector_text": ("vector", "abcdefghijklmnop")}[damage]
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"UPDATE embeddings SET {column} = ? WHERE text_hash = ?", (value, items[1][0]))
        db.commit()
    with closing(VectorCache(path)) as cache:
        assert set(cache.get("builtin", "m", [h for h, _ in items])) == {items[0][0], items[2][0]}
        cache.put("builtin", "m", [items[1]])  # embedded again: the row is replaced
        assert len(cache.get("builtin", "m", [h for h, _ in items])) == 3


def test_vectors_that_are_empty_or_not_finite_are_not_kept(tmp_path):
    np = pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    (a, good), (b, _), (c, _) = _vectors(3)
    with closing(VectorCache(str(tmp_path / "cache.sqlite"))) as cache:
        cache.put("builtin", "m", [(a, good), (b, np.array([0.1, np.nan, 0.2, 0.3])), (c, np.zeros(0))])
        assert set(cache.get("builtin", "m", [a, b, c])) == {a}


def test_keep_forgets_other_texts_of_that_model_and_the_file_stops_growing(tmp_path):
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    path = str(tmp_path / "cache.sqlite")
    first, second = _vectors(1000, dim=256), _vectors(2000, dim=256, seed=2)[1000:]  # other hashes
    with closing(VectorCache(path)) as cache:
        cache.put("builtin", "m", first)
        cache.put("builtin", "other", first[:10])
        assert cache.keep("builtin", "m", [h for h, _ in first[:100]]) == 900
        assert len(cache.get("builtin", "m", [h for h, _ in first])) == 100
        assert len(cache.get("builtin", "other", [h for h, _ in first])) == 10  # another model's are left
        cache.put("builtin", "m", second)
        cache.keep("builtin", "m", [h for h, _ in second])
    sizes = []
    with closing(VectorCache(path)) as cache:  # the library changes entirely, again and again
        for round in range(6):
            batch = _vectors(1000, dim=256, seed=10 + round)
            cache.put("builtin", "m", batch)
            cache.keep("builtin", "m", [h for h, _ in batch])
            with closing(sqlite3.connect(path)) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes.append(os.path.getsize(path))
    assert sizes[-1] <= sizes[1] * 1.05  # the pages freed are used again: no growth round after round


@pytest.mark.parametrize("kind", ["text", "sqlite", "records_lookalike", "folder"])
def test_the_vector_cache_refuses_what_the_record_cache_refuses(tmp_path, kind):
    from lib_orchestrator.library.cache import VectorCache

    path = tmp_path / "notes.db"
    if kind == "text":
        path.write_text("my notes\n" * 50, encoding="utf-8")
    elif kind == "sqlite":
        _foreign_sqlite(path)
    elif kind == "records_lookalike":
        with closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE records (id INTEGER, amount REAL)")
    else:
        path.mkdir()
    before = None if kind == "folder" else path.read_bytes()
    with pytest.raises(CacheError) as caught:
        VectorCache(str(path))
    assert before is None or path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
    assert caught.value.one_line().startswith(f"{path}: error: not a LoRA library cache")


@pytest.mark.parametrize("first", ["scan", "vectors"])
def test_records_and_vectors_share_one_file_whichever_comes_first(tmp_path, first):
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    root, cache = library(tmp_path), str(tmp_path / "cache.sqlite")
    items = _vectors(50)
    if first == "scan":
        cold = scan_library(str(root), cache)
    with closing(VectorCache(cache)) as vectors:
        vectors.put("builtin", "m", items)
    if first == "vectors":
        cold = scan_library(str(root), cache)
    assert cold.read == 20
    warm = scan_library(str(root), cache)
    assert (warm.snapshot, warm.read) == (True, 0) and warm.records == cold.records  # nothing rebuilt
    with closing(VectorCache(cache)) as vectors:
        assert len(vectors.get("builtin", "m", [h for h, _ in items])) == 50


def test_a_cache_written_before_the_embeddings_table_keeps_its_rows_and_snapshot(tmp_path):
    """What the previous release left: schema 5, the marker, records and snapshot, no embeddings table."""
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    root, cache = library(tmp_path), str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    with closing(sqlite3.connect(cache)) as db:
        db.execute("DROP TABLE embeddings")
        db.commit()
    assert scan_library(str(root), cache).snapshot  # a scan adds the table and keeps the snapshot
    with closing(sqlite3.connect(cache)) as db:
        db.execute("DROP TABLE embeddings")
        db.commit()
    with closing(VectorCache(cache)) as vectors:  # and so do the vectors, when they come first
        vectors.put("builtin", "m", _vectors(3))
    warm = scan_library(str(root), cache)
    assert (warm.snapshot, warm.read) == (True, 0) and warm.records == cold.records
    assert _vector_count(cache) == 3


def test_what_an_older_release_does_to_the_file_leaves_the_vectors_alone(tmp_path):
    """Schema 5 opened by the previous release's RecordCache: version and marker are its own, so it changes
    nothing (its `_open` creates tables only when they differ). Mimicked here by its exact checks."""
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import APPLICATION_ID, VectorCache

    root, cache = library(tmp_path, n=3), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    with closing(VectorCache(cache)) as vectors:
        vectors.put("builtin", "m", _vectors(3))
    with closing(sqlite3.connect(cache)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 5  # what the previous release expects
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert _vector_count(cache) == 3


def test_a_records_schema_change_rebuilds_the_records_and_keeps_the_vectors(tmp_path):
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    root, cache = library(tmp_path), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    with closing(VectorCache(cache)) as vectors:
        vectors.put("builtin", "m", _vectors(7))
    with closing(sqlite3.connect(cache)) as db:
        db.execute("PRAGMA user_version = 99")
    assert scan_library(str(root), cache).read == 20
    assert _vector_count(cache) == 7


def test_an_embeddings_table_of_another_layout_is_made_again_and_the_records_kept(tmp_path):
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    root, cache = library(tmp_path), str(tmp_path / "cache.sqlite")
    scan_library(str(root), cache)
    with closing(sqlite3.connect(cache)) as db:
        db.execute("DROP TABLE embeddings")
        db.execute("CREATE TABLE embeddings (model TEXT, text_hash BLOB, vector BLOB)")  # a future layout, say
        db.execute("INSERT INTO embeddings VALUES ('m', x'00', x'00')")
        db.commit()
    items = _vectors(4)
    with closing(VectorCache(cache)) as vectors:
        assert vectors.get("builtin", "m", [h for h, _ in items]) == {}
        vectors.put("builtin", "m", items)
        assert len(vectors.get("builtin", "m", [h for h, _ in items])) == 4
    assert scan_library(str(root), cache).snapshot


def test_a_damaged_cache_is_made_again_by_the_vector_cache_too(tmp_path):
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    root, cache = library(tmp_path), tmp_path / "cache.sqlite"
    scan_library(str(root), str(cache))
    with closing(VectorCache(str(cache))) as vectors:
        vectors.put("builtin", "m", _vectors(20, dim=256))
    with closing(sqlite3.connect(cache)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(cache.read_bytes())
    data[100:] = b"\xff" * (len(data) - 100)
    cache.write_bytes(bytes(data))
    items = _vectors(2)
    with closing(VectorCache(str(cache))) as vectors:
        assert vectors.get("builtin", "m", [h for h, _ in items]) == {}
        vectors.put("builtin", "m", items)
        assert len(vectors.get("builtin", "m", [h for h, _ in items])) == 2
    assert scan_library(str(root), str(cache)).read == 20


def test_damaged_vector_pages_make_the_file_again_rather_than_cost_every_start(tmp_path):
    """The records' pages fine (the cache opens), the vectors' pages trashed: SQLite can neither read nor drop
    the table, so the file is made again once, and the vectors kept from then on."""
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    root, cache = library(tmp_path), tmp_path / "cache.sqlite"
    scan_library(str(root), str(cache))
    items = _vectors(300, dim=256)
    with closing(VectorCache(str(cache))) as vectors:
        vectors.put("builtin", "m", items)
    with closing(sqlite3.connect(cache)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(cache.read_bytes())
    half = len(data) // 2  # the vectors were written last: the second half of the file is theirs
    data[half:] = b"\xff" * (len(data) - half)
    cache.write_bytes(bytes(data))
    with closing(VectorCache(str(cache))) as vectors:
        assert vectors.get("builtin", "m", [h for h, _ in items]) == {}
        vectors.put("builtin", "m", items)
    with closing(VectorCache(str(cache))) as vectors:
        assert len(vectors.get("builtin", "m", [h for h, _ in items])) == 300
    assert scan_library(str(root), str(cache)).read == 20  # the records went with the file
    assert scan_library(str(root), str(cache)).snapshot


def test_a_cache_from_before_the_marker_is_ours_to_the_vector_cache(tmp_path):
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    root, cache = library(tmp_path, n=4), tmp_path / "cache.sqlite"
    with closing(sqlite3.connect(cache)) as db:
        db.execute("CREATE TABLE records (path TEXT PRIMARY KEY, stamp TEXT NOT NULL, record TEXT NOT NULL)")
        db.execute("PRAGMA user_version = 2")
        db.commit()
    with closing(VectorCache(str(cache))) as vectors:
        vectors.put("builtin", "m", _vectors(2))
    assert scan_library(str(root), str(cache)).read == 4
    assert _vector_count(cache) == 2


def _put_vectors(args):
    from lib_orchestrator.library.cache import VectorCache

    cache, n = args
    with closing(VectorCache(cache)) as vectors:
        for i in range(0, n, 500):
            vectors.put("builtin", "m", _vectors(n, dim=256)[i:i + 500])
    return n


def test_a_scan_and_vectors_written_by_two_processes_at_once(tmp_path):
    pytest.importorskip("numpy")
    from lib_orchestrator.library.cache import VectorCache

    root, cache = library(tmp_path, n=60), str(tmp_path / "cache.sqlite")
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        scanned = pool.apply_async(_scan, ((str(root), cache),))
        put = pool.apply_async(_put_vectors, ((cache, 3000),))
        assert len(scanned.get(120)) == 60 and put.get(120) == 3000
    assert scan_library(str(root), cache).read == 0
    with closing(VectorCache(cache)) as vectors:
        assert len(vectors.get("builtin", "m", [h for h, _ in _vectors(3000, dim=256)])) == 3000
