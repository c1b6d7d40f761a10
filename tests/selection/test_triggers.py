"""Matching every trigger as a phrase, injecting the activation text verbatim."""
from __future__ import annotations

from lib_orchestrator.compose import compose
from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.selection import LoraIndex, Rules
from lib_orchestrator.swatches import plan_swatch


def record(name, triggers, activations, category="pose", base="SDXL 1.0"):
    return LoraRecord(f"{name}.safetensors", name, base_model=base, family="sdxl", category=category,
                      trigger_words=tuple(triggers), activation_text=tuple(activations))


HIP = record("hip_pose", ["hand on hip", "looking back"], ["hand on hip, looking back"])
OTHERS = [record(f"style{i}", [f"stl{i}"], [f"stl{i}"], category="style") for i in range(20)]
RULES = Rules(min_total=1, max_total=1, detailer_probability=0.0)


def test_a_prompt_tag_matches_a_trigger_inside_an_activation_text_as_a_whole_phrase():
    index = LoraIndex([HIP, *OTHERS])
    matches = index.score("1girl, looking back, smile")
    i = index.by_name["hip_pose"]
    assert matches[i].phrase == "looking back" and matches[i].phrases == ("looking back",)
    assert index.score("1girl, back, smile").get(i) is None or index.score("1girl, back, smile")[i].phrase is None


def test_the_picked_lora_adds_its_activation_text_less_what_the_prompt_says():
    index = LoraIndex([HIP, *OTHERS])
    c = compose("t", "1girl, looking back, smile", 3, index, RULES, "sdxl", "SDXL 1.0")
    pick = c.loras[0]
    assert (pick.name, pick.reason, pick.activation) == ("hip_pose", "trigger", "hand on hip")
    assert c.prompt == f"1girl, looking back, hand on hip, smile <lora:hip_pose:{pick.weight:g}>"


def test_a_lora_drawn_without_its_trigger_in_the_prompt_adds_the_whole_activation_text():
    index = LoraIndex([HIP])
    c = compose("t", "a cat", 3, index, RULES, "sdxl", "SDXL 1.0")
    pick = c.loras[0]
    assert (pick.reason, pick.activation) == ("fallback", "hand on hip, looking back")
    assert c.prompt == f"a cat, hand on hip, looking back <lora:hip_pose:{pick.weight:g}>"


def test_one_lora_per_phrase_even_through_another_of_its_triggers():
    il = record("hu_tao", ["hu tao", "twintails"], ["hu tao, twintails"], category="character")
    pony = record("hu_tao_pony", ["score_9", "hu tao", "twintails"], ["score_9, hu tao, twintails"],
                  category="character", base="Pony")
    index = LoraIndex([il, pony, *OTHERS])
    c = compose("t", "hu tao, twintails", 1, index, Rules(min_total=1, max_total=3, detailer_probability=0.0),
                "sdxl", "Illustrious")
    names = [p.name for p in c.loras if p.reason in ("trigger", "match")]
    assert names.count("hu_tao") + names.count("hu_tao_pony") == 1


def test_a_phrase_shared_by_a_few_loras_still_names_them():
    poses = [record(f"pose{i}", ["looking back"], ["looking back"]) for i in range(4)]
    index = LoraIndex([*poses, *OTHERS])
    c = compose("t", "looking back", 1, index, RULES, "sdxl", "SDXL 1.0")
    assert c.loras[0].name.startswith("pose") and c.loras[0].reason == "trigger"


def test_a_swatch_adds_the_first_activation_alternative_verbatim():
    swatch = plan_swatch("a lighthouse", 1, [HIP], (0.5,), "SDXL 1.0")
    assert swatch.cells[1].prompt == "a lighthouse, hand on hip, looking back <lora:hip_pose:0.5>"
    said = plan_swatch("looking back, hand on hip, a lighthouse", 1, [HIP], (0.5,), "SDXL 1.0")
    assert said.cells[1].prompt == "looking back, hand on hip, a lighthouse <lora:hip_pose:0.5>"
    half = plan_swatch("a lighthouse, looking back", 1, [HIP], (0.5,), "SDXL 1.0")
    assert half.cells[1].prompt == "a lighthouse, looking back, hand on hip <lora:hip_pose:0.5>"
