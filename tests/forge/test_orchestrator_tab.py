"""The tab built with Forge's Gradio (4.40) through the stand-in: it mounts, its handlers answer."""
from __future__ import annotations

import json
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
    assert (gallery, status, state) == ([], "error: Forge has no checkpoint named 'no_such_model_v1'", {"kept": True})


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
    *_, (gallery, status, table) = tab_module._run_batch("task(orchestrator-test)", "night.json")
    assert len(gallery) == 2 and status == "2/2 images done, finished" and table.count("✔") == 2


def test_a_ui_reload_loads_the_scripts_again_and_registers_everything_once(tab_module, forge_app):
    from modules import script_callbacks, shared

    again = forge_app()
    assert [label for _, label, _ in script_callbacks.ui_tabs_callback()] == ["Orchestrator"]
    assert len(script_callbacks.callback_map["callbacks_ui_settings"]) == 1
    assert again["orchestrator_tab.py"] is not tab_module  # a new module object, as Forge's reload makes
    # a batch still running in the old tab's thread is still known: a second Run of it is refused
    assert again["orchestrator_tab.py"].MODEL.running is tab_module.MODEL.running
    assert "orchestrator_split_batches" in shared.opts.data_labels


def test_every_field_keeps_its_own_saved_default_across_restarts(tab_module, tmp_path):
    """Forge's ui-config.json keys a field by its tab and label only: two fields labelled "Seed" anywhere in the
    tab share one saved default (the library's category filter started on the swatches' "style")."""
    from modules import script_callbacks, ui_loadsave

    config = str(tmp_path / "ui-config.json")

    def start():
        tab = script_callbacks.ui_tabs_callback()[0][0]
        loadsave = ui_loadsave.UiLoadsave(config)
        loadsave.add_block(tab, "orchestrator")
        loadsave.dump_defaults()
        return {b.elem_id: b for b in tab.blocks.values() if getattr(b, "elem_id", None)}

    def value(block):  # Forge saves an empty textbox's None as ""
        v = getattr(block, "value", None)
        return "" if v is None else v

    with open(config, "w", encoding="utf-8") as fh:  # what the version before fields had labels of their own saved
        json.dump({"orchestrator/Category/value": "style", "orchestrator/Seed/value": 1000,
                   "orchestrator/Width/value": 1024}, fh)
    fresh, restarted = start(), start()
    changed = {k: (value(fresh[k]), value(restarted[k])) for k in fresh if value(fresh[k]) != value(restarted[k])}
    assert changed == {}
    assert restarted["orchestrator_category"].value == "" and restarted["orchestrator_swatch_seed"].value == 1234


def test_no_two_fields_of_the_tab_share_a_saved_default_or_an_element_id(tab_module):
    import gradio as gr
    from modules import script_callbacks

    tab = script_callbacks.ui_tabs_callback()[0][0]
    tracked = (gr.Slider, gr.Radio, gr.Checkbox, gr.Textbox, gr.Number, gr.Dropdown)
    fields = [b for b in tab.blocks.values() if type(b) in tracked and not getattr(b, "do_not_save_to_config", False)]
    labels = [b.label for b in fields]
    assert sorted({lab for lab in labels if labels.count(lab) > 1}) == []
    components = [b for b in tab.blocks.values() if isinstance(b, gr.components.Component)]
    missing = [type(b).__name__ for b in components if not getattr(b, "elem_id", None) and not isinstance(b, gr.State)]
    ids = [b.elem_id for b in components if getattr(b, "elem_id", None)]
    assert missing == [] and sorted({i for i in ids if ids.count(i) > 1}) == []


def test_compose_picks_loras_for_the_selected_checkpoint_before_any_generation(lora_dir, forge_app):
    """Forge loads the checkpoint on the first generation: until then the tab must still know its family."""
    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    from modules import sd_models, shared

    assert getattr(shared.sd_model, "sd_checkpoint_info", None) is None  # nothing loaded yet
    module = forge_app()["orchestrator_tab.py"]
    assert module.state.LIBRARY.wait(60) is not None
    table, messages = module.MODEL.compose_preview("a watercolor landscape", 1, 2, "", "")
    assert "watercolor_sd15" in table and "watercolor_wash_xl" not in table, messages  # random-sd15: SD 1.5
    # the user picks an SDXL checkpoint in Forge's list; it is still not loaded
    info = sd_models.add_checkpoint("sdxl/juggernautXL_v9.safetensors", family="sdxl")
    shared.opts.data["sd_model_checkpoint"] = info.name
    table, _ = module.MODEL.compose_preview("a watercolor wash landscape", 1, 2, "", "")
    assert "watercolor_wash_xl" in table and "watercolor_sd15" not in table
    assert getattr(shared.sd_model, "sd_checkpoint_info", None) is None


def test_a_refused_batch_run_leaves_no_progress_bar_waiting(tab_module, tmp_path):
    """Forge's page polls the run's task id: an id never finished shows "Waiting..." or "In queue" for good."""
    from modules import progress

    tab_module.MODEL.batches_dir = str(tmp_path / "batches")
    views = list(tab_module._run_batch("task(refused)", "no_such_batch.json"))
    assert views[-1][1].startswith("error: ") and progress.progressapi("task(refused)")["completed"]
    tab_module.MODEL.save_batch_file("ok", "json", "a cat", "", 1, 5, dict(steps=1, width=64, height=64))
    list(tab_module._run_batch("task(run)", "ok.json"))
    answer = progress.progressapi("task(run)")
    assert answer["completed"] and not answer["queued"] and not answer["active"]


def test_in_neo_the_forms_offer_its_own_upscalers_and_a_hires_batch_runs(forge_stub, lora_dir, forge_app, tmp_path):
    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    with forge_stub.use_variant("neo"):
        from modules import script_callbacks, shared

        module = forge_app()["orchestrator_tab.py"]
        module.state.LIBRARY.wait(60)
        tab = script_callbacks.ui_tabs_callback()[0][0]
        upscaler = next(b for b in tab.blocks.values() if getattr(b, "elem_id", "") == "orchestrator_batch_upscaler")
        assert upscaler.value == "None" and "Latent" not in [c[0] for c in upscaler.choices]
        shared.opts.data["samples_save"] = True
        module.MODEL.batches_dir = str(tmp_path / "batches")
        settings = dict(steps=1, width=64, height=64, enable_hr=True, hr_upscaler=upscaler.value, hr_scale=1.5)
        assert module.MODEL.save_batch_file("hires", "json", "a cat", "", 1, 5, settings)[0].startswith("saved")
        *_, (files, status, _) = module._run_batch("task(neo)", "hires.json")
        assert status == "1/1 images done, finished" and len(files) == 1
        table, _ = module.MODEL.compose_preview("a watercolor landscape", 1, 1, "", "")
        assert "watercolor_sd15" in table  # nothing loaded before the batch; the selected SD1.5 checkpoint counts


def test_a_handler_that_fails_says_why_in_its_status_instead_of_a_bare_error_badge(tab_module, capsys):
    def broken(*_):
        raise KeyError("lost")

    table, messages = tab_module._guarded(broken, 2, 1)("a template")
    assert messages == "error: KeyError: 'lost'" and table == tab_module.gr.update()
    assert "Traceback" in capsys.readouterr().err  # and Forge's console has the whole story


def test_the_loaded_models_flags_count_only_for_a_file_that_cannot_tell_and_only_if_it_is_the_selected_one(
        forge_app, tmp_path):
    from types import SimpleNamespace

    forge_app(tabs=False)
    compat = sys.modules["orchestrator_compat"]  # what the scripts use
    files = {}
    for name in ("merge_q8.gguf", "other_q4.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
        files[name] = SimpleNamespace(filename=str(tmp_path / name), name=name)
    sd_models = SimpleNamespace(checkpoint_aliases=dict(files), checkpoints_list=dict(files))
    loaded = SimpleNamespace(is_sdxl=True, sd_checkpoint_info=files["merge_q8.gguf"])
    shared = SimpleNamespace(opts=SimpleNamespace(sd_model_checkpoint="merge_q8.gguf"), sd_model=loaded)
    kind = compat.checkpoint(shared, sd_models)
    assert (kind.family, kind.base_model, kind.source) == ("sdxl", "SDXL 1.0", "loaded model")
    shared.opts.sd_model_checkpoint = "other_q4.gguf"  # picked in Forge's list, not loaded yet
    assert compat.checkpoint(shared, sd_models).family == "unknown"
    shared.opts.sd_model_checkpoint = "gone.safetensors"  # an alias Forge no longer has: its first checkpoint
    assert compat.selected_checkpoint(shared, sd_models) is files["merge_q8.gguf"]
