"""The scanner against the fixture generator's ground truth (tests/library_fixtures.py)."""
from __future__ import annotations

import json

import pytest

from lib_orchestrator.library import scan_library
from lib_orchestrator.library.problems import BAD_NAME, CODES, UNREADABLE

from ..library_fixtures import generate

FIELDS = ["name", "is_lora", "alias", "base_model", "base_model_source", "family", "category", "category_source",
          "trigger_words", "trigger_source", "preferred_weight", "weight_source", "negative_text", "sha256",
          "tensor_hash", "duplicate_group", "preview", "excluded", "warnings"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    manifest = generate(root, "tiny", seed=7)
    result = scan_library(str(root / "Lora"), str(root / "cache.sqlite"))
    return root, manifest, result


def test_every_file_is_reported_once_and_nothing_else(tiny):
    _, manifest, result = tiny
    assert sorted(r.path for r in result.records) == sorted(e["path"] for e in manifest["entries"])


@pytest.mark.parametrize("field", FIELDS)
def test_each_field_matches_the_ground_truth(tiny, field):
    _, manifest, result = tiny
    got = {r.path: r.to_dict() for r in result.records}
    wrong = []
    for entry in manifest["entries"]:
        if entry["path"] in got and field in entry and got[entry["path"]][field] != entry[field]:
            wrong.append(f"{entry['path']}: expected {entry[field]!r}, got {got[entry['path']][field]!r}")
    assert not wrong, f"{len(wrong)} wrong:\n" + "\n".join(wrong[:15])


def test_every_warning_code_is_exercised(tiny):
    # The two codes for files no fixture library should hold (names that are not UTF-8, links that loop)
    # are exercised by test_robustness.py and tests/fuzz instead.
    _, _, result = tiny
    assert {code for r in result.records for code in r.warnings} == set(CODES) - {UNREADABLE, BAD_NAME}


def test_duplicates_are_grouped(tiny):
    _, manifest, result = tiny
    groups = {}
    for r in result.records:
        if r.duplicate_group:
            groups.setdefault(r.duplicate_group, set()).add(r.path)
    expected = {}
    for e in manifest["entries"]:
        if e.get("duplicate_group"):
            expected.setdefault(e["duplicate_group"], set()).add(e["path"])
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, expected.values()))
    assert groups


def test_warm_rescan_agrees_with_the_cold_one(tiny):
    root, _, cold = tiny
    warm = scan_library(str(root / "Lora"), str(root / "cache.sqlite"))
    assert warm.read == 0 and warm.records == cold.records


def test_hashing_on_request_fills_sha256_with_the_true_value(tiny):
    root, manifest, _ = tiny
    hashed = {r.path: r for r in scan_library(str(root / "Lora"), compute_hashes=True).records}
    for entry in manifest["entries"]:
        trusted = entry["sha256"] in (None, entry.get("true_sha256"))  # a sidecar's word is kept when it has one
        if entry["is_lora"] and entry.get("true_sha256") and trusted and hashed[entry["path"]].size:
            assert hashed[entry["path"]].sha256 == entry["true_sha256"], entry["path"]


def test_manifest_is_json_on_disk(tiny):
    root, manifest, _ = tiny
    assert json.loads((root / "manifest.json").read_text(encoding="utf-8")) == manifest
