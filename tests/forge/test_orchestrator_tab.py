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


def test_a_second_axis_of_prompts_makes_a_grid_each_and_re_runs_only_missing_cells(tab_module, monkeypatch):
    from modules import shared

    shared.opts.data["samples_save"] = True
    args = ["task(orchestrator-test)", "watercolor_wash_xl, lighthouse_keeper_xl", "", "", "", "", "0.5, 1", 9,
            2, 64, 64, 7.0, "prompts", "a lighthouse\na harbour at night"]
    calls, failing = [], [True]
    import orchestrator_runner as runner  # the module the tab runs swatches with

    real = runner.make_image

    def flaky(prompt, *rest):
        calls.append(prompt)
        if failing[0] and "harbour" in prompt and "lighthouse_keeper_xl:1" in prompt:
            raise RuntimeError("out of memory")
        return real(prompt, *rest)

    monkeypatch.setattr(runner, "make_image", flaky)
    gallery, status, state, _ = tab_module._run_swatch(*args, {})
    assert status.splitlines()[0].startswith("2 grids, one per prompt")
    assert "a harbour at night: 4/5 cells made; 1 missing" in status and "a lighthouse: 5/5 cells made" in status
    assert len(calls) == 10 and sum(caption.startswith("grid") for _, caption in gallery) == 2
    calls.clear()
    failing[0] = False
    gallery, status, state, _ = tab_module._run_swatch(*args, state, rerun=True)
    assert len(calls) == 1 and "harbour" in calls[0] and "1 missing" not in status


def test_a_checkpoint_axis_names_only_checkpoints_forge_has(tab_module):
    args = ["task(orchestrator-test)", "watercolor_wash_xl", "", "", "a cat", "", "1", 9, 2, 64, 64, 7.0,
            "checkpoints", "no_such_model_v1"]
    gallery, status, state, _ = tab_module._run_swatch(*args, {"kept": True})
    assert (gallery, status, state) == ([], "error: no checkpoint named no_such_model_v1", {"kept": True})
