"""Enhancing one prompt: the good path, and every way a small model fails, each falling back to the
original prompt with its reason; a dead server is skipped for a while."""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from lib_orchestrator.enhance.client import LlmError
from lib_orchestrator.enhance.enhance import count_tokens, enhance, trim_chunks, trim_to_budget

PROMPT = "score_9, a (red:1.2) fox, snow <lora:ink_wash:0.8>"


def test_an_answer_becomes_the_prompt_with_every_span_back():
    seen = []

    def ask(protected):
        seen.append(protected.text)
        return "a sly ⟦0⟧ fox in fresh snow, golden hour"

    result = enhance(PROMPT, ask)
    assert seen == ["a ⟦0⟧ fox, snow"]
    assert (result.status, result.prompt) == (
        "enhanced", "score_9, a sly (red:1.2) fox in fresh snow, golden hour <lora:ink_wash:0.8>")


def test_each_failure_falls_back_to_the_original_with_its_reason():
    def raises(protected):
        raise LlmError("cannot connect to http://localhost:1234/v1: start the server")

    cases = {
        "<think>hmm</think>": "the model's answer was empty",
        "I'm sorry, but I can't help with that request.": "the model refused",
        "a fox ⟦0⟧ and ⟦0⟧ again": "the model repeated placeholders [0]",
        "a fox ⟦5⟧": "the model invented placeholders [5]",
    }
    for answer, reason in cases.items():
        result = enhance(PROMPT, lambda protected, a=answer: a)
        assert (result.status, result.prompt, result.reason) == ("fallback", PROMPT, reason)
    result = enhance(PROMPT, raises)
    assert result.status == "fallback" and "start the server" in result.reason
    assert enhance("  ", raises).status == "skipped"


def test_a_long_answer_is_trimmed_from_the_end_keeping_the_lora_tags():
    long = ", ".join(f"detail number {k}" for k in range(60))
    result = enhance(PROMPT, lambda protected: f"a ⟦0⟧ fox, {long}", token_budget=75)
    assert count_tokens(result.prompt) <= 75 and result.prompt.endswith("<lora:ink_wash:0.8>")
    assert result.reason == "trimmed to 75 tokens" and "detail number 59" not in result.prompt


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_whatever_the_model_says_the_result_is_a_usable_prompt_with_the_lora_tag(answer):
    result = enhance(PROMPT, lambda protected: answer)
    assert result.prompt.strip() and "<lora:ink_wash:0.8>" in result.prompt and "(red:1.2)" in result.prompt
    assert result.status in ("enhanced", "fallback")


def test_each_break_chunk_is_trimmed_to_the_budget_on_its_own():
    # Forge encodes each BREAK chunk separately: a long first chunk may not borrow the room a short
    # second one leaves, nor cost the short one its words (the review saw 145 and 1 tokens for 75)
    long = ", ".join(f"first detail {k}" for k in range(40))  # 40 * 3 + 39 commas: far over 75
    result = enhance("a BREAK b", lambda protected: f"{long} ⟦0⟧ a lantern, sea spray", token_budget=75)
    first, second = (c.strip(" ,") for c in re.split(r"\bBREAK\b", result.prompt))
    assert count_tokens(first) <= 75 and first.startswith("first detail 0, first detail 1")
    assert second == "a lantern, sea spray"  # under budget: untouched
    assert result.reason == "trimmed to 75 tokens per BREAK chunk"


def test_a_break_inside_a_bracket_group_does_not_cut_a_chunk():
    prompt = "(red BREAK blue:1.2), " + ", ".join(f"tag{k}" for k in range(60)) + " BREAK fox"
    chunks = re.split(r"(?<!\()\bBREAK\b(?![^(]*\))", trim_chunks(prompt, 20))  # the test's own top-level split
    assert len(chunks) == 2 and chunks[0].startswith("(red BREAK blue:1.2), tag0")
    assert count_tokens(chunks[0]) <= 20 and chunks[1].strip() == "fox"


def test_trimming_never_empties_a_prompt():
    assert trim_to_budget("one two three", 1) == "one"
    assert trim_to_budget("(a:1.2), b", 1) == "(a:1.2)"


SPANS = ("(red:1.2)", "[day:night:0.5]", "BREAK", "My Embed", "(glowing runes, blue light:1.3)",
         "(((red:1.2) dress:1.1) hat:1.1)")
PIECES = st.sampled_from(["a fox", "snowy forest at dawn.", "It glows softly.", "wide shot", "score_8_up",
                          "very long descriptive clause about light", *SPANS])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(PIECES, min_size=1, max_size=6).map(" ".join), min_size=1, max_size=12).map(", ".join),
       st.integers(1, 80), st.booleans())
def test_trimming_fits_the_budget_unless_only_spans_are_left_and_keeps_every_span_whole(prompt, budget, prose):
    trimmed = trim_to_budget(prompt + " <lora:x:1>", budget, keep=["my embed"], prose=prose)
    assert trimmed.endswith(" <lora:x:1>")
    body = trimmed[:-len(" <lora:x:1>")]
    for span in SPANS:
        assert body.count(span) == prompt.count(span)
    if count_tokens(body) > budget - count_tokens("<lora:x:1>"):  # over: only spans and first words are left
        rest = body
        for span in sorted(SPANS, key=len, reverse=True):
            rest = rest.replace(span, "")
        assert len(rest.replace(",", " ").split()) <= len(re.split(r"(?<=[.!?])\s+" if prose else ", ", prompt))


def test_tokens_are_counted_as_clip_splits_them():
    assert count_tokens("score_8_up") == 5 and count_tokens("a (red:1.2) fox") == 9


def test_prose_is_trimmed_by_whole_sentences():
    text = "A keeper climbs the stairs, lamp in hand. Rain lashes the glass, wind howls. Behind him, a door opens."
    assert trim_to_budget(text, 22, prose=True) == text[:text.index(" Behind")]
