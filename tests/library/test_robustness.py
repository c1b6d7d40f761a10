"""One bad file never stops a scan (README): each hostile file found in review is a problem on that file,
with a code, and every other LoRA is still indexed and cached. Expected values come from what each test
wrote, not from the product's tables."""
from __future__ import annotations

import json
import os
import struct
import threading

import pytest

from lib_orchestrator.bounded_json import MAX_CONTAINERS, MAX_DEPTH, JsonLimitError, parse_bounded
from lib_orchestrator.library import scan_library
from lib_orchestrator.library.record import LoraRecord

from .test_cache import safetensors

DEEP = "[" * 50_000 + "]" * 50_000  # far past what json.loads survives (RecursionError at ~1,000)


def header_file(path, raw: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)


def with_good_ones(tmp_path, n=3):
    root = tmp_path / "Lora"
    for i in range(n):
        safetensors(root / f"good{i}.safetensors", {"ss_output_name": f"good{i}", "ss_base_model_version": "sd_v1"})
    return root


def scan_twice(root, cache):
    """A cold scan and a warm one: the warm one proves the cache took every record."""
    cold = scan_library(str(root), str(cache))
    warm = scan_library(str(root), str(cache))
    assert warm.read == 0 and warm.records == cold.records
    return {r.name: r for r in cold.records}


def assert_good_ones_indexed(by_name, n=3):
    for i in range(n):
        good = by_name[f"good{i}"]
        assert good.is_lora and not good.problems and good.base_model == "SD 1.5"


def test_a_file_name_that_is_not_utf8_is_indexed_cached_and_never_picked(tmp_path):
    root = with_good_ones(tmp_path)
    raw_name = b"caf\xe9 style.safetensors"  # Latin-1 bytes: not UTF-8
    safetensors(root / "x.safetensors", {"ss_base_model_version": "sdxl_base_v1-0"})
    os.rename(root / "x.safetensors", os.path.join(os.fsencode(root), raw_name))
    by_name = scan_twice(root, tmp_path / "cache.sqlite")
    assert_good_ones_indexed(by_name)
    odd = by_name[os.fsdecode(b"caf\xe9 style")]  # kept with surrogate escapes: the bytes come back exactly
    assert os.fsencode(odd.path) == raw_name
    assert odd.is_lora and odd.excluded and odd.warnings == ("bad_name",)
    assert odd.base_model == "SDXL 1.0"  # read as usual
    line = odd.to_json()
    line.encode("utf-8")  # writable to a UTF-8 stdout or file
    assert LoraRecord.from_json(line) == odd


def test_a_folder_name_that_is_not_utf8_keeps_the_lora_usable(tmp_path):
    root = with_good_ones(tmp_path)
    folder = os.path.join(os.fsencode(root), b"\xff\xfe")
    os.mkdir(folder)
    safetensors(root / "y.safetensors", {})
    os.rename(root / "y.safetensors", os.path.join(folder, b"inner.safetensors"))
    by_name = scan_twice(root, tmp_path / "cache.sqlite")
    assert_good_ones_indexed(by_name)
    inner = by_name["inner"]
    assert os.fsencode(inner.path) == b"\xff\xfe/inner.safetensors" and not inner.problems


def test_a_name_with_a_newline_is_bad_name(tmp_path):
    root = with_good_ones(tmp_path)
    safetensors(root / "two\nlines.safetensors", {})
    by_name = scan_twice(root, tmp_path / "cache.sqlite")
    assert_good_ones_indexed(by_name)
    assert by_name["two\nlines"].warnings == ("bad_name",) and by_name["two\nlines"].excluded


def test_lone_surrogate_escapes_in_a_header_are_replaced_and_reported(tmp_path):
    root = with_good_ones(tmp_path)
    header_file(root / "s.safetensors",
                b'{"__metadata__": {"ss_output_name": "alias\\ud800", "modelspec.trigger_phrase": "x\\udfff y"}}')
    by_name = scan_twice(root, tmp_path / "cache.sqlite")
    assert_good_ones_indexed(by_name)
    s = by_name["s"]
    assert s.alias == "alias\ufffd" and s.trigger_words == ("x\ufffd y",)
    assert s.warnings == ("corrupt_header",) and "surrogate" in s.problems[0].message


def test_an_escaped_surrogate_pair_is_a_character_not_a_problem(tmp_path):
    root = with_good_ones(tmp_path, n=1)
    header_file(root / "e.safetensors", b'{"__metadata__": {"modelspec.trigger_phrase": "\\ud83d\\ude00"}}')
    e = scan_twice(root, tmp_path / "cache.sqlite")["e"]
    assert e.trigger_words == ("\U0001F600",) and not e.problems


@pytest.mark.parametrize("suffix", [".civitai.info", ".metadata.json", ".cm-info.json", ".json"])
def test_lone_surrogate_escapes_in_a_sidecar_are_replaced_and_reported(tmp_path, suffix):
    root = with_good_ones(tmp_path)
    safetensors(root / "side.safetensors", {})
    body = {".civitai.info": {"id": 1, "modelId": 2, "trainedWords": ["w\ud800"]},
            ".metadata.json": {"civitai": {"id": 1, "trainedWords": ["w\ud800"]}},
            ".cm-info.json": {"TrainedWords": ["w\ud800"]},
            ".json": {"activation text": "w\ud800"}}[suffix]
    (root / f"side{suffix}").write_text(json.dumps(body), encoding="ascii")  # json.dumps escapes it: \ud800
    side = scan_twice(root, tmp_path / "cache.sqlite")["side"]
    assert side.trigger_words == ("w\ufffd",)
    assert [(p.code, p.file) for p in side.problems] == [("corrupt_sidecar", f"side{suffix}")]


DEEP_PLACES = [".safetensors header", ".civitai.info", ".json", ".metadata.json", ".cm-info.json",
               "ss_tag_frequency"]


@pytest.mark.parametrize("where", DEEP_PLACES)
def test_deeply_nested_json_anywhere_is_a_problem_on_that_file(tmp_path, where):
    root = with_good_ones(tmp_path)
    if where == ".safetensors header":
        header_file(root / "deep.safetensors", DEEP.encode())
    elif where == "ss_tag_frequency":  # JSON inside a header string, parsed on its own
        safetensors(root / "deep.safetensors", {"ss_tag_frequency": DEEP, "ss_output_name": "deep"})
    else:
        safetensors(root / "deep.safetensors", {})
        (root / f"deep{where}").write_text(DEEP, encoding="utf-8")
    by_name = scan_twice(root, tmp_path / "cache.sqlite")
    assert_good_ones_indexed(by_name)
    deep = by_name["deep"]
    if where == "ss_tag_frequency":  # an unreadable training-tag table is no tags, as for any bad value
        assert deep.is_lora and deep.suggested_tags == () and deep.trigger_words == ()
        return
    code = "corrupt_header" if where.endswith("header") else "corrupt_sidecar"
    assert [p.code for p in deep.problems] == [code]
    assert f"nested 50,000 deep, over the cap of {MAX_DEPTH}" in deep.problems[0].message


def test_a_sidecar_over_the_size_cap_is_not_read(tmp_path):
    root = with_good_ones(tmp_path, n=1)
    safetensors(root / "big.safetensors", {})
    with open(root / "big.civitai.info", "wb") as fh:
        fh.truncate(17 * 1024 * 1024)  # sparse: costs no disk
    big = scan_twice(root, tmp_path / "cache.sqlite")["big"]
    assert [p.code for p in big.problems] == ["corrupt_sidecar"] and "cap" in big.problems[0].message


def test_a_name_whose_digits_int_refuses_sorts_without_stopping_the_scan(tmp_path):
    root = with_good_ones(tmp_path)
    safetensors(root / "v1\u00b23.safetensors", {})  # '²' is a digit to str.isdigit, not to int()
    by_name = scan_twice(root, tmp_path / "cache.sqlite")
    assert_good_ones_indexed(by_name)
    assert by_name["v1\u00b23"].is_lora and not by_name["v1\u00b23"].problems


def test_links_that_loop_or_dangle_are_reported_unreadable(tmp_path):
    root = with_good_ones(tmp_path)
    os.symlink("b.safetensors", root / "a.safetensors")
    os.symlink("a.safetensors", root / "b.safetensors")
    os.symlink("nowhere.safetensors", root / "dangling.safetensors")
    os.symlink(".", root / "self")  # a folder loop: reported, not walked
    by_name = scan_twice(root, tmp_path / "cache.sqlite")
    assert_good_ones_indexed(by_name)
    for name in ("a", "b", "dangling"):
        assert not by_name[name].is_lora and by_name[name].warnings == ("unreadable",), name
    assert not by_name["self"].is_lora and by_name["self"].warnings == ("symlink_loop",)
    assert len(by_name) == 7


def test_a_fifo_named_like_a_lora_is_reported_and_never_opened(tmp_path):
    root = with_good_ones(tmp_path)
    os.mkfifo(root / "pipe.safetensors")
    os.mkfifo(root / "good0.civitai.info")  # a sidecar that would block a reader for ever
    done = []
    worker = threading.Thread(target=lambda: done.append(scan_twice(root, tmp_path / "cache.sqlite")), daemon=True)
    worker.start()
    worker.join(30)
    assert done, "the scan blocked on a FIFO"
    assert_good_ones_indexed(done[0])
    assert done[0]["pipe"].warnings == ("unreadable",)


def test_an_error_no_reader_expected_stays_on_its_file(tmp_path, monkeypatch):
    from lib_orchestrator.library import scan as scan_module

    real = scan_module.resolve

    def resolve(path, name, *args):
        if name == "boom":
            raise KeyError("something no reader foresaw")
        return real(path, name, *args)

    monkeypatch.setattr(scan_module, "resolve", resolve)
    root = with_good_ones(tmp_path)
    safetensors(root / "boom.safetensors", {})
    by_name = scan_twice(root, tmp_path / "cache.sqlite")
    assert_good_ones_indexed(by_name)
    boom = by_name["boom"]
    assert not boom.is_lora and boom.warnings == ("unreadable",)
    assert "KeyError" in boom.problems[0].message and "\n" not in boom.problems[0].message


def test_a_cached_row_that_does_not_parse_is_read_again(tmp_path):
    import sqlite3
    from contextlib import closing

    root, cache = with_good_ones(tmp_path), tmp_path / "cache.sqlite"
    scan_library(str(root), str(cache))
    with closing(sqlite3.connect(cache)) as db:
        db.execute("UPDATE records SET record = 'not json'")
        db.execute("DELETE FROM snapshot")  # else nothing changed and the rows are never looked at
        db.commit()
    again = scan_library(str(root), str(cache))
    assert again.read == 3
    assert_good_ones_indexed({r.name: r for r in again.records})


def test_bounded_json_caps_say_which_cap():
    assert parse_bounded(b'{"a": [[1], {"b": "[[[["}]}', 1000) == {"a": [[1], {"b": "[[[["}]}
    assert parse_bounded("[" * MAX_DEPTH + "]" * MAX_DEPTH, 10_000) is not None  # the cap itself is fine
    with pytest.raises(JsonLimitError, match=f"nested {MAX_DEPTH + 1} deep"):
        parse_bounded("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), 10_000)
    with pytest.raises(JsonLimitError, match="over the 10-byte cap"):
        parse_bounded(b"[1, 2, 3, 4, 5]", 10)
    many = "[" + ",".join(["[]"] * MAX_CONTAINERS) + "]"
    with pytest.raises(JsonLimitError, match="arrays and objects"):
        parse_bounded(many, 10 * MAX_CONTAINERS)
    with pytest.raises(ValueError):
        parse_bounded(b"[" * 100_000, 1_000_000)  # truncated deep JSON: an error, not a RecursionError
    with pytest.raises(ValueError):
        parse_bounded(b"]" * (MAX_CONTAINERS + 1), 10 * MAX_CONTAINERS)
