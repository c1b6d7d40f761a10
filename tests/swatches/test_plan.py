"""Swatch planning: a baseline, then each LoRA at each weight, same prompt and seed; LoRAs that cannot
load on the checkpoint are skipped with a note, and bad weights are named where they are."""
from __future__ import annotations

import pytest

from lib_orchestrator.errors import OrchestratorError
from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.swatches import parse_weights, plan_swatch

WATERCOLOR = LoraRecord("Style/watercolor.safetensors", "watercolor", base_model="SDXL 1.0", family="sdxl",
                        category="style", trigger_words=("watercolor wash", "wcstyle"), negative_text="photo")
INK = LoraRecord("Style/ink.safetensors", "ink", base_model="Pony", family="sdxl", category="style")
OLD = LoraRecord("Style/old.safetensors", "old_style", base_model="SD 1.5", family="sd1", category="style")
MYSTERY = LoraRecord("mystery.safetensors", "mystery", category="other")


def test_a_baseline_then_every_lora_at_every_weight_with_the_same_prompt_and_seed():
    swatch = plan_swatch("a lighthouse at dusk", 77, [WATERCOLOR, OLD, INK, WATERCOLOR, MYSTERY],
                         parse_weights("0.4, 0.7 1"), "SDXL 1.0", negative="lowres")
    assert swatch.row_labels() == ("no LoRA", "watercolor", "ink", "mystery")
    assert swatch.column_labels() == ("0.4", "0.7", "1")
    assert len(swatch.cells) == 1 + 3 * 3 and {c.seed for c in swatch.cells} == {77}
    baseline = swatch.cells[0]
    assert (baseline.lora, baseline.prompt, baseline.negative_prompt) == (None, "a lighthouse at dusk", "lowres")
    cell = next(c for c in swatch.cells if c.lora == "watercolor" and c.weight == 0.7)
    assert (cell.row, cell.column) == (1, 1)
    assert cell.prompt == "a lighthouse at dusk, watercolor wash <lora:watercolor:0.7>"
    assert cell.negative_prompt == "lowres, photo"
    assert next(c for c in swatch.cells if c.lora == "ink" and c.weight == 1).prompt == \
        "a lighthouse at dusk <lora:ink:1>"
    assert swatch.notes == ("old_style: skipped, a SD 1.5 LoRA does not load on a SDXL 1.0 checkpoint",
                            "mystery: its base model is unknown; tried anyway")


def test_one_row_per_lora_name_whatever_its_case():
    """`<lora:Ink>` and `<lora:ink>` load one file in Forge: a folder linked twice, or two spellings, are one row."""
    shouted = LoraRecord("Linked/INK.safetensors", "INK", base_model="Pony", family="sdxl", category="style")
    swatch = plan_swatch("a lighthouse", 1, [INK, shouted, INK], parse_weights("1"), "SDXL 1.0")
    assert swatch.row_labels() == ("no LoRA", "ink")


def test_activation_text_the_prompt_already_says_is_not_repeated():
    swatch = plan_swatch("wcstyle, a cat", 1, [WATERCOLOR], (1.0,), "SDXL 1.0")
    assert swatch.cells[1].prompt == "wcstyle, a cat <lora:watercolor:1>"


@pytest.mark.parametrize("text, column, says", [
    ("0.4, x, 1", 6, "'x' is not a weight"),
    ("0.4, 9", 6, "outside"),
    ("  ", 1, "no weights"),
    (",".join(["1"] * 1 + [str(i / 10) for i in range(13)]), 1, "at most 12"),
])
def test_bad_weights_are_named_where_they_are(text, column, says):
    with pytest.raises(OrchestratorError) as caught:
        parse_weights(text)
    assert says in caught.value.message and caught.value.location.column == column


def test_weights_keep_their_order_and_come_once():
    assert parse_weights("1, 0.5, 1, -0.5") == (1.0, 0.5, -0.5)
