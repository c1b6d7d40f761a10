"""`history scan/search/rate/compare/loras` and `compose --history`: the contract of the commands (their output
fields), and that the command line's picks follow the same ratings Forge's do."""
from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from lib_orchestrator.cli import main

from .forge_images import SAMPLES, forge_infotext, write_image, write_samples


def run(*argv):
    import io

    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def folder(tmp_path):
    images = tmp_path / "outputs"
    images.mkdir()
    write_samples(str(images))
    return images


def test_scan_then_search_finds_the_image_by_a_phrase(folder, tmp_path):
    db = str(tmp_path / "h.sqlite")
    code, out, err = run("history", "scan", str(folder), "--db", db)
    assert code == 0, err
    assert f"{3 * len(SAMPLES)} images" in out and f"{3 * len(SAMPLES)} added" in out
    code, out, _ = run("history", "search", '"old fisherman"', "--db", db, "--format", "jsonl", "--no-meaning")
    rows = [json.loads(line) for line in out.splitlines()]
    assert {os.path.basename(r["path"]) for r in rows} == {"batch.png", "batch.jpg", "batch.webp"}
    first = rows[0]
    assert set(first) == {"path", "prompt", "seed", "checkpoint", "loras", "stars", "score"}
    assert first["prompt"] == "portrait of an old fisherman, harbour, fog <lora:film grain:0.8>"
    assert first["seed"] == 42 and first["checkpoint"] == "v1-5-pruned-emaonly"
    assert first["loras"] == ["film grain"] and first["stars"] is None
    # a second scan reads nothing again
    code, out, _ = run("history", "scan", str(folder), "--db", db)
    assert f"0 added, 0 updated, {3 * len(SAMPLES)} unchanged" in out


def test_rate_compare_and_the_leaderboard(folder, tmp_path):
    db = str(tmp_path / "h.sqlite")
    run("history", "scan", str(folder), "--db", db)
    cell, baseline = str(folder / "swatch_cell.png"), str(folder / "swatch_baseline.png")
    code, out, err = run("history", "rate", cell, "--stars", "5", "--db", db)
    assert code == 0 and out.strip().endswith("5 stars"), err
    code, out, _ = run("history", "rate", str(folder / "orchestrator.png"), "--reject", "--db", db)
    assert "rejected" in out
    for _ in range(4):
        assert run("history", "compare", cell, baseline, "--db", db)[0] == 0
    code, out, _ = run("history", "loras", "--db", db, "--format", "jsonl")
    rows = {r["name"]: r for r in map(json.loads, out.splitlines())}
    for row in rows.values():
        assert set(row) == {"name", "images", "rated", "score", "low", "high"}
    assert rows["watercolor"]["score"] > 0 and rows["watercolor"]["rated"] == 1
    assert rows["watercolor"]["images"] == 3  # the cell in three formats
    assert rows["Neon Noir v2"]["score"] < 0 and rows["add_detail"]["score"] < 0
    assert rows["watercolor"]["low"] < rows["watercolor"]["score"] < rows["watercolor"]["high"]
    code, out, _ = run("history", "search", "lighthouse", "--db", db, "--format", "jsonl", "--no-meaning",
                       "--min-stars", "4")
    assert [os.path.basename(json.loads(line)["path"]) for line in out.splitlines()] == ["swatch_cell.png"]
    code, table, _ = run("history", "loras", "--db", db)
    assert table.splitlines()[0].endswith("watercolor")  # best first


def test_an_image_not_yet_indexed_is_indexed_when_rated(tmp_path):
    db = str(tmp_path / "h.sqlite")
    path = write_image(str(tmp_path / "new.png"), SAMPLES["forge_lora"].text)
    code, out, err = run("history", "rate", path, "--stars", "3", "--favourite", "--db", db)
    assert code == 0, err
    assert "3 stars, favourite" in out


def test_bad_input_says_where_and_what_to_do(tmp_path):
    db = str(tmp_path / "h.sqlite")
    code, _, err = run("history", "search", "cat", "--db", db)
    assert code == 2 and "no history index here yet" in err and "history scan" in err
    code, _, err = run("history", "scan", str(tmp_path / "missing"), "--db", db)
    assert code == 2 and "missing" in err
    code, _, err = run("history", "rate", str(tmp_path / "nope.png"), "--stars", "3", "--db", db)
    assert code == 2 and "no such image file" in err
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    code, _, err = run("history", "rate", str(tmp_path / "notes.txt"), "--stars", "3", "--db", db)
    assert code == 2 and ".png" in err
    code, _, err = run("history", "rate", str(tmp_path / "nope.png"), "--db", db)
    assert code == 2 and "--stars" in err
    with pytest.raises(SystemExit) as info:
        run("history", "rate", "x.png", "--stars", "6", "--db", db)
    assert info.value.code == 2
    not_ours = tmp_path / "other.sqlite"
    not_ours.write_bytes(b"not a database at all" * 100)
    code, _, err = run("history", "loras", "--db", str(not_ours))
    assert code == 2 and str(not_ours) in err
    assert not_ours.read_bytes() == b"not a database at all" * 100  # never rebuilt


def _library(tmp_path):
    """Two style LoRAs a watercolour prompt matches equally (metadata-only .safetensors, as the samples are)."""
    import struct

    root = tmp_path / "loras"
    root.mkdir()
    for name in ("wash_a", "wash_b"):
        meta = {"ss_base_model_version": "sdxl_base_v1-0", "ss_output_name": name,
                "ss_tag_frequency": json.dumps({"x": {"watercolor": 10, "painting": 5}})}
        header = json.dumps({"__metadata__": meta, "lora_unet_a.lora_down.weight": {
            "dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}).encode()
        (root / f"{name}.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0")
        (root / f"{name}.json").write_text(json.dumps({"preferred weight": 0.7, "activation text": "",
                                                       "sd version": "SDXL", "description": "watercolor style"}),
                                           encoding="utf-8")
    return root


def test_compose_with_history_shifts_picks_toward_the_better_rated(tmp_path):
    loras = _library(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text("count: {min: 1, max: 1}\ndetailer: {probability: 0}\nfeedback: 1\n"
                     "categories: {style: {max: 1}}\n", encoding="utf-8")
    images = tmp_path / "outputs"
    images.mkdir()
    ratings = [("wash_a", 5), ("wash_a", 5), ("wash_b", 1), ("wash_b", 1)]
    for k, (name, _) in enumerate(ratings):
        text = forge_infotext(f"watercolor painting <lora:{name}:0.7>", "", [("Steps", 20), ("Seed", k),
                                                                               ("Size", "64x64"), ("Model", "xl")])
        write_image(str(images / f"{k}.png"), text)
    db = str(tmp_path / "h.sqlite")
    run("history", "scan", str(images), "--db", db)
    for k, (_, stars) in enumerate(ratings):
        run("history", "rate", str(images / f"{k}.png"), "--stars", str(stars), "--db", db)

    def drawn(*extra):
        code, out, err = run("compose", "watercolor painting", "--loras", str(loras), "--family", "sdxl",
                             "--count", "400", "--seed", "0", "--format", "jsonl", "--rules", str(rules),
                             "--match", "keyword", "--no-cache", *extra)
        assert code == 0, err
        return [tuple((p["name"], p["reason"]) for p in json.loads(line)["loras"]) for line in out.splitlines()]

    plain, fed = drawn(), drawn("--history", db)
    names = Counter(n for picks in fed for n, _ in picks)
    plain_names = Counter(n for picks in plain for n, _ in picks)
    assert abs(plain_names["wash_a"] - plain_names["wash_b"]) < 80
    assert names["wash_a"] > 2 * names["wash_b"]
    assert all(r.endswith("+feedback") for picks in fed for n, r in picks if n == "wash_a")
    code, _, err = run("compose", "x", "--loras", str(loras), "--family", "sdxl", "--history",
                       str(tmp_path / "none.sqlite"))
    assert code == 2 and "no history index here" in err
