"""The job planner the Forge script relies on, without Forge: per-image plans, names Forge can load,
the batch rule, hires prompts, infotext values and settings from REST args or pasted infotext."""
from __future__ import annotations

from dataclasses import replace

import pytest

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.job import JobSettings, plan_job
from lib_orchestrator.library import scan_library
from lib_orchestrator.library.service import LibraryService
from lib_orchestrator.provenance import KEY_LORAS, KEY_NOTE, KEY_TEMPLATE, parse_loras_value
from lib_orchestrator.selection import LoraIndex, Rules
from lib_orchestrator.wildcards import PromptEngine

from .conftest import BUNDLED


@pytest.fixture(scope="module")
def index():
    return LoraIndex(scan_library(SAMPLE_LORAS).records)


@pytest.fixture(scope="module")
def expand():
    engine = PromptEngine([str(BUNDLED)])
    return lambda text, seed: engine.prompt(text, seed) if text else text


def plan(index, expand, templates, seeds, settings=None, **kw):
    settings = settings or JobSettings(enabled=True)
    return plan_job(templates, [""] * len(templates), seeds, settings, expand, index, Rules(), "sdxl", "SDXL 1.0",
                    kw.pop("known", None), **kw)


def test_every_image_is_composed_from_its_own_seed(index, expand):
    p = plan(index, expand, ["__templates/fantasy__"] * 4, [10, 11, 12, 13])
    assert len(set(p.prompts)) == 4
    again = plan(index, expand, ["__templates/fantasy__"], [12])
    assert again.prompts[0] == p.prompts[2]  # image k of a job is the image of its own seed


def test_names_forge_cannot_load_are_left_out_with_a_warning(index, expand):
    known = {r.name for r in index.records if r.name != "watercolor_wash_xl"}
    p = plan(index, expand, ["watercolor wash, a lighthouse keeper"], [1], known=known)
    assert "watercolor_wash_xl" not in p.prompts[0]
    assert any("not in Forge's LoRA list" in w for w in p.warnings)
    assert "lighthouse_keeper_xl" in p.prompts[0]


def test_a_batch_shares_its_first_images_loras_and_says_so(index, expand):
    p = plan(index, expand, ["__templates/noir__"] * 4, [1, 2, 3, 4], batch_size=2)
    tags = [sorted(t for t in prompt.split() if t.startswith("<lora:")) for prompt in p.prompts]
    assert tags[0] == tags[1] and tags[2] == tags[3]
    assert p.images[1].note and not p.images[0].note
    assert KEY_NOTE in p.infotext_values(1)


def test_hires_prompts_follow_the_composed_prompts(index, expand):
    p = plan(index, expand, ["a lighthouse keeper"] * 2, [5, 6],
             hr_templates=["a lighthouse keeper", "sharp details"])
    assert p.hr_prompts[0] == p.prompts[0]
    assert p.hr_prompts[1].startswith("sharp details") and "<lora:lighthouse_keeper_xl:" in p.hr_prompts[1]


def test_unknown_lora_tags_in_the_users_own_hires_prompt_are_removed_and_reported(index, expand):
    known = {r.name for r in index.records}
    p = plan(index, expand, ["a lighthouse keeper"], [5], known=known,
             hr_templates=["sharp details <lora:nonexistent:0.5>, <lora:add_detail_xl:0.4>"])
    assert "nonexistent" not in p.hr_prompts[0]
    assert p.hr_prompts[0].startswith("sharp details") and "<lora:add_detail_xl:0.4>" in p.hr_prompts[0]
    assert "<lora:lighthouse_keeper_xl:" in p.hr_prompts[0]  # the image's own picks still go with it
    assert "hires prompt: nonexistent" in p.images[0].note and any("nonexistent" in w for w in p.warnings)


def test_fixed_prompt_and_no_library(index, expand):
    p = plan(index, expand, ["{a|b|c|d|e|f} cat"] * 6, list(range(6)),
             settings=JobSettings(enabled=True, fixed_prompt=True, loras=False))
    assert len(set(p.prompts)) == 1
    p = plan(None, expand, ["a cat"], [1])
    assert p.prompts == ["a cat"] and "still indexing" in p.images[0].note


def test_infotext_values_name_the_template_and_the_loras(index, expand):
    p = plan(index, expand, ["a lighthouse keeper, misty pine forest"], [3])
    values = p.infotext_values(0)
    assert values[KEY_TEMPLATE] == "a lighthouse keeper, misty pine forest"
    names = [name for name, _, _ in parse_loras_value(values[KEY_LORAS])]
    assert names == [pick.name for pick in p.images[0].composed.loras]


def test_settings_from_rest_args_and_from_infotext():
    assert JobSettings.from_args([True]) == JobSettings(enabled=True)
    assert JobSettings.from_args(["true", "0", "2", "3", "0.5"]) == \
        JobSettings(enabled=True, loras=False, min_loras=2, max_loras=3, detailer=0.5)
    settings = JobSettings(True, False, 2, 3, 0.1, "r.yaml", True, "__templates/noir__")
    assert JobSettings.from_infotext(settings.to_infotext()) == settings
    assert JobSettings.from_infotext("not json") == JobSettings(enabled=True)
    rules = JobSettings(enabled=True, min_loras=5, max_loras=2, detailer=3).rules(Rules())
    assert (rules.min_total, rules.max_total, rules.detailer_probability) == (2, 5, 1.0)


def test_library_service_indexes_in_the_background_and_survives_errors(tmp_path):
    service = LibraryService(lambda: [SAMPLE_LORAS], lambda: str(tmp_path / "c.sqlite"))
    assert service.current() is None
    service.refresh()
    service.refresh()  # a second request while the first runs
    assert service.wait(30) is not None and len(service.current().records) == 20

    def no_roots():
        raise OSError("settings unreadable")

    broken = LibraryService(no_roots, lambda: None)
    broken.refresh()
    assert broken.wait(30) is None and isinstance(broken.last_error, OSError)


def test_unknown_lora_tags_the_user_wrote_are_removed_and_reported(index, expand):
    known = {r.name for r in index.records}
    p = plan(index, expand, ["a cat <lora:nonexistent:0.8>, <lora:add_detail_xl:0.5>"], [1], known=known)
    assert "<lora:nonexistent" not in p.prompts[0] and "<lora:add_detail_xl:0.5>" in p.prompts[0]
    assert "nonexistent" in p.images[0].note and any("nonexistent" in w for w in p.warnings)


def test_enhancement_settings_round_trip_and_old_infotexts_stay_the_same():
    on = JobSettings(enabled=True, enhance=True, genre="cosmic horror")
    assert JobSettings.from_infotext(on.to_infotext()) == on
    assert "enhance" not in JobSettings(enabled=True).to_infotext()
    assert JobSettings.from_args([True, True, 1, 6, 0.3, "", False, "", "true", "noir"]).genre == "noir"


def test_enhancement_runs_between_wildcards_and_picks_once_per_prompt_and_seed():
    from lib_orchestrator.enhance import Enhanced

    asked = []

    def enhance(prompt, seed):
        asked.append((prompt, seed))
        return Enhanced(f"{prompt}, enhanced", prompt, "enhanced", model="m", template="sdxl@1")

    settings = JobSettings(enabled=True, loras=False, fixed_prompt=True, enhance=True)
    plan = plan_job(["a {cat|dog}"] * 3, [""] * 3, [5, 6, 7], settings, lambda t, s: t.replace("{cat|dog}", "cat"),
                    None, Rules(), "sdxl", "SDXL 1.0", None, enhance=enhance)
    assert asked == [("a cat", 5)] and plan.prompts == ["a cat, enhanced"] * 3
    assert '"original":"a cat"' in plan.infotext_values(2)["Orchestrator LLM"]


DEFAULT = JobSettings(enabled=True)


@pytest.mark.parametrize("args, expected", [
    # a value its field cannot use is the field's default; a finite number out of range is clamped
    ([True, True, "1e999"], DEFAULT),
    ([True, True, float("nan"), float("inf")], DEFAULT),
    ([True, True, 1, 6, "nan"], DEFAULT),
    ([True, True, {"count": 3}, [2], None], DEFAULT),
    ([True, True, True, False, True], DEFAULT),  # a bool where a number belongs
    ([True, True, 10**400, -10**400, 1e300], JobSettings(enabled=True, min_loras=20, max_loras=0, detailer=1.0)),
    ([True, True, " 2 ", "3.9", "-0.5"], JobSettings(enabled=True, min_loras=2, max_loras=3, detailer=0.0)),
    ([True, "maybe", 1, 6, 0.3, 42, [1], {"a": 1}, 2, None], DEFAULT),  # wrong types: defaults
    ([True, 0, 1, 6, 0.3, "r.yaml", 1.0, "t", "on", "noir"],
     JobSettings(True, False, 1, 6, 0.3, "r.yaml", True, "t", True, "noir")),
    ([True] + [""] * 20, JobSettings(enabled=True, loras=False, rules_file="", template="")),  # too many: ignored
    ("true", JobSettings()), (None, JobSettings()), ({"enabled": True}, JobSettings()), (7, JobSettings()),
])
def test_settings_from_any_rest_args_fall_back_to_defaults_and_never_raise(args, expected):
    assert JobSettings.from_args(args) == expected


@pytest.mark.parametrize("text", [
    '{"count":[1,"1e999"]}', '{"detailer":"nan"}', '{"count":3}', '{"count":null}', '{"count":[1,2,3]}', "[1,2]",
    "null", '"str"', "1e999", '{"detailer":1e999}', '{"count":[true,false]}', "[" * 100000, None, 42, b"\xff",
    '{"loras":"no such","fixed":{},"template":7,"genre":[]}',
])
def test_settings_from_any_pasted_infotext_fall_back_to_defaults_and_never_raise(text):
    assert JobSettings.from_infotext(text) == DEFAULT


def test_pasting_restores_settings_and_enhances_again_only_with_the_template():
    from lib_orchestrator.job import enhance_after_paste, pasted_settings
    from lib_orchestrator.provenance import KEY_SETTINGS

    made = JobSettings(True, False, 2, 3, 0.1, "", False, "__templates/noir__", True, "noir")
    assert pasted_settings({KEY_SETTINGS: made.to_infotext()}) == made
    assert pasted_settings({"Prompt": "a cat"}) == JobSettings()  # an image made without Orchestrator
    assert enhance_after_paste({KEY_SETTINGS: made.to_infotext()})
    assert not enhance_after_paste({KEY_SETTINGS: replace(made, template="").to_infotext()})
    assert not enhance_after_paste({KEY_SETTINGS: '{"enhance":"1e999","template":["x"]}'})


def test_why_the_llm_did_not_choose_is_in_each_images_note(index, expand):
    from lib_orchestrator.selection.llm_choice import ChoiceResult

    down = lambda prompt, seed, cards: ChoiceResult((), "cannot connect to the LLM server: start it")  # noqa: E731
    p = plan(index, expand, ["a neon alley at night"] * 2, [1, 2], JobSettings(enabled=True, match="llm"), chooser=down)
    for image in p.images:
        assert image.note == "LLM LoRA choice fell back to hybrid picks: cannot connect to the LLM server: start it"
        assert image.composed.loras and all(pick.reason != "llm" for pick in image.composed.loras)
    assert plan(index, expand, ["a neon alley at night"], [1]).images[0].note == ""  # hybrid: nothing to say
