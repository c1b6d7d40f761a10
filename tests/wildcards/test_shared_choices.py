"""Extra prompts (ADetailer's) drawn with the choices of their image's main prompt (shared_choices.py)."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib_orchestrator import BUNDLED_WILDCARDS
from lib_orchestrator.errors import OrchestratorError, TemplateError
from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards.shared_choices import expand_with, is_template

from ..conftest import write_files
from .test_properties import FILES, template_strategy

# Each character is one line: what an extra prompt shows tells which line the main prompt drew.
CHARACTERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
PACK = {
    "character.txt": "\n".join(CHARACTERS) + "\n",
    "hair.txt": "red hair\nblue hair\n{long|short} green hair\n",
    "eyes.txt": "brown eyes\ngreen eyes\ngrey eyes\n",
    **FILES,
}
SEEDS = range(60)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    write_files(root, PACK)
    return PromptEngine([str(root)])


def first_character(text: str) -> str:
    """The character a prompt names first, read from the text (independent of the engine)."""
    words = [w.strip(",.") for w in text.split()]
    return next(w for w in words if w in CHARACTERS)


def test_the_face_prompt_names_the_character_of_the_body(engine):
    main = "full body photo of __character__, __hair__, standing"
    seen = set()
    for seed in SEEDS:
        out = expand_with(engine, main, ["close-up of __character__ face, __hair__"], seed)
        assert out.main == engine.prompt(main, seed)
        hair = out.main.split(", ")[1]
        assert out.extras == (f"close-up of {first_character(out.main)} face, {hair}",)
        seen.add(first_character(out.main))
    assert len(seen) > 3  # the seeds draw different characters: the test is not passing on one value


def test_the_first_wildcard_written_gives_the_shared_value(engine):
    # The immediate variable is set before the text around it is drawn; the first __character__ written wins.
    main = "portrait of __character__ with ${friend=!__character__}${friend} and __character__"
    for seed in SEEDS:
        out = expand_with(engine, main, ["__character__"], seed)
        assert out.extras == (first_character(out.main),)


def test_variables_of_the_main_prompt_are_read_by_the_extras(engine):
    main = "${who=!__character__}${eyes=!__eyes__}a knight named ${who}, ${eyes}"
    for seed in SEEDS:
        out = expand_with(engine, main, ["${who}'s face, ${eyes}", "${who}"], seed)
        who = first_character(out.main)
        eyes = out.main.split(", ")[1]
        assert out.extras == (f"{who}'s face, {eyes}", who)


def test_a_variable_drawn_where_it_is_read_takes_the_shared_wildcard(engine):
    main = "${c=__character__}hero: ${c}"
    for seed in SEEDS:
        out = expand_with(engine, main, ["${c} face"], seed)
        assert out.extras == (f"{first_character(out.main)} face",)


def test_a_wildcard_only_in_the_extras_is_shared_between_them(engine):
    for seed in SEEDS:
        out = expand_with(engine, "a photo", ["__eyes__", "detailed __eyes__"], seed)
        assert out.main == "a photo"
        assert out.extras[1] == "detailed " + out.extras[0]
        assert out.extras[0] in ("brown eyes", "green eyes", "grey eyes")


def test_extras_without_syntax_come_back_unchanged(engine):
    plain = ["", "detailed face [SEP] detailed hands", "(masterpiece:1.2), \\(artist\\) [PROMPT]"]
    for text in plain:
        assert not is_template(engine, text)
    out = expand_with(engine, "a __character__", plain, 3)
    assert out.extras == tuple(plain)
    assert is_template(engine, "__character__") and is_template(engine, "{a|b}") and is_template(engine, "${x:y}")


def test_an_extra_sets_its_own_variables_without_reaching_the_next(engine):
    main = "${v=main}x"
    out = expand_with(engine, main, ["${v=one}${v}", "${v}"], 0)
    assert out.extras == ("one", "main")


def test_the_same_seed_gives_the_same_extras(engine):
    main = "__character__ in {a forest|a city|space}"
    extras = ["__character__ face, __eyes__", "{smile|frown}"]
    assert expand_with(engine, main, extras, 42) == expand_with(engine, main, extras, 42)


def test_a_missing_wildcard_in_an_extra_is_the_engine_error_at_its_place(engine):
    with pytest.raises(TemplateError) as err:
        expand_with(engine, "__character__", ["face of __nobody__"], 1, extra_sources=["<ADetailer prompt>"])
    assert err.value.one_line().startswith("<ADetailer prompt>:1:9")
    assert "nobody" in err.value.one_line()


def test_a_syntax_error_in_an_extra_names_the_extra(engine):
    with pytest.raises(TemplateError) as err:
        expand_with(engine, "__character__", ["ok", "{unclosed"], 1)
    assert err.value.one_line().startswith("<extra prompt 2>:1:1")


def test_many_pick_and_cyclical_wildcards_draw_as_usual(engine):
    main = "{2$$__character__} @__eyes__ __character__"
    for seed in range(20):
        out = expand_with(engine, main, ["__character__"], seed)
        assert out.main == engine.prompt(main, seed)
        # the lone `__character__` after the many-pick is the one shared
        assert out.extras == (out.main.split()[-1],)


# ORCH_HYPOTHESIS_EXAMPLES=5000 for a deeper search than CI's.
SETTINGS = settings(max_examples=int(os.environ.get("ORCH_HYPOTHESIS_EXAMPLES", "300")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(main=template_strategy(), extra=template_strategy(), seed=st.integers(0, 2 ** 32 - 1))
def test_the_main_prompt_is_exactly_the_engines(engine, main, extra, seed):
    try:
        expected = engine.prompt(main, seed)
    except OrchestratorError:
        return  # the template fails on its own (undefined variable, all weights 0): nothing to compare
    try:
        out = expand_with(engine, main, [extra, extra], seed)
    except OrchestratorError:
        return  # the extra fails: the adapter leaves ADetailer's prompt as it was
    assert out.main == expected
    assert out.extras[0] == out.extras[1] or "${" in extra or "{" in extra  # only draws of its own differ


def test_the_main_prompt_is_exactly_the_engines_with_the_bundled_wildcards():
    engine = PromptEngine([str(BUNDLED_WILDCARDS)])
    templates = [f"__templates/{os.path.splitext(name)[0]}__"
                 for name in sorted(os.listdir(os.path.join(BUNDLED_WILDCARDS, "templates")))]
    for template in templates:
        text = open(os.path.join(BUNDLED_WILDCARDS, "templates", template[12:-2] + ".txt"), encoding="utf-8").read()
        for main in (template, text.splitlines()[0]):
            for seed in range(40):
                out = expand_with(engine, main, ["__archetype__ face, __palette__"], seed)
                assert out.main == engine.prompt(main, seed), (main, seed)
