"""Batch by LoRA: the same prompts and seeds under each LoRA, saved and loaded like any batch."""
from __future__ import annotations

from lib_orchestrator.batches import load_batch, save_batch
from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.swatches.by_lora import plan_batch_by_lora
from lib_orchestrator.wildcards import PromptEngine

from ..conftest import BUNDLED

RECORDS = [LoraRecord("ink.safetensors", "ink", base_model="SDXL 1.0", family="sdxl", trigger_words=("inkwash",)),
           LoraRecord("oil.safetensors", "oil", base_model="SDXL 1.0", family="sdxl"),
           LoraRecord("old.safetensors", "old", base_model="SD 1.5", family="sd1")]


def test_each_lora_gets_the_same_prompts_and_seeds_and_the_batch_round_trips(tmp_path):
    engine = PromptEngine([str(BUNDLED)])
    batch, notes = plan_batch_by_lora("by-lora", "a {cat|dog|fox} in __templates/noir__", 3, 50, engine, RECORDS,
                                      0.8, "SDXL 1.0")
    assert len(batch.images) == 6 and notes == ["old: skipped, a SD 1.5 LoRA does not load on a SDXL 1.0 checkpoint"]
    ink, oil = batch.images[:3], batch.images[3:]
    assert [im.seed for im in ink] == [im.seed for im in oil] == [50, 51, 52]
    for a, b in zip(ink, oil):
        assert a.prompt == b.prompt.replace(" <lora:oil:0.8>", ", inkwash <lora:ink:0.8>")
        assert a.loras == (("ink", 0.8, "by LoRA"),) and b.loras == (("oil", 0.8, "by LoRA"),)
    path = str(tmp_path / "by-lora.json")
    save_batch(batch, path)
    assert load_batch(path) == batch
