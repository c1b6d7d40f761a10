"""Combinatorial mode: every prompt once, in dynamicprompts' order, lazily, with exact counts."""
from __future__ import annotations

import itertools
import sys

import pytest

from lib_orchestrator.errors import TemplateError
from lib_orchestrator.wildcards import PromptEngine


@pytest.fixture
def engine(make_wildcards):
    return PromptEngine([make_wildcards({
        "color.txt": "red\nblue\ngreen\n",
        "animal.txt": "cat\n{big|small} dog\n",
        "w.yaml": "w:\n  - 3::heavy\n  - light\n  - 0::never\n",
        **{f"big/l{i}.txt": "\n".join(f"v{i}_{j}" for j in range(40)) for i in range(8)},
    })])


def every(engine, template, limit=100_000):
    return [p.text for p in engine.prompts(template, "combinatorial", count=limit)]


def test_leftmost_choice_is_the_outermost_loop(engine):
    assert every(engine, "{a|b} {x|y}") == ["a x", "a y", "b x", "b y"]


def test_wildcard_lines_come_sorted_and_nested_syntax_expands(engine):
    assert every(engine, "__color__") == ["blue", "green", "red"]
    assert every(engine, "__animal__") == ["cat", "big dog", "small dog"]  # "c" sorts before "{"


def test_weights_do_not_repeat_entries_and_zero_weight_never_appears(engine):
    assert every(engine, "__w__") == ["heavy", "light"]
    assert every(engine, "{5::a|0.5::b|0::c}") == ["a", "b"]
    assert engine.count("__w__ {5::a|0.5::b|0::c}") == 4


def test_counts_match_enumeration(engine):
    for template in ["{a|b} __color__ {2$$x|y|z}", "${c=!{p|q}} ${c} {1-2$$__animal__|__color__}",
                     "%{<< ... >>$$__color__} {a|{b|c}}", "${v={a|b}} ${v} ${v}"]:
        assert engine.count(template) == len(every(engine, template)), template


def test_huge_spaces_are_counted_exactly_and_listed_lazily(engine):
    template = " ".join(f"__big/l{i}__" for i in range(8))
    assert engine.count(template) == 40 ** 8
    first = every(engine, template, limit=5)
    assert first[0] == " ".join(f"v{i}_0" for i in range(8))
    assert first[1] == " ".join(f"v{i}_0" for i in range(7)) + " v7_1"


def test_ranges_list_permutations_by_size(engine):
    assert every(engine, "{1-2$$a|b}") == ["a", "b", "a,b", "b,a"]
    assert every(engine, "{0-1$$a|b}") == ["", "a", "b"]
    got = every(engine, "{2$$ & $$__color__}")
    assert got == [f"{a} & {b}" for a, b in itertools.permutations(["blue", "green", "red"], 2)]


def test_immediate_variable_enumerates_each_value_once_per_prompt(engine):
    assert every(engine, "${c=!{red|blue}}a ${c} shirt, ${c} hat") == ["a red shirt, red hat", "a blue shirt, blue hat"]


def test_random_parts_stay_random_inside_combinatorial(engine):
    got = every(engine, "{a|b} {~x|y}")
    assert [g[0] for g in got] == ["a", "b"]
    assert all(g[2] in "xy" for g in got)


def test_count_is_the_maximum_and_seeds_follow(engine):
    prompts = list(engine.prompts("{a|b|c}", "combinatorial", seed=10, count=2))
    assert [(p.text, p.seed, p.index) for p in prompts] == [("a", 10, 0), ("b", 11, 1)]


@pytest.mark.parametrize("count", [10 ** 30, sys.maxsize + 1, sys.maxsize, 2 ** 64])
def test_any_huge_count_lists_every_combination_once(engine, count):
    # {a|b} × 3 colours: six prompts, whatever the maximum asked for.
    prompts = list(engine.prompts("{a|b} __color__", "combinatorial", seed=7, count=count))
    assert [p.text for p in prompts] == ["a blue", "a green", "a red", "b blue", "b green", "b red"]
    assert [p.seed for p in prompts] == list(range(7, 13))


def test_count_zero_lists_nothing_and_a_negative_count_is_refused(engine):
    assert list(engine.prompts("{a|b}", "combinatorial", count=0)) == []
    for mode in ("random", "combinatorial", "cyclical"):
        with pytest.raises(ValueError, match="0 or more"):
            engine.texts("{a|b}", mode, 0, -1)


def test_a_lone_assignment_is_drawn_in_every_mode_as_the_random_sampler_draws_it(engine):
    # Found by test_properties: random mode drew the value (and failed on it), count and combinatorial
    # skipped it, so a random prompt could fail where counting said there was one.
    template = "${v=!${v:dv}${v=${v:dv}}}"
    for mode in ("random", "cyclical", "combinatorial"):
        with pytest.raises(TemplateError, match="refers to itself"):
            list(engine.texts(template, mode, 0, 2))
    with pytest.raises(TemplateError, match="refers to itself"):
        engine.count(template)
    assert engine.count("${c=!{red|blue}}") == len(every(engine, "${c=!{red|blue}}")) == 2  # as with text after it
