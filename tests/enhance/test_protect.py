"""Protected spans always survive an LLM, whatever it does with the rest; an answer that garbles
them is refused (the caller falls back to the original prompt)."""
from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from lib_orchestrator.enhance import clean_output, is_refusal, protect, restore

WORDS = st.sampled_from(["cat", "misty forest", "golden hour", "1girl", "red scarf", "détaillé", "水彩", "neon"])
SPANS = st.sampled_from(["<lora:ink_wash:0.8>", "<lyco:film:1>", "(masterpiece:1.2)", "(red eyes:0.9)",
                         "[dog:cat:0.5]", "BREAK", "AND", "score_9", "source_anime", "rating_safe",
                         "easynegative"])


def prompts():
    return st.lists(st.one_of(WORDS, SPANS), min_size=1, max_size=12).map(", ".join)


def spans_in(prompt):
    found = re.findall(r"<[^>]+>|\([^()]*:[0-9.]+\)|\[[^\]]*\]|\bBREAK\b|\bAND\b|\b(?:score|source|rating)_\w+"
                       r"|\beasynegative\b", prompt)
    return sorted(found)


@settings(max_examples=300, deadline=None)
@given(prompts(), st.integers(0, 2**32 - 1))
def test_spans_survive_any_rewording_of_the_rest(prompt, seed):
    protected = protect(prompt, embeddings=["easynegative"])
    assert not spans_in(protected.text)  # the model sees none of them
    rng = random.Random(seed)
    pieces = [p for p in protected.text.split(", ") if p]
    rng.shuffle(pieces)  # a model that reorders, drops words and adds its own, keeping placeholders or not
    kept = [p for p in pieces if "⟦" in p and rng.random() < 0.7 or "⟦" not in p and rng.random() < 0.5]
    answer = ", ".join(kept + ["highly detailed", "cinematic lighting"])
    restored, note = restore(protected, answer)
    dropped = {protected.inline[int(n)] for n in re.findall(r"⟦(\d+)⟧", protected.text)
               if f"⟦{n}⟧" not in answer}
    if dropped & {"BREAK", "AND"}:
        assert restored is None and note.startswith("the model dropped")
    else:
        assert restored is not None and spans_in(restored) == spans_in(prompt)


@settings(max_examples=200, deadline=None)
@given(prompts())
def test_an_answer_that_repeats_or_invents_placeholders_is_refused(prompt):
    protected = protect(prompt, embeddings=["easynegative"])
    if protected.inline:
        assert restore(protected, protected.text + ", ⟦0⟧")[0] is None
    assert restore(protected, protected.text + f", ⟦{len(protected.inline)}⟧")[0] is None


def test_the_shape_of_a_restored_prompt():
    protected = protect("score_9, score_8_up, a (red:1.3) fox <lora:ink:0.8> BREAK snow <lora:film:1>")
    assert protected.text == "a ⟦0⟧ fox ⟦1⟧ snow" and protected.networks == ("<lora:ink:0.8>", "<lora:film:1>")
    restored, note = restore(protected, "a sly fox ⟦1⟧ in deep snow")
    assert restored == "score_9, score_8_up, a sly fox BREAK in deep snow, (red:1.3) <lora:ink:0.8> <lora:film:1>"
    assert note == "1 protected spans re-appended"
    # a BREAK or AND appended at the end would split or mix the prompt where the user did not
    assert restore(protected, "a sly ⟦0⟧ fox in deep snow") == (None, "the model dropped BREAK")


def test_chatter_thinking_fences_and_quotes_are_cleaned():
    assert clean_output("<think>the user wants a fox</think>\nSure! Here is the enhanced prompt:\n\n"
                        "\"a red fox, snow, golden hour\"\n\nThis prompt emphasises light.") == \
        "a red fox, snow, golden hour"
    assert clean_output("```text\n**Prompt:** a fox,\nsnow\n```") == "a fox, snow"
    assert clean_output("<think>never closed, the model ran out of tokens") == ""
    assert is_refusal("I'm sorry, but I can't help with that.") and not is_refusal("a sorry-looking fox")


def test_networks_and_prefixes_the_model_makes_up_are_dropped():
    protected = protect("score_9, a fox <lora:ink:0.8>")
    restored, _ = restore(protected, "score_9, score_8_up, a fox <lora:add_detail:1> <lora:ink:0.8>")
    assert restored == "score_9, a fox <lora:ink:0.8>"


def test_every_bracket_group_is_held_whole_nested_or_not():
    prompt = "((masterpiece)), (a, (b:1.1):1.3), [a|b], [day:night:0.5], [faded], plain words"
    protected = protect(prompt)
    assert protected.text == "⟦0⟧, ⟦1⟧, ⟦2⟧, ⟦3⟧, ⟦4⟧, plain words"
    assert protected.inline == ("((masterpiece))", "(a, (b:1.1):1.3)", "[a|b]", "[day:night:0.5]", "[faded]")
    assert restore(protected, "⟦4⟧ ⟦3⟧ ⟦2⟧ ⟦1⟧ ⟦0⟧, new words")[0] == (
        "[faded] [day:night:0.5] [a|b] (a, (b:1.1):1.3) ((masterpiece)), new words")


def test_the_model_is_told_what_each_placeholder_means():
    from lib_orchestrator.enhance.protect import meaning
    from lib_orchestrator.enhance.templates import load_template

    assert [meaning(s) for s in ("(red:1.2)", "[day:night:0.5]", "[a|b]", "((masterpiece))", "BREAK")] == [
        "red", "day then night", "a or b", "masterpiece", "BREAK"]
    protected = protect("a (red:1.2) fox BREAK snow")
    user = load_template("sd1").messages(protected.text, "", protected.inline)[1]["content"]
    assert "LOCKED: ⟦0⟧ (red), ⟦1⟧ (BREAK)" in user


def test_escaped_brackets_are_text_and_embeddings_match_any_case():
    protected = protect(r"ganyu \(genshin impact\), (smile:1.1), EasyNegative", ["easynegative"])
    assert protected.text == r"ganyu \(genshin impact\), ⟦0⟧, ⟦1⟧"
    assert protected.inline == ("(smile:1.1)", "EasyNegative")


def test_the_models_break_next_to_the_users_is_one_break():
    protected = protect("1girl, red hair BREAK 1boy")
    assert restore(protected, "1girl, red hair BREAK ⟦0⟧ 1boy")[0] == "1girl, red hair BREAK 1boy"


def test_a_refusal_is_one_the_model_wrote():
    assert not is_refusal('sign reading "I cannot sleep", a fox', 'sign reading "I cannot sleep"')
    assert is_refusal("I cannot help create that image.", 'sign reading "I cannot sleep"')
