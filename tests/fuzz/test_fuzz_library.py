"""LoRA folders as users, crashes and downloads leave them, driven through the real entry point
`scan_library(root, cache)`, and the overrides file through its loader.

Hostile files: random bytes, a valid file cut at every length class, deep nesting, huge headers and
sidecars, names that are not UTF-8 or hold a newline, very long names, link loops, dangling links, FIFOs,
empty files, folders named like LoRAs. Every case asserts: nothing escapes but our typed errors (and only
where they are the contract), each bad file is a problem on that file while every good LoRA is indexed,
each case ends within its time budget, memory stays under a hard limit, and nothing previously saved (the
cache's records, the user's overrides.json, someone else's file named as the cache) is lost.

The expected outcome of each hostile file comes from how the test built it and from the documented
format (docs/lora-library.md §2), checked here with plain `json`, never from the scanner's own code.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib_orchestrator.errors import OrchestratorError
from lib_orchestrator.library import scan_library
from lib_orchestrator.library.base_models import layout_of
from lib_orchestrator.library.cache import CacheError
from lib_orchestrator.library.overrides import Override, OverrideStore
from lib_orchestrator.library.service import LibraryService

from .conftest import Timer, budget, record

BUDGET = 20.0  # seconds per case: far above the normal tens of milliseconds, so only a hang trips it
SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])
GOOD = 3  # good LoRAs in every case folder: good0 … good2, SD 1.5 by their header
HEADER_CAP = 64 * 1024 * 1024  # documented: the header length N is capped at 64 MiB
SIDECAR_CAP = 16 * 1024 * 1024
JSON_SIDECARS = (".civitai.info", ".json", ".metadata.json", ".cm-info.json")
CATEGORIES = ("style", "character", "concept", "clothing", "pose", "background", "detailer", "slider", "other")


# ---- building files -------------------------------------------------------------------------------------

def safetensors_bytes(meta: dict, tensors: int = 2) -> bytes:
    header: dict = {"__metadata__": meta}
    for i in range(tensors):
        header[f"lora_te_text_model_{i}.alpha"] = {"dtype": "F16", "shape": [1], "data_offsets": [2 * i, 2 * i + 2]}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\x01\x02" * tensors


def good_bytes(i: int) -> bytes:
    return safetensors_bytes({"ss_base_model_version": "sd_v1", "ss_output_name": f"good{i}"})


def plain_bytes() -> bytes:
    """A good LoRA without an alias, so that any number of them share no name."""
    return safetensors_bytes({"ss_base_model_version": "sd_v1"})


VALID = safetensors_bytes({"ss_base_model_version": "sdxl_base_v1-0", "modelspec.trigger_phrase": "wtr"}, 4)
VALID_N = struct.unpack("<Q", VALID[:8])[0]


def header_readable(data: bytes) -> bool:
    """The documented rule, checked with plain json: 8-byte length N within the file and the cap, then N
    bytes of JSON that is an object."""
    if len(data) < 8:
        return False
    (n,) = struct.unpack("<Q", data[:8])
    if n > HEADER_CAP or 8 + n > len(data):
        return False
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, RecursionError):
        return False
    if not isinstance(header, dict):
        return False
    # §2: every tensor's data_offsets are two ints 0 <= begin <= end, ending within the file.
    for key, info in header.items():
        offsets = info.get("data_offsets") if key != "__metadata__" and isinstance(info, dict) else None
        if key != "__metadata__" and not (isinstance(offsets, list) and len(offsets) == 2
                                          and all(type(x) is int for x in offsets)
                                          and 0 <= offsets[0] <= offsets[1] <= len(data) - 8 - n):
            return False
    return True


def write(path: bytes, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


# ---- hostile files: each builder writes its files and says what the scan must report ------------------------
# An expectation is (relative path as bytes, what): "header" (corrupt_header or not_safetensors on it),
# "sidecar:<rel>" (corrupt_sidecar on that sidecar), "unreadable", "bad_name", "ok" (a LoRA, no problem
# required), "readable" (a LoRA whose header is fine; a sidecar may still warn), "absent" (no record).

def _random(root, tag, data):
    rel = tag + b".safetensors"
    write(os.path.join(root, rel), data)
    return [(rel, "readable" if header_readable(data) else "header")]


LENGTH_CLASSES = ("empty", "inside the length", "length only", "inside the header", "header, no tensors",
                  "inside the tensors", "whole")


def _truncated(root, tag, cls, frac):
    bounds = {"empty": (0, 0), "inside the length": (1, 7), "length only": (8, 8),
              "inside the header": (9, 8 + VALID_N - 1), "header, no tensors": (8 + VALID_N, 8 + VALID_N),
              "inside the tensors": (8 + VALID_N + 1, len(VALID) - 1), "whole": (len(VALID), len(VALID))}[cls]
    cut = bounds[0] + int((bounds[1] - bounds[0]) * frac)
    return _random(root, tag, VALID[:cut])


def _deep_header(root, tag, depth, inside_metadata):
    body = "[" * depth + "]" * depth
    raw = ('{"__metadata__": {"x": ' + body + '}}' if inside_metadata else body).encode()
    rel = tag + b".safetensors"
    write(os.path.join(root, rel), struct.pack("<Q", len(raw)) + raw)
    return [(rel, "header")]


def _surrogate_header(root, tag, escape):
    raw = ('{"__metadata__": {"ss_output_name": "a' + escape + '", "modelspec.trigger_phrase": "t'
           + escape + '"}}').encode()
    rel = tag + b".safetensors"
    write(os.path.join(root, rel), struct.pack("<Q", len(raw)) + raw)
    return [(rel, "header")]  # read, with corrupt_header saying the text was replaced


def _huge_claim(root, tag, claimed):
    rel = tag + b".safetensors"
    write(os.path.join(root, rel), struct.pack("<Q", claimed) + b'{"__metadata__": {}}')
    return [(rel, "header")]


def _big_header(root, tag, size):
    rel = tag + b".safetensors"
    write(os.path.join(root, rel), safetensors_bytes({"ss_tag_frequency": json.dumps({"1_x": {"t" * 50: 1}}),
                                                       "notes": "n" * size}))
    return [(rel, "ok")]


def _magic(root, tag, magic):
    rel = tag + b".safetensors"
    write(os.path.join(root, rel), magic + b"\x00" * 64)
    return [(rel, "header")]


def _sidecar(root, tag, suffix, kind, data, cut):
    lora = tag + b".safetensors"
    write(os.path.join(root, lora), plain_bytes())  # a good LoRA under the hostile sidecar
    side = tag + suffix.encode()
    path = os.path.join(root, side)
    if kind == "random":
        write(path, data)
        return [(lora, "readable")]  # random bytes may even be a JSON object: no problem required
    if kind == "deep":
        write(path, b"[" * cut + b"]" * cut)
    elif kind == "surrogate":
        write(path, b'{"trainedWords": ["w\\udc80"], "activation text": "\\ud800", "BaseModel": "x"}')
    elif kind == "truncated":
        whole = json.dumps({"baseModel": "SDXL 1.0", "trainedWords": ["a", "b"], "id": 1}).encode()
        write(path, whole[:cut % len(whole)])
    elif kind == "empty":
        write(path, b"")
    else:  # over the cap: sparse, so it costs no disk
        with open(path, "wb") as fh:
            fh.truncate(SIDECAR_CAP + 1 + cut)
    return [(lora, "sidecar:" + side.decode())]


def _bad_name(root, tag, raw):
    rel = tag + b"_" + raw + b".safetensors"
    write(os.path.join(root, rel), plain_bytes())
    return [(rel, "bad_name")]


def _odd_but_fine_name(root, tag, name):
    rel = tag + b"_" + name.encode() + b".safetensors"
    write(os.path.join(root, rel), plain_bytes())
    return [(rel, "ok")]


def _link_loop(root, tag):
    a, b = tag + b"_a.safetensors", tag + b"_b.safetensors"
    os.symlink(b, os.path.join(root, a))
    os.symlink(a, os.path.join(root, b))
    os.symlink(b".", os.path.join(root, tag + b"_self"))  # a folder loop: walked once, nothing reported
    os.symlink(tag + b"_nowhere", os.path.join(root, tag + b"_dangling.safetensors"))
    return [(a, "unreadable"), (b, "unreadable"), (tag + b"_dangling.safetensors", "unreadable")]


def _fifo(root, tag):
    rel = tag + b".safetensors"
    os.mkfifo(os.path.join(root, rel))
    side = os.path.join(root, b"good0.cm-info.json")
    if not os.path.lexists(side):
        os.mkfifo(side)  # would block a reader of good0's sidecar for ever
    return [(rel, "unreadable")]


def _folder_named_like_a_lora(root, tag):
    folder = tag + b".safetensors"
    os.mkdir(os.path.join(root, folder))
    os.mkdir(os.path.join(root, tag + b".civitai.info"))  # a folder where a sidecar would be
    inner = folder + b"/inner_" + tag + b".safetensors"
    write(os.path.join(root, inner), plain_bytes())
    return [(folder, "absent"), (inner, "ok")]


hostile = st.one_of(
    st.builds(lambda d: (_random, d), st.binary(max_size=600)),
    st.builds(lambda c, f: (_truncated, c, f), st.sampled_from(LENGTH_CLASSES), st.floats(0, 1)),
    st.builds(lambda d, m: (_deep_header, d, m), st.integers(65, 60_000), st.booleans()),
    st.builds(lambda e: (_surrogate_header, e), st.sampled_from(["\\ud800", "\\udfff", "\\udc80", "\\ud83d"])),
    st.builds(lambda n: (_huge_claim, n), st.integers(HEADER_CAP + 1, 2**64 - 1)),
    st.builds(lambda n: (_big_header, n), st.integers(10_000, 3_000_000)),
    st.builds(lambda m: (_magic, m), st.sampled_from([b"PK\x03\x04", b"\x80\x02", b"\x80\x04"])),
    st.builds(lambda s, k, d, c: (_sidecar, s, k, d, c), st.sampled_from(JSON_SIDECARS),
              st.sampled_from(["random", "deep", "surrogate", "truncated", "empty", "huge"]),
              st.binary(max_size=300), st.integers(65, 30_000)),
    st.builds(lambda r: (_bad_name, r), st.sampled_from([b"\xff", b"caf\xe9", b"\xc3\x28", b"a\nb", b"\x01",
                                                         b"\x7f", b"\r"])),
    st.builds(lambda n: (_odd_but_fine_name, n), st.sampled_from(["1\u00b23", "L" * 200, "\u0663\u0664",
                                                                  "emoji \U0001F600", "ta\u0301b", " ."])),
    st.just((_link_loop,)), st.just((_fifo,)), st.just((_folder_named_like_a_lora,)),
)


def _sibling_of(lora_rel: str, problem_file: str) -> bool:
    """Whether a problem's file is the LoRA itself or a file beside it with its stem."""
    stem = lora_rel.rsplit(".", 1)[0]
    return problem_file == lora_rel or problem_file.startswith(stem + ".")


def _check_scan(result, expectations, good_before):
    by_path = {r.path: r for r in result.records}
    for i in range(GOOD):  # every good LoRA indexed, exactly as it was before the hostile files came
        assert by_path[f"good{i}.safetensors"] == good_before[f"good{i}.safetensors"]
    for r in result.records:  # a problem is always on the file at fault or a file beside it
        for p in r.problems:
            assert _sibling_of(r.path, p.file), (r.path, p)
            assert p.message and "\n" not in p.message and "Traceback" not in p.message
    for rel_bytes, what in expectations:
        rel = os.fsdecode(rel_bytes)
        if what == "absent":
            assert rel not in by_path, rel
            continue
        r = by_path.get(rel)
        assert r is not None, f"{rel!r} is not reported"
        codes = {p.code for p in r.problems if p.file == rel}
        if what == "header":
            assert codes & {"corrupt_header", "not_safetensors"}, (rel, r.problems)
        elif what == "unreadable":
            assert codes == {"unreadable"} and not r.is_lora, (rel, r.problems)
        elif what == "bad_name":
            assert "bad_name" in codes and r.is_lora and r.excluded, (rel, r.problems)
        elif what.startswith("sidecar:"):
            side = what.split(":", 1)[1]
            assert r.is_lora and "corrupt_sidecar" in {p.code for p in r.problems if p.file == side}, \
                (rel, r.problems)
        else:  # "ok" / "readable": a LoRA whose header was read
            assert r.is_lora and not codes & {"corrupt_header", "not_safetensors", "unreadable"}, (rel, r.problems)
            if what == "ok":
                assert not r.problems, (rel, r.problems)


def _fresh_folder(base: str):
    case = tempfile.mkdtemp(dir=base)
    root = os.path.join(os.fsencode(case), b"Lora")
    os.mkdir(root)
    for i in range(GOOD):
        write(os.path.join(root, b"good%d.safetensors" % i), good_bytes(i))
    return case, root


def test_hostile_files_are_problems_on_themselves_and_every_good_lora_is_indexed(tmp_path_factory):
    """400 cases: up to 5 hostile files of any kind beside 3 good LoRAs, scanned with the cache the
    good-only folder left: no exception, each bad file reported on itself, the good ones indexed and taken
    from the cache, a warm rescan reading nothing."""
    base = str(tmp_path_factory.mktemp("scan"))
    started, count = time.perf_counter(), [0]

    @settings(SETTINGS, max_examples=400)
    @given(st.lists(hostile, min_size=1, max_size=5))
    def case(specs):
        count[0] += 1
        folder, root = _fresh_folder(base)
        try:
            cache = os.path.join(folder, "cache.sqlite")
            before = budget(BUDGET, scan_library, os.fsdecode(root), cache)
            good_before = {r.path: r for r in before.records}
            expectations = []
            for k, (build, *args) in enumerate(specs):
                expectations += build(root, b"h%d" % k, *args)
            result = budget(BUDGET, scan_library, os.fsdecode(root), cache)
            assert result.cached >= GOOD  # what the earlier scan saved was there and used
            _check_scan(result, expectations, good_before)
            warm = budget(BUDGET, scan_library, os.fsdecode(root), cache)
            assert warm.read == 0 and warm.records == result.records  # every record, odd names too, cached
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    case()
    record("library: hostile LoRA folders", count[0], time.perf_counter() - started)


def test_deep_nesting_in_every_json_place_at_every_depth(tmp_path_factory):
    """120 cases: brackets nested from just past the cap to far past Python's recursion limit, in the header, in a
    header value and in each JSON sidecar."""
    base = str(tmp_path_factory.mktemp("deep"))
    started, count = time.perf_counter(), [0]

    @settings(SETTINGS, max_examples=120)
    @given(st.sampled_from(("header", "metadata") + JSON_SIDECARS), st.integers(65, 200_000),
           st.sampled_from([b"[", b'{"a":']))
    def case(where, depth, opener):
        count[0] += 1
        folder, root = _fresh_folder(base)
        try:
            before = {r.path: r for r in scan_library(os.fsdecode(root)).records}
            closer = b"]" if opener == b"[" else b"}"
            body = opener * depth + b"1" + closer * depth
            if where in ("header", "metadata"):
                raw = b'{"__metadata__": {"x": ' + body + b"}}" if where == "metadata" else body
                write(os.path.join(root, b"deep.safetensors"), struct.pack("<Q", len(raw)) + raw)
                expect = [(b"deep.safetensors", "header")]
            else:
                write(os.path.join(root, b"deep.safetensors"), good_bytes(9))
                write(os.path.join(root, b"deep" + where.encode()), body)
                expect = [(b"deep.safetensors", "sidecar:deep" + where)]
            result = budget(BUDGET, scan_library, os.fsdecode(root), os.path.join(folder, "c.sqlite"))
            _check_scan(result, expect, before)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    case()
    record("library: deep nesting", count[0], time.perf_counter() - started)


def test_a_cache_path_naming_someone_elses_file_is_refused_and_the_file_kept(tmp_path_factory):
    """200 cases: random bytes, random bytes behind SQLite's magic, and foreign SQLite databases at the cache path:
    the scan raises CacheError (our typed error, the contract) and the file is byte for byte as it was;
    no other exception, ever."""
    base = str(tmp_path_factory.mktemp("cache"))
    started, count = time.perf_counter(), [0]

    @settings(SETTINGS, max_examples=200)
    @given(st.one_of(st.binary(min_size=1, max_size=3000),
                     st.binary(min_size=1, max_size=5000).map(lambda b: b"SQLite format 3\x00" + b),
                     st.lists(st.sampled_from(["photos", "notes", "records", "accounts"]), min_size=1,
                              max_size=3, unique=True)))
    def case(content):
        count[0] += 1
        folder, root = _fresh_folder(base)
        try:
            path = os.path.join(folder, "mine.db")
            if isinstance(content, list):  # a real database of another program
                with closing(sqlite3.connect(path)) as db:
                    for table in content:
                        db.execute(f"CREATE TABLE {table} (id INTEGER, value TEXT)")
                        db.execute(f"INSERT INTO {table} VALUES (1, 'keep me')")
                    db.commit()
            else:
                write(path, content)
            original = open(path, "rb").read()
            try:
                budget(BUDGET, scan_library, os.fsdecode(root), path)
            except CacheError as exc:
                assert "\n" not in exc.one_line() and "not a LoRA library cache" in exc.message
                assert open(path, "rb").read() == original
                return
            # Used only when SQLite itself reads it as an empty database: nothing in it could be lost.
            assert not isinstance(content, list)
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                assert db.execute("PRAGMA application_id").fetchone()[0] != 0  # it is ours now
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    case()
    record("library: foreign cache files", count[0], time.perf_counter() - started)


override_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12)
    | st.sampled_from(["\ud800", "x\udcff", "style", "weird category"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
override_entries = st.one_of(
    override_values,
    st.fixed_dictionaries({}, optional={
        "category": st.sampled_from(CATEGORIES) | override_values,
        "weight": st.floats(-12, 12) | override_values,
        "excluded": st.booleans() | override_values, "pinned": st.booleans() | override_values,
        "notes": st.text(max_size=20) | st.sampled_from(["\ud800", "note\udc80"]) | override_values}))
override_files = st.one_of(
    st.dictionaries(st.text(max_size=30) | st.sampled_from(["a\udcff.safetensors", "\ud800"]), override_entries,
                    max_size=6).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=500),
    st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 50_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def test_the_overrides_file_loads_or_says_why_and_survives_a_failing_scan(tmp_path_factory):
    """300 cases: any bytes in overrides.json. The strict loader gives overrides or an OrchestratorError, the lenient
    one (Forge's) never raises, every loaded entry is a valid Override, loading never writes, a failing
    background scan leaves overrides.json and the cache byte for byte, and the first save after an
    unreadable file keeps that file beside it."""
    base = str(tmp_path_factory.mktemp("overrides"))
    started, count = time.perf_counter(), [0]

    @settings(SETTINGS, max_examples=300)
    @given(override_files)
    def case(data):
        count[0] += 1
        folder, root = _fresh_folder(base)
        try:
            path = os.path.join(folder, "overrides.json")
            cache = os.path.join(folder, "cache.sqlite")
            write(path, data)
            scan_library(os.fsdecode(root), cache)
            cache_bytes = open(cache, "rb").read()
            try:
                strict = budget(BUDGET, OverrideStore, path, True)
            except OrchestratorError as exc:
                assert "\n" not in exc.one_line()
                strict = None
            lenient = budget(BUDGET, OverrideStore, path)
            assert (lenient.error is None) == (strict is not None)
            try:  # the keys the file holds, by plain json: each one's override, if kept, is a valid one
                keys = list(json.loads(data)) if strict is not None else []
            except (ValueError, TypeError):
                keys = []
            for key in keys:
                value = lenient.get(key)
                assert value.category is None or value.category in CATEGORIES
                assert value.weight is None or (isinstance(value.weight, float) and -10 <= value.weight <= 10)
                assert isinstance(value.notes, str) and isinstance(value.excluded, bool)
                assert isinstance(value.pinned, bool)
            assert open(path, "rb").read() == data

            def broken_roots():
                raise OSError("the LoRA folder setting cannot be read")

            service = LibraryService(broken_roots, lambda: cache, lenient.apply)
            service.refresh()
            service.wait(BUDGET)
            assert service.status().failed
            assert open(path, "rb").read() == data and open(cache, "rb").read() == cache_bytes

            lenient.set("h\udcff/x.safetensors", Override(notes="n\ud800", weight=0.5))  # a save
            if strict is None:
                assert open(path + ".unreadable", "rb").read() == data  # the user's file, set aside
            again = OverrideStore(path, strict=True)
            assert again.get("h\udcff/x.safetensors") == Override(notes="n\ud800", weight=0.5)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    case()
    record("library: overrides.json", count[0], time.perf_counter() - started)


_MEMORY_CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (__LIMIT__, __LIMIT__))
from lib_orchestrator.library import scan_library
result = scan_library(sys.argv[1], sys.argv[2])
try:  # this process's own high-water mark (ru_maxrss would carry the parent's over from before exec)
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kib": peak, "records": {r.path: [[p.code, p.file, p.message] for p in r.problems]
                                                 for r in result.records}}))
"""
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEMORY_LIMIT = 1024 * 1024 * 1024  # address space of the child: far less than an unbounded parse needs


def test_memory_stays_bounded_on_files_built_to_exhaust_it(tmp_path):
    """5 cases, in a child process whose address space is capped at 1 GiB: a header of 64 MiB of empty arrays (21
    million lists: ~1.5 GiB if parsed), one 900,000 deep, a sidecar of 16 MiB of arrays, a sparse 1 GiB
    sidecar, and a 48 MiB header that is valid. Each bad one is refused by a cap, with that cap's message
    (a MemoryError would show as `unreadable` instead); the valid one and the good LoRAs are indexed."""
    started = time.perf_counter()
    root = tmp_path / "Lora"
    root.mkdir()
    for i in range(GOOD):
        write(os.fsencode(root / f"good{i}.safetensors"), good_bytes(i))
    arrays = b"[" + b"[]," * ((HEADER_CAP - 2) // 3 - 1) + b"[]]"
    (root / "arrays.safetensors").write_bytes(struct.pack("<Q", len(arrays)) + arrays)
    deep = b"[" * 900_000 + b"]" * 900_000
    (root / "deep.safetensors").write_bytes(struct.pack("<Q", len(deep)) + deep)
    (root / "side.safetensors").write_bytes(good_bytes(5))
    (root / "side.civitai.info").write_bytes(b"[" + b"[]," * (SIDECAR_CAP // 3 - 1) + b"[]]")
    (root / "sparse.safetensors").write_bytes(good_bytes(6))
    with open(root / "sparse.metadata.json", "wb") as fh:
        fh.truncate(1024 * 1024 * 1024)
    (root / "big.safetensors").write_bytes(safetensors_bytes({"notes": "n" * (48 * 1024 * 1024)}))
    try:
            child = subprocess.run([sys.executable, "-c", _MEMORY_CHILD.replace("__LIMIT__", str(MEMORY_LIMIT)),
                                str(root), str(tmp_path / "c.sqlite")],
                               capture_output=True, text=True, timeout=120, cwd=REPO)
    finally:
        shutil.rmtree(root)  # 130 MiB that pytest would otherwise keep for three runs
    assert child.returncode == 0, child.stderr[-2000:]
    out = json.loads(child.stdout)
    got = out["records"]
    assert all(got[f"good{i}.safetensors"] == [] for i in range(GOOD))
    assert got["big.safetensors"] == []
    (code, file, message), = got["arrays.safetensors"]
    assert (code, file) == ("corrupt_header", "arrays.safetensors") and "arrays and objects, over the cap" in message
    (code, _, message), = got["deep.safetensors"]
    assert code == "corrupt_header" and "nested 900,000 deep" in message
    assert [(c, f) for c, f, _ in got["side.safetensors"]] == [("corrupt_sidecar", "side.civitai.info")]
    assert "arrays and objects" in got["side.safetensors"][0][2]
    assert [(c, f) for c, f, _ in got["sparse.safetensors"]] == [("corrupt_sidecar", "sparse.metadata.json")]
    assert out["peak_kib"] < MEMORY_LIMIT // 1024
    record(f"library: memory-hostile files (peak {out['peak_kib'] // 1024} MiB of a {MEMORY_LIMIT >> 20} MiB cap)",
           5, time.perf_counter() - started)


@pytest.mark.parametrize("key", [
    "blocks_1_" * 32000 + "\nqkv_x",  # a lazy unbounded run before qkv_x was quadratic: 7.6 s at half this size
    "double_blocks_0_" * 16000 + "\nimg_attn",
    "transformer_blocks.0.attn1." * 8000,
    "blocks.0.self_attn." * 8000,
])
def test_tensor_names_built_to_backtrack_are_read_in_linear_time(key):
    with Timer() as t:
        budget(BUDGET, layout_of, key.split("\n"))
    record("library: tensor names built to backtrack", 1, t.seconds)


def test_a_scan_that_cannot_finish_in_its_budget_fails_the_harness():
    """The harness itself: a case past its budget fails (so a hang in the scan could not pass)."""
    gate = threading.Event()
    try:
        budget(0.2, gate.wait, 5)
    except AssertionError as exc:
        assert "budget" in str(exc)
    else:
        raise AssertionError("the budget did not stop a case that ran past it")
    finally:
        gate.set()
