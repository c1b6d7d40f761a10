"""Hybrid matching in the picker: meaning adds candidates, a named trigger still decides, weak meaning is not
forced in, the LLM chooses only among candidates, and a fallback never changes the prompt's subject.

The vectors come from a tiny embedder written here: each word counts on the axis of the idea it belongs to
(a table of this test's own), so similarities are known without a model.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.selection import LoraIndex, Rules, load_rules, pick_loras
from lib_orchestrator.selection.llm_choice import ChoiceResult, LlmChoice
from lib_orchestrator.selection.match import rank_candidates
from lib_orchestrator.selection.rules import RulesError
from lib_orchestrator.selection.semantic import SemanticIndex

IDEAS = {  # word -> idea axis
    "sunbeams": 0, "sunlight": 0, "rays": 0, "god": 0, "shafts": 0,
    "woodblock": 1, "ukiyoe": 1, "edo": 1, "print": 1,
    "silk": 2, "qipao": 2, "dress": 2, "shanghai": 2, "collar": 2,
    "hu": 3, "tao": 3, "pyro": 3, "undertaker": 3,
    "knight": 4, "armor": 4, "plate": 4, "steel": 4,
}
NOISE = 5  # every text has a little of an idea no LoRA is about, as real embeddings do
OTHER = 400  # other words each count a little on one of these axes (by a checksum: the same in every run)


class IdeaEmbedder:
    kind, model = "test", "ideas"

    def __init__(self):
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), NOISE + 1 + OTHER), np.float32)
        for k, text in enumerate(texts):
            out[k, NOISE] = 0.6
            for word in re.findall(r"[a-z]+", text.lower()):
                if word in IDEAS:
                    out[k, IDEAS[word]] += 1.0
                elif len(word) > 3:  # not `a`, `of`, `on`: they say nothing of what a text is about
                    out[k, NOISE + 1 + zlib.crc32(word.encode()) % OTHER] += 0.3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def record(name, category, triggers=(), base="SDXL 1.0"):
    return LoraRecord(f"{name}.safetensors", name, base_model=base, family="sdxl", category=category,
                      trigger_words=tuple(triggers), activation_text=(", ".join(triggers),) if triggers else ())


LIBRARY = [
    record("god_rays_xl", "concept", ["god rays"]),
    record("ukiyoe_xl", "style", ["ukiyoe"]),
    record("qipao_xl", "clothing", ["qipao"]),
    record("hu_tao_xl", "character", ["hu tao"]),
    record("plate_armor_xl", "clothing", ["plate armor"]),
    record("chun_li_xl", "character", ["chun-li"]),
    record("hands_on_hips_xl", "pose", ["hands on hips"]),
    record("detail_tweaker_xl", "detailer", ["add detail"]),
]
RULES = Rules(min_total=1, max_total=2, detailer_probability=0.0, temperature=0.0)


def indexed(records=LIBRARY):
    index = LoraIndex(records)
    return index.with_semantic(SemanticIndex.build(index.records, IdeaEmbedder()))


def picks(index, prompt, rules=RULES, seed=1, chooser=None):
    return pick_loras(index, prompt, seed, rules, "sdxl", "SDXL 1.0", chooser)


def test_a_prompt_naming_no_trigger_gets_the_lora_it_describes_by_meaning():
    index = indexed()
    found = picks(index, "shafts of sunlight over a valley")
    assert [(p.name, p.reason) for p in found.picks][:1] == [("god_rays_xl", "semantic")]
    pick = found.picks[0]
    assert pick.score == pick.similarity and 0.5 < pick.similarity <= 1.0
    # keywords alone find nothing here: the picks are a fallback, and never the character or the outfit
    keyword = picks(index, "shafts of sunlight over a valley", replace(RULES, match="keyword"))
    assert all(p.reason == "fallback" and p.category in ("style", "concept", "detailer") for p in keyword.picks)


def test_a_named_trigger_always_wins_and_meaning_only_adds():
    index = indexed()
    found = picks(index, "hu tao, shafts of sunlight", replace(RULES, max_total=3))
    assert found.picks[0].name == "hu_tao_xl" and found.picks[0].reason == "trigger"
    assert ("god_rays_xl", "semantic") in [(p.name, p.reason) for p in found.picks]


def test_a_prompt_about_nothing_in_the_library_is_not_forced_onto_its_nearest_lora():
    index = indexed()
    assert rank_candidates(index, "a bowl of fruit on a table", "hybrid", "sdxl") == []
    found = picks(index, "a bowl of fruit on a table")
    assert all(p.reason == "fallback" for p in found.picks)


def test_ranked_candidates_put_triggers_first_then_meaning_and_words_together():
    index = indexed()
    ranked = rank_candidates(index, "edo woodblock print, qipao", "hybrid", "sdxl")
    assert ranked[0].name == "qipao_xl" and ranked[0].reason == "trigger"
    assert ranked[1].name == "ukiyoe_xl" and ranked[1].reason in ("semantic", "match")
    assert all(c.similarity is not None for c in ranked)
    keyword = rank_candidates(index, "edo woodblock print, qipao", "keyword", "sdxl")
    assert [c.name for c in keyword] == ["qipao_xl"] and keyword[0].similarity is None


def test_semantic_mode_keeps_triggers_and_drops_word_only_matches():
    index = indexed([*LIBRARY, record("lantern_xl", "concept", ["paper lantern"])])
    assert "lantern_xl" in [c.name for c in rank_candidates(index, "qipao, a knight by a lantern", "hybrid", "sdxl")]
    names = [c.name for c in rank_candidates(index, "qipao, a knight by a lantern", "semantic", "sdxl")]
    assert names[0] == "qipao_xl" and "plate_armor_xl" in names
    assert "lantern_xl" not in names  # a word in common is no evidence of meaning


def test_a_character_comes_by_her_name_never_by_resemblance():
    index = indexed()
    assert rank_candidates(index, "a pyro undertaker", "semantic", "sdxl") == []
    assert [c.name for c in rank_candidates(index, "hu tao", "semantic", "sdxl")] == ["hu_tao_xl"]


def test_an_incompatible_lora_is_never_a_semantic_candidate():
    index = indexed([*LIBRARY, record("god_rays_sd15", "concept", ["god rays"], base="SD 1.5")])
    names = [c.name for c in rank_candidates(index, "shafts of sunlight", "hybrid", "sdxl")]
    assert "god_rays_xl" in names and "god_rays_sd15" not in names


def test_without_vectors_hybrid_is_keyword_matching_exactly():
    plain = LoraIndex(LIBRARY)
    for seed in range(20):
        a = picks(plain, "qipao, 1girl, plate armor", replace(RULES, match="hybrid", temperature=0.5), seed)
        b = picks(plain, "qipao, 1girl, plate armor", replace(RULES, match="keyword", temperature=0.5), seed)
        assert a == b


def test_a_prompt_vector_is_made_once_for_the_images_of_a_job():
    index = LoraIndex(LIBRARY)
    embedder = IdeaEmbedder()
    index = index.with_semantic(SemanticIndex.build(index.records, embedder))
    before = embedder.calls
    for seed in range(10):
        picks(index, "shafts of sunlight", seed=seed)
    assert embedder.calls == before + 1


# -- the LLM's choice ---------------------------------------------------------------------------------
class FakeChooser:
    def __init__(self, answer):
        self.answer, self.offered = answer, []

    def __call__(self, prompt, seed, cards):
        self.offered.append([c.id for c in cards])
        return self.answer(cards) if callable(self.answer) else self.answer


def test_llm_picks_come_in_its_order_with_its_reason_and_only_from_the_candidates():
    index = indexed()
    chooser = FakeChooser(ChoiceResult((LlmChoice("chun_li_xl", "made up"), LlmChoice("ukiyoe_xl", "Edo print"),
                                        LlmChoice("god_rays_xl", "light")), None))
    rules = replace(RULES, match="llm", max_total=3)
    found = picks(index, "edo woodblock print of sunlight rays", rules, chooser=chooser)
    offered = chooser.offered[0]
    assert "ukiyoe_xl" in offered and "chun_li_xl" not in offered
    assert [(p.name, p.reason, p.why) for p in found.picks] == [("ukiyoe_xl", "llm", "Edo print"),
                                                               ("god_rays_xl", "llm", "light")]
    assert not found.warnings


def test_a_failed_llm_choice_falls_back_to_hybrid_picks_and_says_why():
    index = indexed()
    chooser = FakeChooser(ChoiceResult((), "cannot connect to the LLM server: start it"))
    found = picks(index, "shafts of sunlight", replace(RULES, match="llm"), chooser=chooser)
    assert found.picks[0].name == "god_rays_xl" and found.picks[0].reason == "semantic"
    assert found.warnings == ("LLM LoRA choice fell back to hybrid picks: cannot connect to the LLM server: "
                              "start it",)
    assert picks(index, "shafts of sunlight", replace(RULES, match="llm")).warnings == (
        "LLM LoRA choice is not set up here: hybrid picks",)


def test_an_llm_choosing_nothing_gets_only_a_neutral_fallback():
    index = indexed()
    found = picks(index, "shafts of sunlight", replace(RULES, match="llm"), chooser=FakeChooser(ChoiceResult((), None)))
    assert all(p.reason == "fallback" and p.category in ("style", "concept", "detailer") for p in found.picks)


def test_a_named_trigger_is_picked_before_the_llm_is_asked_and_not_offered_to_it():
    index = indexed()
    chooser = FakeChooser(lambda cards: ChoiceResult(tuple(LlmChoice(c.id, "") for c in cards), None))
    found = picks(index, "hu tao, shafts of sunlight", replace(RULES, match="llm", max_total=3), chooser=chooser)
    assert found.picks[0].name == "hu_tao_xl" and found.picks[0].reason == "trigger"
    assert "hu_tao_xl" not in chooser.offered[0]


# -- fallbacks never change the subject --------------------------------------------------------------------
SUBJECTS = ("character", "clothing", "pose")
WORDS = st.sampled_from(["1girl", "sunlight", "woodblock", "knight", "fruit", "city", "qipao", "hu tao", "rain",
                         "masterpiece", "portrait", "steel", "print", "a", "of", "(best quality:1.2)", "BREAK"])


@settings(max_examples=150, deadline=None)
@given(words=st.lists(WORDS, max_size=8), seed=st.integers(0, 2**32 - 1), vectors=st.booleans(),
       mode=st.sampled_from(["keyword", "semantic", "hybrid"]))
def test_under_default_rules_no_character_outfit_or_pose_is_ever_a_fallback(words, seed, vectors, mode):
    index = indexed() if vectors else LoraIndex(LIBRARY)
    rules = replace(Rules(), match=mode)
    for p in pick_loras(index, ", ".join(words), seed, rules, "sdxl", "SDXL 1.0").picks:
        if p.reason in ("fallback", "detailer"):
            assert p.category not in SUBJECTS, (words, p)


def test_the_rules_file_can_allow_more_fallback_categories_and_says_where_it_is_wrong(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("fallback: [character]\nmatch: semantic\nsemantic: {min: 0.1, relative: 0.5}\n", "utf-8")
    rules = load_rules(str(path))
    assert (rules.fallback_categories, rules.match, rules.semantic_min, rules.semantic_relative) == \
        (("character",), "semantic", 0.1, 0.5)
    found = picks(LoraIndex(LIBRARY), "a bowl of fruit", replace(rules, min_total=1, max_total=1, match="keyword"))
    assert [p.category for p in found.picks] == ["character"]
    for text, where, says in (("fallback: [hero]\n", (1, 11), "unknown category 'hero'"),
                              ("match: vibes\n", (1, 8), "match must be one of keyword, semantic, hybrid, llm"),
                              ("semantic: {relative: 2}\n", (1, 22), "between 0 and 1"),
                              ("embed: {server: [a]}\n", (1, 17), "embed.server must be a single value")):
        path.write_text(text, "utf-8")
        try:
            load_rules(str(path))
        except RulesError as exc:
            assert (exc.location.line, exc.location.column) == where and says in exc.message, (text, exc)
        else:
            raise AssertionError(f"{text!r} was accepted")


def test_an_outfit_by_meaning_alone_is_ranked_but_drawn_only_over_the_strict_bar():
    index = indexed()
    prompt = "a silk gown from shanghai"
    found = rank_candidates(index, prompt, "hybrid", "sdxl")
    assert (found[0].name, found[0].reason, found[0].pickable) == ("qipao_xl", "semantic", True)
    assert picks(index, prompt).picks[0].name == "qipao_xl"
    cautious = replace(RULES, semantic_strict_min=1.5)  # no prompt stands out that far: outfits are never drawn
    found = rank_candidates(index, prompt, "hybrid", "sdxl", rules=cautious)
    assert (found[0].name, found[0].pickable) == ("qipao_xl", False)
    assert all(p.name != "qipao_xl" for seed in range(20) for p in picks(index, prompt, cautious, seed).picks)
    # the LLM judges it all the same, and what it chooses is drawn
    chooser = FakeChooser(lambda cards: ChoiceResult(tuple(LlmChoice(c.id, "") for c in cards[:1]), None))
    chosen = picks(index, prompt, replace(cautious, match="llm"), chooser=chooser)
    assert "qipao_xl" in chooser.offered[0] and chosen.picks[0].name == "qipao_xl"


def test_a_character_is_never_matched_by_a_word_of_her_looks():
    lucy = record("lucy_cyberpunk", "character", ["lucy (cyberpunk)", "grey hair", "red eyeliner"])
    index = indexed([*LIBRARY, lucy])
    for mode in ("keyword", "hybrid"):
        assert "lucy_cyberpunk" not in [c.name for c in rank_candidates(index, "a red car, grey sky", mode, "sdxl")]
        assert [c.name for c in rank_candidates(index, "lucy, night city", mode, "sdxl")][:1] == ["lucy_cyberpunk"]


def test_one_word_of_a_characters_name_that_names_no_one_does_not_pick_her():
    power = record("power_chainsaw_man", "character", ["power (chainsaw man)", "horns"])
    knight = record("wandering_knight", "character", ["wandering knight"])
    index = indexed([*LIBRARY, power, knight])
    for prompt in ("a man in a suit", "a knight on a horse"):
        assert [c.name for c in rank_candidates(index, prompt, "keyword", "sdxl")] == [], prompt
    assert [c.name for c in rank_candidates(index, "power, city", "keyword", "sdxl")] == ["power_chainsaw_man"]
    assert [c.name for c in rank_candidates(index, "wandering knight", "keyword", "sdxl")][:1] == ["wandering_knight"]
