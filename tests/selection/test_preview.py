"""The tab's compose preview: prompts with picks explained, reroll, locks, lint inline."""
from __future__ import annotations

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.library import scan_library
from lib_orchestrator.preview import lock_wildcards, preview, wildcard_names
from lib_orchestrator.selection import LoraIndex, Rules
from lib_orchestrator.wildcards import PromptEngine

from ..conftest import BUNDLED

ENGINE = PromptEngine([str(BUNDLED)])
INDEX = LoraIndex(scan_library(SAMPLE_LORAS).records)


def run(template, seed=1, count=5, **kw):
    return preview(template, seed, count, ENGINE, INDEX, Rules(), "sdxl", "SDXL 1.0", **kw)


def test_preview_composes_n_prompts_with_explained_picks():
    result = run("__templates/fantasy__, glowing runes")
    assert len(result.prompts) == 5 and not result.messages
    assert [p.seed for p in result.prompts] == [1, 2, 3, 4, 5]
    pick = next(p for c in result.prompts for p in c.loras if p.name == "glowing_runes_xl")
    assert pick.reason == "trigger" and pick.score > 0 and pick.matched


def test_reroll_is_a_new_seed_and_same_seed_same_preview():
    first = [c.prompt for c in run("__templates/noir__").prompts]
    assert first == [c.prompt for c in run("__templates/noir__").prompts]
    assert [c.prompt for c in run("__templates/noir__", seed=99).prompts] != \
        [c.prompt for c in run("__templates/noir__").prompts]


def test_locks_fix_a_wildcard_and_pin_a_lora():
    result = run("__style__ of a __archetype__", locks={"style": "oil painting {50%}"}, pinned=["add_detail_xl"])
    for c in result.prompts:
        assert c.base_prompt.startswith("oil painting {50%} of a ")
        assert c.loras[0].name == "add_detail_xl" and c.loras[0].reason == "pinned"
    assert lock_wildcards("__a__ and __a__", {"a": "x|y"}) == "x\\|y and x\\|y"


def test_lint_messages_come_back_inline_instead_of_an_error():
    broken = run("a {cat|dog")
    assert broken.prompts == () and "never closed" in broken.messages[0]
    missing = run("__stlye__ cat")
    assert "did you mean __style__" in missing.messages[0]


def test_wildcard_names_for_the_editor():
    names = wildcard_names(ENGINE)
    assert "style" in names and "templates/noir" in names


def test_preview_never_draws_an_entry_whose_lora_cannot_load_here(make_wildcards):
    root = make_wildcards({"look.txt": "<lora:watercolor_sd15> a soft look\n<lora:noir_film_xl> a dark look\n"})
    result = preview("__look__", 1, 12, PromptEngine([root]), INDEX, Rules(min_total=0, max_total=0), "sdxl",
                     "SDXL 1.0")
    assert {c.base_prompt for c in result.prompts} == {"<lora:noir_film_xl> a dark look"}
    assert any("<lora:watercolor_sd15> does not load" in m for m in result.messages), result.messages


def test_preview_follows_variables_per_batch():
    template = "${who=!{ann|bea|cid|dot|eve|fay}} ${who}, __setting__"
    per_batch = preview(template, 7, 8, ENGINE, None, Rules(variables="batch"), "sdxl", "SDXL 1.0")
    per_image = preview(template, 7, 8, ENGINE, None, Rules(), "sdxl", "SDXL 1.0")
    assert len({c.base_prompt.split(",")[0] for c in per_batch.prompts}) == 1
    assert len({c.base_prompt.split(",")[0] for c in per_image.prompts}) > 1
    assert per_batch.prompts[0].base_prompt == per_image.prompts[0].base_prompt  # the first image is the same
