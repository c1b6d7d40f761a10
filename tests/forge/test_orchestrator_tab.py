"""The tab built with Forge's Gradio (4.40) through the stand-in: it mounts, its handlers answer."""
from __future__ import annotations

import shutil
import sys

import pytest

from lib_orchestrator import SAMPLE_LORAS

from ..conftest import REPO

gr = pytest.importorskip("gradio")


@pytest.fixture
def tab_module(lora_dir, forge_app):
    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    from modules import sd_models, shared

    shared.sd_model = sd_models.make_model("juggernautXL_v9.safetensors", "ab" * 32, family="sdxl")
    module = forge_app()["orchestrator_tab.py"]
    assert module is not None
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
    runner = tab_module.runner  # the module the tab runs swatches with
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


# -- loaded the way Forge loads it -----------------------------------------------------------------------------
# Forge puts an extension's root on sys.path for good, and its scripts/ folder only while a file loads: a
# handler that imports a sibling module when a button is pressed fails in the real Forge ("No module named
# 'orchestrator_runner'"). These run the tab's handlers after such a load.

def test_only_the_extension_root_stays_on_sys_path_after_loading(tab_module):
    assert str(REPO) in sys.path and str(REPO / "scripts") not in sys.path


def test_a_swatch_runs_from_the_tab_after_forge_restored_sys_path(tab_module):
    from modules import shared

    shared.opts.data["samples_save"] = True
    args = ["task(orchestrator-test)", "watercolor_wash_xl", "", "", "a lighthouse", "", "0.5, 1", 9, 2, 64, 64, 7.0,
            "none", ""]
    gallery, status, state, _ = tab_module._run_swatch(*args, {})
    assert "3/3 cells made" in status and len(gallery) == 4  # the grid and its three cells


def test_a_saved_batch_runs_from_the_tab_after_forge_restored_sys_path(tab_module, tmp_path):
    from modules import shared

    shared.opts.data["samples_save"] = True
    tab_module.MODEL.batches_dir = str(tmp_path / "batches")
    settings = dict(steps=2, width=64, height=64, cfg_scale=7.0)
    status, _ = tab_module.MODEL.save_batch_file("night", "json", "a lighthouse, {rain|fog}", "", 2, 5, settings)
    assert status.startswith("saved 2 images"), status
    *_, (gallery, status) = list(tab_module._run_batch("task(orchestrator-test)", "night.json"))[-1:]
    assert len(gallery) == 2 and "2/2" in status, status


def test_a_ui_reload_loads_the_scripts_again_and_registers_everything_once(tab_module, forge_app):
    from modules import script_callbacks, shared

    again = forge_app()
    assert [label for _, label, _ in script_callbacks.ui_tabs_callback()] == ["Orchestrator"]
    assert len(script_callbacks.callback_map["callbacks_ui_settings"]) == 1
    assert again["orchestrator_tab.py"] is not tab_module  # a new module object, as Forge's reload makes
    assert "orchestrator_split_batches" in shared.opts.data_labels
