"""Planning a batch: every image composed now, so the file says exactly what will be generated."""
from __future__ import annotations

from typing import Any, Collection, Optional

from ..compose import lora_gated
from ..errors import OrchestratorError
from ..job import JobSettings, plan_job
from ..selection import LoraIndex, Rules
from ..wildcards.batch_vars import expander
from .model import MAX_IMAGES, MAX_SEED, Batch, BatchImage, Settings


def plan_batch(name: str, template: str, count: int, seed: int, engine: Any, index: Optional[LoraIndex],
               rules: Rules, family: str, base_model: str, settings: Optional[Settings] = None, negative: str = "",
               known_loras: Optional[Collection[str]] = None, loras: bool = True, variables: str = "") -> Batch:
    """`variables`: the host's setting for immediate variables (image or batch); the rules' wins."""
    if not 0 <= count <= MAX_IMAGES:
        raise OrchestratorError(f"a batch holds 0 to {MAX_IMAGES:,} images, not {count:,}",
                                hint="split a bigger run into several batches")
    if not 0 <= seed <= MAX_SEED - count:
        raise OrchestratorError(f"seeds run from {seed} to {seed + count - 1}, past Forge's 0 to {MAX_SEED}",
                                hint="choose a smaller first seed")
    seeds = list(range(seed, seed + count))
    if index is not None and loras:
        engine = lora_gated(engine, index, family, base_model, known_loras)
    # A batch is one batch for `variables: batch` too: every image reads the first seed's variables.
    expand = expander(engine, seed, rules.variable_scope(variables))
    plan = plan_job([template] * count, [negative] * count, seeds, JobSettings(enabled=True, loras=loras),
                    expand, index, rules, family, base_model, known_loras)
    images = tuple(
        BatchImage(k, seeds[k], plan.prompts[k], plan.negative_prompts[k],
                   tuple((p.name, p.weight, p.reason) for p in plan.images[k].composed.loras))
        for k in range(count))
    return Batch(name, template, seed, settings or Settings(), images, negative)
