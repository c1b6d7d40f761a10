"""What the Orchestrator writes into an image's infotext, in one place for its writers (job.py, the batch and
swatch runner) and its reader (history/infotext.py): the keys, the `Orchestrator LoRAs` value, the group of
images that differ only in their LoRAs. Nothing imported: the history reads every image with it."""
from __future__ import annotations

import hashlib
import re
from typing import Dict, Iterable, Iterator, Optional, Tuple

# Infotext keys: letters, digits, spaces only (Forge's parser reads `\w[\w \-/]+`).
KEY_SETTINGS = "Orchestrator"
KEY_TEMPLATE = "Orchestrator template"
KEY_LORAS = "Orchestrator LoRAs"
KEY_NOTE = "Orchestrator note"
KEY_ENHANCE = "Orchestrator LLM"
KEY_BATCH = "Orchestrator batch"
KEY_SWATCH = "Orchestrator swatch"
# Images that differ only in their LoRAs (a swatch's cells, a by-LoRA batch's images of one seed) share this
# value, so the history offers them to be compared side by side.
KEY_GROUP = "Orchestrator group"

_NUMBER = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")
# An `Orchestrator LoRAs` entry: name:weight:reason. The name may hold colons, so the weight and reason are
# taken from the right.
_ENTRY = re.compile(r"(.+):([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan):([^:]*)", re.S)


def group_value(*parts: str) -> str:
    """The `Orchestrator group` value of the images made from these parts: 16 hex digits."""
    return hashlib.sha1("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def batch_provenance(batch, image) -> Dict[str, str]:  # type: ignore[no-untyped-def]
    """Our keys for one image of a saved batch (a `batches.Batch` and its `BatchImage`), wherever it is made: in
    this Forge by the tab, or on another server by the dispatcher."""
    values = {KEY_LORAS: loras_value(image.loras), KEY_BATCH: f"{batch.name} #{image.index}"}
    if batch.template:
        values[KEY_TEMPLATE] = batch.template
    if batch.origin == "by LoRA":  # prompt k has one text and seed under every LoRA: those images are twins
        values[KEY_GROUP] = group_value(batch.name, str(image.seed), batch.checkpoint_of(image) or "")
    return values


def loras_value(loras: Iterable[Tuple[str, float, str]]) -> str:
    """(name, weight, reason) of each LoRA as the `Orchestrator LoRAs` value: `name:0.8:match; other:-1:fallback`,
    or "none"."""
    return "; ".join(f"{name}:{weight:g}:{reason}" for name, weight, reason in loras) or "none"


def parse_loras_value(value: str) -> Iterator[Tuple[str, Optional[float], str]]:
    """`loras_value` read back: (name, weight, reason); the weight None when it is no finite number. A piece
    that is no entry on its own (a name holding "; ") is joined with the next; what never makes an entry is
    left out."""
    value = value.strip()
    if not value or value == "none":
        return
    pending = ""
    for piece in value.split("; "):
        text = f"{pending}; {piece}" if pending else piece
        m = _ENTRY.fullmatch(text.strip())
        if m is None:
            pending = text
            continue
        pending = ""
        yield m.group(1).strip(), number(m.group(2)), m.group(3).strip()


def number(text: str) -> Optional[float]:
    """A weight as written, or None when it is no finite number."""
    if _NUMBER.fullmatch(text) is None:
        return None
    found = float(text)
    return found if abs(found) < float("inf") else None
