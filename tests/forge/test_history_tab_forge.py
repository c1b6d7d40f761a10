"""The History sub-tab built with Forge's Gradio (4.40) through the stand-in: it mounts with its keys' relays, binds
Forge's Send to txt2img / img2img, and its handlers work on images Forge saved (a swatch's cells are a pair to
compare; their ratings reach the LoRA library browser)."""
from __future__ import annotations

import os
import shutil

import pytest

from lib_orchestrator import SAMPLE_LORAS

gr = pytest.importorskip("gradio")


@pytest.fixture
def tab_module(lora_dir, forge_app, tmp_path, monkeypatch):
    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    from modules import sd_models, shared

    shared.sd_model = sd_models.make_model("juggernautXL_v9.safetensors", "ab" * 32, family="sdxl")
    shared.opts.data["samples_save"] = True
    module = forge_app()["orchestrator_tab.py"]
    assert module.state.LIBRARY.wait(60) is not None
    module.HISTORY.thumbs_dir = str(tmp_path / "thumbs")
    return module


def blocks_by_id(tab):
    return {b.elem_id: b for b in tab.blocks.values() if getattr(b, "elem_id", None)}


def test_the_history_sub_tab_mounts_after_the_library_with_its_relays_and_legend(tab_module):
    from modules import errors, script_callbacks

    tab = script_callbacks.ui_tabs_callback()[0][0]
    found = blocks_by_id(tab)
    tabs = [b.label for b in tab.blocks.values() if type(b) is gr.Tab]
    assert tabs[tabs.index("LoRA library") + 1] == "History"
    assert {"Browse", "Compare", "LoRA leaderboard"} <= set(tabs)
    for relay in ("orchestrator_history_key", "orchestrator_history_key_send", "orchestrator_compare_key",
                  "orchestrator_compare_key_send"):
        assert found[relay].visible is False, relay
    assert "**x** reject" in found["orchestrator_history_keys"].value
    assert "**→** right is better" in found["orchestrator_compare_keys"].value
    assert found["orchestrator_history_gallery"].allow_preview is False  # the details show the image large
    assert errors.reported == []


def test_send_to_txt2img_and_img2img_are_forges_paste_bindings_with_the_infotext_and_the_image(tab_module):
    from modules import infotext_utils, script_callbacks

    infotext_utils.registered_param_bindings.clear()
    tab = script_callbacks.ui_tabs_callback()[0][0]
    found = blocks_by_id(tab)
    bindings = {b.paste_button.elem_id: b for b in infotext_utils.registered_param_bindings}
    to_txt = bindings["orchestrator_history_send_txt2img"]
    to_img = bindings["orchestrator_history_send_img2img"]
    assert (to_txt.tabname, to_txt.source_text_component, to_txt.source_image_component) == \
        ("txt2img", found["orchestrator_history_infotext"], None)
    assert (to_img.tabname, to_img.source_text_component) == ("img2img", found["orchestrator_history_infotext"])
    image = to_img.source_image_component
    # Forge passes a gr.Image's value to send_image_and_dimensions: a PIL image (a file path would be read
    # as base64 there)
    assert image is found["orchestrator_history_image"] and isinstance(image, gr.Image) and image.type == "pil"


def test_a_swatchs_cells_become_a_blind_pair_whose_judgement_reaches_the_library(tab_module):
    args = ["task(orchestrator-test)", "watercolor_wash_xl, lighthouse_keeper_xl", "", "", "a lighthouse at dusk", "",
            "0.8", 9, 2, 64, 64, 7.0, "none", ""]
    _, status, _, _ = tab_module._run_swatch(*args, {})
    assert "3/3 cells made" in status
    history = tab_module.state.HISTORY
    history.refresh()  # Forge's output folders, from its settings
    history.wait()
    model = tab_module.HISTORY
    assert model.status().startswith("4 images indexed")  # the grid and its three cells

    left, right, pair, note = model.next_pair("watercolor_wash_xl")
    assert left and right and "watercolor" not in left + right + note
    shown_left = history.store().image(pair[0])
    *_, reveal, made = model.judge("left", pair, "watercolor_wash_xl", 0)
    assert made == 1 and "left <b>won</b>" in reveal
    judged = history.store().comparisons()
    assert judged[0].winner == tuple((u.name, u.weight) for u in shown_left.loras)

    cell = next(r for r in history.store().images(range(1, 10)) if any(u.name == "lighthouse_keeper_xl"
                                                                        for u in r.loras))
    assert model.rate("5", cell.id)[0].startswith("★★★★★")
    board = model.leaderboard(rated_only=True)
    assert "lighthouse_keeper_xl" in board and "★" in board
    path = "character/lighthouse_keeper_xl.safetensors"
    assert "1 rated" in tab_module.MODEL.details_html(path)
    _, _, paths = tab_module.MODEL.search("", "", "", False, False, 0, "effectiveness", True)
    assert path in paths


def test_the_details_of_an_image_forge_saved_are_its_own_infotext(tab_module):
    args = ["task(orchestrator-test)", "watercolor_wash_xl", "", "", "a harbour at night", "", "1", 4, 2, 64, 64, 7.0,
            "none", ""]
    tab_module._run_swatch(*args, {})
    history = tab_module.state.HISTORY
    history.refresh()
    history.wait()
    row = next(r for r in history.store().images(range(1, 10)) if r.loras)
    image, html, infotext, rating = tab_module.HISTORY.details(row.id)
    from PIL import Image

    with Image.open(image) as saved:
        assert infotext == saved.info["parameters"]  # what Send to txt2img pastes is what Forge wrote
    assert "watercolor_wash_xl" in html and rating.startswith("not rated")
    assert os.path.dirname(image) == os.path.dirname(row.path)


def test_in_neo_the_history_sub_tab_mounts_and_binds_send_to(forge_stub, lora_dir, forge_app):
    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    with forge_stub.use_variant("neo"):  # no bind_buttons, no generation_parameters_copypaste of Forge's
        from modules import errors, infotext_utils, script_callbacks

        module = forge_app()["orchestrator_tab.py"]
        module.state.LIBRARY.wait(60)
        tab = script_callbacks.ui_tabs_callback()[0][0]
        assert "orchestrator_history_gallery" in blocks_by_id(tab)
        sent = {b.paste_button.elem_id: b.tabname for b in infotext_utils.registered_param_bindings}
        assert sent["orchestrator_history_send_txt2img"] == "txt2img"
        assert sent["orchestrator_history_send_img2img"] == "img2img"
        assert errors.reported == []


def test_the_compose_preview_picks_with_the_ratings_generation_uses(tab_module, tmp_path):
    """The preview promises the picks Forge will make: with ratings in the history, both follow them."""
    from ..history.forge_images import forge_infotext, write_image

    out = tmp_path / "rated"
    out.mkdir()
    # the two LoRAs this prompt's picks draw from (neither is named by a trigger: those are never moved)
    rated = [("neon_alley_xl", 5), ("neon_alley_xl", 5), ("noir_film_xl", 1), ("noir_film_xl", 1)]
    for k, (lora, _) in enumerate(rated):
        text = forge_infotext(f"a harbour <lora:{lora}:0.8>", "", [("Steps", 20), ("Seed", k), ("Size", "64x64"),
                                                                   ("Model", "juggernautXL_v9")])
        write_image(str(out / f"{k}.png"), text)
    history = tab_module.state.HISTORY
    history.add_folder(str(out))
    history.wait()
    store = history.store()
    for k, (_, stars) in enumerate(rated):
        store.rate(str(out / f"{k}.png"), stars=stars)
    table, messages = tab_module.MODEL.compose_preview("a quiet harbour at noon", 1, 3, "", "")
    assert "+feedback" in table and not messages
