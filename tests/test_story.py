"""Storytelling: a bible into N scene prompts in order, the characters' descriptors word for word in
every scene whatever the LLM says, beats from the outline when the LLM fails, and a batch to run."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib_orchestrator.enhance.client import LlmError
from lib_orchestrator.enhance.enhance import count_tokens
from lib_orchestrator.enhance.templates import TEMPLATE_NAMES, load_template
from lib_orchestrator.errors import OrchestratorError
from lib_orchestrator.story import SHOTS, make_story, parse_bible, story_batch
from lib_orchestrator.story.beats import beats_schema

from .conftest import REPO

SAMPLE = REPO / "samples" / "stories" / "lighthouse.yaml"


@pytest.fixture
def bible():
    return parse_bible(SAMPLE.read_text(encoding="utf-8"), str(SAMPLE))


def beats_answer(*beats):
    return json.dumps({"beats": [dict(shot=s, characters=list(c), action=a, location="the lamp room",
                                      time_of_day="night", mood="tense") for s, c, a in beats]})


def test_the_llm_plans_beats_and_code_writes_every_character_verbatim(bible):
    asked = []

    def ask(messages, schema):
        asked.append((messages, schema))
        return beats_answer(("wide shot", ["keeper"], "keeps the lamp burning"),
                            ("close-up", ["keeper", "stranger", "ghost"], "she shows him a brass compass"),
                            ("medium shot", [], "a ship appears on the horizon"))

    scenes, note = make_story(bible, 3, 100, load_template("sdxl"), "noir card", ask)
    assert note == ""
    (messages, schema), = asked
    assert schema == beats_schema(bible, 3)
    assert schema["properties"]["beats"]["items"]["properties"]["characters"]["items"]["enum"] == ["keeper", "stranger"]
    assert "CHARACTERS: keeper: an old man" in messages[1]["content"] and "noir card" in messages[1]["content"]
    assert [s.seed for s in scenes] == [100, 101, 102]
    keeper, stranger = bible.characters
    assert scenes[0].prompt == ("Wide shot of an old man with a white beard, a yellow raincoat and a wool cap, "
                                "keeps the lamp burning, the lamp room, night, tense mood, film grain, muted palette."
                                " <lora:lighthouse_keeper_xl:0.8>")
    assert keeper.prose in scenes[1].prompt and stranger.prose in scenes[1].prompt  # "ghost" is nobody
    assert scenes[1].beat.characters == ("keeper", "stranger")
    assert scenes[2].loras == () and "<lora" not in scenes[2].prompt


def test_tag_families_put_break_between_characters_and_their_prefix_first(bible):
    ask = lambda m, s: beats_answer(("close-up", ["keeper", "stranger"], "sharing tea"))  # noqa: E731
    (scene,), _ = make_story(bible, 1, 0, load_template("pony"), "", ask)
    assert scene.prompt.startswith("score_9, score_8_up, score_7_up, score_6_up, score_5_up, score_4_up, "
                                   "source_anime, rating_safe, 1boy, old man, white beard, yellow raincoat, wool cap"
                                   " BREAK 1girl, young woman, long wet black hair, grey sailor coat, sharing tea")


def test_the_budget_holds_for_each_break_chunk_not_for_the_chunks_pooled(bible):
    # two characters, so two chunks: the short first one must not lend its room to the second
    beat = dict(shot="close-up", characters=["keeper", "stranger"], mood="tense",
                action="she lights the lamp, trims the wick, wipes the glass, pours the oil, winds the clock, "
                       "checks the brass, sighs",
                location="the lamp room at the top of the lighthouse, brass and glass everywhere",
                time_of_day="late night, after the storm, before the dawn")
    (scene,), _ = make_story(bible, 1, 0, load_template("pony"), "", lambda m, s: json.dumps({"beats": [beat]}))
    first, last = scene.prompt.split(" <lora:")[0].split(" BREAK ")
    assert first.endswith("1boy, old man, white beard, yellow raincoat, wool cap")  # characters are never cut
    assert last.startswith("1girl, young woman, long wet black hair, grey sailor coat")
    assert count_tokens(last) <= 75 and count_tokens(first) + count_tokens(last) < 150


@pytest.mark.parametrize("failure", [LlmError("cannot connect"), "not json at all", '{"beats": []}'])
def test_without_usable_beats_the_outline_plans_them(bible, failure):
    def ask(messages, schema):
        if isinstance(failure, Exception):
            raise failure
        return failure

    scenes, note = make_story(bible, 5, 0, load_template("sd1"), "", ask)
    assert note.startswith("planned from the outline")
    assert len(scenes) == 5 and scenes[0].beat.shot == "wide shot"
    assert scenes[0].beat.action == "Elias keeps the light through a winter storm"
    assert scenes[-1].beat.action == "At dawn they watch a ship appear on the horizon"
    assert scenes[1].beat.characters == ("stranger",)  # "A stranger washes ashore": named by its id
    assert scenes[2].beat.characters == ("stranger",)  # no id named: each in turn


def test_too_few_beats_are_filled_in_from_the_outline(bible):
    ask = lambda m, s: beats_answer(("wide shot", ["keeper"], "a storm"))  # noqa: E731
    scenes, note = make_story(bible, 3, 0, load_template("sdxl"), "", ask)
    assert len(scenes) == 3 and scenes[0].beat.action == "a storm" and "1 beats of 3" in note


@settings(max_examples=int(os.environ.get("ORCH_HYPOTHESIS_EXAMPLES", "150")), deadline=None)
@given(answer=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=300),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                               st.sampled_from(["beats", "shot", "characters", "action", "mood", "location"]),
                               inner, max_size=5), max_leaves=30),
       name=st.sampled_from(TEMPLATE_NAMES), count=st.integers(1, 6))
def test_any_answer_gives_n_scenes_each_with_its_characters_verbatim_within_budget(answer, name, count):
    bible = parse_bible(SAMPLE.read_text(encoding="utf-8"))
    template = load_template(name)
    scenes, _ = make_story(bible, count, 7, template, "", lambda m, s: json.dumps(answer))
    assert [s.index for s in scenes] == list(range(count))
    for scene in scenes:
        assert scene.beat.shot in SHOTS
        for cid in scene.beat.characters:
            character = bible.character(cid)
            assert (character.prose if template.form == "prose" else character.tags) in scene.prompt
        body = scene.prompt.split(" <lora:")[0]
        last = body.split(" BREAK ")[-1]  # the scene's own words follow the last character, in the last chunk
        assert count_tokens(last) <= template.budget or not any(
            (scene.beat.action, scene.beat.location, scene.beat.mood))


def test_a_story_becomes_a_batch_that_saves_and_loads(bible, tmp_path):
    from lib_orchestrator.batches import load_batch, save_batch

    scenes, _ = make_story(bible, 4, 50, load_template("sdxl"))
    batch = story_batch("lighthouse", bible, scenes, 50, negative="lowres")
    save_batch(batch, str(tmp_path / "lighthouse.json"))
    loaded = load_batch(str(tmp_path / "lighthouse.json"))
    assert [im.prompt for im in loaded.images] == [s.prompt for s in scenes]
    assert [im.seed for im in loaded.images] == [50, 51, 52, 53]
    assert loaded.images[0].loras == (("lighthouse_keeper_xl", 0.8, "story"),)
    assert loaded.template == "story: The Keeper and the Stranger"


@pytest.mark.parametrize("text, where, says", [
    ("title: x\ncharacters:\n  - id: a\n    tags: [1girl\n", ":5:", "YAML"),
    ("characters:\n  - id: a\n    tags: x\n  - id: a\n    tags: y\n", ":4:", "two characters"),
    ("characters:\n  - id: keeper\n    tags: x\n    lora: k:heavy\n", ":4:11:", "not a number"),
    ("characters:\n  - id: 9lives\n    tags: cat\n", ":2:", "needs an id"),
    ("characters:\n  - id: ghost\n", ":2:", "neither tags nor prose"),
    ("- a list\n", ":1:", "a mapping"),
    ("characters:\n  - id: a\n    tags: {x: 1}\n", ":3:11:", "must be text"),
    ("characters:\n  - id: a\n    tags: x\n    lora: k:nan\n", ":4:11:", "not a finite number"),
    ("characters:\n  - id: a\n    tags: x\n    lora: ':0.5'\n", ":4:11:", "not a LoRA name"),
    ("a: &a [x, x]\nb: &b [*a, *a]\nsetting: [*b, *b]\n", ":3:10:", "must be text"),
    ("[" * 3000, ":1:1:", "nested too deeply"),
    ("title: 2001-13-45\n", ":1:1:", "cannot be read: month must be in 1..12"),  # PyYAML's own errors
    ("title: !!int x\n", ":1:1:", "cannot be read"),
    ("title: " + "1" * 5000 + "\n", ":1:1:", "cannot be read"),
    ("characters:\n  - {id: &b [x, x], tags: x}\n", ":2:5:", "needs an id"),  # never str() of a list
    ("characters:\n" + "  - {id: a, tags: x}\n" * 101, ":2:3:", "at most 100 characters"),
    ("title: x\n" + "#" * 100_000, ":1:1:", "longer than 100,000 characters"),
    ("characters: [{id: a, tags: &t [" + ", ".join(["x" * 3000] * 2) + "]}, {id: b, tags: [" + ", ".join(["*t"] * 20000)
     + "]}]", ":1:", "longer than 4000"),
])
def test_a_broken_bible_says_where_and_what_to_do(text, where, says):
    with pytest.raises(OrchestratorError) as info:
        parse_bible(text, "story.yaml")
    assert f"story.yaml{where}" in info.value.one_line() and says in info.value.one_line()


def cli(*argv):
    import io

    from lib_orchestrator.cli import main

    out, err = io.StringIO(), io.StringIO()
    return main([str(a) for a in argv], out, err), out.getvalue(), err.getvalue()


def test_story_cli_without_an_llm_plans_from_the_outline_and_saves_a_batch(tmp_path):
    code, out, err = cli("story", SAMPLE, "--scenes", 6, "--seed", 10, "--out", tmp_path / "keeper.json")
    assert code == 0
    assert len(out.splitlines()) == 6 and all("yellow raincoat" in line or "sailor coat" in line
                                              for line in out.splitlines())
    assert "planned from the outline (no LLM)" in err and "saved 6 scenes" in err
    assert json.loads((tmp_path / "keeper.json").read_text())["images"][5]["seed"] == 15


def test_story_cli_asks_the_llm_for_beats(serve):
    from .enhance.fake_servers import backend

    answer = json.loads(beats_answer(("wide shot", ["keeper"], "lights the lamp"),
                                     ("close-up", ["stranger"], "opens her eyes")))
    server = serve(backend("lmstudio", model=lambda body: answer))
    code, out, err = cli("story", SAMPLE, "--scenes", 2, "--url", server.url, "--format", "jsonl")
    assert (code, err) == (0, "")
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["action"] for r in records] == ["lights the lamp", "opens her eyes"]
    assert records[0]["loras"] == [{"name": "lighthouse_keeper_xl", "weight": 0.8}]
    body = server.requests[-1][2]
    assert body["response_format"]["json_schema"]["schema"]["properties"]["beats"]["minItems"] == 2


def test_story_cli_bad_bible_exits_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("characters:\n  - id: ghost\n")
    code, _, err = cli("story", tmp_path / "bad.yaml")
    assert code == 2 and "bad.yaml:2:5:" in err and "neither tags nor prose" in err
    assert cli("story", tmp_path / "missing.yaml")[0] == 2


def test_llm_beats_name_characters_in_any_case_and_keep_bible_order(bible):
    ask = lambda m, s: beats_answer(("close-up", ["STRANGER", "Keeper"], "tea"))  # noqa: E731
    (scene,), _ = make_story(bible, 1, 0, load_template("sd1"), "", ask)
    assert scene.beat.characters == ("keeper", "stranger")


def test_unusable_beats_are_not_cached(bible):
    from lib_orchestrator.story.beats import llm_asker

    cached = []

    def chat(messages, schema, seed, max_tokens, label, usable):
        answer = '{"beats": [{"shot": "x"}]}'
        cached.append((usable(answer), max_tokens))
        return answer

    scenes, note = make_story(bible, 24, 0, load_template("sd1"), "", llm_asker(chat, bible, 0, "story"))
    assert cached == [(False, 2600)] and note.startswith("planned from the outline") and len(scenes) == 24
