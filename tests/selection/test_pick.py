"""LoRA picking on the fixture library: the rules hold for every seed, prompt and checkpoint."""
from __future__ import annotations

import re
from collections import Counter

import pytest

from lib_orchestrator.compose import compose
from lib_orchestrator.library import compatibility, family_of, scan_library
from lib_orchestrator.selection import LoraIndex, Rules
from lib_orchestrator.selection.index import checkpoint_base
from lib_orchestrator.selection.rules import CategoryRule
from lib_orchestrator.selection.text import normalise_tag, prompt_tags
from lib_orchestrator.wildcards import PromptEngine

from ..conftest import BUNDLED
from ..library_fixtures import generate

CHECKPOINTS = [("sd1", None), ("sdxl", None), ("sdxl", "Illustrious"), ("sdxl", "Pony"), ("flux", None)]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    generate(root, "tiny", seed=11)
    return LoraIndex(scan_library(str(root / "Lora")).records)


@pytest.fixture(scope="module")
def prompts():
    engine = PromptEngine([str(BUNDLED)])
    texts = list(engine.texts("__templates/*__", seed=0, count=40))
    return texts + ["1girl, frieren, white hair", "watercolor, painterly", "a cat", "", "add detail"]


def composed(index, prompts, rules=None):
    rules = rules or Rules()
    for family, base in CHECKPOINTS:
        checkpoint = checkpoint_base(family, base)
        for k, prompt in enumerate(prompts):
            yield checkpoint, compose("t", prompt, k, index, rules, family, checkpoint)


def test_compatibility_is_never_violated(index, prompts):
    for checkpoint, c in composed(index, prompts):
        for pick in c.loras:
            assert pick.record is not None and not pick.record.excluded
            assert family_of(pick.record.base_model) == family_of(checkpoint)
            assert compatibility(pick.record.base_model, checkpoint) > 0, (pick.name, checkpoint)


def test_counts_category_limits_and_conflict_groups_hold(index, prompts):
    rules = Rules(min_total=2, max_total=4)
    for _, c in composed(index, prompts, rules):
        assert len(c.loras) <= rules.max_total
        per_category = Counter(p.category for p in c.loras)
        for category, n in per_category.items():
            assert n <= rules.category(category).max, (category, c.prompt)
        assert per_category["style"] <= 1  # the default conflict group
    # The minimum holds wherever the compatible pool can fill it.
    assert all(len(c.loras) >= 2 for _, c in composed(index, ["a cat", "x"], rules))


def test_custom_conflict_groups_and_category_minimums(index, prompts):
    rules = Rules(conflicts=(("character", "clothing"),),
                  categories={**Rules().categories, "concept": CategoryRule(min=1, max=1)})
    for _, c in composed(index, prompts, rules):
        per_category = Counter(p.category for p in c.loras)
        assert per_category["character"] + per_category["clothing"] <= 1
        assert per_category["concept"] == 1 or not index.pool("sdxl", "SDXL 1.0", "concept")


def test_a_prompt_naming_a_trigger_picks_the_lora_that_owns_it(index):
    # every trigger counts: a trigger that is only this LoRA's names it
    owners = Counter(normalise_tag(t) for r in index.records for t in {normalise_tag(t) for t in r.trigger_words})
    tried = 0
    for r in index.records:
        if not r.trigger_words or owners[normalise_tag(r.trigger_words[0])] != 1:
            continue
        trigger = r.trigger_words[0]
        c = compose("t", f"masterpiece, {trigger}", 1, index, Rules(), r.family, r.base_model)
        assert r.name in [p.name for p in c.loras], (r.name, trigger)
        assert [p for p in c.loras if p.name == r.name][0].reason == "trigger"
        tried += 1
    assert tried >= 10


def test_activation_text_appears_once(index, prompts):
    for _, c in composed(index, prompts):
        for pick in c.loras:
            if pick.activation:
                text = " , ".join(prompt_tags(c.prompt))
                phrase = " , ".join(prompt_tags(pick.activation))
                assert len(re.findall(rf"(?<!\w){re.escape(phrase)}(?!\w)", text)) == 1, (pick.activation, c.prompt)
        assert len(re.findall(r"<lora:", c.prompt)) == len(c.loras)


def test_an_activation_the_prompt_already_says_is_not_added_again(index):
    frieren = [r for r in index.records if r.trigger_words and r.trigger_words[0] == "frieren"][0]
    c = compose("t", "frieren, smiling", 3, index, Rules(), frieren.family, frieren.base_model)
    assert c.prompt.lower().count("frieren") == 1 + sum("frieren" in p.name.lower() for p in c.loras)


def test_same_seed_same_picks_and_reroll_changes_them(index, prompts):
    other = LoraIndex(index.records)
    first = [compose("t", p, 7, index, Rules(), "sdxl", "SDXL 1.0").to_dict() for p in prompts]
    again = [compose("t", p, 7, other, Rules(), "sdxl", "SDXL 1.0").to_dict() for p in prompts]
    assert first == again
    rerolled = [compose("t", p, 8, index, Rules(), "sdxl", "SDXL 1.0").to_dict() for p in prompts]
    assert rerolled != first


def test_weights_come_from_preferred_weight_or_the_category_rule(index, prompts):
    rules = Rules(jitter=0.1)
    for _, c in composed(index, prompts, rules):
        for pick in c.loras:
            rule = rules.category(pick.category)
            if pick.record.preferred_weight:
                lo = hi = pick.record.preferred_weight
            elif rule.weight_range:
                lo, hi = rule.weight_range
            else:
                lo = hi = rule.lora_weight
            assert lo - 0.1 - 0.005 <= pick.weight <= hi + 0.1 + 0.005, (pick.name, pick.weight)


def test_sliders_can_get_negative_weights(index, prompts):
    rules = Rules(categories={**Rules().categories, "slider": CategoryRule(min=1, max=1, weight_range=(-2, -1))})
    weights = [p.weight for _, c in composed(index, prompts, rules) for p in c.loras
               if p.category == "slider" and not p.record.preferred_weight]
    assert weights and all(-2 <= w <= -1 for w in weights)


def test_user_loras_are_kept_and_count_toward_the_limit(index):
    c = compose("t", "a cat <lora:my_own:0.7>, <lora:another:1>", 3, index, Rules(min_total=1, max_total=2),
                "sdxl", "SDXL 1.0")
    assert [p.reason for p in c.loras] == ["user", "user"]
    assert c.prompt == "a cat <lora:my_own:0.7>, <lora:another:1>"


def test_pinned_and_blocked(index):
    target = [r for r in index.records if r.family == "sdxl"][0]
    rules = Rules(pinned=(target.name,), blocked=tuple(r.name for r in index.records if r.category == "detailer"))
    for seed in range(30):
        c = compose("t", "a cat", seed, index, rules, "sdxl", "SDXL 1.0")
        assert c.loras[0].name == target.name and c.loras[0].reason == "pinned"
        assert all(p.category != "detailer" for p in c.loras)
    far = compose("t", "a cat", 1, index, Rules(pinned=(target.name,)), "sd1", "SD 1.5")
    assert any("does not load" in w for w in far.warnings)


def test_what_is_already_said_is_read_the_way_prompts_are_written():
    from lib_orchestrator.selection.text import unsaid

    assert unsaid("bokeh, depth of field", "a cat, Bokeh,  depth_of_field, (sharp:1.1)") is None
    assert unsaid("frieren, elf, pointy ears", "frieren, smiling") is None
    assert unsaid("frieren, elf, pointy ears", "1girl, frieren elf mage") is None  # named in its own words
    assert unsaid("elf", "shelf, books") == "elf"
    # A trigger after the first is left out only when the prompt holds it as a tag.
    assert unsaid("hand on hip, looking back", "1girl, Looking_Back") == "hand on hip"
    assert unsaid("hand on hip, looking back", "looking back at viewer") == "hand on hip, looking back"


def test_negative_text_of_picked_loras_goes_to_the_negative_prompt_once():
    from lib_orchestrator import SAMPLE_LORAS

    samples = LoraIndex(scan_library(SAMPLE_LORAS).records)
    c = compose("t", "a portrait, 35mm film grain", 1, samples, Rules(), "flux", "Flux.1 D", negative="lowres")
    assert c.prompt == "a portrait, 35mm film grain <lora:film_grain_flux:0.8>"  # its trigger is already there
    assert c.negative_prompt == "lowres, digital noise"
    c = compose("t", "35mm film grain", 1, samples, Rules(), "flux", "Flux.1 D", negative="digital noise")
    assert c.negative_prompt == "digital noise"
