"""`python -m lib_orchestrator library scan|show`: the public contract of the LoRA library CLI."""
from __future__ import annotations

import io
import json
import os
import re
import sqlite3
from contextlib import closing

import pytest

from lib_orchestrator.cli import main

from .test_cache import safetensors

REQUIRED = {"path", "name", "alias", "base_model", "base_model_source", "family", "category", "trigger_words",
            "preferred_weight", "sha256", "tensor_hash", "preview", "warnings"}


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def small_library(tmp_path):
    root = tmp_path / "Lora"
    safetensors(root / "style" / "Water Color.safetensors",
                {"ss_base_model_version": "sdxl_base_v1-0", "modelspec.trigger_phrase": "wtrclr"})
    safetensors(root / "Pony" / "other" / "Water Color.safetensors", {"ss_output_name": "wc2"}, keys=("te.alpha",))
    (root / "style" / "Water Color.json").write_text('{"preferred weight": 0.7, "negative text": "blurry"}')
    (root / "dl.safetensors.part").write_bytes(b"partial")
    return root


def test_scan_jsonl_has_the_contract_fields(tmp_path):
    root = small_library(tmp_path)
    code, out, _ = run("library", "scan", str(root), "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 3
    assert all(REQUIRED <= set(row) for row in rows)
    by_path = {row["path"]: row for row in rows}
    water = by_path["style/Water Color.safetensors"]
    assert (water["name"], water["base_model"], water["family"], water["category"]) == \
        ("Water Color", "SDXL 1.0", "sdxl", "style")
    assert water["trigger_words"] == ["wtrclr"] and water["preferred_weight"] == 0.7
    assert water["warnings"] == ["stem_collision"]
    pony = by_path["Pony/other/Water Color.safetensors"]
    assert (pony["base_model"], pony["base_model_source"]) == ("Pony", "folder")
    assert by_path["dl.safetensors.part"]["warnings"] == ["partial_download"]
    assert by_path["dl.safetensors.part"]["is_lora"] is False


def test_scan_table_and_summary(tmp_path):
    code, out, _ = run("library", "scan", str(small_library(tmp_path)), "--summary")
    assert code == 0 and out.startswith("NAME")
    assert "2 LoRAs, 1 other files reported" in out
    assert "by warning: stem_collision 2, partial_download 1" in out


def test_show_by_name_alias_or_path(tmp_path):
    root = small_library(tmp_path)
    code, out, _ = run("library", "show", "wc2", "--dir", str(root))
    assert code == 0 and json.loads(out)["path"] == "Pony/other/Water Color.safetensors"
    code, out, err = run("library", "show", "nope", "--dir", str(root))
    assert code == 2 and "no LoRA named 'nope'" in err


def test_cache_option_and_missing_folder(tmp_path):
    root = small_library(tmp_path)
    cache = tmp_path / "c.sqlite"
    assert run("library", "scan", str(root), "--cache", str(cache))[0] == 0 and cache.exists()
    code, _, err = run("library", "scan", str(tmp_path / "nowhere"))
    assert code == 2 and err.startswith(f"{tmp_path / 'nowhere'}: error: ")


def test_scan_refuses_a_cache_file_that_is_not_ours_in_one_line_and_leaves_it(tmp_path):
    root = small_library(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("do not lose me\n", encoding="utf-8")
    code, out, err = run("library", "scan", str(root), "--cache", str(notes))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"{notes}: error: not a LoRA library cache (not an SQLite database)")
    assert "new file name" in err and "--no-cache" in err
    assert notes.read_text(encoding="utf-8") == "do not lose me\n"


def test_compose_refuses_a_cache_file_that_is_not_ours_too(tmp_path):
    root = small_library(tmp_path)
    photos = tmp_path / "photos.db"
    with closing(sqlite3.connect(photos)) as db:
        db.execute("CREATE TABLE photos (id INTEGER)")
        db.commit()
    before = photos.read_bytes()
    code, _, err = run("compose", "a cat", "--loras", str(root), "--family", "sdxl", "--cache", str(photos),
                       "--seed", "1")
    assert code == 2 and "not a LoRA library cache (an SQLite database of something else, with tables photos)" in err
    assert photos.read_bytes() == before


def test_scan_output_survives_names_that_are_not_utf8_or_hold_a_newline(tmp_path):
    root = small_library(tmp_path)
    safetensors(root / "x.safetensors", {})
    os.rename(root / "x.safetensors", os.path.join(os.fsencode(root), b"bad\xff.safetensors"))
    safetensors(root / "two\nlines.safetensors", {})
    code, out, _ = run("library", "scan", str(root), "--format", "jsonl")
    out.encode("utf-8")  # what a UTF-8 stdout accepts
    rows = {row["name"]: row for row in map(json.loads, out.splitlines())}
    assert code == 0 and rows["bad\udcff"]["warnings"] == ["bad_name"]
    assert rows["two\nlines"]["warnings"] == ["bad_name"]
    code, out, _ = run("library", "scan", str(root))
    out.encode("utf-8")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 1 + 5  # a header and one line per file: the newline did not split a row
    assert any(line.startswith("bad\\udcff ") for line in lines)
    assert any(line.startswith("two\\nlines ") for line in lines)


def test_show_writes_a_name_that_is_not_utf8_as_escapes(tmp_path):
    root = small_library(tmp_path)
    safetensors(root / "x.safetensors", {})
    os.rename(root / "x.safetensors", os.path.join(os.fsencode(root), b"bad\xff.safetensors"))
    code, out, _ = run("library", "show", "bad\udcff.safetensors", "--dir", str(root))
    out.encode("utf-8")  # what a UTF-8 stdout accepts
    assert code == 0 and json.loads(out)["name"] == "bad\udcff" and "\\udcff" in out


# -- the default cache: one file per LoRA folder under $XDG_CACHE_HOME/orchestrator/ ---------------------------


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def cache_files(home):
    """The cache files under the cache home, relative: not SQLite's passing -wal/-shm companions nor the key."""
    if not home.exists():
        return []
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*")
                  if p.is_file() and not p.name.endswith(("-wal", "-shm", "-journal", ".key")))


def test_scan_and_show_keep_one_cache_per_folder_under_xdg_cache_home(tmp_path, cache_home):
    root = small_library(tmp_path)
    first = run("library", "scan", str(root), "--format", "jsonl")
    files = cache_files(cache_home)
    assert first[0] == 0 and len(files) == 1
    assert re.fullmatch(r"orchestrator/library-Lora-[0-9a-f]{16}\.sqlite", files[0])
    with closing(sqlite3.connect(cache_home / files[0])) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x4F524C43  # ours: "ORLC"
        assert db.execute("SELECT count(*) FROM records").fetchone()[0] == 3
    assert run("library", "scan", str(root), "--format", "jsonl") == first  # the warm scan says the same
    assert run("library", "show", "wc2", "--dir", str(root))[0] == 0
    other = tmp_path / "more" / "Lora"
    safetensors(other / "a.safetensors", {})
    assert run("library", "scan", str(other))[0] == 0
    assert len(cache_files(cache_home)) == 2  # another folder, another file


@pytest.mark.parametrize("argv", [("library", "scan", "{root}"), ("library", "show", "wc2", "--dir", "{root}"),
                                  ("compose", "a cat", "--loras", "{root}", "--family", "sdxl", "--seed", "1"),
                                  ("batch", "plan", "a cat", "--count", "2", "--loras", "{root}", "--out", "{out}")])
def test_no_cache_writes_no_cache(tmp_path, cache_home, argv):
    root = small_library(tmp_path)
    argv = [a.format(root=root, out=tmp_path / "b.json") for a in argv]
    code, _, err = run(*argv, "--no-cache")
    assert code == 0 and "error" not in err and cache_files(cache_home) == []


def test_cache_and_no_cache_together_is_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["library", "scan", str(tmp_path), "--cache", str(tmp_path / "c.sqlite"), "--no-cache"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_a_cache_home_that_cannot_hold_a_folder_only_costs_speed(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # orchestrator/ cannot be made inside a file
    code, out, err = run("library", "scan", str(small_library(tmp_path)), "--format", "jsonl")
    assert code == 0 and err == "" and len(out.splitlines()) == 3
    assert blocker.read_text(encoding="utf-8") == "x"


def test_a_foreign_file_at_the_default_place_is_left_alone_with_a_warning(tmp_path, cache_home):
    root = small_library(tmp_path)
    run("library", "scan", str(root))
    (name,) = cache_files(cache_home)
    (cache_home / name).write_text("someone else's\n", encoding="utf-8")
    code, out, err = run("library", "scan", str(root), "--format", "jsonl")
    assert code == 0 and len(out.splitlines()) == 3
    assert err.startswith("warning: ") and "not a LoRA library cache" in err and err.count("\n") == 1
    assert (cache_home / name).read_text(encoding="utf-8") == "someone else's\n"


def test_batch_plan_refuses_a_cache_file_that_is_not_ours(tmp_path):
    root = small_library(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("do not lose me\n", encoding="utf-8")
    code, _, err = run("batch", "plan", "a cat", "--count", "1", "--loras", str(root), "--out",
                       str(tmp_path / "b.json"), "--cache", str(notes))
    assert code == 2 and err.startswith(f"{notes}: error: not a LoRA library cache") and "--no-cache" in err
    assert notes.read_text(encoding="utf-8") == "do not lose me\n" and not (tmp_path / "b.json").exists()
