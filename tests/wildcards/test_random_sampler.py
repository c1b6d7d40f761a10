"""Random mode: seeded per image, weights honoured, variables per image, errors instead of hangs."""
from __future__ import annotations

from collections import Counter

import pytest

from lib_orchestrator.errors import TemplateError
from lib_orchestrator.wildcards import PromptEngine


@pytest.fixture
def engine(make_wildcards):
    root = make_wildcards({
        "color.txt": "red\nblue\ngreen\n",
        "animal.txt": "cat\ndog\n",
        "nested.txt": "{big|small} __animal__\n",
        "weighted.yaml": "w:\n  - 9::common\n  - 1::rare\n  - 0::never\n",
        "self.txt": "x __self__\n",
        "ping.txt": "__pong__\n", "pong.txt": "{end|__ping__}\n",
        "tpl.txt": "a ${size:medium} ${kind:box}\n",
    })
    return PromptEngine([root])


def draws(engine, template, n=20000, start=0):
    fn = engine.compile(template)
    return Counter(fn(seed) for seed in range(start, start + n))


def test_same_seed_same_prompt_and_prompt_k_is_the_prompt_of_seed_s_plus_k(engine):
    template = "__color__ {a|b|c} __nested__ {1-2$$ and $$x|y|z}"
    run = [p.text for p in engine.prompts(template, "random", seed=500, count=50)]
    alone = [next(iter(engine.prompts(template, "random", seed=500 + k, count=1))).text for k in range(50)]
    assert run == alone
    assert engine.prompt(template, 77) == engine.prompt(template, 77)


def test_fresh_engines_agree_so_prompts_depend_only_on_template_files_and_seed(engine, make_wildcards):
    other = PromptEngine(engine.store.roots)
    template = "__color__ __nested__"
    assert [engine.prompt(template, s) for s in range(100)] == [other.prompt(template, s) for s in range(100)]


def test_consecutive_seeds_are_not_correlated(engine):
    fn = engine.compile("{a|b}")
    pairs = Counter((fn(s), fn(s + 1)) for s in range(8000))
    assert all(1700 < pairs[p] < 2300 for p in [("a", "a"), ("a", "b"), ("b", "a"), ("b", "b")])


def test_weights_hold_over_many_draws(engine):
    counts = draws(engine, "{3::a|b|0::c}")
    assert counts["c"] == 0
    assert 0.72 < counts["a"] / 20000 < 0.78
    counts = draws(engine, "__w__")
    assert counts["never"] == 0
    assert 0.87 < counts["common"] / 20000 < 0.93


def test_uniform_options_and_nested_variants_are_uniform(engine):
    counts = draws(engine, "{a|{b|c}}")
    assert 0.47 < counts["a"] / 20000 < 0.53
    assert 0.22 < counts["b"] / 20000 < 0.28


def test_range_variants_pick_distinct_options_in_draw_order(engine):
    counts = draws(engine, "{2$$a|b|c}", n=12000)
    assert set(counts) == {"a,b", "a,c", "b,a", "b,c", "c,a", "c,b"}
    assert min(counts.values()) > 1700
    assert set(draws(engine, "{1-3$$ & $$a|b}", n=2000)) == {"a", "b", "a & b", "b & a"}
    assert set(draws(engine, "{4$$a|b|c}", n=500)) == {"a,b,c", "a,c,b", "b,a,c", "b,c,a", "c,a,b", "c,b,a"}
    assert set(draws(engine, "{0-1$$a|b}", n=500)) == {"", "a", "b"}


def test_wildcard_variant_spreads_the_file_lines(engine):
    got = draws(engine, "{2$$ / $$__color__}", n=3000)
    assert all(len(set(p.split(" / "))) == 2 for p in got)
    assert len(got) == 6


def test_immediate_variable_is_drawn_once_per_image_not_once_per_batch(engine):
    template = "${c=!{red|blue|green|white}} ${c} and ${c}"
    run = [p.text for p in engine.prompts(template, "random", seed=0, count=400)]
    assert all(p.split(" and ")[0].strip() == p.split(" and ")[1] for p in run)
    assert len({p for p in run}) == 4  # differs between images of one batch


def test_lazy_variable_is_drawn_at_each_use(engine):
    got = draws(engine, "${c={a|b}}${c}${c}", n=2000)
    assert set(got) == {"aa", "ab", "ba", "bb"}


def test_keep_existing_assignment_and_parameterised_wildcards(engine):
    assert engine.prompt("__tpl__", 1) == "a medium box"
    assert engine.prompt("__tpl(size=huge, kind={crate|chest})__", 1) in {"a huge crate", "a huge chest"}
    assert engine.prompt("${x=outer}${x?=inner}${x}", 1) == "outer"
    assert engine.prompt("${x?=inner}${x}", 1) == "inner"


def test_variables_of_a_nested_sequence_stay_inside_it(engine):
    assert engine.prompt("{${v=in}${v}} ${v:out}", 3) == "in out"


def test_wrap_and_dynamic_paths(engine):
    assert engine.prompt("%{big ... here$$cat}", 1) == "big cat here"
    assert engine.prompt("%{big … here$$__animal__}", 1) in {"big cat here", "big dog here"}
    assert set(draws(engine, "__{color|animal}__", n=2000)) == {"red", "blue", "green", "cat", "dog"}
    assert set(draws(engine, "${k=animal} __${k}__", n=500)) == {" cat", " dog"}


def test_passthrough_of_a1111_syntax_around_choices(engine):
    assert engine.prompt("(masterpiece:1.2), <lora:x:0.5>, [a|b] BREAK {red}", 1) == \
        "(masterpiece:1.2), <lora:x:0.5>, [a|b] BREAK red"


@pytest.mark.parametrize("template, fragment", [
    ("__self__", "refers to itself"),
    ("__ping__", "refers to itself"),
    ("__nope__", "not found"),
    ("__../../etc/passwd__", "refused"),
    ("${undefined}", "not defined"),
    ("${a=x ${a}} ${a}", "refers to itself"),
    ("{0::a|0::b}", "weight 0"),
])
def test_bad_templates_raise_the_typed_error_never_recursion_or_a_hang(engine, template, fragment):
    with pytest.raises(TemplateError, match=fragment) as info:
        engine.prompt(template, 1)
    assert info.value.location is not None


def test_missing_wildcard_can_be_kept_as_text(engine):
    keep = PromptEngine(engine.store.roots, on_missing="keep")
    assert keep.prompt("a __nope__ b", 1) == "a __nope__ b"
    assert any("nope" in w for w in keep.warnings)
    assert [p.text for p in keep.prompts("{__nope__|x}", "combinatorial", count=10)] == ["__nope__", "x"]


def test_missing_wildcard_error_suggests_close_names(engine):
    with pytest.raises(TemplateError) as info:
        engine.prompt("__colr__", 1)
    assert "__color__" in info.value.hint


def test_dynamic_recursion_through_a_variable_is_capped(make_wildcards):
    engine = PromptEngine([make_wildcards({"loop.txt": "${k} __${k}__\n"})])
    with pytest.raises(TemplateError, match="deeper|itself"):
        engine.prompt("${k=loop} __${k}__", 1)


def test_prompts_that_grow_without_bound_stop_with_an_error(engine):
    # Each level reads the one before ten times: level 7 would be 10^8 characters.
    levels = ["${l0=0123456789}"] + ["${l" + str(i) + "=" + ("${l" + str(i - 1) + "}") * 10 + "}" for i in range(1, 8)]
    template = "".join(levels) + "${l7}"
    with pytest.raises(TemplateError, match="grew over"):
        engine.prompt(template, 1)
    with pytest.raises(TemplateError, match="grew over"):
        engine.prompt(template, 1, mode="cyclical")
    with pytest.raises(TemplateError, match="grew over"):
        list(engine.prompts(template, "combinatorial"))


def test_oversized_templates_are_refused(engine):
    with pytest.raises(TemplateError, match="limit"):
        engine.prompt("x" * 1_000_001, 1)
