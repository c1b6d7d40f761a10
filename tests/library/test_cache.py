"""The scan cache: warm scans only stat, changes are noticed, a damaged cache is rebuilt, and two
processes can scan at once."""
from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import struct

from lib_orchestrator.library import scan_library


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


def test_a_corrupt_or_foreign_cache_is_rebuilt_not_fatal(tmp_path):
    root, cache = library(tmp_path), tmp_path / "cache.sqlite"
    cache.write_bytes(b"this is not a database" * 100)
    assert scan_library(str(root), str(cache)).read == 20
    assert scan_library(str(root), str(cache)).read == 0
    with sqlite3.connect(cache) as db:
        db.execute("PRAGMA user_version = 99")
    assert scan_library(str(root), str(cache)).read == 20  # another schema: rebuilt


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
