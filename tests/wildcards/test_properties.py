"""Property tests: whatever the template, the engine answers with prompts or the typed error."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lib_orchestrator.errors import OrchestratorError
from lib_orchestrator.wildcards import PromptEngine

from ..conftest import write_files

FILES = {
    "color.txt": "red\nblue\n{light|dark} green\n",
    "animal.txt": "cat\ndog\n${size:small} bird\n",
    "dir/shape.txt": "round\nsquare\n",
    "w.yaml": "weighted:\n  - 3::heavy\n  - light\n  - 0::never\n",
}
WILDCARDS = ["__color__", "__animal__", "__dir/shape__", "__dir/*__", "__weighted__", "__shape__"]

words = st.sampled_from(["a", "b", "cat", " ", ", ", "(x:1.2)", "<lora:l:1>", "[p|q]", "#ff0000", "$5",
                         "100%", "\\{", "\\|", "_", "\n"])


def template_strategy() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        option = st.tuples(st.sampled_from(["", "2::", "0.5::", "0::"]), inner).map("".join)
        options = st.lists(option, min_size=1, max_size=4).map("|".join)
        bound = st.sampled_from(["", "2$$", "1-2$$", "-2$$", "2-$$", "0-1$$", "1-3$$ and $$", "2$$|$$"])
        variant = st.tuples(bound, options).map(lambda t: "{" + t[0] + t[1] + "}")
        wrap = inner.map(lambda t: "%{<< ... >>$$" + t + "}")
        variable = st.tuples(st.sampled_from(["v", "w"]), st.sampled_from(["=", "=!", "?="]), inner).map(
            lambda t: "${" + t[0] + t[1] + t[2] + "}")
        access = st.sampled_from(["${v:dv}", "${w:dw}", "${size:tiny}"])
        parts = st.lists(st.one_of(inner, variant, wrap, variable, access), min_size=1, max_size=4)
        return parts.map("".join)

    leaf = st.one_of(words, st.sampled_from(WILDCARDS))
    return st.recursive(leaf, extend, max_leaves=8)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("wildcards")
    write_files(root, FILES)
    return PromptEngine([str(root)])


# ORCH_HYPOTHESIS_EXAMPLES=5000 for a deeper search than CI's.
SETTINGS = settings(max_examples=int(os.environ.get("ORCH_HYPOTHESIS_EXAMPLES", "300")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(text=st.lists(st.sampled_from(list("{}|$%#_\\/:!@~=?()<>.,- ab1\n") + ["__", "${", "%{", "::", "__color__"]),
                     max_size=30).map("".join), seed=st.integers(0, 2 ** 32 - 1))
def test_any_text_gives_prompts_or_the_typed_error(engine, text, seed):
    try:
        engine.prompt(text, seed)
        for mode in ("combinatorial", "cyclical"):
            list(engine.prompts(text, mode, seed, count=20))
        engine.count(text)
    except OrchestratorError as exc:
        assert exc.message and exc.location is not None


@SETTINGS
@given(template=template_strategy(), seed=st.integers(0, 2 ** 32 - 1))
def test_random_prompts_are_members_of_the_combinatorial_set(engine, template, seed):
    try:
        total = engine.count(template)
    except OrchestratorError:
        return
    assume(total <= 3000)
    every = {p.text for p in engine.prompts(template, "combinatorial", count=total + 1)}
    assert len(list(engine.prompts(template, "combinatorial", count=total + 1))) == total
    for k in range(5):
        assert engine.prompt(template, seed + k) in every
        assert engine.prompt(template, seed + k, mode="cyclical") in every


@SETTINGS
@given(template=template_strategy(), seed=st.integers(0, 2 ** 32 - 1))
def test_same_seed_same_prompt_across_engines_and_batches(engine, template, seed):
    fresh = PromptEngine(engine.store.roots)
    try:
        batch = [p.text for p in engine.prompts(template, "random", seed, count=3)]
    except OrchestratorError:
        return
    assert batch == [fresh.prompt(template, seed + k) for k in range(3)]
