"""ADetailer's unit prompts expanded with their image's wildcard choices, through the Forge stand-in and the
stand-in ADetailer (tests/forge_stub/extensions_fake/adetailer, see tests/forge_stub/README.md)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from . import fake_gradio

FAKE_ADETAILER = Path(__file__).resolve().parents[1] / "forge_stub" / "extensions_fake" / "adetailer"
CHARACTERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
EYES = ["brown-eyes", "green-eyes", "grey-eyes"]
MAIN = "full body photo of __character__ in a garden"
OFF = [True, False]  # Orchestrator on, wildcards only (no LoRA picks)


@pytest.fixture
def classes(monkeypatch, forge_app, tmp_path):
    """Orchestrator and the stand-in ADetailer loaded as Forge loads them, with a wildcard folder of one
    character per line; returns {"orchestrator": class, "adetailer": class}."""
    import stub_control
    from modules import scripts, shared

    try:
        import gradio  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "gradio", fake_gradio)
    pack = tmp_path / "wildcards"
    pack.mkdir()
    (pack / "character.txt").write_text("\n".join(CHARACTERS) + "\n", encoding="utf-8")
    (pack / "eyes.txt").write_text("\n".join(EYES) + "\n", encoding="utf-8")
    shared.opts.data["orchestrator_wildcard_dirs"] = str(pack)
    stub_control.install_extension(str(FAKE_ADETAILER))
    forge_app(tabs=False)
    found = {d.script_class.title(d.script_class()): d.script_class for d in scripts.scripts_data}
    return {"orchestrator": found["Orchestrator"], "adetailer": found["ADetailer"]}


def unit(prompt: str = "", negative: str = "", model: str = "face_yolov8n.pt") -> dict:
    return {"ad_model": model, "ad_prompt": prompt, "ad_negative_prompt": negative}


def run(run_txt2img, classes, ad_args, order=("orchestrator", "adetailer"), **kw):
    kw.setdefault("prompt", MAIN)
    kw.setdefault("negative_prompt", "lowres")
    kw.setdefault("seed", 100)
    kw.setdefault("steps", 2)
    kw.setdefault("width", 64)
    kw.setdefault("height", 64)
    args = {"Orchestrator": OFF}
    if ad_args is not None:
        args["ADetailer"] = ad_args
    processed = run_txt2img([classes[name] for name in order if name in classes], args, **kw)
    return processed, getattr(run_txt2img.last_p, "adetailer_inpaints", [])


def character(text: str) -> str:
    """The character a prompt names, read from its words (independent of the product)."""
    names = [w.strip(",.'") for w in text.replace("'s", " ").split() if w.strip(",.'") in CHARACTERS]
    assert names, text
    return names[0]


@pytest.mark.parametrize("order", [("orchestrator", "adetailer"), ("adetailer", "orchestrator")])
def test_each_image_of_a_batch_details_its_own_character(classes, run_txt2img, order):
    ad = [True, False, unit("close-up of __character__'s face"), unit(model="None")]
    processed, inpaints = run(run_txt2img, classes, ad, order=order, batch_size=3, n_iter=2)
    assert len(processed.all_prompts) == 6 and len(set(processed.all_seeds)) == 6
    assert [i.index for i in inpaints] == list(range(6))
    for inpaint in inpaints:
        main = processed.all_prompts[inpaint.index]
        assert inpaint.prompts == (f"close-up of {character(main)}'s face",)
        assert inpaint.seed == processed.all_seeds[inpaint.index]
    assert len({character(p) for p in processed.all_prompts}) > 1  # the images differ: the test can fail


def test_the_users_unit_keeps_its_template(classes, run_txt2img):
    first = unit("__character__ face")
    args = [True, False, first, unit(model="None")]
    run(run_txt2img, classes, args, batch_size=2)
    assert first == unit("__character__ face")
    script_args = run_txt2img.last_p.script_args
    assert isinstance(script_args, tuple)  # the type Forge gave it


def test_two_units_and_the_negative_share_the_choices(classes, run_txt2img):
    ad = [True, False, unit("__character__ face, __eyes__", "__eyes__ blur"), unit("__character__ hands")]
    processed, inpaints = run(run_txt2img, classes, ad, prompt="__character__ with __eyes__",
                              negative_prompt="closed __eyes__", n_iter=3)
    for inpaint in inpaints:
        main = processed.all_prompts[inpaint.index]
        who, eyes = main.split(" with ")
        negative_eyes = processed.all_negative_prompts[inpaint.index].split()[-1]
        if inpaint.unit == 1:
            assert inpaint.prompts == (f"{who} face, {eyes}",)
            assert inpaint.negatives == (f"{negative_eyes} blur",)
        else:
            assert inpaint.prompts == (f"{who} hands",)


def test_variables_and_sep_and_prompt_tokens(classes, run_txt2img):
    ad = [True, False, unit("[PROMPT], ${who} smiling [SEP] ${who}'s hands"), unit(model="None")]
    processed, inpaints = run(run_txt2img, classes, ad, prompt="${who=!__character__}portrait of ${who}", n_iter=3)
    for inpaint in inpaints:
        main = processed.all_prompts[inpaint.index]
        assert inpaint.prompts == (f"{main}, {character(main)} smiling", f"{character(main)}'s hands")


def test_an_empty_adetailer_prompt_is_the_image_prompt_as_before(classes, run_txt2img):
    ad = [True, False, unit(""), unit(model="None")]
    processed, inpaints = run(run_txt2img, classes, ad, n_iter=2)
    assert [i.prompts for i in inpaints] == [(p,) for p in processed.all_prompts]
    assert all("Orchestrator ADetailer" not in t for t in processed.infotexts)


def test_a_plain_adetailer_prompt_is_left_as_written(classes, run_txt2img):
    ad = [True, False, unit("detailed face, (sharp:1.2) \\(style\\)"), unit(model="None")]
    processed, inpaints = run(run_txt2img, classes, ad, n_iter=2)
    assert [i.prompts for i in inpaints] == [("detailed face, (sharp:1.2) \\(style\\)",)] * 2


def test_adetailer_switched_off_changes_nothing(classes, run_txt2img):
    ad = [False, False, unit("__character__ face"), unit(model="None")]
    processed, inpaints = run(run_txt2img, classes, ad, n_iter=2)
    assert inpaints == []
    assert run_txt2img.last_p._orchestrator_adetailer is None


def test_without_adetailer_the_prompts_are_the_same(classes, run_txt2img):
    ad = [True, False, unit("__character__ face"), unit(model="None")]
    with_ad, _ = run(run_txt2img, classes, ad, n_iter=3)
    alone, inpaints = run(run_txt2img, {"orchestrator": classes["orchestrator"]}, None, n_iter=3)
    assert alone.all_prompts == with_ad.all_prompts
    assert inpaints == []


def test_rest_args_both_shapes(classes, run_txt2img):
    for ad in ({"args": [True, False, unit("__character__ face")]}, {"args": [unit("__character__ face")]}):
        processed, inpaints = run(run_txt2img, classes, ad, api=True, n_iter=2)
        assert [i.prompts for i in inpaints if i.unit == 1] == [
            (f"{character(p)} face",) for p in processed.all_prompts]


@pytest.mark.parametrize("order", [("orchestrator", "adetailer"), ("adetailer", "orchestrator")])
def test_the_infotext_says_what_adetailer_got(classes, run_txt2img, order):
    from modules import infotext_utils

    ad = [True, False, unit("__character__ face"), unit(model="None")]
    processed, _ = run(run_txt2img, classes, ad, order=order, batch_size=2, n_iter=2)
    for k, text in enumerate(processed.infotexts[processed.index_of_first_image:]):
        params = infotext_utils.parse_generation_parameters(text)
        assert params["ADetailer prompt"] == "__character__ face"  # ADetailer's own key keeps the template
        got = json.loads(params["Orchestrator ADetailer"])
        assert got == [{"unit": 1, "prompt": f"{character(processed.all_prompts[k])} face"}]


def test_a_missing_wildcard_leaves_the_prompt_as_written(classes, run_txt2img, capsys):
    ad = [True, False, unit("__nobody__ face"), unit(model="None")]
    processed, inpaints = run(run_txt2img, classes, ad, n_iter=2)
    assert [i.prompts for i in inpaints] == [("__nobody__ face",)] * 2
    assert len(processed.images) >= 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "ADetailer" in line and "nobody" in line]
    assert lines and all(line.startswith("[Orchestrator]") for line in lines)


def test_same_prompt_for_every_image_gives_every_image_the_same_detail(classes, run_txt2img):
    from modules import scripts  # noqa: F401

    ad = [True, False, unit("__character__ face"), unit(model="None")]
    fixed = [True, False, 1, 6, 0.3, "", True]  # the seventh control: same prompt for every image
    processed = run_txt2img([classes["orchestrator"], classes["adetailer"]],
                            {"Orchestrator": fixed, "ADetailer": ad}, prompt=MAIN, seed=7, n_iter=3, steps=2,
                            width=64, height=64)
    inpaints = run_txt2img.last_p.adetailer_inpaints
    assert len(set(processed.all_prompts)) == 1
    assert {i.prompts for i in inpaints} == {(f"{character(processed.all_prompts[0])} face",)}


@pytest.mark.parametrize("variant", ["classic", "neo"])
def test_other_hosts(classes, run_txt2img, variant):
    import stub_control

    stub_control.set_variant(variant)
    ad = [True, False, unit("__character__ face"), unit(model="None")]
    for order in (("orchestrator", "adetailer"), ("adetailer", "orchestrator")):
        processed, inpaints = run(run_txt2img, classes, ad, order=order, batch_size=2, n_iter=2)
        assert [i.prompts for i in inpaints] == [(f"{character(p)} face",) for p in processed.all_prompts]


def test_variables_per_batch_reach_the_adetailer_prompt(classes, run_txt2img):
    from modules import shared

    shared.opts.data["orchestrator_variables"] = "batch"
    ad = [True, False, unit("${who} face"), unit(model="None")]
    processed, inpaints = run(run_txt2img, classes, ad, prompt="${who=!__character__}${who} by __eyes__",
                              batch_size=2, n_iter=3)
    assert len({character(p) for p in processed.all_prompts}) == 1  # one character for the whole run
    assert [i.prompts for i in inpaints] == [(f"{character(p)} face",) for p in processed.all_prompts]


def test_adetailers_second_process_call_does_not_plan_again(classes, run_txt2img, monkeypatch):
    # ADetailer calls every script's process() again on copy(p) after each batch; the plan is made already
    # (with LLM enhancement on, planning again would ask the LLM again for nothing).
    module = classes["orchestrator"].process.__globals__  # Forge keeps script modules out of sys.modules
    calls = []
    real = module["plan_job"]
    monkeypatch.setitem(module, "plan_job", lambda *a, **k: calls.append(1) or real(*a, **k))
    ad = [True, False, unit("close-up of __character__'s face")]
    processed, inpaints = run(run_txt2img, classes, ad, batch_size=2, n_iter=3)
    assert len(inpaints) == 6
    assert len(calls) == 1
