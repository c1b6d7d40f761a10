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
- Sampler, scheduler and hires upscaler names (research: none of them may be guessed). The API looks a sampler up
  by its exact name only, after cutting a trailing " <scheduler label, name or alias>" off it ("DPM++ 2M Karras");
  an unknown one is replaced by the first sampler without a word (modules/sd_samplers.py:113-134, api.py:454); the
  sampler aliases /sdapi/v1/samplers lists ("k_dpmpp_2m") are not consulted there. A scheduler is looked up by exact
  name or label, an unknown one becomes "Automatic" silently (sd_schedulers.py:230, sd_samplers.py:115). A hires
  upscaler must be an exact latent mode name or upscaler name, else the job fails with a 500
  (processing.py:1318-1321). Forge Neo does the same (its modules/sd_samplers.py:113-134, sd_schedulers.py:289).
  `/sdapi/v1/schedulers` is missing on servers older than A1111 1.9: there the scheduler is not checked.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..batches.model import Settings
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
class Sampler:
    name: str
    aliases: Tuple[str, ...] = ()  # listed by /sdapi/v1/samplers, but the API does not look a sampler up by them


@dataclass(frozen=True)
class Scheduler:
    name: str  # "karras"
    label: str  # "Karras"
    aliases: Tuple[str, ...] = ()  # "SGMUniform": only used when cut off a sampler name ("Euler SGMUniform")


@dataclass(frozen=True)
class Inventory:
    url: str
    checkpoints: Tuple[Checkpoint, ...]
    loras: Tuple[Lora, ...]
    loaded: str  # the server's title of its selected checkpoint ("" = none); the raw option value if unknown
    has_orchestrator: bool  # our AlwaysOn script is installed: send it args [False] so it does not compose again
    # What the settings need; None: not read (an inventory built by hand, or the server has no such route): unknown,
    # so not checked. The fields come last, with defaults, so Inventory(url, checkpoints, loras, loaded, has) works.
    samplers: Optional[Tuple[Sampler, ...]] = None  # /sdapi/v1/samplers
    schedulers: Optional[Tuple[Scheduler, ...]] = None  # /sdapi/v1/schedulers (None on servers without it)
    upscalers: Optional[Tuple[str, ...]] = None  # /sdapi/v1/upscalers names ("None", "Lanczos", "R-ESRGAN 4x+", …)
    latent_upscale_modes: Optional[Tuple[str, ...]] = None  # /sdapi/v1/latent-upscale-modes names ("Latent", …)


def _basename(path: str) -> str:
    return re.split(r"[\\/]", path)[-1] if path else ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _names(items: Any, key: str = "name") -> Optional[Tuple[str, ...]]:
    """The `key` of each item of a list answer; None when the answer is not a list (not read)."""
    if not isinstance(items, list):
        return None
    return tuple(_text(x.get(key)) for x in items if isinstance(x, dict) and _text(x.get(key)))


def _strings(value: Any) -> Tuple[str, ...]:
    return tuple(x for x in value if isinstance(x, str)) if isinstance(value, list) else ()


def settings_from_api(samplers: Any = None, schedulers: Any = None, upscalers: Any = None,
                      latent_upscale_modes: Any = None) -> Dict[str, Any]:
    """Inventory's settings fields from those four answers (None: that answer is missing, so unknown)."""
    return {
        "samplers": None if not isinstance(samplers, list) else tuple(
            Sampler(_text(x.get("name")), _strings(x.get("aliases")))
            for x in samplers if isinstance(x, dict) and _text(x.get("name"))),
        "schedulers": None if not isinstance(schedulers, list) else tuple(
            Scheduler(_text(x.get("name")), _text(x.get("label")) or _text(x.get("name")), _strings(x.get("aliases")))
            for x in schedulers if isinstance(x, dict) and _text(x.get("name"))),
        "upscalers": _names(upscalers),
        "latent_upscale_modes": _names(latent_upscale_modes),
    }


def inventory_from_api(url: str, sd_models: Any, loras: Any, options: Any, script_info: Any,
                       samplers: Any = None, schedulers: Any = None, upscalers: Any = None,
                       latent_upscale_modes: Any = None) -> Inventory:
    """The server's inventory from its answers (sd-models, loras, options, script-info; then samplers, schedulers,
    upscalers, latent-upscale-modes, each None when not read), tolerant of nulls and of items it cannot read (a
    server is never refused for an odd entry; the entry is just not offered)."""
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
    return Inventory(url, checkpoints, lora_items, loaded, has_script,
                     **settings_from_api(samplers, schedulers, upscalers, latent_upscale_modes))


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


def sampler_known(name: str, inv: Inventory) -> bool:
    """True when Forge's API would run `name` as given, not its first sampler instead: the exact name (case
    counts), or the name with a trailing " <scheduler>" cut off as Forge cuts it (sd_samplers.py:119-128: for each
    scheduler in order, the first of its label, name and aliases that ends the name)."""
    names = {s.name for s in inv.samplers or ()}
    if name in names:
        return True
    base = name
    for scheduler in inv.schedulers or ():
        for option in (scheduler.label, scheduler.name, *scheduler.aliases):
            if option and base.endswith(" " + option):
                base = base[: -len(option) - 1]
                break
    return base in names


def missing_settings(settings: Settings, inv: Inventory) -> List[str]:
    """What of the batch's settings this server lacks, in words: ["sampler 'DPM++ 2M Karras'", "scheduler 'Beta'",
    "hires upscaler 'Latent'"]. Forge would render with another sampler or scheduler without a word, or fail every
    hires image. Only what the server listed is checked: a list it did not give (None) blocks nothing."""
    out: List[str] = []
    if inv.samplers is not None and not sampler_known(settings.sampler_name, inv):
        out.append(f"sampler '{settings.sampler_name}'")
    if inv.schedulers is not None and settings.scheduler != "Automatic":
        if settings.scheduler not in {n for s in inv.schedulers for n in (s.name, s.label)}:
            out.append(f"scheduler '{settings.scheduler}'")
    if settings.enable_hr and (inv.upscalers is not None or inv.latent_upscale_modes is not None):
        # Forge takes hr_upscaler None as its default latent mode; the batch always names one
        if settings.hr_upscaler not in (*(inv.latent_upscale_modes or ()), *(inv.upscalers or ())):
            out.append(f"hires upscaler '{settings.hr_upscaler}'")
    return out
