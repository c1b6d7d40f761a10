"""Batch by LoRA: one prompt set, run once per LoRA, as a batch. Prompt k has the same text and seed
under every LoRA, so the images compare; the batch runs and resumes like any other."""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from ..batches import Batch, BatchImage, Settings
from ..library.record import LoraRecord
from .plan import usable_loras, with_lora


def plan_batch_by_lora(name: str, template: str, count: int, seed: int, engine: Any,
                       records: Sequence[LoraRecord], weight: float, base_model: str,
                       settings: Optional[Settings] = None, negative: str = "") -> Tuple[Batch, List[str]]:
    """(the batch, notes on LoRAs left out). Images are ordered LoRA by LoRA, prompt k with seed+k."""
    loras, notes = usable_loras(records, base_model)
    prompts = [engine.prompt(template, seed + k) for k in range(count)]
    images = []
    for record in loras:
        for k, prompt in enumerate(prompts):
            text, negative_text = with_lora(prompt, negative, record, weight)
            images.append(BatchImage(len(images), seed + k, text, negative_text, ((record.name, weight, "by LoRA"),)))
    return Batch(name, template, seed, settings or Settings(), tuple(images), negative, origin="by LoRA"), notes
