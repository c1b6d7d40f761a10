"""A saved batch as queue jobs: one job per image, keyed by the batch's identity and the image's index."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import List, Tuple

from ..batches.model import Batch, BatchImage
from ..selection.text import LORA_TAG


@dataclass(frozen=True)
class NewJob:
    batch_id: str
    image_index: int
    seq: int  # the image's place in the batch's run order (grouped by checkpoint): the order jobs are claimed in
    checkpoint: str  # "" = whatever the server has loaded
    loras: Tuple[str, ...]  # every LoRA the prompt needs, sorted
    needs_key: str  # jobs with one key need the same checkpoint and LoRAs of a server


def batch_id(batch: Batch) -> str:
    """`<name>-<12 hex>`: the same batch file enqueued twice is one batch; a re-planned one (other prompts, seeds,
    LoRAs or settings) is another, so its images never overwrite the first one's."""
    canonical = json.dumps(batch.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{batch.name}-{hashlib.sha1(canonical.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def loras_needed(image: BatchImage) -> Tuple[str, ...]:
    """The LoRAs a server must have for this image: the batch's picks, and every `<lora:NAME:…>` tag of its prompt.
    Forge activates extra networks from the prompt only (not the negative), by their exact lower-case name
    (extra_networks.py parse_prompt): it skips `<lyco:…>` and `<LORA:…>`, so no server needs those."""
    names = {name for name, _weight, _reason in image.loras}
    names.update(m.group(2).strip() for m in LORA_TAG.finditer(image.prompt) if m.group(1) == "lora")
    return tuple(sorted(n for n in names if n))


def batch_jobs(batch: Batch) -> List[NewJob]:
    identity = batch_id(batch)
    jobs = []
    for seq, image in enumerate(batch.run_order()):
        checkpoint = batch.checkpoint_of(image) or ""
        loras = loras_needed(image)
        jobs.append(NewJob(identity, image.index, seq, checkpoint, loras,
                           json.dumps([checkpoint, list(loras)], ensure_ascii=False)))
    return jobs


def image_stem(batch_id: str, image_index: int) -> str:
    """The image file's name without its extension: one name per (batch, image), so a rerun overwrites it."""
    return f"{batch_id}-{image_index:05d}"


def default_queue(batch_path: str) -> str:
    """The queue of a batch: one SQLite file beside it, as its run state is."""
    return batch_path + ".queue.sqlite"


def default_out(batch_path: str) -> str:
    """The images of `night.json`: the folder `night/` beside it."""
    return os.path.splitext(batch_path)[0]
