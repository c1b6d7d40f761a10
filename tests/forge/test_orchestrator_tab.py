"""The tab built with Forge's Gradio (4.40) through the stand-in: it mounts, its handlers answer."""
from __future__ import annotations

import shutil

import pytest

from lib_orchestrator import SAMPLE_LORAS

from ..conftest import REPO

gr = pytest.importorskip("gradio")
TAB = str(REPO / "scripts" / "orchestrator_tab.py")


@pytest.fixture
def tab_module(lora_dir, tmp_path):
    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    from modules import scripts, sd_models, shared

    shared.sd_model = sd_models.make_model("juggernautXL_v9.safetensors", "ab" * 32, family="sdxl")
    shared.opts.data["orchestrator_cache_path"] = str(tmp_path / "library.sqlite")
    module = scripts.load_script_file(TAB)
    assert module is not None
    module.state.LIBRARY.refresh()
    assert module.state.LIBRARY.wait(60) is not None
    return module


def test_the_tab_mounts_in_forges_tab_strip_without_errors(tab_module):
    from modules import errors, script_callbacks

    tabs = script_callbacks.ui_tabs_callback()
    assert [(label, elem) for _, label, elem in tabs] == [("Orchestrator", "orchestrator")]
    assert isinstance(tabs[0][0], gr.Blocks)
    assert errors.reported == []


def test_the_tabs_handlers_work_on_the_library_forge_scanned(tab_module):
    table, messages = tab_module.MODEL.compose_preview("__templates/noir__, watercolor wash", 1, 3, "", "")
    assert table.count("<tr>") == 4 and "watercolor_wash_xl" in table and not messages
    _, summary, paths = tab_module.MODEL.search("watercolor", "", "", True, False, 0)
    assert paths == ["style/watercolor_wash_xl.safetensors"] and summary.startswith("1 LoRAs")
