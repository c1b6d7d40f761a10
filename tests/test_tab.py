"""The tab's handlers on the fixture library, without Gradio."""
from __future__ import annotations

import os

import pytest

from lib_orchestrator.library import scan_library
from lib_orchestrator.library.overrides import OverrideStore
from lib_orchestrator.selection import LoraIndex
from lib_orchestrator.tab import TabModel, parse_locks
from lib_orchestrator.wildcards import PromptEngine

from .conftest import BUNDLED
from .library_fixtures import generate


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tab")
    generate(root, "tiny", seed=31)
    records = scan_library(str(root / "Lora")).records
    index = LoraIndex(records)
    engine = PromptEngine([str(BUNDLED), str(root / "saved")])
    return TabModel(engine=lambda: engine, index=lambda: index, records=lambda: records,
                    checkpoint=lambda: ("sdxl", "Illustrious"), overrides=OverrideStore(str(root / "o.json")),
                    library_roots=lambda: [str(root / "Lora")], saved_dir=str(root / "saved"),
                    thumbs_dir=str(root / "thumbs"))


def test_compose_preview_table_and_lint(model):
    table, messages = model.compose_preview("__templates/fantasy__, frieren", 5, 3, "", "")
    assert table.count("<tr>") == 4 and "frieren" in table and not messages
    table, messages = model.compose_preview("a {cat", 5, 3, "", "")
    assert table == "" and "never closed" in messages


def test_reroll_lock_and_send_to_txt2img(model):
    a = model.compose_preview("__style__ cat", 1, 3, "", "")[0]
    b = model.compose_preview("__style__ cat", 2, 3, "", "")[0]
    assert a != b
    locked = model.compose_preview("__style__ cat", 1, 3, "style = oil painting", "")[0]
    assert locked.count("oil painting cat") == 3
    prompt, _negative = model.first_prompt("__style__ cat", 1, "style = oil painting", "")
    assert prompt.startswith("oil painting cat")
    assert parse_locks("__style__ = a; mood=b;bad") == {"style": "a", "mood": "b"}


def test_save_template_for_the_alwayson_script(model):
    assert model.save_template("my noir", "__templates/noir__, rain").startswith("saved")
    assert model.engine().prompt("__user_templates/my noir__", 1).endswith("rain")
    assert model.save_template("../escape", "x").startswith("error")
    assert model.save_template("ok", "  ").startswith("error")


def test_search_gallery_and_details(model):
    items, summary, paths = model.search("frieren", "", "", False, False, 0)
    assert items and len(items) == len(paths) and "LoRAs" in summary
    assert all(thumb is None or os.path.exists(thumb) for thumb, _ in items)
    html = model.details_html(paths[0])
    assert "<h3>" in html and "trigger words" in html and "<script" not in html
    items, _, _ = model.search("", "", "", True, False, 0)  # only what loads on Illustrious
    assert items


def test_overrides_from_the_details_panel(model):
    _, _, paths = model.search("", "", "", False, False, 0)
    assert model.save_override(paths[0], "style", 0.5, False, True, "great").startswith("saved")
    assert model.overrides.get(paths[0]).notes == "great"
    assert "great" in model.details_html(paths[0])
    assert model.save_override(paths[0], "nonsense", None, False, False, "").startswith("error")
    assert model.save_override("", "style", None, False, False, "").startswith("error")


def test_batches_plan_save_list_and_show(model, tmp_path):
    model.batches_dir = str(tmp_path / "batches")
    status, table = model.save_batch_file("night", "json", "__templates/noir__", "lowres", 4, 10, {"steps": 2})
    assert status.startswith("saved 4 images") and table.count("<tr>") == 5
    assert model.save_batch_file("../x", "json", "a", "", 1, 1, {})[0].startswith("error")
    assert model.save_batch_file("bad", "json", "a {b", "", 1, 1, {})[0].startswith("error")
    assert model.save_batch_file("bad", "json", "a", "", 1, 1, {"nonsense": 1})[0].startswith("error")
    assert model.batch_files() == ["night.json"]
    summary, table = model.show_batch("night.json")
    assert summary == "night: 0/4 images done" and "✔" not in table
