"""Feedback in picks: the user's verdicts (history scores) move which LoRAs are drawn, by as much as the rules'
`feedback` says, and not at all at 0 or without verdicts; triggers, pins and the user's own tags never move."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.selection import LoraIndex, Rules, load_rules, pick_loras
from lib_orchestrator.selection.rules import RulesError

SEEDS = range(3000)


def record(name, category, tags=(), triggers=()):
    return LoraRecord(f"{name}.safetensors", name, base_model="SDXL 1.0", family="sdxl", category=category,
                      tags=tuple(tags), trigger_words=tuple(triggers),
                      activation_text=(", ".join(triggers),) if triggers else ())


# Two style LoRAs a prompt about watercolour matches equally, two more the fallback draws from, a character named
# by her trigger, and filler so the pools are not tiny.
LIBRARY = [
    record("wash_a", "style", ["watercolor", "painting"]),
    record("wash_b", "style", ["watercolor", "painting"]),
    record("neutral_1", "concept", ["gears"]),
    record("neutral_2", "concept", ["clouds"]),
    record("frieren_xl", "character", ["elf"], ["frieren"]),
    *[record(f"filler_{k}", "concept", [f"thing{k}"]) for k in range(20)],
]
RULES = Rules(min_total=1, max_total=1, detailer_probability=0.0, match="keyword")


def picks(index, prompt, rules, seeds=SEEDS):
    return [tuple((p.name, p.reason) for p in pick_loras(index, prompt, seed, rules, "sdxl", "SDXL 1.0").picks)
            for seed in seeds]


def counts(index, prompt, rules):
    return Counter(name for chosen in picks(index, prompt, rules) for name, _ in chosen)


@pytest.fixture(scope="module")
def index():
    return LoraIndex(LIBRARY)


def test_without_ratings_the_two_equal_loras_are_drawn_about_equally(index):
    c = counts(index, "watercolor painting of a harbour", RULES)
    assert c["wash_a"] + c["wash_b"] == len(SEEDS)
    assert abs(c["wash_a"] - c["wash_b"]) < 0.1 * len(SEEDS)


def test_the_better_rated_of_two_equal_loras_is_drawn_more_often(index):
    rated = index.with_feedback({"wash_a": 1.0, "WASH_B": -1.0})  # names in any case
    c = counts(rated, "watercolor painting of a harbour", RULES)
    # factor e^(2*0.25*score): 1.65 for a, 0.61 for b -> a is drawn ~73% of the time (1.65 / 2.26)
    share = c["wash_a"] / len(SEEDS)
    assert 0.68 < share < 0.78, share
    stronger = counts(rated, "watercolor painting of a harbour", replace(RULES, feedback=1.0))
    assert stronger["wash_a"] > c["wash_a"]  # strength is a dial


def test_feedback_off_gives_exactly_the_picks_of_no_feedback(index):
    rated = index.with_feedback({"wash_a": 2.0, "wash_b": -2.0, "neutral_1": 1.5, "frieren_xl": -3.0})
    off = replace(RULES, feedback=0.0)
    for prompt in ("watercolor painting", "a quiet street", "frieren, elf, watercolor"):
        assert picks(rated, prompt, off, range(500)) == picks(index, prompt, RULES, range(500))


def test_ratings_of_loras_not_in_the_library_change_nothing(index):
    rated = index.with_feedback({"someone_else": 2.0})
    assert picks(rated, "watercolor painting", RULES, range(300)) == picks(index, "watercolor painting", RULES,
                                                                           range(300))


def test_a_moved_pick_says_so_in_its_reason(index):
    rated = index.with_feedback({"wash_a": 1.0})
    reasons = {reason for chosen in picks(rated, "watercolor painting", RULES, range(200)) for name, reason in chosen
               if name == "wash_a"}
    assert reasons == {"match+feedback"}
    unrated = {reason for chosen in picks(rated, "watercolor painting", RULES, range(200)) for name, reason in chosen
               if name == "wash_b"}
    assert unrated == {"match"}


def test_fallback_draws_shift_too():
    # nothing in the prompt matches: the fallback draws from the neutral pool; a rejected LoRA sinks there
    index = LoraIndex(LIBRARY).with_feedback({"neutral_1": -2.0, "neutral_2": 2.0})
    c = counts(index, "zzz qqq", RULES)
    plain = counts(LoraIndex(LIBRARY), "zzz qqq", RULES)
    # among the 22 concept LoRAs: e^1 = 2.72 against 20 unrated and e^-1 = 0.37 -> 2.72 / 23.09 of the concept draws
    # instead of 1 / 22, about 2.6 times as many
    assert c["neutral_2"] > 2 * plain["neutral_2"]
    assert c["neutral_1"] < plain["neutral_1"] / 2
    assert {reason for chosen in picks(index, "zzz qqq", RULES, range(300)) for name, reason in chosen
            if name == "neutral_2"} == {"fallback+feedback"}


def test_triggers_pins_and_the_users_own_tags_are_never_moved(index):
    rated = index.with_feedback({"frieren_xl": -3.0, "wash_a": -3.0})
    rules = replace(RULES, max_total=3, pinned=("wash_a",))
    for chosen in picks(rated, "frieren, <lora:neutral_1:0.5>", rules, range(100)):
        named = dict(chosen)
        assert named["frieren_xl"] == "trigger" and named["wash_a"] == "pinned" and named["neutral_1"] == "user"


def test_temperature_zero_takes_the_best_after_feedback(index):
    rated = index.with_feedback({"wash_b": 1.0})
    c = counts(rated, "watercolor painting", replace(RULES, temperature=0.0))
    assert c["wash_b"] == len(SEEDS)


def test_the_rules_key(tmp_path):
    def load(text):
        path = tmp_path / "rules.yaml"
        path.write_text(text, encoding="utf-8")
        return load_rules(str(path))

    assert Rules().feedback == 0.25  # modest by default
    assert load("feedback: 0.6\n").feedback == 0.6
    assert load("feedback: off\n").feedback == 0.0
    assert load("feedback: on\n").feedback == 0.25
    with pytest.raises(RulesError) as info:
        load("count: {max: 2}\nfeedback: 3\n")
    assert info.value.location.line == 2 and "between 0 and 1" in str(info.value)
    with pytest.raises(RulesError):
        load("feedback: [1]\n")
