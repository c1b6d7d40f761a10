"""What one Forge server has: its checkpoints, its LoRAs, the checkpoint it has selected, and whether our script
is installed; and, for a job, what of it the server lacks. Pure functions over the JSON Forge's API answers.

Facts from Forge (lllyasviel/stable-diffusion-webui-forge, snapshot dfdcbab6), cited as file:line:
- `/sdapi/v1/sd-models` items are {title, model_name, hash, sha256, filename, config} (modules/api/api.py:729):
  title is "<path relative to the models folder> [<first 10 hex of sha256>]", or the path alone while the sha256 is
  not computed yet (modules/sd_models.py:101); model_name is that path with / and \\ made _ and no extension
  (sd_models.py:95); hash is the 10-hex short hash or null, sha256 the full one or null (sd_models.py:98-99).
- A request's `override_settings.sd_model_checkpoint` must be an exact key of Forge's checkpoint aliases, or Forge
  drops it silently and renders with whatever is loaded (modules/processing.py:825-826). So we always send the
  server's own title, found here, and never a name Forge would have to guess.
- `/sdapi/v1/loras` items are {name (file stem), alias (ss_output_name, else the stem), path, metadata}
  (extensions-builtin/sd_forge_lora/scripts/lora_script.py:42-48, network.py:42). A `<lora:X>` tag finds its file
  by exact dict lookup of X among stems and aliases; an alias two files share (or that equals another file's stem)
  is "forbidden" and then only the stem works (sd_forge_lora/networks.py:79-90, 145-151, 163).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .jobs import NewJob

SCRIPT_TITLE = "Orchestrator"  # our AlwaysOn script's title(); Forge lists it lowercased (modules/scripts.py:663)

# Forge strips any trailing " [...]" before its substring fallback (modules/sd_models.py:186); we read the
# bracket as a hash only when it is hex, so "model [v2].safetensors"-like names are left alone.
_HASH_SUFFIX = re.compile(r"^(?P<base>.*?)\s*\[(?P<hash>[0-9a-fA-F]{8,64})\]\s*$")


@dataclass(frozen=True)
class Checkpoint:
    title: str
    model_name: str
    filename: str
    hash: str  # Forge's short hash (10 hex) or "" while the server has not computed it
    sha256: str  # "" likewise

    @property
    def name(self) -> str:
        """The path relative to the models folder, with extension: the title without its " [hash]"."""
        if self.hash and self.title.endswith(f" [{self.hash}]"):
            return self.title[: -len(self.hash) - 3]
        return self.title

    @property
    def file_name(self) -> str:
        return _basename(self.filename) or _basename(self.name)

    @property
    def stem(self) -> str:
        return os.path.splitext(self.file_name)[0]


@dataclass(frozen=True)
class Lora:
    name: str
    alias: str
    path: str


@dataclass(frozen=True)
class Inventory:
    url: str
    checkpoints: Tuple[Checkpoint, ...]
    loras: Tuple[Lora, ...]
    loaded: str  # the server's title of its selected checkpoint ("" = none); the raw option value if unknown
    has_orchestrator: bool  # our AlwaysOn script is installed: send it args [False] so it does not compose again


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path)[-1] if path else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def inventory_from_api(url: str, sd_models: Any, loras: Any, options: Any, script_info: Any) -> Inventory:
    """The server's inventory from its four answers (sd-models, loras, options, script-info), tolerant of nulls and
    of items it cannot read (a server is never refused for an odd entry; the entry is just not offered)."""
    checkpoints = tuple(
        Checkpoint(_text(m.get("title")), _text(m.get("model_name")), _text(m.get("filename")),
                   _text(m.get("hash")).lower(), _text(m.get("sha256")).lower())
        for m in (sd_models if isinstance(sd_models, list) else []) if isinstance(m, dict) and _text(m.get("title")))
    lora_items = tuple(
        Lora(_text(x.get("name")), _text(x.get("alias")) or _text(x.get("name")), _text(x.get("path")))
        for x in (loras if isinstance(loras, list) else []) if isinstance(x, dict) and _text(x.get("name")))
    selected = _text(options.get("sd_model_checkpoint")) if isinstance(options, dict) else ""
    has_script = any(isinstance(s, dict) and _text(s.get("name")).lower() == SCRIPT_TITLE.lower()
                     and s.get("is_alwayson") and not s.get("is_img2img")
                     for s in (script_info if isinstance(script_info, list) else []))
    partial = Inventory(url, checkpoints, lora_items, selected, has_script)
    # The option holds whatever string was last set, possibly a short name (research forge-api.md §1.4): give the
    # title, so a job's checkpoint_title() compares equal to it.
    loaded = checkpoint_title(selected, partial) or selected if selected else ""
    return Inventory(url, checkpoints, lora_items, loaded, has_script)


def split_hash(name: str) -> Tuple[str, str]:
    """("sd_xl_base_1.0.safetensors", "31e35c80fc") from "sd_xl_base_1.0.safetensors [31e35c80fc]"; ("x", "")."""
    m = _HASH_SUFFIX.match(name)
    return (m.group("base"), m.group("hash").lower()) if m else (name, "")


def _hash_agrees(wanted: str, ckpt: Checkpoint) -> bool:
    """True when the server does not know the file's hash, or knows one that `wanted` is a prefix of. Forge's
    short hash is sha256[:10] (sd_models.py:99); Forge also accepts its legacy 8-hex hash in "name [hash]"
    (sd_models.py:104), which the API never reports: such a name fails here and is reported, never guessed."""
    known = ckpt.sha256 or ckpt.hash
    if not wanted or not known:
        return True
    n = min(len(known), len(wanted))  # a full sha256 asked of a server that shows only the short hash, or reverse
    return known[:n] == wanted[:n]


def checkpoint_matches(name: str, inv: Inventory) -> List[Checkpoint]:
    """The server's checkpoints `name` denotes, by the first rule that finds any: exact title; title without its
    " [hash]"; model_name; file name (with extension, any folder); file stem; short hash or full sha256. Forge's
    own alias table holds the first four and the hashes (sd_models.py:104-106); its substring fallback
    (get_closet_checkpoint_match, sd_models.py:206-213) is left out on purpose: "xl" would pick some model.
    A hash in `name` ("x.safetensors [31e35c80fc]") must agree with the server's where it knows one."""
    name = name.strip()
    if not name:
        return []
    base, wanted = split_hash(name)
    rules = (
        lambda c: c.title == name,
        lambda c: c.name == base,
        lambda c: c.model_name == base,
        lambda c: c.file_name == base,
        lambda c: c.stem == base,
        lambda c: bool(c.hash) and c.hash == name.lower() or bool(c.sha256) and c.sha256 == name.lower(),
    )
    for rule in rules:
        found = [c for c in inv.checkpoints if rule(c)]
        if found:
            return [c for c in found if _hash_agrees(wanted, c)]
    return []


def checkpoint_title(name: str, inv: Inventory) -> Optional[str]:
    """The server's title for the batch's checkpoint `name`, or None when it has none, or when two of its files
    fit the name equally well and the hashes cannot tell them apart (it would be a guess)."""
    found = checkpoint_matches(name, inv)
    titles = {c.title for c in found}
    if len({c.sha256 or c.title for c in found}) == 1:
        return sorted(titles)[0]
    return None


def lora_names(inv: Inventory) -> Dict[str, bool]:
    """Every name a `<lora:X>` tag can use on this server (True), as Forge's lookup decides: stems, and aliases
    unless forbidden (shared by two files, or equal to another file's stem, or "none")."""
    found: Dict[str, bool] = {}
    forbidden = {"none", "Addams"}  # networks.py:163; "Addams" is compared lowercased, so it never matches
    stems = set()
    for lora in inv.loras:  # in the server's order: the first file keeps an alias, a later one makes it forbidden
        if lora.alias in found:
            forbidden.add(lora.alias.lower())
        found[lora.name] = True
        found[lora.alias] = True
        stems.add(lora.name)
    return {n: True for n in found if n.lower() not in forbidden or n in stems}


def missing_loras(names: Iterable[str], inv: Inventory) -> List[str]:
    usable = lora_names(inv)
    return [n for n in names if n not in usable]


def missing(job: NewJob, inv: Inventory) -> List[str]:
    """What this server lacks for the job, in words: ["checkpoint 'x'", "LoRA 'y'"]. Empty: it can run it.
    A `<lyco:X>` tag's X (in job.loras like any LoRA) is looked up the same way; note that Forge itself registers
    no "lyco" alias and skips such tags (modules/extra_networks.py:112-119,
    sd_forge_lora/scripts/lora_script.py:14-18)."""
    out: List[str] = []
    if job.checkpoint and checkpoint_title(job.checkpoint, inv) is None:
        out.append(f"checkpoint '{job.checkpoint}'{_why_no_checkpoint(job.checkpoint, inv)}")
    out.extend(f"LoRA '{n}'" for n in missing_loras(job.loras, inv))
    return out


def _why_no_checkpoint(name: str, inv: Inventory) -> str:
    base, wanted = split_hash(name)
    if wanted:
        same_name = checkpoint_matches(base, inv)
        if same_name:
            return f" (the server's {same_name[0].title} has another hash)"
    matches = checkpoint_matches(name, inv)
    if len(matches) > 1:
        return f" (ambiguous: {', '.join(sorted(c.title for c in matches))})"
    return ""
