"""What one infotext says: the text Forge writes into every image (PNG `parameters`, JPEG/WebP EXIF
UserComment, or the `.txt` beside it), read back the way Forge's own "paste parameters" reads it.

Forge's reading, which this follows (its `parse_generation_parameters`, re-implemented here from its
documented behaviour):

- The whole text is stripped and split at "\\n". The last line is the parameters line only when at least
  three `Key: value` pairs are found in it; otherwise it belongs to the prompt.
- Every other line is stripped. Lines are the prompt until one starts with `Negative prompt:`; from that
  line on they are the negative (that line without its label). Lines are joined with "\\n".
- A pair is a key (`\\w[\\w \\-/]+`, so at least two characters) and a colon, then a value: either a JSON
  string that ends at a comma or the end of the line (then it is unquoted as JSON), or everything up to
  the next comma. A pair whose value is empty is dropped, as Forge drops it.

What Forge's paste does beyond reading is left out, since it depends on that Forge's settings or changes the
text: taking the user's styles out of the prompt, appending a `<hypernet:…>` tag, rewriting Civitai's Flux
values, filling defaults for absent keys.

On top of Forge's reading we resolve what the history needs: the seed, the size, the checkpoint, our own
keys (`Orchestrator …`) and the LoRAs from three places (see `Generation.loras`). Nothing here raises:
an image file holds whatever its writer put there.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

from ..provenance import (
    KEY_BATCH,
    KEY_GROUP,
    KEY_LORAS,
    KEY_SETTINGS,
    KEY_SWATCH,
    KEY_TEMPLATE,
    group_value,
    number,
    parse_loras_value,
)

_INT64 = 2 ** 63  # SQLite's INTEGER: a number outside it is no seed or size anyone generated with


@dataclass(frozen=True)
class LoraUse:
    """One LoRA an image used, from the most telling place that names it."""

    name: str  # as written (`<lora:NAME:w>`, an `Orchestrator LoRAs` entry, a `Lora hashes` key)
    weight: Optional[float]  # None when only `Lora hashes` names it
    source: str  # "orchestrator" | "tag" | "hashes"
    reason: str = ""  # the Orchestrator reason (user/pinned/trigger/match/semantic/llm/fallback/detailer)


@dataclass(frozen=True)
class Generation:
    """What one infotext says; every field is "" / None / () when the infotext does not say it."""

    prompt: str = ""  # exactly as Forge's parser reads it, its <lora:...> tags included
    negative: str = ""
    params: Tuple[Tuple[str, str], ...] = ()  # every `Key: value` of the parameters line, in order, unquoted
    seed: Optional[int] = None
    width: Optional[int] = None  # from `Size: WxH`
    height: Optional[int] = None
    checkpoint: str = ""  # `Model`
    checkpoint_hash: str = ""  # `Model hash`
    hires_prompt: str = ""  # `Hires prompt`
    loras: Tuple[LoraUse, ...] = ()  # one per name, case-insensitive (see `_loras` for the order)
    template: str = ""  # `Orchestrator template`
    batch: str = ""  # `Orchestrator batch` ("name #index")
    swatch: str = ""  # `Orchestrator swatch` ("name:w" or "baseline")
    orchestrator: str = ""  # `Orchestrator` (the settings JSON), raw
    group: str = ""  # images that differ only in their LoRAs share it (`group_key`)

    def param(self, key: str) -> str:
        """The value of `key` on the parameters line ("" if absent); the last one wins, as in Forge."""
        for k, v in reversed(self.params):
            if k == key:
                return v
        return ""


# `Key: value` pairs, found the way Forge's `re.findall` finds them, in one linear pass. Forge's pattern,
# searched at every position, is quadratic on a long stretch of key characters without a colon (a prompt-only
# last line): each start re-runs the key to the stretch's end. Here a failed start consumes what it cannot
# use: a key starts with a word character and runs to the end of its stretch of key characters, where a colon
# must follow (a value always matches), so when that fails every later start in the stretch fails too (same
# end, shorter key) and the whole stretch is skipped (second branch); where no key can start (a `-`, a comma),
# one character is skipped, as findall would (third). Those skips have no key; `_pairs` drops them.
# tests/history/test_infotext.py checks the result is findall's on random lines.
_PAIRS = re.compile(r'\s*(?:(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"(?=,|$)|[^,]*)(?:,|$)|\w[\w \-/]*|.)', re.S)
# At most 19 digits: int() of a longer one may be refused (Python 3.11+), and no seed or size is that long.
_SIZE = re.compile(r"(\d{1,19})x(\d{1,19})")
_INTEGER = re.compile(r"\s*(-?\d{1,19})\s*")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Forge's extra-network tag is `<type:args>`; LoRAs are `lora` (and `lyco` of the old LyCORIS extension).
_LORA_TAG = re.compile(r"<(?:lora|lyco):([^>]+)>", re.IGNORECASE)


def _pairs(line: str) -> List[Tuple[str, str]]:
    """The (key, raw value) pairs Forge's parser finds in `line`, in order."""
    return [(key, value) for key, value in _PAIRS.findall(line) if key]


def _unquote(value: str) -> str:
    """A value as Forge reads it: a JSON string is unquoted (a broken one stays as written). A lone surrogate
    from a `\\ud800` escape becomes U+FFFD, so the text can always be stored as UTF-8."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    try:
        text = json.loads(value)
    except (ValueError, RecursionError):
        return value
    if not isinstance(text, str):
        return value
    return _SURROGATE.sub("\ufffd", text)


def split_infotext(text: str) -> Tuple[str, str, Tuple[Tuple[str, str], ...]]:
    """(prompt, negative, params) exactly as Forge's parser splits `text`."""
    *lines, last = text.strip().split("\n")
    found = _pairs(last)
    if len(found) < 3:
        lines.append(last)
        found = []
    prompt: List[str] = []
    negative: List[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    params = tuple((key, _unquote(value)) for key, value in found if value)
    return "\n".join(prompt), "\n".join(negative), params


def parse_infotext(text: str) -> Generation:
    """Everything `text` says (see the module's docstring). Never raises: anything that is not a string is
    read as an empty infotext."""
    if not isinstance(text, str) or not text.strip():
        return Generation()
    prompt, negative, params = split_infotext(text)
    values: Dict[str, str] = dict(params)  # the last of a repeated key wins, as in Forge's dict
    width = height = None
    size = _SIZE.fullmatch(values.get("Size", ""))
    if size is not None:
        width, height = _bounded(int(size.group(1))), _bounded(int(size.group(2)))
    seed_match = _INTEGER.fullmatch(values.get("Seed", ""))
    seed = _bounded(int(seed_match.group(1))) if seed_match else None
    checkpoint, checkpoint_hash = values.get("Model", ""), values.get("Model hash", "")
    hires = values.get("Hires prompt", "")
    return Generation(
        prompt=prompt, negative=negative, params=params, seed=seed, width=width, height=height,
        checkpoint=checkpoint, checkpoint_hash=checkpoint_hash, hires_prompt=hires,
        loras=_loras(values.get(KEY_LORAS, ""), (prompt, hires), values.get("Lora hashes", "")),
        template=values.get(KEY_TEMPLATE, ""), batch=values.get(KEY_BATCH, ""), swatch=values.get(KEY_SWATCH, ""),
        orchestrator=values.get(KEY_SETTINGS, ""),
        group=_group(values.get(KEY_GROUP, ""), prompt, negative, seed, checkpoint or checkpoint_hash, width, height))


def _bounded(number: int) -> Optional[int]:
    return number if -_INT64 <= number < _INT64 else None


def _loras(orchestrator: str, prompts: Tuple[str, ...], hashes: str) -> Tuple[LoraUse, ...]:
    """The image's LoRAs, one per name (compared case-insensitively; the first place that names it wins):
    the `Orchestrator LoRAs` entries (with their reasons) first, then the <lora:…> tags of the prompt and of
    the hires prompt, then the names that only `Lora hashes` has."""
    found: Dict[str, LoraUse] = {}

    def add(use: LoraUse) -> None:
        key = use.name.casefold()
        if use.name and key not in found:
            found[key] = use

    for name, weight, reason in parse_loras_value(orchestrator):
        add(LoraUse(name, weight, "orchestrator", reason))
    for prompt in prompts:
        for use in lora_tags(prompt):
            add(use)
    for name in _hash_names(hashes):
        add(LoraUse(name, None, "hashes"))
    return tuple(found.values())


def lora_tags(prompt: str) -> List[LoraUse]:
    """The `<lora:NAME:w>` tags of a prompt, as Forge's LoRA network reads them: the name is the first
    argument, the weight the second (Forge's text-encoder multiplier; `te=` overrides it), 1.0 when there is
    none, None when it is no number (Forge would refuse the tag)."""
    uses = []
    for m in _LORA_TAG.finditer(prompt):
        positional, named = [], {}
        for item in m.group(1).split(":"):
            key, eq, value = item.partition("=")
            if eq:
                named[key] = value
            else:
                positional.append(item)
        if not positional or not positional[0].strip():
            continue
        weight: Optional[float] = 1.0
        if len(positional) > 1:
            weight = number(positional[1])
        if "te" in named:
            weight = number(named["te"])
        uses.append(LoraUse(positional[0].strip(), weight, "tag"))
    return uses


def _hash_names(value: str) -> Iterator[str]:
    """The names of `Lora hashes: "a: 1e736908a712, b: 0123456789ab"` (Forge strips `:` and `,` from them)."""
    for item in value.split(","):
        name, colon, _hash = item.rpartition(":")
        if colon and name.strip():
            yield name.strip()


def _normalised(text: str) -> str:
    """A prompt without its LoRA tags, its whitespace and commas made uniform: two prompts that differ only in
    the LoRAs added to them (and the spacing left behind) compare equal."""
    pieces = (" ".join(piece.split()) for piece in _LORA_TAG.sub(",", text).split(","))
    return ", ".join(piece for piece in pieces if piece)


def group_key(gen: Generation) -> str:
    """The key that images differing only in their LoRAs share: `Orchestrator group` when the infotext has it
    (our swatch cells and by-LoRA batches), else the first 16 hex digits of a SHA-1 of the prompt and negative
    without LoRA tags, the seed, the checkpoint (its hash when unnamed) and the size. "" when the infotext has
    no prompt or no seed: such images cannot be told to be the same picture."""
    return _group(gen.param(KEY_GROUP), gen.prompt, gen.negative, gen.seed, gen.checkpoint or gen.checkpoint_hash,
                  gen.width, gen.height)


def _group(given: str, prompt: str, negative: str, seed: Optional[int], checkpoint: str, width: Optional[int],
           height: Optional[int]) -> str:
    given = given.strip()
    if given:
        return given
    if not prompt or seed is None:
        return ""
    size = f"{width}x{height}" if width is not None else ""
    return group_value(_normalised(prompt), _normalised(negative), str(seed), checkpoint, size)
