"""Cyclical mode: dynamicprompts' cycling order, computed from the image seed without state."""
from __future__ import annotations

import logging
import warnings

import pytest

from lib_orchestrator.wildcards import PromptEngine

FILES = {"color.txt": "red\nblue\ngreen\n", "animal.txt": "cat\n{@big|small} dog\n"}


@pytest.fixture
def root(make_wildcards):
    return make_wildcards(FILES)


def cycle(root, template, n, seed=0):
    return [p.text for p in PromptEngine([root]).prompts(template, "cyclical", seed, n)]


def test_each_choice_cycles_through_its_options(root):
    assert cycle(root, "{a|b|c} {x|y}", 6) == ["a x", "b y", "c x", "a y", "b x", "c y"]


def test_a_nested_choice_advances_each_time_its_parent_picks_it(root):
    assert cycle(root, "{a {x|y}|b}", 6) == ["a x", "b", "a y", "b", "a x", "b"]
    assert cycle(root, "__animal__", 4) == ["cat", "big dog", "cat", "small dog"]


def test_prompt_of_a_seed_is_independent_of_the_run(root):
    engine = PromptEngine([root])
    template = "{a|b|c} __color__ {1-2$$x|y}"
    run = cycle(root, template, 20, seed=100)
    assert run == [engine.prompt(template, 100 + k, mode="cyclical") for k in range(20)]


@pytest.mark.parametrize("template", ["{a|b|c} {x|y}", "{a {x|y}|b}", "__animal__ and __color__",
                                      "{2$$a|b|c}", "{a|{b|c|d}} __color__"])
def test_same_sequence_as_dynamicprompts_cyclical_from_seed_0(root, template):
    generators = pytest.importorskip("dynamicprompts.generators")
    wildcards = pytest.importorskip("dynamicprompts.wildcards")
    from dynamicprompts.enums import SamplingMethod
    from dynamicprompts.sampling_context import SamplingContext

    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = SamplingContext(default_sampling_method=SamplingMethod.CYCLICAL,
                                  wildcard_manager=wildcards.WildcardManager(__import__("pathlib").Path(root)))
        theirs = [str(r) for r in context.sample_prompts(template, 24)]
    logging.disable(logging.NOTSET)
    assert generators  # the reference is installed
    assert cycle(root, template, 24) == theirs
