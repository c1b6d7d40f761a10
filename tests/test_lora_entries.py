"""Wildcard entries that carry a LoRA (issue 20 item 2): `<lora:NAME>` without a weight gets the library's
preferred weight and activation text at composition; an entry whose LoRA cannot load on the checkpoint is
left out (kept as text with `keep`); lint flags names the library does not have.

The library is the bundled sample LoRAs (samples/loras): what each one is, is read from its files here
only to name them; the expected weights and texts below are written from those files' metadata by hand."""
from __future__ import annotations

import io
import os
from collections import Counter

import pytest

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.cli import main
from lib_orchestrator.compose import compose, lora_gate
from lib_orchestrator.errors import TemplateError
from lib_orchestrator.library.scan import scan_library
from lib_orchestrator.selection import LoraIndex, Rules, load_rules
from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards.lint import lint

# From the sample files' metadata: storybook_il is an Illustrious LoRA, preferred weight 0.7, activation
# "storybook illustration"; noir_film_xl an SDXL one without a preferred weight ("film noir still");
# watercolor_sd15 an SD 1.5 one ("watercolor").
NO_LORAS = Rules(min_total=0, max_total=0)  # only the entries' LoRAs: nothing drawn beside them


@pytest.fixture(scope="module")
def index() -> LoraIndex:
    return LoraIndex(scan_library(SAMPLE_LORAS, None).records)


def _engine(root: str, index: LoraIndex, base_model: str, on_missing: str = "error") -> PromptEngine:
    family = "sdxl" if base_model != "SD 1.5" else "sd1"
    return PromptEngine([root], on_missing).gated(base_model, lora_gate(index, family, base_model))


def test_an_entry_without_a_weight_gets_the_preferred_weight_and_activation_text(make_wildcards, index):
    root = make_wildcards({"look.txt": "<lora:storybook_il> a fox, in a meadow\n"})
    engine = _engine(root, index, "Illustrious")
    base = engine.prompt("__look__", 3)
    composed = compose("__look__", base, 3, index, NO_LORAS, "sdxl", "Illustrious")
    assert composed.prompt == "<lora:storybook_il:0.7> a fox, storybook illustration, in a meadow"
    (pick,) = composed.loras
    assert (pick.name, pick.weight, pick.reason, pick.activation) == ("storybook_il", 0.7, "user",
                                                                      "storybook illustration")


def test_without_a_preferred_weight_its_categorys_weight_is_used(make_wildcards, index, tmp_path):
    root = make_wildcards({"look.txt": "a detective <lora:noir_film_xl>\n"})
    base = _engine(root, index, "SDXL 1.0").prompt("__look__", 0)
    rules = load_rules(_rules(tmp_path, "count: {min: 0, max: 0}\ncategories: {style: {lora_weight: 0.65}}\n"))
    composed = compose("__look__", base, 0, index, rules, "sdxl", "SDXL 1.0")
    assert composed.prompt == "a detective <lora:noir_film_xl:0.65>, film noir still"


def test_activation_text_already_in_the_entry_is_not_repeated(make_wildcards, index):
    root = make_wildcards({"look.txt": "<lora:noir_film_xl> film noir still, rain\n"})
    base = _engine(root, index, "SDXL 1.0").prompt("__look__", 0)
    composed = compose("__look__", base, 0, index, NO_LORAS, "sdxl", "SDXL 1.0")
    assert composed.prompt == "<lora:noir_film_xl:0.8> film noir still, rain"


def test_a_weight_written_in_the_entry_is_kept(make_wildcards, index):
    root = make_wildcards({"look.txt": "<lora:noir_film_xl:0.3> rain\n"})
    base = _engine(root, index, "SDXL 1.0").prompt("__look__", 0)
    assert compose("__look__", base, 0, index, NO_LORAS, "sdxl", "SDXL 1.0").prompt == "<lora:noir_film_xl:0.3> rain"


def test_entries_whose_lora_does_not_load_are_left_out_with_a_note(make_wildcards, index):
    root = make_wildcards({"style.txt": "<lora:watercolor_sd15> soft\n<lora:noir_film_xl> dark\nplain\n"})
    engine = _engine(root, index, "SDXL 1.0")
    drawn = Counter(engine.texts("__style__", "random", 0, 3000))
    assert set(drawn) == {"<lora:noir_film_xl> dark", "plain"}
    assert 1300 < drawn["plain"] < 1700  # the two left share the draws
    assert any("style.txt:1:1: warning: <lora:watercolor_sd15> does not load on a SDXL 1.0 checkpoint; "
               "entry left out of __style__" in w for w in engine.warnings), engine.warnings


def test_unknown_loras_are_left_out_too(make_wildcards, index):
    root = make_wildcards({"style.txt": "<lora:nonexistent> x\nplain\n"})
    engine = _engine(root, index, "SDXL 1.0")
    assert set(engine.texts("__style__", "random", 0, 200)) == {"plain"}
    assert any("<lora:nonexistent> is not in the LoRA library" in w for w in engine.warnings)


def test_on_missing_keep_keeps_such_entries_as_text(make_wildcards, index):
    root = make_wildcards({"style.txt": "<lora:watercolor_sd15> soft\nplain\n"})
    engine = _engine(root, index, "SDXL 1.0", on_missing="keep")
    assert set(engine.texts("__style__", "random", 0, 200)) == {"<lora:watercolor_sd15> soft", "plain"}
    assert any("entry kept as text" in w for w in engine.warnings)


def test_a_wildcard_with_no_usable_entry_is_an_error(make_wildcards, index):
    root = make_wildcards({"style.txt": "<lora:watercolor_sd15> soft\n"})
    with pytest.raises(TemplateError, match="no entry of wildcard 'style' can be used"):
        _engine(root, index, "SDXL 1.0").prompt("__style__", 0)


def test_the_same_files_serve_each_checkpoint_apart(make_wildcards, index):
    root = make_wildcards({"style.txt": "<lora:watercolor_sd15> soft\n<lora:noir_film_xl> dark\n"})
    base = PromptEngine([root])
    sd15 = base.gated("SD 1.5", lora_gate(index, "sd1", "SD 1.5"))
    xl = base.gated("SDXL 1.0", lora_gate(index, "sdxl", "SDXL 1.0"))
    assert set(sd15.texts("__style__", "random", 0, 50)) == {"<lora:watercolor_sd15> soft"}
    assert set(xl.texts("__style__", "random", 0, 50)) == {"<lora:noir_film_xl> dark"}
    assert base.gated("SD 1.5", lora_gate(index, "sd1", "SD 1.5")) is sd15  # kept compiled
    # Ungated, every entry is drawn as before.
    assert len(set(base.texts("__style__", "random", 0, 50))) == 2


def test_an_edit_reaches_the_gated_engines(make_wildcards, index):
    root = make_wildcards({"style.txt": "<lora:noir_film_xl> dark\n"})
    base = PromptEngine([root])
    xl = base.gated("xl", lora_gate(index, "sdxl", "SDXL 1.0"))
    assert xl.prompt("__style__", 0) == "<lora:noir_film_xl> dark"
    path = os.path.join(root, "style.txt")
    with open(path, "w") as fh:
        fh.write("<lora:noir_film_xl> darker still\n")
    os.utime(path, ns=(1, 10**18))
    base.refresh()
    assert xl.prompt("__style__", 0) == "<lora:noir_film_xl> darker still"


def test_lint_flags_lora_names_the_library_lacks(make_wildcards, index, monkeypatch):
    root = make_wildcards({"style.txt": "ok <lora:noir_film_xl>\n  2:: soft <lora:noir_flim_xl>\n"})
    monkeypatch.chdir(root)
    lines = [str(f) for f in lint(["."], (), set(index.by_name))]
    assert lines == ["style.txt:2:12: warning: <lora:noir_flim_xl> is not in the LoRA library "
                     "(did you mean <lora:noir_film_xl>?)"]


def test_cli_compose_and_lint_with_lora_entries(make_wildcards, tmp_path):
    root = make_wildcards({"look.txt": "<lora:storybook_il> a fox\n<lora:watercolor_sd15> a hare\n"})
    out, err = io.StringIO(), io.StringIO()
    code = main(["compose", "__look__", "--wildcards", root, "--loras", SAMPLE_LORAS, "--no-cache",
                 "--family", "sdxl", "--base-model", "Illustrious", "--count", "3", "--seed", "1",
                 "--rules", _rules(tmp_path, "count: {min: 0, max: 0}\n")], out, err)
    assert code == 0, err.getvalue()
    assert out.getvalue().splitlines() == ["<lora:storybook_il:0.7> a fox, storybook illustration"] * 3
    assert "<lora:watercolor_sd15> does not load on a Illustrious checkpoint" in err.getvalue()
    out = io.StringIO()
    assert main(["lint", "--wildcards", root, "--loras", SAMPLE_LORAS, "--no-cache"], out, io.StringIO()) == 0
    assert "is not in the LoRA library" not in out.getvalue()


def _rules(tmp_path, text: str) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return str(path)


def test_a_slider_entry_gets_its_categorys_weight_not_the_middle_of_its_range(make_wildcards, index, tmp_path):
    # age_slider_xl sits in samples/loras/slider: a slider, whose weight range (-1, 1) centres on 0.
    root = make_wildcards({"age.txt": "<lora:age_slider_xl> older\n"})
    base = _engine(root, index, "SDXL 1.0").prompt("__age__", 0)
    rules = load_rules(_rules(tmp_path, "count: {min: 0, max: 0}\ncategories: {slider: {lora_weight: 0.9}}\n"))
    assert compose("__age__", base, 0, index, rules, "sdxl", "SDXL 1.0").prompt == "<lora:age_slider_xl:0.9> older"


def test_a_filled_pick_whose_tag_is_not_in_the_prompt_adds_nothing(index):
    # Split batches off: image k reuses image 0's picks, one of them filled for image 0's own `<lora:…>` tag.
    from lib_orchestrator.compose import apply_picks
    from lib_orchestrator.selection import pick_loras

    first = pick_loras(index, "<lora:storybook_il> a fox", 0, NO_LORAS, "sdxl", "Illustrious").picks
    prompt, _, kept = apply_picks("a hare in the snow", "", first)
    assert (prompt, kept) == ("a hare in the snow", ())
