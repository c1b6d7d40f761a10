"""Planning a swatch: the cells of a grid, LoRAs down, weights across, plus one baseline cell without a
LoRA. Every cell has the same prompt and seed, so the LoRA at its weight is the only difference."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..compose import apply_picks
from ..errors import Location, OrchestratorError
from ..library.base_models import compatibility, family_of
from ..library.record import LoraRecord
from ..selection.pick import Pick
from ..selection.text import unsaid

MAX_WEIGHTS = 12  # columns; past this the grid's labels are unreadable at any cell size


@dataclass(frozen=True)
class SwatchCell:
    row: int  # 0: the baseline row, then one row per LoRA
    column: int  # the weight's position
    lora: Optional[str]  # None: the baseline
    weight: float
    prompt: str
    negative_prompt: str
    seed: int


@dataclass(frozen=True)
class Swatch:
    prompt: str  # the template expanded once: what every cell starts from
    negative: str
    seed: int
    weights: Tuple[float, ...]
    loras: Tuple[str, ...]  # the rows after the baseline, in the order asked
    cells: Tuple[SwatchCell, ...]
    notes: Tuple[str, ...]  # one per LoRA skipped (it cannot load) or tried without a known base model

    def row_labels(self) -> Tuple[str, ...]:
        return ("no LoRA",) + self.loras

    def column_labels(self) -> Tuple[str, ...]:
        return tuple(f"{w:g}" for w in self.weights)


def parse_weights(text: str, source: str = "weights") -> Tuple[float, ...]:
    """`0.4, 0.7, 1.0` (commas or spaces) into weights, in order, each once. A bad entry is named with
    its column, so the user sees which one to fix."""
    weights = []
    for match in re.finditer(r"[^,\s]+", text):
        try:
            value = float(match.group())
        except ValueError:
            raise OrchestratorError(f"{match.group()!r} is not a weight", Location(source, 1, match.start() + 1, text),
                                    "write numbers such as 0.4, 0.7, 1.0") from None
        if not -4.0 <= value <= 4.0:
            raise OrchestratorError(f"weight {value:g} is outside -4…4", Location(source, 1, match.start() + 1, text),
                                    "LoRA weights past ±4 only make noise")
        if value not in weights:
            weights.append(value)
    if not weights:
        raise OrchestratorError("no weights given", Location(source, 1, 1, text), "write e.g. 0.4, 0.7, 1.0")
    if len(weights) > MAX_WEIGHTS:
        raise OrchestratorError(f"{len(weights)} weights; a swatch takes at most {MAX_WEIGHTS}",
                                Location(source, 1, 1, text), "split it into two swatches")
    return tuple(weights)


def plan_swatch(prompt: str, seed: int, records: Sequence[LoraRecord], weights: Sequence[float],
                base_model: str, negative: str = "") -> Swatch:
    """Cells for the LoRAs that load on a `base_model` checkpoint; the others are skipped with a note."""
    rows, notes = usable_loras(records, base_model)
    cells = [SwatchCell(0, 0, None, 0.0, prompt.strip(), negative.strip(), seed)]
    for r, record in enumerate(rows, start=1):
        for c, weight in enumerate(weights):
            text, negative_text = with_lora(prompt, negative, record, weight)
            cells.append(SwatchCell(r, c, record.name, weight, text, negative_text, seed))
    return Swatch(prompt.strip(), negative.strip(), seed, tuple(weights), tuple(r.name for r in rows), tuple(cells),
                  tuple(notes))


def usable_loras(records: Sequence[LoraRecord], base_model: str) -> Tuple[List[LoraRecord], List[str]]:
    """(the LoRAs to try, once each, in order; a note for each one skipped or of unknown base model)."""
    rows: List[LoraRecord] = []
    notes: List[str] = []
    seen = set()
    for record in records:
        if record.name.lower() in seen:  # `<lora:NAME>` names one file, whatever the case: one row for it
            continue
        seen.add(record.name.lower())
        if family_of(record.base_model) == "unknown":  # picked by hand: trying it is the point of a swatch
            notes.append(f"{record.name}: its base model is unknown; tried anyway")
            rows.append(record)
        elif compatibility(record.base_model, base_model) <= 0:
            notes.append(f"{record.name}: skipped, a {record.base_model} LoRA does not load on a {base_model} "
                         "checkpoint")
        else:
            rows.append(record)
    return rows, notes


def with_lora(prompt: str, negative: str, record: LoraRecord, weight: float) -> Tuple[str, str]:
    """The prompt with the LoRA's tag at `weight`, its first activation text (unless the prompt already
    says one of its alternatives: fixed, not drawn, so every weight shows the same words), and the
    negative prompt with its negative text."""
    alternatives = record.activations
    activation = alternatives[0] if alternatives and all(unsaid(a, prompt) for a in alternatives) else None
    pick = Pick(record.name, weight, record.category, "swatch", activation=activation,
                negative=record.negative_text, record=record)
    text, negative_text, _ = apply_picks(prompt, negative, [pick])
    return text, negative_text
