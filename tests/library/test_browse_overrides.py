"""The library browser's search and filters, details, thumbnails, and the user's overrides."""
from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from lib_orchestrator.compose import compose
from lib_orchestrator.errors import OrchestratorError
from lib_orchestrator.library import scan_library
from lib_orchestrator.library.browse import Catalogue, Query, details
from lib_orchestrator.library.overrides import Override, OverrideStore
from lib_orchestrator.library.thumbnails import thumbnail
from lib_orchestrator.selection import LoraIndex, Rules

from ..library_fixtures import generate


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    generate(root, "tiny", seed=21)
    return root / "Lora", scan_library(str(root / "Lora")).records


def test_search_by_name_trigger_word_and_tag(library):
    _, records = library
    cat = Catalogue(records)
    frieren = cat.search(Query(text="frieren"))
    assert frieren.total >= 2 and all("frieren" in " ".join([r.name, *r.trigger_words, *r.tags]).lower()
                                      for r in frieren.items)
    assert cat.search(Query(text="pointy ears")).total >= 1  # a trigger phrase
    assert cat.search(Query(text="pointy_ears")).total == cat.search(Query(text="pointy ears")).total
    assert cat.search(Query(text="zzzz-no-such")).total == 0


def test_each_filter(library):
    _, records = library
    cat = Catalogue(records)
    for category in cat.facets()["category"]:
        page = cat.search(Query(category=category, page_size=1000))
        assert page.total and all(r.category == category for r in page.items)
    page = cat.search(Query(base_model="Pony", page_size=1000))
    assert page.total and all(r.base_model == "Pony" for r in page.items)
    compatible = cat.search(Query(checkpoint="Illustrious", page_size=1000))
    assert compatible.total and all(r.family == "sdxl" for r in compatible.items)
    warned = cat.search(Query(warnings_only=True, page_size=1000))
    assert warned.total and all(r.problems for r in warned.items)


def test_pages(library):
    _, records = library
    cat = Catalogue(records)
    first, last = cat.search(Query(page_size=10)), cat.search(Query(page_size=10, page=999))
    assert len(first.items) == 10 and first.pages == last.pages and last.page == last.pages - 1
    assert first.total == len([r for r in records if r.is_lora])


def test_details_show_sources_and_safe_html(library):
    _, records = library
    record = next(r for r in records if r.is_lora and r.trigger_words)
    info = details(record)
    assert info["trigger_source"] and info["base_model_source"]
    hostile = replace(record, description="<script>x</script><b>ok</b>")
    assert details(hostile)["description_html"] == "<b>ok</b>"


def test_overrides_are_persisted_atomically_and_honoured_by_selection(library, tmp_path):
    _, records = library
    store = OverrideStore(str(tmp_path / "data" / "overrides.json"))
    target = next(r for r in records if r.is_lora and r.family == "sdxl" and not r.excluded)
    banned = next(r for r in records if r.is_lora and r.family == "sdxl" and r.trigger_words and r is not target)
    store.set(target.path, Override(category="slider", weight=-1.5, pinned=True, notes="mine"))
    store.set(banned.path, Override(excluded=True))
    again = OverrideStore(store.path)
    assert again.get(target.path) == Override(category="slider", weight=-1.5, pinned=True, notes="mine")
    assert json.loads(open(store.path, encoding="utf-8").read())[target.path]["notes"] == "mine"

    applied = again.apply(records)
    index = LoraIndex(applied)
    rules = Rules(pinned=tuple(again.pinned_names(applied)))
    c = compose("t", banned.trigger_words[0], 1, index, rules, "sdxl", target.base_model)
    assert c.loras[0].name == target.name and c.loras[0].weight == -1.5 and c.loras[0].category == "slider"
    assert banned.name not in [p.name for p in c.loras]
    store.set(banned.path, Override())
    assert OverrideStore(store.path).get(banned.path) == Override()


def test_bad_overrides_are_refused_and_a_bad_file_is_reported(tmp_path):
    with pytest.raises(OrchestratorError):
        Override(category="poses")
    with pytest.raises(OrchestratorError):
        Override(weight=50)
    path = tmp_path / "o.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(OrchestratorError, match="cannot read overrides"):
        OverrideStore(str(path), strict=True)
    lenient = OverrideStore(str(path))  # what Forge uses: it must start even so
    assert lenient.error is not None and lenient.get("x") == Override()
    lenient.set("x", Override(notes="n"))
    assert (tmp_path / "o.json.unreadable").read_text(encoding="utf-8") == "{not json"
    assert OverrideStore(str(path), strict=True).get("x").notes == "n"


def test_thumbnails_are_made_once_and_broken_images_give_none(library, tmp_path):
    root, records = library
    with_preview = [r for r in records if r.preview]
    made = thumbnail(str(root / with_preview[0].preview), str(tmp_path / "thumbs"))
    assert made and made.endswith(".jpg")
    start = time.perf_counter()
    assert thumbnail(str(root / with_preview[0].preview), str(tmp_path / "thumbs")) == made
    assert time.perf_counter() - start < 1
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert thumbnail(str(broken), str(tmp_path / "thumbs")) is None


@pytest.mark.parametrize("content", [b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe{}", b"[1, 2]"])
def test_an_overrides_file_nested_too_deep_or_not_an_object_is_our_error_not_a_crash(tmp_path, content):
    path = tmp_path / "o.json"
    path.write_bytes(content)
    with pytest.raises(OrchestratorError, match="cannot read overrides"):  # RecursionError before
        OverrideStore(str(path), strict=True)
    lenient = OverrideStore(str(path))
    assert lenient.error is not None and path.read_bytes() == content  # loading never writes


def test_entries_of_the_wrong_type_are_dropped_one_by_one(tmp_path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"ok.safetensors": {"weight": 0.5, "notes": "n"},
                                "w.safetensors": {"weight": "0.5"}, "b.safetensors": {"weight": True},
                                "nan.safetensors": {"weight": float("nan")}, "n.safetensors": {"notes": ["x"]},
                                "e.safetensors": {"excluded": "yes"}, "l.safetensors": [1]}), encoding="utf-8")
    store = OverrideStore(str(path), strict=True)
    assert store.get("ok.safetensors") == Override(weight=0.5, notes="n")
    for bad in ("w", "b", "nan", "n", "e", "l"):
        assert store.get(f"{bad}.safetensors") == Override(), bad


def test_a_path_that_was_not_utf8_on_disk_keeps_its_override(tmp_path):
    path = tmp_path / "o.json"
    store = OverrideStore(str(path))
    odd = "caf\udce9/x.safetensors"  # how Python names a folder whose bytes are not UTF-8
    store.set(odd, Override(weight=0.7, notes="lone \ud800 too"))  # UnicodeEncodeError before
    store.set("plain.safetensors", Override(notes="café"))
    again = OverrideStore(str(path), strict=True)
    assert again.get(odd) == Override(weight=0.7, notes="lone \ud800 too")
    assert again.get("plain.safetensors").notes == "café"
