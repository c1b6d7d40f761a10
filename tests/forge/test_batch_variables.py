"""Immediate variables per batch inside Forge (scripts/orchestrator.py, wildcards/batch_vars.py): with the rules'
`variables: batch` (or Settings' `orchestrator_variables`), every image of one generation shares the value of
`${c=!…}` while its other wildcards still follow each image's seed; the rules' value wins over Settings'.

The names and colours are written here, so what a prompt may hold comes from the fixture, not from the engine."""
from __future__ import annotations

import re

import pytest

TITLE = "Orchestrator"
WHO = ["Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi"]
COLORS = ["red", "blue", "green", "teal", "plum", "gold", "gray", "pink"]
TEMPLATE = "${c=!__who__}portrait of <${c}>, <${c}> in __color__"


@pytest.fixture
def orchestrator(tmp_path, load_orchestrator):
    """The real script loaded as Forge loads it, our wildcard folder in Settings; returns the script classes."""
    from modules import shared

    folder = tmp_path / "my wildcards"
    folder.mkdir()
    (folder / "who.txt").write_text("\n".join(WHO) + "\n", encoding="utf-8")
    (folder / "color.txt").write_text("\n".join(COLORS) + "\n", encoding="utf-8")
    shared.opts.data["orchestrator_wildcard_dirs"] = str(folder)
    return load_orchestrator()[1]


def rules(tmp_path, scope):
    path = tmp_path / f"rules-{scope}.yaml"
    path.write_text(f"variables: {scope}\n", encoding="utf-8")
    return str(path)


def generate(run_txt2img, classes, rules_file="", **kw):
    """Four images (two iterations of batch size 2, split or not); the prompts Forge got."""
    kw.setdefault("n_iter", 2)
    kw.setdefault("batch_size", 2)
    run_txt2img(classes, {TITLE: [True, False, 0, 0, 0.0, rules_file]}, prompt=TEMPLATE, negative_prompt="lowres",
                seed=4242, steps=2, width=64, height=64, **kw)
    prompts = run_txt2img.last_p.all_prompts
    assert len(prompts) == 4
    return prompts


def who(prompts):
    """The names each prompt shows, and the colours, each checked against the lists written above."""
    names = [re.findall(r"<([^<>]*)>", p) for p in prompts]
    colors = [p.rsplit(" ", 1)[1] for p in prompts]
    assert all(len(n) == 2 and n[0] == n[1] and n[0] in WHO for n in names) and set(colors) <= set(COLORS)
    return {n[0] for n in names}, colors


def test_with_variables_batch_the_four_images_of_a_generation_share_the_value(orchestrator, run_txt2img, tmp_path):
    names, _ = who(generate(run_txt2img, orchestrator, rules(tmp_path, "batch")))
    assert len(names) == 1


def test_the_other_wildcards_still_follow_each_images_seed(orchestrator, run_txt2img, tmp_path):
    # the colours of the batch are the colours per image: only the variable changed
    _, batched = who(generate(run_txt2img, orchestrator, rules(tmp_path, "batch")))
    _, alone = who(generate(run_txt2img, orchestrator, rules(tmp_path, "image")))
    assert batched == alone


def test_per_image_is_the_default(orchestrator, run_txt2img):
    # eight names, four images: seed 4242's images do not all draw one (checked once, by hand, not computed)
    names, _ = who(generate(run_txt2img, orchestrator))
    assert len(names) > 1


def test_the_settings_option_applies_when_the_rules_say_nothing(orchestrator, run_txt2img, tmp_path):
    from modules import shared

    shared.opts.data["orchestrator_variables"] = "batch"
    names, _ = who(generate(run_txt2img, orchestrator))
    assert len(names) == 1
    plain = tmp_path / "plain.yaml"
    plain.write_text("match: keyword\n", encoding="utf-8")
    names, _ = who(generate(run_txt2img, orchestrator, str(plain)))
    assert len(names) == 1


def test_the_rules_value_wins_over_the_settings(orchestrator, run_txt2img, tmp_path):
    from modules import shared

    shared.opts.data["orchestrator_variables"] = "batch"
    names, _ = who(generate(run_txt2img, orchestrator, rules(tmp_path, "image")))
    assert len(names) > 1


def test_without_splitting_a_batch_of_four_shares_the_value_too(orchestrator, run_txt2img, tmp_path):
    from modules import shared

    shared.opts.data["orchestrator_split_batches"] = False
    names, _ = who(generate(run_txt2img, orchestrator, rules(tmp_path, "batch"), n_iter=1, batch_size=4))
    assert len(names) == 1


def test_the_option_is_on_the_settings_page(orchestrator):
    from modules import shared

    info = shared.opts.data_labels["orchestrator_variables"]
    assert info.default == "image" and info.section[0] == "orchestrator"
    assert list(info.component_args["choices"]) == ["image", "batch"]
