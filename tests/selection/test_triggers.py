"""Matching every trigger as a phrase, injecting the activation text verbatim."""
from __future__ import annotations

from dataclasses import replace

from lib_orchestrator.compose import compose
from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.selection import LoraIndex, Rules
from lib_orchestrator.selection.rules import CategoryRule
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
    poses_allowed = replace(RULES, fallback_categories=("pose",))  # a pose is never a fallback by default
    c = compose("t", "a cat", 3, index, poses_allowed, "sdxl", "SDXL 1.0")
    pick = c.loras[0]
    assert (pick.reason, pick.activation) == ("fallback", "hand on hip, looking back")
    assert c.prompt == f"a cat, hand on hip, looking back <lora:hip_pose:{pick.weight:g}>"


def test_a_characters_two_versions_share_her_name_and_only_one_is_picked():
    il = record("hu_tao", ["hu tao", "twintails"], ["hu tao, twintails"], category="character")
    pony = record("hu_tao_pony", ["score_9", "hu tao", "twintails"], ["score_9, hu tao, twintails"],
                  category="character", base="Pony")
    index = LoraIndex([il, pony, *OTHERS])
    c = compose("t", "hu tao, twintails", 1, index, Rules(min_total=1, max_total=3, detailer_probability=0.0),
                "sdxl", "Illustrious")
    names = [p.name for p in c.loras if p.reason in ("trigger", "match")]
    assert names.count("hu_tao") + names.count("hu_tao_pony") == 1


def test_one_lora_per_phrase_even_through_another_of_its_triggers():
    # hip_pose is picked first (both phrases) and claims `looking back` too, where back_pose would come in.
    back = record("back_pose", ["looking back", "from behind"], ["looking back, from behind"], base="Pony")
    index = LoraIndex([HIP, back, *OTHERS])
    rules = Rules(min_total=1, max_total=3, detailer_probability=0.0,
                  categories={**Rules().categories, "pose": CategoryRule(max=2)})
    for seed in range(20):
        c = compose("t", "hand on hip, looking back", seed, index, rules, "sdxl", "SDXL 1.0")
        assert [p.name for p in c.loras if p.reason in ("trigger", "match")] == ["hip_pose"], c.prompt


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


# --- which triggers name a LoRA on their own -----------------------------------------------------------

FRIEREN = record("frieren", ["frieren", "elf", "white hair", "twintails"], ["frieren, elf, white hair, twintails"],
                 category="character")
LIBRARY = [FRIEREN, HIP, *(record(f"style{i}", [f"stl{i}"], [f"stl{i}"], category="style") for i in range(299))]


def naming(index, name, tags):
    """Those of `tags` that, each alone as a prompt, name the LoRA as a whole phrase."""
    i = index.by_name[name]
    return [t for t in tags if index.score(t).get(i) is not None and index.score(t)[i].phrases]


def test_a_generic_tag_does_not_summon_a_character_in_a_large_library():
    index = LoraIndex(LIBRARY)
    assert len(index.records) == 301
    prompt = "1girl, white hair, smile, park"
    assert index.score(prompt)[index.by_name["frieren"]].terms  # her triggers' words still count…
    assert naming(index, "frieren", [prompt, "elf", "twintails"]) == []  # …but none of these names her
    for seed in range(30):
        c = compose("t", prompt, seed, index, Rules(), "sdxl", "SDXL 1.0")
        assert all(p.reason != "trigger" for p in c.loras if p.name == "frieren"), c.prompt


def test_a_character_is_still_named_by_her_name_and_a_pose_by_any_of_its_triggers():
    index = LoraIndex(LIBRARY)
    c = compose("t", "1girl, frieren, park", 0, index, RULES, "sdxl", "SDXL 1.0")
    assert [(p.name, p.reason, p.activation) for p in c.loras] == [("frieren", "trigger", None)]  # her own words
    c = compose("t", "1girl, looking back, park", 0, index, RULES, "sdxl", "SDXL 1.0")
    assert [(p.name, p.reason, p.activation) for p in c.loras] == [("hip_pose", "trigger", "hand on hip")]


def test_a_characters_name_is_her_first_trigger_past_prefixes_or_a_booru_tag():
    # Pony's score tags first, and Civitai's one trigger per entry: her name is still the first real one.
    pony = record("hu_tao_pony", ["score_9", "score_8_up", "hu tao", "twintails", "red eyes", "porkpie hat"],
                  ["score_9", "score_8_up", "hu tao", "twintails", "red eyes", "porkpie hat"],
                  category="character", base="Pony")
    bocchi = record("bocchi", ["1girl", "gotoh_hitori_(bocchi_the_rock)", "pink hair"],
                    ["1girl, gotoh_hitori_(bocchi_the_rock), pink hair"], category="character")
    index = LoraIndex([pony, bocchi, *OTHERS])
    assert naming(index, "hu_tao_pony", pony.trigger_words) == ["hu tao"]
    assert naming(index, "bocchi", bocchi.trigger_words) == ["gotoh_hitori_(bocchi_the_rock)"]


def test_every_alternative_of_several_triggers_gives_a_name():
    pack = record("frieren_party", ["fern", "purple hair", "frieren", "white hair", "stark"],
                  ["fern, purple hair", "frieren, white hair", "stark"], category="character")
    index = LoraIndex([pack, *OTHERS])
    assert naming(index, "frieren_party", pack.trigger_words) == ["fern", "frieren"]  # `stark`: a list entry


def test_appearance_words_name_a_lora_that_is_not_a_character():
    ponytail = record("ponytail_slider", ["ponytail slider"], ["ponytail slider"], category="slider")
    index = LoraIndex([ponytail, *OTHERS])
    c = compose("t", "1girl, ponytail slider", 0, index, RULES, "sdxl", "SDXL 1.0")
    assert [(p.name, p.reason) for p in c.loras] == [("ponytail_slider", "trigger")]


def test_a_bracketed_trigger_is_one_phrase_and_its_parts_name_nothing():
    colours = record("colours", ["(red, blue:1.2)", "vivid"], ["(red, blue:1.2), vivid"], category="concept")
    index = LoraIndex([colours, *OTHERS])
    assert index.score("red, smile")[index.by_name["colours"]].terms == ("red",)  # a word of the trigger
    assert naming(index, "colours", ["red", "blue", "red, smile", "vivid"]) == ["vivid"]


def test_prompt_prefixes_and_counts_of_people_name_no_lora():
    ink = record("ink_pony", ["score_9", "source_anime", "1girl", "inkstyle"],
                 ["score_9, source_anime, 1girl, inkstyle"], category="style", base="Pony")
    index = LoraIndex([ink, *OTHERS])
    assert naming(index, "ink_pony", ink.trigger_words) == ["inkstyle"]
