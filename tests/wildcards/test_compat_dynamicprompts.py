"""Differential tests against dynamicprompts 0.31: combinatorial mode yields the same prompts.

Each deliberate difference is a case in DIFFERENCES, checked to differ exactly as the README says.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import List

import pytest

from lib_orchestrator.wildcards import PromptEngine

from ..conftest import BUNDLED, SDDP_WILDCARDS, needs_shared

dp_generators = pytest.importorskip("dynamicprompts.generators")
dp_wildcards = pytest.importorskip("dynamicprompts.wildcards")

LIMIT = 20_000

# Templates over ../shared/wildcards/sd-dynamic-prompts (a real public collection).
SHARED_CORPUS = [
    "__artists/illustrations/anime__",  # plain list
    "__artists/Japanese Art/nihonga/*__",  # glob over a folder with a space
    "__artists/Japanese Art/**__",  # recursive glob
    "__dutch_goldenage_painters__",  # basename only: the **/ fallback
    "{a|b} __artists/European Art/neoclassical/norwich_school__",  # lines holding variants
    "__artists/European Art/modern/fauvism__",  # an unbalanced ( inside a line
    "__public-prompts/lighting/*__",  # publicprompts.yaml: nested keys
    "__public-prompts/needle-felted(figure=frog)__",  # block scalar, parameter, ${var:default}
    "__public-prompts/needle-felted__",
    "__public-prompts/styles/3d-render__",  # a block template referring to another key
    "__public-prompts/styles/3d-render(color_scheme=bright)__",
    "{2$$__artists/illustrations/manga__}",  # a wildcard spread into a range variant
    "__jumbo/war/weapons/swords/european__ with {a|the} __jumbo/items/materials/gems__",
]

# Inline syntax over the bundled wildcards.
INLINE_CORPUS = [
    "{2$$ and $$a|b|c}", "{1-2$$a|b|c|d}", "{-2$$a|b|c}", "{2-$$a|b|c}", "{4$$a|b|c}", "{0-1$$a|b}",
    "{2$$|$$a|b|c}", "{2::a|b} and {x|{y|z} w}", "%{big ... here$$cat}", "${x=red} ${x} ${x}",
    "${x={a|b}} ${x} ${x}", "${v:default} thing", "{ a | b }", "{a|}", "x {} y",
    "a BREAK b AND (c:1.2) [d|e] <lora:foo:0.5>", "{(red:1.2)|blue} <lora:a:1>", "score_9, {a|b}",
    "{a|b} // gone", "__mood__, __palette__ palette", "{__era__|__genre__} {2$$, $$__lighting__}",
    "__templates/noir__", "__templates/*__",
]

# template -> (folder, why we differ). Checked: the two engines really differ on these.
DIFFERENCES = {
    "__{artists/illustrations/anime|artists/illustrations/manga}__":
        (SDDP_WILDCARDS, "a variant in a wildcard path: dynamicprompts enumerates only its first value"),
    "color #ff0000 shirt": (BUNDLED, "'#' inside text is text; dynamicprompts cuts the prompt there"),
    "\\{a\\|b\\}": (BUNDLED, "backslash escapes; dynamicprompts has none"),
    "$10 taco, 100% cotton": (BUNDLED, "lone $ and % are text; dynamicprompts fails to parse"),
}


def normalise(text: str) -> str:
    return " ".join(text.split())


def dynamicprompts(root: Path, template: str) -> List[str]:
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            generator = dp_generators.CombinatorialPromptGenerator(dp_wildcards.WildcardManager(root))
            return [normalise(p) for p in generator.generate(template, max_prompts=LIMIT)]
    finally:
        logging.disable(logging.NOTSET)


def ours(root: Path, template: str) -> List[str]:
    engine = PromptEngine([str(root)])
    return [normalise(p.text) for p in engine.prompts(template, "combinatorial", count=LIMIT)]


def assert_same(root: Path, template: str) -> None:
    theirs, mine = dynamicprompts(root, template), ours(root, template)
    assert set(mine) == set(theirs)
    assert mine == theirs  # the order, too: leftmost choice outermost, lines sorted
    if len(mine) < LIMIT:
        assert PromptEngine([str(root)]).count(template) == len(mine)


@needs_shared
@pytest.mark.parametrize("template", SHARED_CORPUS)
def test_same_prompts_as_dynamicprompts_on_a_real_collection(template):
    assert_same(SDDP_WILDCARDS, template)


@pytest.mark.parametrize("template", INLINE_CORPUS)
def test_same_prompts_as_dynamicprompts_on_inline_syntax(template):
    assert_same(BUNDLED, template)


@pytest.mark.parametrize("template", list(DIFFERENCES))
def test_documented_differences_really_differ(template):
    root, _why = DIFFERENCES[template]
    if not Path(root).is_dir():
        pytest.skip("../shared test data not present")
    try:
        theirs = set(dynamicprompts(Path(root), template))
    except Exception:  # dynamicprompts fails to parse it at all
        theirs = None
    assert theirs != set(ours(Path(root), template))


def test_path_variant_yields_a_superset(tmp_path):
    if not SDDP_WILDCARDS.is_dir():
        pytest.skip("../shared test data not present")
    template = "__{artists/illustrations/anime|artists/illustrations/manga}__"
    assert set(dynamicprompts(SDDP_WILDCARDS, template)) < set(ours(SDDP_WILDCARDS, template))


def test_readme_lists_every_difference():
    readme = (BUNDLED.parent / "README.md").read_text(encoding="utf-8").replace("\\|", "|")
    for template in DIFFERENCES:
        assert template.replace("\\|", "|") in readme, template
