"""A synthetic LoRA library with its ground truth, for the scanner's tests and benchmarks.

``generate(root, size="tiny", seed=0)`` writes::

    root/
      manifest.json            the ground truth: one entry per file the scanner reports
      elsewhere/
        not_in_library.safetensors   outside the tree: never listed
        loras/                 reached only through the symlink Lora/linked
      Lora/                    the library that is scanned
        style/ character/ concept/ clothing/ pose/ background/ detailer/ slider/    category-first
        Pony/ Illustrious/ SDXL/ SD15/ Flux/ _SDXL_1_0/ _Other/                   base-model-first
        Illustrious/chara/ _Pony/Outfits/ SD15/Artists/ "SDXL - Illustrious/2. Poses/"   both, nested
        Effects/ FX/ "Hands & Gestures"/ BG/ Costumes/ Tools/ Enhancers/ Misc/ "01 - Characters"/  synonyms
        _Other/video/          video LoRAs as musubi-tuner, diffusion-pipe, diffusers and genmo write them
        _unsorted/             a flat dump with Civitai's default file names, lineage only in one place
        empty/                 an empty folder
        .hidden/               a dot folder (listed: Forge's default)
        linked -> ../elsewhere/loras             a symlinked folder (listed once)
        favourites -> Pony/characters/genshin    a folder linked inside the library: listed under both paths
        concept/lighting/loop -> ..              a symlink loop: one `symlink_loop` record, never walked

Beside them: AppleDouble `._x.safetensors` files (never LoRAs), previews that have an image's magic bytes
but do not decode (listed in the manifest's `undecodable_previews`), LoRAs whose tensor data is cut short
or whose `data_offsets` run backwards. Each entry's `real_path` names the file it lists (the path it was
written under), so the two listings of one file can be told apart from two files. The manifest assumes
Pillow is installed (Forge ships it): without it the `undecodable_previews` pass on their magic bytes.
`base_model_candidates` holds each candidate's `source`, `value`, `specificity` and `field` (the contract's
part; a record's `evidence` is for people and is not predicted).

Every LoRA is a *bundle*: the model file (``.safetensors`` written by hand, or a ``.pt``/``.ckpt``)
plus, by stem, the sidecars real tools write (``.civitai.info``, ``.json``, ``.metadata.json``,
``.cm-info.json``, ``.txt``, ``.description.txt``, ``.sha256``) and previews. Beside the LoRAs the
tree holds partial downloads, other model files, orphan sidecars and previews.

``size="tiny"`` writes the hand-listed special cases (`special_cases`: every rule of the contract,
every defect and trap of the research plan, at least once) plus a small random mix. An int ``N``
writes exactly N LoRA files: the special cases (without the multi-MB header) when N is large enough,
then the random mix (`bulk_specs`), which has the realistic proportions of research §7.2/§7.4 and
only the common defects. In bulk sizes tensor shapes are scaled down by 16 to keep files at a few KB
(key names stay architecture-true; a scanner reads only names).

The expected values are computed here by the rules of ``docs/lora-library.md`` from the facts that
were written (the metadata dicts, the tensor names, how each sidecar was encoded), never by parsing
the files back or calling the scanner. Where the contract leaves a choice open the generator either
avoids the case or follows the interpretation written next to the rule below (search "Choice:").

For the accuracy on a library kept the way real users keep it (truth decided by the LoRAs' authors, not
by these rules), see tests/library_realistic.py.

The code runs top to bottom in this order:
  1. the contract's tables and rules (what the manifest is computed by);
  2. byte builders (safetensors, images, sidecar encodings);
  3. the content: Model (what a LoRA is of) and Spec (how its bundle is written), word pools;
  4. header profiles and sidecar builders;
  5. the population: special cases and the bulk mix;
  6. the writer, and the expected entry of each written file;
  7. generate().

Stdlib only; python 3.10 compatible; deterministic from the seed (contents, names and mtimes).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
import pickle
import random
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

# ==============================================================================================
# 1. The contract (docs/lora-library.md): tables and rules the manifest is computed by
# ==============================================================================================

LORA_EXTS = (".safetensors", ".pt", ".ckpt")
PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".download")
OTHER_MODEL_EXTS = (".gguf", ".zip", ".bin", ".pth", ".onnx")
HEADER_CAP = 64 * 1024 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # e3b0c442…: "no hash"

FAMILIES: Dict[str, Tuple[str, ...]] = {
    "sd1": ("SD 1.4", "SD 1.5", "SD 1.5 LCM", "SD 1.5 Hyper"),
    "sd2": ("SD 2.0", "SD 2.0 768", "SD 2.1", "SD 2.1 768", "SD 2.1 Unclip"),
    "sdxl": ("SDXL 0.9", "SDXL 1.0", "SDXL 1.0 LCM", "SDXL Lightning", "SDXL Hyper", "SDXL Turbo",
             "SDXL Distilled", "Pony", "Illustrious", "NoobAI"),
    "flux": ("Flux.1 S", "Flux.1 D", "Flux.1 Krea", "Flux.1 Kontext"),
    "sd3": ("SD 3", "SD 3.5", "SD 3.5 Medium", "SD 3.5 Large", "SD 3.5 Large Turbo"),
    "video": ("SVD", "SVD XT", "Hunyuan Video", "Mochi", "CogVideoX"),  # and every "Wan Video …", "LTXV…"
}
EXCLUDED_IMAGE_BASES = ("Chroma", "Lumina", "AuraFlow", "Pony V7", "Kolors", "PixArt a", "PixArt E",
                        "Hunyuan 1", "HiDream", "Qwen", "Stable Cascade")
_FAMILY_OF = {b: fam for fam, bases in FAMILIES.items() for b in bases}
_CANONICAL = {b.lower(): b for b in list(_FAMILY_OF) + list(EXCLUDED_IMAGE_BASES) + ["LTXV", "LTXV2"]}

SD_VERSION = {"SD1": "SD 1.5", "SD2": "SD 2.1", "SDXL": "SDXL 1.0", "Flux": "Flux.1 D"}
CIVITAI_FAMILY_ONLY = ("SDXL 1.0", "SDXL 0.9")  # §3.1: the only Civitai values that are coarse

# §3.2 modelspec.architecture (lower-cased, cut at the first "/") and ss_base_model_version
MODELSPEC_ARCH = {  # value -> (base, specificity)
    "stable-diffusion-v1": ("SD 1.5", "family"), "stable-diffusion-v2-512": ("SD 2.1", "lineage"),
    "stable-diffusion-v2-768-v": ("SD 2.1 768", "lineage"), "stable-diffusion-xl-v1-base": ("SDXL 1.0", "family"),
    "flux-1-dev": ("Flux.1 D", "lineage"), "flux-1-schnell": ("Flux.1 S", "lineage"), "flux-1": ("Flux.1 D", "family"),
    "chroma": ("Chroma", "lineage"), "lumina-2": ("Lumina", "lineage"), "lumina": ("Lumina", "lineage"),
}
SS_BASE_VERSION = {"sd_v1": ("SD 1.5", "family"), "sd_v1_v": ("SD 1.5", "family"), "sd_v2": ("SD 2.1", "family"),
                   "sd_v2_v": ("SD 2.1 768", "lineage")}
SS_BASE_PREFIX = (("sdxl", "SDXL 1.0", "family"), ("flux1", "Flux.1 D", "family"), ("sd3", "SD 3.5", "family"),
                  ("chroma", "Chroma", "lineage"), ("lumina", "Lumina", "lineage"))
# §3.3 name terms -> (base, specificity)
NAME_TERMS: Dict[str, Tuple[str, str]] = {}
for _terms, _value, _spec in (
        (("pony", "pdxl", "ponyxl", "ponyv6", "ponydiffusion", "autismmix"), "Pony", "lineage"),
        (("illustrious", "illustriousxl", "ilxl", "il"), "Illustrious", "lineage"),
        (("noobai", "noob", "noobaixl", "naixl"), "NoobAI", "lineage"),
        (("schnell", "flux1s", "fluxschnell", "flux1schnell"), "Flux.1 S", "lineage"),
        (("flux1d", "flux1dev", "fluxdev"), "Flux.1 D", "lineage"), (("krea",), "Flux.1 Krea", "lineage"),
        (("kontext",), "Flux.1 Kontext", "lineage"), (("sd35large", "sd35l"), "SD 3.5 Large", "lineage"),
        (("sd35medium", "sd35m"), "SD 3.5 Medium", "lineage"), (("v21768", "sd21768"), "SD 2.1 768", "lineage"),
        (("sdxl", "sdxl10", "xl"), "SDXL 1.0", "family"), (("sd15", "sd1"), "SD 1.5", "family"),
        (("sd21", "sd2"), "SD 2.1", "family"), (("flux", "flux1"), "Flux.1 D", "family"),
        (("sd3", "sd35"), "SD 3.5", "family")):
    NAME_TERMS.update((t, (_value, _spec)) for t in _terms)
# §3.5 folder names as a whole (lower-cased; spaces, _, -, . removed): any term of §3.3, and `15`
FOLDER_BASE = {**NAME_TERMS, "15": ("SD 1.5", "family")}
HEADER_NAME_FIELDS = ("ss_sd_model_name", "modelspec.title", "modelspec.description", "ss_output_name")
BASE_SOURCES = ("civitai", "user_json", "header", "tensor_keys", "name", "folder", "none")

# §4 categories
CATEGORIES = ("style", "character", "concept", "clothing", "pose", "background", "detailer", "slider", "other")
CATEGORY_SOURCES = ("folder", "tags", "trigger", "name", "training")  # the tie order of §4
FOLDER_CATEGORY: Dict[str, str] = {}
for _cat, _names in (
        ("style", "style|styles|art style|art styles|artstyle|artstyles|artist|artists|art|aesthetic|aesthetics"),
        ("character", "character|characters|chara|charas|char|chars|person|persons|people|celebrity|celebrities|"
                      "oc|ocs"),
        ("concept", "concept|concepts|effect|effects|fx|vfx|lighting"),
        ("clothing", "clothing|clothes|outfit|outfits|costume|costumes|fashion|attire|wear|uniforms"),
        ("pose", "pose|poses|posing|gesture|gestures|hands gestures|hands and gestures|action|actions"),
        ("background", "background|backgrounds|bg|bgs|scenery|sceneries|scene|scenes|landscape|landscapes|"
                       "environment|environments|location|locations|place|places"),
        ("detailer", "detailer|detailers|tool|tools|enhancer|enhancers|enhancement|enhancements|utility|utilities|"
                     "fix|fixes"),
        ("slider", "slider|sliders")):
    FOLDER_CATEGORY.update((n, _cat) for n in _names.split("|"))
TAG_CATEGORY = (("slider", ("slider",)), ("detailer", ("tool", "tools", "detail", "detailer", "enhancer")),
                ("character", ("character", "characters", "celebrity")),
                ("clothing", ("clothing", "clothes", "outfit", "costume")), ("pose", ("poses", "pose")),
                ("background", ("background", "backgrounds", "scenery", "landscape")),
                ("style", ("style", "art style", "artstyle")), ("concept", ("concept", "concepts", "effect")))
KEYWORDS: Dict[str, Tuple[str, ...]] = {
    "style": ("style", "art style", "artstyle", "artist", "watercolor", "oil painting", "painting", "sketch", "lineart",
              "pixel art", "flat color", "cel shading", "impasto", "ink wash", "ukiyo e", "chibi"),
    "character": ("character", "chara", "oc"),
    "concept": ("concept", "lens flare", "god rays", "light rays", "sunbeam", "glitch", "chromatic aberration", "bokeh",
                "bloom", "glowing", "magic circle", "runes", "particles", "motion blur", "double exposure",
                "silhouette", "backlighting", "rim light", "lighting", "effect", "effects", "fx", "hologram"),
    "clothing": ("outfit", "outfits", "clothing", "clothes", "costume", "dress", "qipao", "cheongsam", "china dress",
                 "armor", "armour", "uniform", "hat", "kimono", "yukata", "hanfu", "bikini", "swimsuit", "lingerie",
                 "hoodie", "jacket", "coat", "skirt", "shirt", "sweater", "bodysuit", "gown", "apron", "maid", "cape",
                 "capelet", "robe", "boots", "gloves", "pantyhose", "thighhighs", "leotard", "helmet"),
    "pose": ("pose", "poses", "posing", "looking back", "sitting", "standing", "jumping", "kneeling", "lying",
             "squatting", "crouching", "hand on hip", "hands on hips", "arms up", "arms behind back", "from behind",
             "from above", "from below", "leaning forward", "spread arms", "peace sign", "heart hands", "stretching",
             "running", "walking", "all fours", "crossed arms", "crossed legs", "wariza", "seiza", "contrapposto"),
    "background": ("background", "backgrounds", "bg", "scenery", "landscape", "library", "street", "city", "cityscape",
                   "shrine", "temple", "ruins", "forest", "beach", "classroom", "bedroom", "cafe", "castle", "alley",
                   "rooftop", "mountain", "garden", "train station", "interior", "architecture"),
    "detailer": ("detail", "details", "detailer", "enhancer", "tweaker"),
    "slider": ("slider", "sliders"),
}
APPEARANCE = ("twintails", "ponytail", "braid", "ahoge", "pointy ears", "animal ears", "cat ears", "fox ears",
              "hair ornament", "hair bun", "sidelocks", "heterochromia")
VOTE_WEIGHT = {"folder": 6, "tags": 4, "qualifier": 4, "name": 2, "trigger": 1, "training": 1}

PREVIEW_EXTS = ("png", "jpg", "jpeg", "webp", "gif")
USER_JSON_KEYS = ("activation text", "preferred weight", "sd version", "negative text", "description", "notes")
CIVITAI_KEYS = ("modelId", "baseModel", "trainedWords", "modelVersions", "files")
WARNING_CODES = ("alias_collision", "base_model_conflict", "broken_preview", "corrupt_header", "corrupt_sidecar",
                 "duplicate", "excluded_architecture", "not_safetensors", "partial_download", "stale_sidecar",
                 "stem_collision", "symlink_loop")
_REPEATS = re.compile(r"^\d+_")


def normalise_base(value: Any) -> Optional[str]:
    """A Civitai-style base model string, or None when absent/"Unknown" (§3: case and spacing only)."""
    if not isinstance(value, str):
        return None
    spaced = " ".join(value.split())
    if not spaced or spaced.lower() == "unknown":
        return None
    return _CANONICAL.get(spaced.lower(), value)


def family_of(base: str) -> str:
    if base == "Pony V7":  # an AuraFlow model: the table's exception
        return "unknown"
    if base.startswith(("Wan Video", "LTXV")):
        return "video"
    return _FAMILY_OF.get(base, "unknown")


def is_excluded(base: str) -> bool:
    return family_of(base) == "video" or base in EXCLUDED_IMAGE_BASES or base.startswith("Flux.2")


def group_of(base: str) -> Optional[str]:
    """§3.6: a recognised value's group (its family, else itself or its prefix); None when unrecognised."""
    fam = family_of(base)
    if fam not in ("unknown", "video"):
        return fam
    for prefix in ("Wan Video", "LTXV", "Flux.2"):
        if base.startswith(prefix):
            return prefix
    return base if (fam == "video" or is_excluded(base)) else None


# -- §3.3 name tokens ------------------------------------------------------------------------------------

def name_tokens(text: str) -> List[str]:
    """Split at lower->Upper, before the last capital of a run of capitals followed by a lower-case
    letter (`XLIllustrious`), and at every character that is not an ASCII letter or digit; lower-cased.
    Digits never split (`V6XL`, `v6Start` stay whole)."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)
    text = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    return [t.lower() for t in re.split(r"[^A-Za-z0-9]+", text) if t]


def name_terms(tokens: List[str]) -> List[str]:
    merged: List[str] = []
    for t in tokens:  # §3.3: pony then tail(s) is the word ponytail (`PonyTail`)
        if merged and merged[-1] == "pony" and t in ("tail", "tails"):
            merged[-1] += t
        else:
            merged.append(t)
    tokens = merged
    terms = list(tokens)
    terms += ["".join(tokens[i:i + 2]) for i in range(len(tokens) - 1)]
    terms += ["".join(tokens[i:i + 3]) for i in range(len(tokens) - 2)]
    return terms


def text_candidate(text: Any) -> Optional[Tuple[str, str]]:
    """(value, specificity) that one text's name terms give, at most one (§3.3)."""
    if not isinstance(text, str):
        return None
    found = [NAME_TERMS[t] for t in name_terms(name_tokens(text)) if t in NAME_TERMS]
    lineages = {v for v, s in found if s == "lineage"}
    if lineages == {"Illustrious", "NoobAI"}:
        return "NoobAI", "lineage"
    if len(lineages) == 1:
        return lineages.pop(), "lineage"
    if lineages:
        return None
    families = {v for v, s in found if s == "family"}
    return (families.pop(), "family") if len(families) == 1 else None


def folder_candidate(name: str) -> Optional[Tuple[str, str]]:
    whole = re.sub(r"[ _\-.]", "", name.lower())
    return FOLDER_BASE.get(whole) or text_candidate(name)


# -- §3.2 header values ---------------------------------------------------------------------------------

def modelspec_arch_value(arch: Any) -> Optional[Tuple[str, str]]:
    if not isinstance(arch, str):
        return None
    arch = arch.lower().split("/", 1)[0]
    if arch.startswith("stable-diffusion-3"):
        words = [w for w in re.split(r"[^a-z0-9]+", arch[len("stable-diffusion-3"):]) if w]
        if words[:3] == ["5", "large", "turbo"]:
            return "SD 3.5 Large Turbo", "lineage"
        if words[:2] in (["5", "large"], ["5", "l"]):
            return "SD 3.5 Large", "lineage"
        if words[:2] in (["5", "medium"], ["5", "m"]):
            return "SD 3.5 Medium", "lineage"
        if words[:1] in (["m"], ["medium"]):
            return "SD 3", "lineage"
        return "SD 3.5", "family"
    return MODELSPEC_ARCH.get(arch)


def ss_version_value(version: Any) -> Optional[Tuple[str, str]]:
    if not isinstance(version, str):
        return None
    version = version.lower()
    if version in SS_BASE_VERSION:
        return SS_BASE_VERSION[version]
    return next(((v, s) for prefix, v, s in SS_BASE_PREFIX if version.startswith(prefix)), None)


# -- §3.4 tensor keys -------------------------------------------------------------------------------------

def _consistent(layout: str) -> Callable[[str], bool]:
    fam = {"Flux.1 D": "flux", "SD 3.5": "sd3", "SDXL 1.0": "sdxl", "SD 2.1": "sd2", "SD 1.5": "sd1"}
    if layout == "Hunyuan Video" or layout == "Mochi":
        return lambda v: v == layout
    if layout == "Flux.1 D":
        return lambda v: family_of(v) == "flux" or v in ("Chroma", "Hunyuan Video") or v.startswith("Flux.2")
    if layout in ("Wan Video", "LTXV"):
        return lambda v: v.startswith(layout)
    if layout == "SDXL 1.0":
        return lambda v: family_of(v) == "sdxl" or v == "Kolors"
    if layout == "SD1 or SD2":
        return lambda v: family_of(v) in ("sd1", "sd2")
    return lambda v: family_of(v) == fam[layout]


_WAN_FLAT = re.compile(r"(?:^|(?<=_))(?<!double_)(?<!single_)(?<!transformer_)(?<!joint_)(?<!input_)(?<!output_)"
                       r"(?<!down_)(?<!up_)blocks_\d+_(?:self|cross)_attn_")


def tensor_layout(keys: List[str]) -> Optional[str]:
    """§3.4: the first step any key matches; "SD1 or SD2" for a UNet-only SD LoRA (value SD 1.5)."""
    if not keys:
        return None
    flat = [k.lower().replace(".", "_") for k in keys]

    def sd_decision() -> str:
        if any(f.startswith(("lora_te1_", "lora_te2_", "text_encoder_2_")) for f in flat) or any(
                int(n) >= 1 for f in flat for n in re.findall(r"transformer_blocks_(\d+)_", f)):
            return "SDXL 1.0"
        layers = [int(n) for f in flat for n in re.findall(r"text_model_encoder_layers_(\d+)_", f)]
        if layers:
            return "SD 2.1" if max(layers) >= 12 else "SD 1.5"
        return "SD1 or SD2"
    if any(s in f for f in flat for s in ("input_blocks_", "output_blocks_", "middle_block_")):      # 1
        return "SDXL 1.0"
    if any(s in f for f in flat for s in ("lora_unet_down_blocks_", "lora_unet_up_blocks_", "lora_unet_mid_block_",
                                          "lora_te_")):                                              # 2
        return sd_decision()
    if any(re.search(r"(double|single)_blocks_\d+_", f) or "single_transformer_blocks" in f for f in flat):
        marks = ("img_mlp_fc1", "img_mlp_fc2", "txt_mlp_fc1", "txt_mlp_fc2", "img_mod_linear", "txt_mod_linear",
                 "modulation_linear", "token_refiner")
        singles = [int(n) for f in flat for n in re.findall(r"single_(?:transformer_)?blocks_(\d+)", f)]
        doubles = [int(n) for f in flat for n in re.findall(r"double_blocks_(\d+)", f)]
        doubles += [int(n) for f in flat for n in re.findall(r"(?<!single_)transformer_blocks_(\d+)", f)]
        if (any(m in f for f in flat for m in marks)
                or any(m in k for k in keys for m in (".img_attn_qkv", ".img_attn_proj", ".txt_attn_qkv",
                                                       ".txt_attn_proj"))
                or 19 in doubles or (any(n in (38, 39) for n in singles) and not any(n > 39 for n in singles))):
            return "Hunyuan Video"                                                                    # 3
        return "Flux.1 D"                                                                             # 4
    if any(_WAN_FLAT.search(f) for f in flat) or any(
            re.search(r"(^|\.)blocks\.\d+\.(attn1|attn2|ffn)\.", k) for k in keys):                # 5
        return "Wan Video"
    if any(m in k for k in keys for m in (".attn1.add_q_proj", ".attn1.add_k_proj", ".attn1.add_v_proj",
                                           ".attn1.to_add_out")) or any(
            re.search(r"blocks_\d+_.*_(qkv_x|qkv_y|proj_x|proj_y)", f) for f in flat):                 # 6
        return "Mochi"
    unet = ("attentions", "down_blocks", "up_blocks", "mid_block")
    if any(re.search(r"(^|\.)transformer_blocks\.\d+\.attn[12]\.", k) and not any(u in k for u in unet)
           for k in keys) and not any(re.search(r"transformer_blocks\.\d+\.attn\.", k) for k in keys):  # 7
        return "LTXV"
    if any("joint_blocks" in f for f in flat):                                                        # 8
        return "SD 3.5"
    if any(f.startswith(("lora_te_", "lora_te1_", "lora_te2_", "lora_unet_down_blocks_", "lora_unet_up_blocks_",
                         "lora_unet_mid_block_", "unet_", "text_encoder_"))
           or re.search(r"(down|up)_blocks_\d+_attentions", f) for f in flat):                        # 9
        return sd_decision()
    return None


# -- §3.6 from candidates to the base model -----------------------------------------------------------

def base_candidates(info: Optional[dict], lm: Optional[dict], lm_civ: Optional[dict], cm: Optional[dict],
                    user: Optional[dict], meta: Optional[dict], keys: List[str], stem: str,
                    folders: List[str]) -> Tuple[List[dict], Optional[str]]:
    """Every candidate of §3.1, in trust order, and the tensor layout (None without one)."""
    out: List[dict] = []

    def add(source: str, field_name: str, found: Optional[Tuple[str, str]]) -> None:
        if found:
            out.append({"source": source, "value": found[0], "specificity": found[1], "field": field_name})

    for field_name, value in ((".civitai.info baseModel", (info or {}).get("baseModel")),
                              (".metadata.json civitai.baseModel", (lm_civ or {}).get("baseModel")),
                              (".metadata.json base_model", (lm or {}).get("base_model")),
                              (".cm-info.json BaseModel", (cm or {}).get("BaseModel"))):
        base = normalise_base(value)
        add("civitai", field_name, (base, "family" if base in CIVITAI_FAMILY_ONLY else "lineage") if base else None)
    sd = (user or {}).get("sd version")
    add("user_json", "sd version", (SD_VERSION[sd], "family") if isinstance(sd, str) and sd in SD_VERSION else None)
    meta = meta or {}
    add("header", "modelspec.architecture", modelspec_arch_value(meta.get("modelspec.architecture")))
    add("header", "ss_base_model_version", ss_version_value(meta.get("ss_base_model_version")))
    if meta.get("ss_v2") == "True":
        add("header", "ss_v2", ("SD 2.1 768", "lineage") if meta.get("ss_v_parameterization") == "True"
            else ("SD 2.1", "family"))
    for field_name in HEADER_NAME_FIELDS:
        add("header", field_name, text_candidate(meta.get(field_name)))
    layout = tensor_layout(keys)
    if layout:
        add("tensor_keys", "tensor keys", ("SD 1.5" if layout == "SD1 or SD2" else layout, "family"))
    add("name", "file name", text_candidate(stem))
    for folder in reversed(folders):
        add("folder", "folder", folder_candidate(folder))
    return out, layout


def choose_base(cands: List[dict], layout: Optional[str]) -> Tuple[str, str, bool]:
    """(base_model, base_model_source, base_model_conflict) by §3.6."""
    recognised = [c for c in cands if group_of(c["value"]) is not None]
    if not recognised:
        return (cands[0]["value"], cands[0]["source"], False) if cands else ("Unknown", "none", False)
    if layout:
        fits = _consistent(layout)
        first = next((c for c in recognised if fits(c["value"])), None)
        group = group_of(first["value"] if first else ("SD 1.5" if layout == "SD1 or SD2" else layout))
    else:
        group = group_of(recognised[0]["value"])
    members = [c for c in recognised if group_of(c["value"]) == group]
    best = next((c for c in members if c["specificity"] == "lineage"), None) or members[0]
    conflict = any(c["source"] in ("civitai", "user_json", "header") and (
        group_of(c["value"]) != group or (c["specificity"] == "lineage" and c["value"] != best["value"]))
        for c in recognised)
    return best["value"], best["source"], conflict


# -- §4 category ------------------------------------------------------------------------------------------

def words_of(text: str) -> List[str]:
    """§4.4: lower-cased; `_` and every character that is not a letter or digit are spaces."""
    return re.sub(r"[\W_]+", " ", text.lower()).split()


def holds(words: List[str], phrase: str) -> bool:
    """The phrase's words appear in `words` as consecutive whole words."""
    return f" {phrase} " in f" {' '.join(words)} "


# One pattern per category (whole words between spaces), so the 10k bulk stays quick to generate.
_KEYWORD_RE = {cat: re.compile("(?<!\\S)(?:" + "|".join(re.escape(k) for k in kws if k != "background") + ")(?!\\S)")
               for cat, kws in KEYWORDS.items()}


def keyword_categories(words: List[str]) -> List[str]:
    """§4.4: the categories whose keywords the words hold (`background` only as the whole text)."""
    text = " ".join(words)
    return [cat for cat in KEYWORDS if _KEYWORD_RE[cat].search(text) or (cat == "background" and text == "background")]


def is_appearance(words: List[str]) -> bool:
    return bool(words) and (words[-1] in ("hair", "eyes") or any(holds(words, a) for a in APPEARANCE))


def folder_category(name: str) -> Optional[str]:
    """§4.1. Choice: "letter or digit" is str.isalnum (so CJK folder names keep their letters)."""
    text = "".join(c if c.isalnum() else " " for c in name.lower())
    words = text.split()
    while words and words[0].isdigit():
        words.pop(0)
    return FOLDER_CATEGORY.get(" ".join(words))


def unwrapped(trigger: str) -> str:
    """§4.3. Choice: the brackets around the whole are removed only when they hold a `:weight`."""
    text = trigger.replace("\\", "")
    weighted_ = re.fullmatch(r"\((.*):\s*[-+]?[0-9]*\.?[0-9]+\s*\)", text)
    return weighted_.group(1) if weighted_ else text


def qualifier_category(trigger: str) -> Optional[str]:
    text = unwrapped(trigger)
    found = re.fullmatch(r".+[_ ]\(([^()]+)\)", text)
    if not found:
        return None
    qualifier = found.group(1).lower().replace("_", " ").strip()
    if qualifier in ("artist", "style"):
        return "style"
    return None if qualifier == "cosplay" else "character"


def tags_category(tags: Any) -> Optional[str]:
    lowered = [t.lower().strip() for t in tags or [] if isinstance(t, str)]
    return next((cat for cat, words in TAG_CATEGORY if any(t in words for t in lowered)), None)


def category_of(folders: List[str], tags: Any, triggers: List[str], stem: str, alias: Optional[str],
                training: List[str]) -> Tuple[str, str]:
    """§4: (category, category_source) by votes."""
    votes: Dict[str, List[Tuple[int, str]]] = {}

    def vote(cat: str, signal: str) -> None:
        votes.setdefault(cat, []).append((VOTE_WEIGHT[signal], "trigger" if signal == "qualifier" else signal))
    folder_cat = next((c for c in (folder_category(f) for f in reversed(folders)) if c), None)
    if folder_cat:
        vote(folder_cat, "folder")
    tag_cat = tags_category(tags)
    if tag_cat:
        vote(tag_cat, "tags")
    for cat in dict.fromkeys(c for c in (qualifier_category(t) for t in triggers) if c):
        vote(cat, "qualifier")
    # Choice: the stem and the alias vote together, 2 per category that either of them holds.
    name_cats = keyword_categories(" ".join(name_tokens(stem)).split())
    if alias:
        name_cats += keyword_categories(" ".join(name_tokens(alias)).split())
    for cat in dict.fromkeys(name_cats):
        vote(cat, "name")
    counted: Dict[str, int] = {}
    for trigger in triggers:
        words = words_of(unwrapped(trigger))  # §4.4: a trigger is unwrapped as in §4.3 first
        cats = keyword_categories(words) + (["character"] if is_appearance(words) else [])
        for cat in dict.fromkeys(cats):
            if counted.get(cat, 0) < 3:
                counted[cat] = counted.get(cat, 0) + 1
                vote(cat, "trigger")
    counted = {}
    for tag in training[:5]:
        for cat in keyword_categories(words_of(tag)):
            if counted.get(cat, 0) < 2:
                counted[cat] = counted.get(cat, 0) + 1
                vote(cat, "training")
    if not votes:
        return "other", "none"

    def rank(cat: str) -> tuple:
        return (-sum(w for w, _ in votes[cat]), -max(w for w, _ in votes[cat]), CATEGORIES.index(cat))
    winner = min(votes, key=rank)
    strongest = max(w for w, _ in votes[winner])
    source = min((s for w, s in votes[winner] if w == strongest), key=CATEGORY_SOURCES.index)
    return winner, source


# -- §5 triggers ------------------------------------------------------------------------------------------

def split_trigger(text: str) -> List[str]:
    """One alternative cut on commas outside (), [], {}, <> (`\\(` is text); unbalanced: every comma."""
    opening, closing = "([{<", ")]}>"
    parts, current, depth, balanced, i = [], "", 0, True, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in opening + closing:
            current += text[i:i + 2]
            i += 2
            continue
        if c in opening:
            depth += 1
        elif c in closing:
            depth -= 1
            balanced = balanced and depth >= 0
        if c == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += c
        i += 1
    parts.append(current)
    if depth != 0 or not balanced:  # Choice: a stray closing bracket counts as unbalanced too
        parts = text.split(",")
    return [p.strip() for p in parts if p.strip()]


def dedupe(items: List[str]) -> List[str]:
    seen, out = set(), []
    for item in items:
        if item.lower() not in seen:
            seen.add(item.lower())
            out.append(item)
    return out


def dataset_triggers(meta: dict) -> List[str]:
    """§5.4. Choice: ss_tag_frequency is 'unreadable' unless it is a JSON object of objects."""
    freq = _json_object(meta.get("ss_tag_frequency"))
    if freq is None:
        freq = _json_object(meta.get("ss_dataset_dirs"))
    if freq is None:
        return []
    return [s for s in (_REPEATS.sub("", k).strip() for k in freq) if s]


def suggested_tags(meta: Optional[dict]) -> List[str]:
    freq = _json_object((meta or {}).get("ss_tag_frequency"))
    totals: Dict[str, float] = {}
    for tags in (freq or {}).values():
        for tag, count in tags.items():
            totals[tag] = totals.get(tag, 0) + count
    return [t for t, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]


def _json_object(text: Any) -> Optional[dict]:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
        return value
    return None


def as_weight(value: Any) -> Optional[float]:
    """A number other than 0 (a number, or a string holding one), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value != 0 and math.isfinite(value):
        return float(value)
    return None


def valid_tensor_hash(value: Any) -> Optional[str]:
    if not isinstance(value, str):
        return None
    value = value[2:] if value[:2].lower() == "0x" else value
    if re.fullmatch(r"[0-9a-fA-F]{64}", value) and value.lower() != EMPTY_SHA256:
        return value.lower()
    return None


def civitai_block(obj: Any) -> Optional[dict]:
    """A Civitai version object that carries facts: not a skeleton, not {}, not unreadable."""
    if not isinstance(obj, dict) or not obj or obj.get("skeleton_file") is True or obj.get("id") == "":
        return None
    return obj


def primary_file(civ: Optional[dict]) -> Optional[dict]:
    files = [f for f in (civ or {}).get("files") or [] if isinstance(f, dict)]
    return next((f for f in files if f.get("primary") is True), None) or next(
        (f for f in files if f.get("type") == "Model"), None)


def image_magic_ok(data: bytes) -> bool:
    return (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")
            or data.startswith((b"GIF87a", b"GIF89a")) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"))


def natural_key(path: str) -> list:
    """Forge's natural sort key (numbers compare as numbers, text case-insensitively)."""
    parts = re.split(r"([0-9]+)", path)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)]


def lora_stem(filename: str) -> Optional[str]:
    lower = filename.lower()
    ext = next((e for e in LORA_EXTS if lower.endswith(e)), None)
    return filename[: -len(ext)] if ext else None


def listed_kind(filename: str) -> Optional[str]:
    """§1: 'lora', 'partial', 'other' or 'appledouble' for files the scanner reports, None for the rest.
    Choice: an AppleDouble `._x.safetensors` is 'appledouble' (never a LoRA, whatever its bytes, B's
    contract 4); the special cases hold no `._x.part`, whose code the contract leaves open."""
    lower = filename.lower()
    if filename.startswith("._") and lower.endswith(PARTIAL_SUFFIXES + LORA_EXTS + OTHER_MODEL_EXTS):
        return "appledouble"
    if lower.endswith(PARTIAL_SUFFIXES):
        return "partial"
    if lower.endswith(LORA_EXTS):
        return "lora"
    if lower.endswith(OTHER_MODEL_EXTS):
        return "other"
    return None


def entry_name(filename: str) -> str:
    """Choice for files that are not LoRAs: drop a partial-download suffix, then a model extension
    (`x.safetensors.part` -> `x`, `m.gguf` -> `m`, `dl.tmp` -> `dl`)."""
    name = filename
    for suffix in PARTIAL_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    for ext in LORA_EXTS + OTHER_MODEL_EXTS:
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


# ==============================================================================================
# 2. Byte builders
# ==============================================================================================

DTYPE_SIZE = {"F16": 2, "BF16": 2, "F32": 4}
# Clearing bit 6 of every byte keeps every little-endian F16/BF16/F32 value finite and below 2.
_FINITE = bytes(b & 0xBF for b in range(256))


def pack_alpha(value: float, dtype: str) -> bytes:
    if dtype == "F16":
        return struct.pack("<e", value)
    if dtype == "F32":
        return struct.pack("<f", value)
    return struct.pack("<f", value)[2:]  # BF16: the high half of an F32


def safetensors_bytes(meta: Optional[dict], entries: dict, data: bytes, ascii_only: bool) -> Tuple[bytes, int]:
    """8-byte LE length N + JSON header padded with spaces to 8 bytes + tensor bytes; returns N too.

    A length whose low byte is 0x80 would make a valid file start like a pickle (the contract's
    `\\x80` magic), so such headers get 8 more spaces."""
    head: dict = {} if meta is None else {"__metadata__": meta}
    head.update(entries)
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8")
    length = len(text) + (-len(text)) % 8
    if length & 0xFF == 0x80:
        length += 8
    return struct.pack("<Q", length) + text.ljust(length, b" ") + data, length


def length_prefix(n: int) -> bytes:
    if n & 0xFF == 0x80:
        n += 8
    return struct.pack("<Q", n)


def png_bytes(text: str = "", tag: int = 0) -> bytes:
    """A valid 1x1 RGB PNG, with an optional A1111 `parameters` tEXt chunk."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    pixel = bytes((0, tag & 0xFF, (tag >> 8) & 0xFF, 0x80))
    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))]
    if text:
        parts.append(chunk(b"tEXt", b"parameters\x00" + text.encode("latin-1", "replace")))
    parts += [chunk(b"IDAT", zlib.compress(pixel)), chunk(b"IEND", b"")]
    return b"".join(parts)


# A 1x1 grey baseline JPEG (Pillow, quality 50): real bytes, so a decoder (Pillow's `verify()`) accepts it.
JPEG_1X1 = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19iZ2hnPk1x"
    "eXBkeFxlZ2P/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAAAP/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AP//Z")


def jpeg_bytes(comment: bytes = b"") -> bytes:
    """A decodable 1x1 JPEG, with an optional COM segment after the JFIF APP0 one."""
    if not comment:
        return JPEG_1X1
    com = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    return JPEG_1X1[:20] + com + JPEG_1X1[20:]


WEBP_1X1 = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")
GIF_1X1 = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")


def appledouble_bytes(name: str) -> bytes:
    """The `._name` file macOS writes beside `name` on a volume without extended attributes (a USB disk, a
    network share): magic 0x00051607, version 2, "Mac OS X" filler, a Finder-info and a resource-fork entry,
    4 KiB in all. Forge lists it like any `.safetensors` and fails to load it."""
    head = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 2)
    head += struct.pack(">III", 9, 50, 3760) + struct.pack(">III", 2, 3810, 286)
    attrs = b"ATTR" + struct.pack(">I", 4096) + b"com.apple.quarantine\x00" + f"0083;6650c1a2;Safari;{name}".encode()
    return (head + attrs).ljust(3810, b"\x00") + b"\x00\x00\x01\x00".ljust(286, b"\x00")


def zip_bytes(files: Dict[str, bytes]) -> bytes:
    """A deterministic zip (fixed timestamps): torch's .ckpt format, a training-data zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2023, 3, 1, 12, 0, 0)), data)
    return buf.getvalue()


def encode_json(obj: Any, mode: str, indent: Optional[int], ascii_only: bool) -> bytes:
    """Serialise a sidecar the way its tool does, or with one of the defects of §2:
    bom / utf16 / comma (readable, warned), trunc / zero / list (unreadable, warned)."""
    if mode == "zero":
        return b""
    if mode == "list":
        obj = [obj]
    sep = (",", ":") if indent is None else None
    text = json.dumps(obj, indent=indent, ensure_ascii=ascii_only, separators=sep)
    if mode == "comma":
        assert text.endswith("}")
        text = text[:-1].rstrip() + ",\n}" if indent is not None else text[:-1] + ",}"
    if mode == "trunc":
        text = text[: len(text) // 2]
    if mode == "utf16":
        return text.encode("utf-16")
    if mode == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    return text.encode("utf-8")


SIDECAR_MODES = {"": (True, False), "bom": (True, True), "utf16": (True, True), "comma": (True, True),
                 "trunc": (False, True), "zero": (False, True), "list": (False, True)}  # -> (readable, warned)


# ==============================================================================================
# 3. The content: what a LoRA is of (Model) and how its bundle is written (Spec)
# ==============================================================================================

@dataclass
class Model:
    """What a LoRA is of, as its Civitai page and training run describe it (the published truth)."""
    subject: str
    category: str
    base: str
    title: str
    trained_words: List[str]
    tags: List[str]
    dataset: Dict[str, Dict[str, int]]  # ss_tag_frequency
    output_name: str = ""               # ss_output_name; "" -> the file's stem
    weight: Optional[float] = None      # the weight a user (or LoRA Manager) would set
    negative: str = ""
    trigger_phrase: str = ""            # modelspec.trigger_phrase, when the trainer set one
    model_id: int = 0
    version_id: int = 0
    version_name: str = "v1.0"
    description: str = ""


@dataclass
class Spec:
    """How one bundle is written. Sidecar fields read `variant[+tweak...][:mode]` ("" = absent)."""
    rel: str                      # path under Lora/, "/" separators, with the extension
    model: Model
    header: str = "kohya"         # a HEADERS profile (ignored for .pt/.ckpt)
    keys: str = ""                # a key template of KEY_TEMPLATES; "" -> from the base model
    network: str = "lora"         # lora, locon, dora, loha, lokr, dylora (peft for diffusers keys)
    rank: int = 0                 # 0 -> drawn (1-4)
    dtype: str = ""               # "" -> drawn
    defect: str = ""              # a FILE_DEFECTS entry
    tensors_of: str = ""          # reuse another spec's tensors (a header edit / resave)
    copy_of: str = ""             # repeat another spec's bytes exactly (a copy under another name)
    facts_of: str = ""            # sidecars describe another spec's file (copied with the bundle)
    edits: Dict[str, Optional[str]] = field(default_factory=dict)  # header changes (None deletes)
    ascii_header: bool = False
    info: str = ""
    user: str = ""
    meta: str = ""
    cm: str = ""
    extras: Tuple[str, ...] = ()  # txt, desc, sha256
    previews: Tuple[str, ...] = ()
    mtime: int = 0

    @property
    def stem(self) -> str:
        stem = lora_stem(self.rel.rsplit("/", 1)[-1])
        assert stem is not None, self.rel
        return stem

    @property
    def folder(self) -> str:
        return self.rel.rsplit("/", 1)[0] if "/" in self.rel else ""


CHARACTERS = (  # name, series, look, outfit
    ("frieren", "sousou no frieren", "elf, pointy ears, white hair, twintails", "white capelet, black pantyhose"),
    ("fern", "sousou no frieren", "purple hair, long hair, purple eyes", "black robe, white dress"),
    ("hatsune miku", "vocaloid", "aqua hair, twintails, very long hair", "detached sleeves, necktie"),
    ("raiden shogun", "genshin impact", "purple hair, braid, mole under eye", "japanese clothes, kimono"),
    ("hu tao", "genshin impact", "brown hair, twintails, red eyes", "porkpie hat, chinese clothes"),
    ("2b", "nier automata", "white hair, short hair, blindfold", "black dress, thighhighs"),
    ("asuka langley", "evangelion", "orange hair, long hair, blue eyes", "plugsuit, interface headset"),
    ("tifa lockhart", "final fantasy vii", "black hair, long hair, red eyes", "white tank top, suspenders"),
    ("makima", "chainsaw man", "red hair, ringed eyes, braided ponytail", "white shirt, black necktie"),
    ("marin kitagawa", "sono bisque doll", "blonde hair, gradient hair, piercings", "school uniform, choker"),
    ("houshou marine", "hololive", "red hair, twintails, heterochromia", "pirate hat, red jacket"),
    ("gawr gura", "hololive", "white hair, blue streaked hair, shark tail", "hood, blue hoodie"),
    ("anya forger", "spy x family", "pink hair, green eyes, hair ornament", "eden academy school uniform"),
    ("chun-li", "street fighter", "brown hair, double bun, brown eyes", "china dress, pelvic curtain"),
    ("gotoh hitori", "bocchi the rock!", "pink hair, long hair, cube hair ornament", "pink track jacket"),
    ("初音ミク", "ボーカロイド", "アクアヘア, ツインテール", "ノースリーブ, ネクタイ"),
)
SUBJECTS = {
    "style": ("mksks style", "ohwx watercolor", "pixel art", "thick impasto oil painting", "ink wash painting",
              "flat cel shading", "90s anime screencap", "clean lineart", "ukiyo-e woodblock print", "浮世絵"),
    "concept": ("glowing runes, magic circle", "rim lighting", "dutch angle", "double exposure",
                "underwater, caustics", "bokeh, depth of field", "holographic", "melting"),
    "clothing": ("gothic lolita dress", "serafuku", "fantasy armor", "furisode kimono", "maid outfit",
                 "techwear jacket"),
    "pose": ("hand on hip, looking back", "from above", "sitting on chair, crossed legs", "jumping",
             "peace sign", "lying on back"),
    "background": ("cyberpunk city street, neon lights, night", "japanese shrine, torii",
                   "library interior, bookshelves", "beach sunset", "floating islands"),
    "detailer": ("add detail", "detail tweaker", "hands fix", "eye enhancer", "skin texture", "sharpness"),
    "slider": ("age slider", "weight slider", "detail slider", "lighting slider", "muscle slider", "smile slider"),
}
CATEGORY_TAGS = {  # Civitai model.tags per category (lower-case; never ambiguous between readings)
    "character": ("character", "anime", "girl"), "style": ("style", "anime", "watercolor"),
    "concept": ("concept", "lighting", "magic"), "clothing": ("clothing", "dress", "fashion"),
    "pose": ("poses", "pose"), "background": ("background", "city", "scenery"),
    "detailer": ("tool", "detail", "enhancer"), "slider": ("slider", "concept", "tool"),
}
COMMON_TAGS = ("1girl", "solo", "looking at viewer", "smile", "simple background", "upper body", "outdoors")
CAPTIONS = ("a photo of a woman standing in a flower field, soft light",
            "a close-up portrait of a person with silver hair, shallow depth of field",
            "an illustration of a city street at night with neon signs reflecting on wet asphalt",
            "a painting of a small house on a hill under a cloudy sky")
BASE_TAG = {"SD 1.5": "sd15", "SD 1.5 LCM": "lcm", "SD 1.5 Hyper": "hyper", "Pony": "pony", "Illustrious": "il",
            "SDXL 1.0": "xl", "NoobAI": "noob", "Flux.1 D": "flux", "Flux.1 S": "schnell", "SD 2.1": "sd21",
            "SD 3.5": "sd35", "SDXL Lightning": "lightning"}
CATEGORY_MIX = (("character", 35), ("style", 20), ("concept", 12), ("clothing", 10), ("pose", 6),
                ("background", 4), ("detailer", 8), ("slider", 5))
BASE_MIX = (("SD 1.5", 250), ("Pony", 200), ("Illustrious", 220), ("SDXL 1.0", 120), ("NoobAI", 50),
            ("Flux.1 D", 100), ("SD 1.5 LCM", 8), ("SD 1.5 Hyper", 6), ("SDXL Lightning", 10), ("Flux.1 S", 8),
            ("SD 2.1", 6), ("SD 3.5", 10), ("Wan Video 14B t2v", 6), ("Hunyuan Video", 4))


def slug(text: str) -> str:
    return re.sub(r"[^0-9a-z\u3040-\u30ff\u4e00-\u9fff]+", "_", text.lower()).strip("_") or "lora"


def weighted(rng: random.Random, table: Tuple[Tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


def make_model(rng: random.Random, category: str, base: str, subject: str = "", **over: Any) -> Model:
    """A plausible published LoRA of `category` for `base`; `over` replaces any field."""
    fam = family_of(base)
    series = ""
    if category == "character":
        row = next((c for c in CHARACTERS if c[0] == subject), None) or rng.choice(CHARACTERS)
        subject = subject or row[0]
        series, look, outfit = row[1], row[2], row[3]
        words: List[str] = rng.choice(([subject], [subject, look, outfit], [f"{subject}, {look}"]))
        if base == "Pony" and rng.random() < 0.3:
            words = [f"score_9, score_8_up, {words[0]}"] + words[1:]
        tags = list(CATEGORY_TAGS["character"]) + [series]
        caption_tags = [subject] + look.split(", ") + outfit.split(", ")
    else:
        subject = subject or rng.choice(SUBJECTS[category])
        words = {"style": [subject], "concept": [subject] if rng.random() < 0.5 else [],
                 "clothing": [subject, "frills, bonnet"], "pose": [subject], "background": [subject],
                 "detailer": ["add_detail"] if rng.random() < 0.3 else [], "slider": []}[category]
        if category == "style" and fam == "flux":
            words = [f"in the style of {subject}"]
        tags = list(CATEGORY_TAGS[category])
        caption_tags = [subject] + list(COMMON_TAGS[:3])
    repeats = rng.choice((1, 5, 10, 20))
    if fam == "flux" and rng.random() < 0.6:  # Flux-era natural-language captions
        dataset = {f"{repeats}_{slug(subject)}": {c: rng.randint(1, 40) for c in CAPTIONS}}
    else:
        counts = {t.strip(): rng.randint(20, 120) for t in caption_tags + list(COMMON_TAGS) if t.strip()}
        dataset = {f"{repeats}_{subject}": counts}
    weight = {"slider": rng.choice((-2.0, 2.0, 3.0)), "detailer": rng.choice((0.5, 1.0, 1.5))}.get(
        category, rng.choice((0.6, 0.7, 0.8, 0.9, 1.0)))
    title = f"{subject.title()} ({series.title()})" if series else subject.title()
    title += f" | {base}"
    model = Model(subject=subject, category=category, base=base, title=title, trained_words=words, tags=tags,
                  dataset=dataset, weight=weight, model_id=rng.randrange(10_000, 2_000_000),
                  version_id=rng.randrange(10_000, 3_000_000), version_name=f"v{rng.randint(1, 4)}.0",
                  description=f"<p>{category.title()} LoRA: {subject}. Recommended weight {weight}.</p>",
                  negative="lowres, bad anatomy" if rng.random() < 0.3 else "")
    return replace(model, **over)


# ==============================================================================================
# 4. Header profiles, tensor templates and sidecar builders
# ==============================================================================================

# Module name, in features, out features: architecture-true kohya / diffusers names (research §7.3).
KEY_TEMPLATES: Dict[str, Tuple[Tuple[str, int, int], ...]] = {
    "sd1": (("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 320, 320),
            ("lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2", 1280, 320),
            ("lora_te_text_model_encoder_layers_0_self_attn_q_proj", 768, 768)),
    "sdxl": (("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q", 640, 640),
             ("lora_unet_output_blocks_5_1_transformer_blocks_1_ff_net_2", 2560, 640),
             ("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", 768, 768),
             ("lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 1280, 1280)),
    "flux": (("lora_unet_double_blocks_0_img_attn_proj", 3072, 3072),
             ("lora_unet_single_blocks_0_linear2", 15360, 3072)),
    "flux_diffusers": (("transformer.single_transformer_blocks.0.attn.to_k", 3072, 3072),
                       ("transformer.transformer_blocks.0.attn.to_q", 3072, 3072)),
    "sd3": (("lora_unet_joint_blocks_0_x_block_attn_qkv", 1536, 4608),
            ("lora_unet_joint_blocks_0_context_block_attn_proj", 1536, 1536)),
    "wan": (("diffusion_model.blocks.0.self_attn.q", 1536, 1536),
            ("diffusion_model.blocks.0.cross_attn.k", 1536, 1536)),
    "hunyuan": (("transformer.double_blocks.0.img_attn_qkv", 3072, 9216),),
    "auraflow": (("transformer.joint_transformer_blocks.0.attn.to_q", 3072, 3072),),
    "lumina": (("lora_unet_layers_0_attention_qkv", 2304, 6912),),
    "sd1_diffusers": (("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 320, 320),
                      ("text_encoder.text_model.encoder.layers.0.self_attn.q_proj", 768, 768)),
    # SD2: SD1's UNet names; OpenCLIP has 23 text-encoder layers (SD1's CLIP 12), so a layer >= 12 says SD2
    "sd2": (("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 320, 320),
            ("lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2", 1280, 320),
            ("lora_te_text_model_encoder_layers_22_self_attn_q_proj", 1024, 1024)),
    # Flux.2: BFL's module names with 48 single blocks (Flux.1 has 38, Hunyuan Video 40)
    "flux2": (("diffusion_model.double_blocks.0.img_attn.qkv", 3072, 9216),
              ("diffusion_model.single_blocks.47.linear2", 3072, 3072)),
    # Video LoRAs as their trainers write them (research: musubi-tuner networks/lora.py and lora_wan.py,
    # diffusion-pipe and diffusers formats as ComfyUI's comfy/lora.py and diffusers' lora_conversion_utils map them)
    "hunyuan_musubi": (("lora_unet_double_blocks_0_img_attn_qkv", 3072, 9216),      # musubi-tuner: kohya names
                       ("lora_unet_double_blocks_0_img_mlp_fc1", 3072, 12288),
                       ("lora_unet_single_blocks_0_linear1", 3072, 21504)),
    "hunyuan_pipe": (("diffusion_model.double_blocks.0.img_attn_qkv", 3072, 9216),  # diffusion-pipe: Tencent's
                     ("diffusion_model.single_blocks.39.linear2", 15360, 3072)),
    "hunyuan_attn": (("transformer.transformer_blocks.0.attn.to_q", 3072, 3072),   # diffusers, attention only:
                     ("transformer.single_transformer_blocks.0.attn.to_k", 3072, 3072)),  # no mark, reads as Flux
    "ltxv": (("diffusion_model.transformer_blocks.0.attn1.to_q", 2048, 2048),
             ("diffusion_model.transformer_blocks.0.attn2.to_k", 2048, 2048),
             ("diffusion_model.transformer_blocks.27.ff.net.0.proj", 2048, 8192)),
    "mochi": (("transformer.transformer_blocks.0.attn1.to_q", 3072, 3072),          # diffusers Mochi
              ("transformer.transformer_blocks.0.attn1.add_q_proj", 1536, 3072)),
    "mochi_genmo": (("blocks.0.attn.qkv_x", 3072, 9216), ("blocks.0.attn.proj_x", 3072, 3072)),  # genmo's trainer
    "wan_musubi": (("lora_unet_blocks_0_self_attn_q", 5120, 5120), ("lora_unet_blocks_0_cross_attn_k", 5120, 5120)),
    "wan_diffusers": (("transformer.blocks.0.attn1.to_q", 5120, 5120), ("transformer.blocks.0.ffn.net.0.proj", 5120,
                                                                         13824)),
}
PEFT_TEMPLATES = ("flux_diffusers", "wan", "hunyuan", "auraflow", "sd1_diffusers", "flux2", "hunyuan_pipe",
                  "hunyuan_attn", "ltxv", "mochi", "wan_diffusers")
GENMO_TEMPLATES = ("mochi_genmo",)  # lora_A / lora_B parameters without ".weight"
Shape = Callable[[int, int, int], Tuple[int, ...]]
_LORA: Tuple[Tuple[str, Shape], ...] = (("lora_down.weight", lambda r, i, o: (r, i)),
                                        ("lora_up.weight", lambda r, i, o: (o, r)), ("alpha", lambda r, i, o: ()))
NETWORK_PARAMS: Dict[str, Tuple[Tuple[str, Shape], ...]] = {
    "lora": _LORA, "locon": _LORA, "dylora": _LORA,
    "dora": _LORA + (("dora_scale", lambda r, i, o: (1, i)),),
    "loha": (("hada_w1_a", lambda r, i, o: (o, r)), ("hada_w1_b", lambda r, i, o: (r, i)),
             ("hada_w2_a", lambda r, i, o: (o, r)), ("hada_w2_b", lambda r, i, o: (r, i)),
             ("alpha", lambda r, i, o: ())),
    "lokr": (("lokr_w1", lambda r, i, o: (4, 4)), ("lokr_w2_a", lambda r, i, o: (o // 4, r)),
             ("lokr_w2_b", lambda r, i, o: (r, i // 4)), ("alpha", lambda r, i, o: ())),
    "peft": (("lora_A.weight", lambda r, i, o: (r, i)), ("lora_B.weight", lambda r, i, o: (o, r))),
    "genmo": (("lora_A", lambda r, i, o: (r, i)), ("lora_B", lambda r, i, o: (o, r))),
}
NETWORK_MODULE = {"lora": ("networks.lora", None), "dora": ("lycoris.kohya", '{"algo": "lora", "dora_wd": "True"}'),
                  "locon": ("lycoris.kohya", '{"conv_dim": "4", "conv_alpha": "1", "algo": "locon"}'),
                  "loha": ("lycoris.kohya", '{"conv_dim": "4", "conv_alpha": "1", "algo": "loha"}'),
                  "lokr": ("lycoris.kohya", '{"factor": "8", "algo": "lokr"}'),
                  "dylora": ("networks.dylora", '{"unit": "4"}'), "peft": ("networks.lora", None)}


def default_keys(base: str) -> str:
    """The key template of a base model. Chroma and Flux.2 have Flux's double/single blocks, so by their
    keys alone they look like Flux.1 (their sidecar or header says more)."""
    if base.startswith("Wan Video"):
        return "wan"
    return {"sd1": "sd1", "sd2": "sd2", "sdxl": "sdxl", "flux": "flux", "sd3": "sd3"}.get(family_of(base)) or {
        "Hunyuan Video": "hunyuan", "Chroma": "flux", "Lumina": "lumina", "Pony V7": "auraflow",
        "Flux.2 D": "flux2", "LTXV": "ltxv", "Mochi": "mochi"}.get(base, "sdxl")


def build_tensors(template: str, network: str, rank: int, dtype: str, data_seed: str,
                  scale: int, all_modules: bool) -> Tuple[dict, bytes]:
    """Header entries (contiguous data_offsets) and the tensor bytes; a pure function of its inputs."""
    rng = random.Random(data_seed)
    params = NETWORK_PARAMS["peft" if template in PEFT_TEMPLATES else "genmo" if template in GENMO_TEMPLATES
                            else network]
    modules = KEY_TEMPLATES[template] if all_modules else KEY_TEMPLATES[template][:2]
    entries, chunks, offset, item = {}, [], 0, DTYPE_SIZE[dtype]
    for module, fin, fout in modules:
        fin, fout = max(8, fin // scale), max(8, fout // scale)
        for suffix, shape_of in params:
            shape = shape_of(rank, fin, fout)
            size = math.prod(shape) * item
            data = pack_alpha(float(rank), dtype) if suffix == "alpha" else rng.randbytes(size).translate(_FINITE)
            entries[f"{module}.{suffix}"] = {"dtype": dtype, "shape": list(shape),
                                             "data_offsets": [offset, offset + size]}
            chunks.append(data)
            offset += size
    return dict(sorted(entries.items())), b"".join(chunks)


MODELSPEC_OF_BASE = {"SD 1.5": "stable-diffusion-v1/lora", "SD 2.1": "stable-diffusion-v2-512/lora",
                     "SD 2.1 768": "stable-diffusion-v2-768-v/lora", "Flux.1 D": "flux-1-dev/lora",
                     "Flux.1 S": "flux-1-schnell/lora", "SD 3.5": "stable-diffusion-3.5-large/lora",
                     "Chroma": "chroma/lora", "Lumina": "lumina-2/lora"}
SS_VERSION_OF_FAMILY = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0", "flux": "flux1", "sd3": "sd3"}
KOHYA_STATIC = {  # the long tail of kohya's ss_* keys (all strings, as kohya writes them)
    "ss_batch_size_per_device": "2", "ss_gradient_checkpointing": "True", "ss_gradient_accumulation_steps": "1",
    "ss_lr_warmup_steps": "0", "ss_lr_scheduler": "cosine_with_restarts", "ss_network_dropout": "None",
    "ss_mixed_precision": "bf16", "ss_full_fp16": "False", "ss_clip_skip": "2", "ss_max_token_length": "225",
    "ss_cache_latents": "True", "ss_lowram": "False", "ss_noise_offset": "0.0357",
    "ss_multires_noise_iterations": "None",
    "ss_multires_noise_discount": "0.3", "ss_adaptive_noise_scale": "None", "ss_zero_terminal_snr": "False",
    "ss_sd_scripts_commit_hash": "e89653975ddf429cdf0c0fd268da0a5a3e8dba1f", "ss_max_grad_norm": "1.0",
    "ss_caption_dropout_rate": "0.0", "ss_caption_dropout_every_n_epochs": "0", "ss_caption_tag_dropout_rate": "0.0",
    "ss_face_crop_aug_range": "None", "ss_prior_loss_weight": "1.0", "ss_min_snr_gamma": "5.0",
    "ss_scale_weight_norms": "None", "ss_ip_noise_gamma": "None", "ss_debiased_estimation": "False",
    "ss_loss_type": "l2", "ss_huber_schedule": "snr", "ss_huber_c": "0.1", "ss_fp8_base": "False",
    "ss_enable_bucket": "True", "ss_min_bucket_reso": "256", "ss_max_bucket_reso": "2048", "ss_keep_tokens": "1",
    "ss_flip_aug": "False", "ss_color_aug": "False", "ss_shuffle_caption": "True", "ss_random_crop": "False",
    "ss_bucket_no_upscale": "True", "ss_num_reg_images": "0", "ss_vae_name": "None",
    "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.01)", "ss_seed": "42",
}


@dataclass
class HeaderInput:
    spec: Spec
    stem: str
    tensor_hash: str
    rank: int
    rng: random.Random


def modelspec_keys(h: HeaderInput) -> dict:
    m = h.spec.model
    arch = MODELSPEC_OF_BASE.get(m.base) or {
        "sd1": "stable-diffusion-v1/lora", "sd2": "stable-diffusion-v2-512/lora", "flux": "flux-1-dev/lora",
        "sd3": "stable-diffusion-3.5-large/lora"}.get(family_of(m.base), "stable-diffusion-xl-v1-base/lora")
    keys = {"modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": arch,
            "modelspec.implementation": "https://github.com/black-forest-labs/flux" if "flux" in arch
            else "https://github.com/Stability-AI/generative-models",
            "modelspec.title": m.output_name or h.stem,
            "modelspec.resolution": "512x512" if "-v1" in arch else "1024x1024",
            "modelspec.date": f"2024-{h.rng.randint(1, 12):02d}-{h.rng.randint(1, 28):02d}T12:00:00",
            "modelspec.prediction_type": "epsilon"}
    if m.trigger_phrase:
        keys["modelspec.trigger_phrase"] = m.trigger_phrase
    return keys


def tag_frequency(m: Model) -> Tuple[str, str]:
    dirs = {d: {"n_repeats": int(d.split("_", 1)[0]) if _REPEATS.match(d) else 1, "img_count": len(t)}
            for d, t in m.dataset.items()}
    return json.dumps(m.dataset, ensure_ascii=False), json.dumps(dirs, ensure_ascii=False)


# The checkpoint a LoRA was trained on, as kohya records it (`ss_sd_model_name`): the file name or the
# path given to the trainer. Lineage models are named by their checkpoint most of the time; the rest were
# trained on a merge or a renamed file whose name says nothing.
CHECKPOINTS = {
    "SD 1.5": ("v1-5-pruned-emaonly.safetensors", "runwayml/stable-diffusion-v1-5", "animefull-final-pruned.ckpt"),
    "SD 2.1": ("v2-1_512-ema-pruned.safetensors",), "SD 2.1 768": ("v2-1_768-ema-pruned.safetensors",),
    "SDXL 1.0": ("sd_xl_base_1.0.safetensors", "/workspace/models/sd_xl_base_1.0_0.9vae.safetensors"),
    "Pony": ("ponyDiffusionV6XL_v6StartWithThisOne.safetensors",
             "D:\\stable-diffusion-webui\\models\\Stable-diffusion\\ponyDiffusionV6XL.safetensors",
             "autismmixSDXL_autismmixPony.safetensors"),
    "Illustrious": ("Illustrious-XL-v0.1.safetensors", "/content/pretrained_model/illustriousXL_v01.safetensors",
                    "waiNSFWIllustrious_v110.safetensors"),
    "NoobAI": ("noobaiXLNAIXL_epsilonPred11Version.safetensors", "NoobAI-XL-Vpred-v1.0.safetensors"),
    "Flux.1 D": ("flux1-dev.safetensors", "/root/models/flux1-dev-fp8.safetensors"),
    "Flux.1 S": ("flux1-schnell.safetensors",), "SD 3.5": ("sd3.5_large.safetensors",),
    "Chroma": ("chroma-unlocked-v37.safetensors",), "Lumina": ("lumina_2.safetensors",),
}
NEUTRAL_CHECKPOINTS = ("model.safetensors", "/workspace/train/base.safetensors", "merged_v3.safetensors")


def checkpoint_name(base: str, rng: random.Random) -> str:
    names = CHECKPOINTS.get(base) or CHECKPOINTS.get({"sd1": "SD 1.5", "sdxl": "SDXL 1.0"}.get(family_of(base), ""))
    if not names or (base in ("Pony", "Illustrious", "NoobAI") and rng.random() < 0.3):
        return rng.choice(NEUTRAL_CHECKPOINTS)
    return rng.choice(names)


def kohya_meta(h: HeaderInput) -> dict:
    m, rng = h.spec.model, h.rng
    module, args = NETWORK_MODULE[h.spec.network]
    fam = family_of(m.base)
    started = rng.randint(1_672_000_000, 1_760_000_000)
    freq, dirs = tag_frequency(m)
    images = sum(len(t) for t in m.dataset.values()) * 10
    meta = {"ss_session_id": str(rng.randrange(10**9)), "ss_training_started_at": f"{started}.{rng.randint(100, 999)}",
            "ss_output_name": m.output_name or h.stem, "ss_learning_rate": "0.0001", "ss_text_encoder_lr": "5e-05",
            "ss_unet_lr": "0.0001", "ss_num_train_images": str(images), "ss_num_batches_per_epoch": str(images // 2),
            "ss_num_epochs": "10", "ss_epoch": "10", "ss_steps": str(images * 5), "ss_max_train_steps": str(images * 5),
            "ss_network_module": module, "ss_network_dim": str(h.rank), "ss_network_alpha": f"{h.rank / 2}",
            "ss_v2": "True" if fam == "sd2" else "False",
            "ss_v_parameterization": "True" if m.base == "SD 2.1 768" else "False",
            "ss_base_model_version": "sd_v2_v" if m.base == "SD 2.1 768"
            else SS_VERSION_OF_FAMILY.get(fam, "sdxl_base_v1-0"),
            "ss_resolution": "(512, 512)" if fam == "sd1" else "(1024, 1024)", "ss_training_comment": "None",
            "ss_sd_model_name": checkpoint_name(m.base, rng),
            "ss_sd_model_hash": "e6bb9ea8", "ss_new_sd_model_hash": hashlib.sha256(m.base.encode()).hexdigest(),
            "ss_tag_frequency": freq, "ss_dataset_dirs": dirs, "ss_total_batch_size": "2",
            "ss_bucket_info": json.dumps({"buckets": {"0": {"resolution": [832, 1216], "count": images}},
                                          "mean_img_ar_error": 0.0}),
            "ss_training_finished_at": f"{started + rng.randint(600, 40_000)}.{rng.randint(100, 999)}",
            "sshs_model_hash": h.tensor_hash, "sshs_legacy_hash": EMPTY_SHA256[:8]}
    if args:
        meta["ss_network_args"] = args
    meta.update(KOHYA_STATIC)
    meta.update(modelspec_keys(h))
    if m.base.startswith(("Chroma", "Lumina")):
        meta["ss_base_model_version"] = {"Chroma": "chroma", "Lumina": "lumina2"}[m.base]
    return meta


def kohya_old_meta(h: HeaderInput) -> dict:
    """An early-2023 kohya SD1/SD2 file: ss_* only, no ss_base_model_version, no modelspec, no hashes."""
    full = kohya_meta(h)
    drop = {"ss_base_model_version", "sshs_model_hash", "sshs_legacy_hash", "ss_loss_type", "ss_huber_c",
            "ss_huber_schedule", "ss_fp8_base", "ss_debiased_estimation", "ss_ip_noise_gamma"}
    return {k: v for k, v in full.items() if k not in drop and not k.startswith("modelspec.")}


def minimal_meta(h: HeaderInput) -> dict:
    """kohya --no_metadata: the six minimum keys plus modelspec."""
    full = kohya_meta(h)
    keep = ("ss_v2", "ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha",
            "ss_network_args")
    return {**{k: full[k] for k in keep if k in full}, **modelspec_keys(h)}


def onetrainer_meta(h: HeaderInput) -> dict:
    """OneTrainer: modelspec only; hash_sha256 with a 0x prefix (here upper-case hex)."""
    return {**modelspec_keys(h), "modelspec.hash_sha256": "0x" + h.tensor_hash.upper(),
            "modelspec.author": "OneTrainer user", "modelspec.description": h.spec.model.description}


def aitoolkit_meta(h: HeaderInput) -> dict:
    """ai-toolkit: sshs_model_hash is the SHA-256 of nothing (ostris/ai-toolkit#130)."""
    return {"name": h.stem, "version": "1.0", "sshs_model_hash": EMPTY_SHA256, "sshs_legacy_hash": EMPTY_SHA256[:8],
            "software": json.dumps({"name": "ai-toolkit", "repo": "https://github.com/ostris/ai-toolkit",
                                    "version": "0.1.0"}),
            "training_info": json.dumps({"step": 2000, "epoch": 12})}


def ssmd_meta(h: HeaderInput) -> dict:
    """kohya + the additional-networks metadata editor (a cover image makes it >1 KiB bigger)."""
    cover = base64.b64encode(jpeg_bytes(b"cover " * 400)).decode()
    return {**kohya_meta(h), "ssmd_cover_images": json.dumps([cover]), "ssmd_display_name": h.spec.model.title,
            "ssmd_author": "someone", "ssmd_source": f"https://civitai.com/models/{h.spec.model.model_id}",
            "ssmd_keywords": "not, a, trigger, source", "ssmd_description": "edited in the metadata editor",
            "ssmd_tags": "edited", "ssmd_rating": "4", "ssmd_version": "1.0"}


def merged_meta(h: HeaderInput) -> dict:
    full = kohya_meta(h)
    return {**modelspec_keys(h), "modelspec.merged_from": "lora_a.safetensors, lora_b.safetensors",
            "ss_network_module": full["ss_network_module"], "ss_network_dim": full["ss_network_dim"],
            "ss_network_alpha": full["ss_network_alpha"], "sshs_model_hash": h.tensor_hash}


def swarm_meta(h: HeaderInput) -> dict:
    """A SwarmUI "resave": kohya keys plus edited modelspec fields (default weight, trigger)."""
    return {**kohya_meta(h), "modelspec.title": h.spec.model.title, "modelspec.lora_default_weight": "0.7",
            "modelspec.usage_hint": "weight 0.6-0.8"}


def bad_tags_meta(h: HeaderInput) -> dict:
    meta = kohya_meta(h)
    meta["ss_tag_frequency"] = meta["ss_tag_frequency"][:-7]  # not valid JSON: cut short
    return meta


def list_tags_meta(h: HeaderInput) -> dict:
    meta = kohya_meta(h)
    meta["ss_tag_frequency"] = json.dumps([list(h.spec.model.dataset)])  # a list, not a mapping
    return meta


def huge_meta(h: HeaderInput) -> dict:
    """A few MB of header: tens of thousands of tags (research §7.3, profile 11)."""
    meta = kohya_meta(h)
    freq = dict(h.spec.model.dataset)
    freq["1_everything"] = {f"tag_{i:05d}_{CAPTIONS[i % 4][:12]}": 1 + i % 7 for i in range(100_000)}
    meta["ss_tag_frequency"] = json.dumps(freq, ensure_ascii=False)
    return meta


def musubi_meta(h: HeaderInput) -> dict:
    """musubi-tuner (video): kohya's network keys and its own modelspec architecture names, which the
    contract's table does not list (the tensor keys tell the architecture)."""
    m, rng = h.spec.model, h.rng
    started = rng.randint(1_735_000_000, 1_760_000_000)
    arch, impl = ("wan2.1/lora", "https://github.com/Wan-Video/Wan2.1") if m.base.startswith("Wan") else (
        "hunyuan-video/lora", "https://github.com/Tencent/HunyuanVideo")
    return {"ss_network_module": "networks.lora_wan" if m.base.startswith("Wan") else "networks.lora",
            "ss_network_dim": str(h.rank), "ss_network_alpha": str(h.rank), "ss_num_train_items": "48",
            "ss_training_started_at": str(started), "ss_output_name": m.output_name or h.stem,
            "ss_seed": "42", "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": arch,
            "modelspec.implementation": impl, "modelspec.title": f"LoRA@{started}", "modelspec.resolution": "1280x720",
            "modelspec.date": "2025-03-04T12:00:00"}


def comment_meta(h: HeaderInput) -> dict:
    return {**kohya_meta(h), "ss_training_comment": "トリガー: frieren 🌸 — 学習データ 120枚, trained on 画像"}


HEADERS: Dict[str, Callable[[HeaderInput], Optional[dict]]] = {
    "kohya": kohya_meta, "kohya_old": kohya_old_meta, "minimal": minimal_meta, "onetrainer": onetrainer_meta,
    "aitoolkit": aitoolkit_meta, "none": lambda h: None, "ssmd": ssmd_meta, "merged": merged_meta,
    "swarm": swarm_meta, "bad_tags": bad_tags_meta, "list_tags": list_tags_meta, "huge": huge_meta,
    "comment": comment_meta, "musubi": musubi_meta,
}
FILE_DEFECTS = ("truncated", "bad_offsets", "bad_len", "over_cap", "zero", "bad_json", "not_object", "pickle", "zip")


@dataclass
class FileFacts:
    """What was written as the model file: what a scanner can read, and the true hashes."""
    filename: str
    size: int
    sha256: str
    status: str                 # ok | truncated (header readable, tensor data not) | corrupt | not_safetensors
    meta: Optional[dict] = None
    keys: List[str] = field(default_factory=list)
    true_tensor_hash: Optional[str] = None
    crc32: str = ""
    autov1: str = ""

    @property
    def is_safetensors(self) -> bool:
        return self.filename.lower().endswith(".safetensors") and self.status != "not_safetensors"


def other_facts(f: FileFacts, rng: random.Random) -> FileFacts:
    """Invented facts of another model (for a sidecar that belongs to someone else)."""
    fake = hashlib.sha256(f"other:{f.sha256}".encode()).hexdigest()
    return replace(f, size=f.size * 3 + rng.randint(50_000, 900_000), sha256=fake,
                   true_tensor_hash=hashlib.sha256(fake.encode()).hexdigest(), crc32=f"{rng.getrandbits(32):08X}")


def civitai_file(m: Model, f: FileFacts, new_era: bool) -> dict:
    hashes = {"AutoV1": f.autov1, "AutoV2": f.sha256[:10].upper(), "SHA256": f.sha256.upper(), "CRC32": f.crc32}
    if new_era and f.is_safetensors and f.true_tensor_hash:
        hashes["AutoV3"] = f.true_tensor_hash[:12].upper()
    return {"id": m.version_id + 7, "sizeKB": f.size / 1024, "name": f.filename, "type": "Model",
            "pickleScanResult": "Success", "pickleScanMessage": "No Pickle imports", "virusScanResult": "Success",
            "virusScanMessage": None, "scannedAt": "2024-05-01T10:00:00.000Z",
            "metadata": {"format": "SafeTensor" if f.is_safetensors else "PickleTensor", "size": None, "fp": "fp16"},
            "hashes": hashes, "primary": True,
            "downloadUrl": f"https://civitai.com/api/download/models/{m.version_id}"}


def civitai_image(m: Model, stem: str, new_era: bool, rng: random.Random) -> dict:
    image = {"url": f"https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/{m.version_id:x}/width=832/{m.version_id}.jpeg",
             "width": 832, "height": 1216, "hash": "UHF~g]%M00Rj~qt7IUof00Rj?bof%Mj[M{WB", "type": "image",
             "meta": {"prompt": f"masterpiece, {', '.join(m.trained_words[:1])}, <lora:{stem}:{m.weight}>",
                      "negativePrompt": "lowres, bad anatomy", "sampler": "Euler a", "cfgScale": 5, "steps": 28,
                      "seed": rng.randrange(2**32), "Size": "832x1216"}}
    if new_era:
        image.update({"id": m.version_id * 3, "nsfwLevel": 1, "availability": "Public", "hasMeta": True,
                      "hasPositivePrompt": True, "onSite": False, "remixOfId": None})
    else:
        image["nsfw"] = rng.choice((False, "None", "Soft", "Mature", "X"))
    return image


def civitai_new(m: Model, f: FileFacts, stem: str, rng: random.Random) -> dict:
    eco = {"sd1": "sd1", "sd2": "sd2", "sdxl": "sdxl", "flux": "flux1", "sd3": "sd3"}.get(family_of(m.base), "other")
    return {"id": m.version_id, "modelId": m.model_id, "name": m.version_name,
            "createdAt": "2025-02-03T14:22:51.412Z", "updatedAt": "2025-02-03T15:01:07.988Z", "status": "Published",
            "publishedAt": "2025-02-03T15:01:07.980Z", "availability": "Public", "nsfwLevel": 1,
            "trainedWords": m.trained_words, "trainingStatus": None, "trainingDetails": None, "baseModel": m.base,
            "baseModelType": "Standard", "earlyAccessEndsAt": None, "earlyAccessConfig": None,
            "description": f"<p>{m.version_name}: retrained on 120 images. Weight around {m.weight}.</p>",
            "uploadType": "Created", "usageControl": "Download",
            "air": f"urn:air:{eco}:lora:civitai:{m.model_id}@{m.version_id}",
            "stats": {"downloadCount": rng.randint(10, 90_000), "ratingCount": 0, "rating": 0,
                      "thumbsUpCount": rng.randint(0, 5000)},
            "model": {"name": m.title, "type": "LORA", "nsfw": False, "poi": False, "description": m.description,
                      "tags": m.tags, "allowNoCredit": True, "allowCommercialUse": ["Image", "RentCivit"],
                      "allowDerivatives": True, "allowDifferentLicense": True},
            "files": [civitai_file(m, f, True)], "images": [civitai_image(m, stem, True, rng)],
            "downloadUrl": f"https://civitai.com/api/download/models/{m.version_id}",
            "creator": {"username": "example_trainer", "image": None},
            "extensions": {"sd_civitai_helper": {"version": "1.8.13", "last_update": 1738595000,
                                                 "skeleton_file": False}}}


def civitai_old(m: Model, f: FileFacts, stem: str, rng: random.Random) -> dict:
    """A 2023 butaixianran-era file: nsfw strings, stats.rating, earlyAccessTimeFrame, no AutoV3/air/tags."""
    return {"id": m.version_id, "modelId": m.model_id, "name": m.version_name,
            "createdAt": "2023-04-11T08:15:02.120Z", "updatedAt": "2023-04-11T09:00:00.000Z",
            "trainedWords": m.trained_words, "baseModel": m.base, "earlyAccessTimeFrame": 0,
            "description": m.description, "stats": {"downloadCount": rng.randint(10, 90_000), "ratingCount": 12,
                                                    "rating": 4.9},
            "model": {"name": m.title, "type": "LORA", "nsfw": False, "poi": False},
            "files": [civitai_file(m, f, False)], "images": [civitai_image(m, stem, False, rng)],
            "downloadUrl": f"https://civitai.com/api/download/models/{m.version_id}"}


def civitai_skeleton(m: Model, f: FileFacts, stem: str, rng: random.Random) -> dict:
    """zixaphir's file for a model Civitai doesn't know: ignored by the contract."""
    return {"id": "", "modelId": "", "name": "", "trainedWords": [_REPEATS.sub("", d) for d in m.dataset],
            "baseModel": "Unknown", "description": "",
            "model": {"name": f.filename, "type": "lora", "nsfw": "", "poi": "", "description": ""},
            "files": [{"name": f.filename, "sizeKB": round(f.size / 1024), "type": "Model",
                       "hashes": {"AutoV2": f.sha256[:10], "SHA256": f.sha256}}],
            "tags": [t for tags in m.dataset.values() for t in list(tags)[:5]], "downloadUrl": "",
            "skeleton_file": True, "extensions": {"sd_civitai_helper": {"version": "1.8.13",
                                                                        "last_update": 1738595000,
                                                                        "skeleton_file": True}}}


CIVITAI_INFO = {"new": civitai_new, "old": civitai_old, "skeleton": civitai_skeleton,
                "empty": lambda m, f, stem, rng: {}, "error": lambda m, f, stem, rng: {"error": "Model not found"}}


def _tweak_files(info: dict, f: FileFacts, tweak: str, rng: random.Random) -> None:
    main = info["files"][0]
    if tweak == "stale_size":      # sizeKB off by 5 KiB: stale, its hashes are not trusted
        main["sizeKB"] = f.size / 1024 + 5
    elif tweak == "kb_int":        # rounded like old Civitai: still within 1 KiB, trusted
        main["sizeKB"] = round(f.size / 1024)
    elif tweak == "kb_near":       # 1000 bytes off: still < 1 KiB, trusted
        main["sizeKB"] = (f.size + 1000) / 1024
    elif tweak == "stale_v3":      # hashes of another file with the same size: the AutoV3 gives it away
        other = other_facts(f, rng)
        main["hashes"].update({"AutoV2": other.sha256[:10].upper(), "SHA256": other.sha256.upper(),
                               "AutoV3": (other.true_tensor_hash or "")[:12].upper()})
    elif tweak == "multifile":     # training data first, then the primary model, then a VAE
        data = {**main, "id": main["id"] + 1, "type": "Training Data", "name": "dataset.zip", "primary": False,
                "sizeKB": 51234.5, "hashes": {"SHA256": hashlib.sha256(b"zip").hexdigest().upper()}}
        vae = {**main, "id": main["id"] + 2, "type": "VAE", "name": "vae.safetensors", "primary": False,
               "sizeKB": 163.0, "hashes": {"SHA256": hashlib.sha256(b"vae").hexdigest().upper()}}
        info["files"] = [data, main, vae]
    elif tweak == "noprimary":     # no primary flag: the first file of type Model counts
        del main["primary"]
        pruned = {**main, "id": main["id"] + 3, "type": "Pruned Model", "name": "pruned.safetensors",
                  "sizeKB": 99.5, "hashes": {"SHA256": hashlib.sha256(b"pruned").hexdigest().upper()}}
        info["files"] = [pruned, main]
    else:
        raise ValueError(f"unknown .civitai.info tweak {tweak!r}")


def build_info(variant: str, tweaks: List[str], m: Model, f: FileFacts, stem: str, rng: random.Random) -> dict:
    if "wrong_model" in tweaks:    # the Civitai wrong-hash case: everything belongs to another model
        other = make_model(rng, "style", "SD 1.5", "mksks style", trained_words=["wrong model trigger"])
        return civitai_new(other, other_facts(f, rng), stem, rng)
    info = CIVITAI_INFO[variant](m, f, stem, rng)
    for tweak in tweaks:
        _tweak_files(info, f, tweak, rng)
    return info


def forge_sd_version(base: str) -> str:
    return {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL", "flux": "Flux"}.get(family_of(base), "Unknown")


def helper_sd_version(base: str) -> str:
    """Civitai Helper's baseModel[3] heuristic: Pony/Illustrious/NoobAI/Flux become "Unknown"."""
    return {"1": "SD1", "2": "SD2", "L": "SDXL"}.get(base[3:4], "Unknown")


def build_user(variant: str, tweaks: List[str], m: Model, f: FileFacts, stem: str, rng: random.Random) -> dict:
    if variant == "forge":         # the Extra Networks "Edit metadata" dialog
        obj = {"description": f"{m.title}. Notes from the user.", "sd version": forge_sd_version(m.base),
               "activation text": m.trained_words[0] if m.trained_words else "",
               "preferred weight": m.weight if m.weight is not None else 0, "negative text": m.negative,
               "notes": "Best at 0.7\u20130.9. Pairs well with the watercolor style."}
    elif variant == "helper":      # Civitai Helper: " || " joins, weight 0, no negative text
        words = m.trained_words
        joined = (" || " if words and "," in words[0] else ", ").join(words)
        obj = {"description": m.description, "notes": "<p>version notes</p>", "sd version": helper_sd_version(m.base),
               "activation text": joined, "preferred weight": 0,
               "extensions": {"sd_civitai_helper": {"version": "1.8.13", "last_update": 1738595000,
                                                    "skeleton_file": False}}}
    elif variant == "raw":         # a raw Civitai version object saved as .json: none of the user keys
        obj = civitai_new(m, f, stem, rng)
        del obj["description"]
    else:
        raise ValueError(variant)
    for tweak in tweaks:           # sd=<value>, wstr (weight as a string), act=<text>
        key, _, value = tweak.partition("=")
        if key == "sd":
            obj["sd version"] = value
        elif key == "wstr":
            obj["preferred weight"] = str(obj["preferred weight"])
        elif key == "act":
            obj["activation text"] = value
        else:
            raise ValueError(f"unknown .json tweak {tweak!r}")
    return obj


def build_meta(variant: str, tweaks: List[str], m: Model, f: FileFacts, stem: str, rng: random.Random) -> dict:
    """LoRA Manager's .metadata.json: `civitai` (from Civitai) or `local` (no Civitai facts)."""
    civ = civitai_new(m, f, stem, rng) if variant == "civitai" else {}
    for key in ("images", "extensions", "stats", "air"):
        civ.pop(key, None)
    obj = {"file_name": stem, "model_name": m.title if civ else stem, "file_path": f"D:/sd/models/Lora/{stem}",
           "size": f.size, "modified": 1738596123.52, "sha256": f.sha256, "base_model": m.base,
           "preview_url": "", "preview_nsfw_level": 0, "notes": "", "from_civitai": bool(civ), "civitai": civ,
           "tags": m.tags if civ else [], "modelDescription": m.description if civ else "",
           "civitai_deleted": False, "favorite": False, "exclude": False, "db_checked": False,
           "skip_metadata_refresh": False, "metadata_source": "civitai_api" if civ else "local",
           "last_checked_at": 1738596125.0, "hash_status": "completed",
           "autov3": (f.true_tensor_hash or "")[:12], "usage_tips": "{}"}
    for tweak in tweaks:
        if tweak == "tips":        # usage_tips carries the weight
            obj["usage_tips"] = json.dumps({"strength_min": 0.5, "strength_max": 1.0, "strength": m.weight,
                                            "clip_skip": 2})
        elif tweak == "stale":     # the size of another file: its sha256 is not trusted
            obj["size"] = f.size + 2048
        elif tweak == "lower":     # "sdxl 1.0": normalised in case only
            obj["base_model"] = m.base.lower()
        else:
            raise ValueError(f"unknown .metadata.json tweak {tweak!r}")
    return obj


def build_cm(variant: str, tweaks: List[str], m: Model, f: FileFacts, stem: str, rng: random.Random) -> dict:
    """Stability Matrix's .cm-info.json (PascalCase, nulls included, one compact line)."""
    return {"ModelId": m.model_id, "ModelName": m.title, "ModelDescription": m.description, "Nsfw": False,
            "Tags": m.tags, "ModelType": "LORA", "VersionId": m.version_id, "VersionName": m.version_name,
            "VersionDescription": None, "AuthorUsername": "example_trainer", "BaseModel": m.base,
            "RemoteFileName": f.filename, "RemoteFileId": m.version_id + 7,
            "FileMetadata": {"fp": None, "size": None, "format": "SafeTensor"},
            "ImportedAt": "2025-02-03T16:02:11.5312345+00:00",
            "Hashes": {"SHA256": f.sha256.upper(), "CRC32": f.crc32, "BLAKE3": None},
            "TrainedWords": m.trained_words,
            "Stats": {"downloadCount": 18342, "ratingCount": 0, "rating": 0, "favoriteCount": 0,
                      "commentCount": 12, "thumbsUpCount": 2210},
            "UserTitle": None, "ThumbnailImageUrl": None, "InferenceDefaults": None, "Source": "Civitai"}


# kind -> (suffix, builder, indent, ascii-escaped by default)
SIDECARS: Dict[str, Tuple[str, Callable[..., dict], Optional[int], bool]] = {
    "info": (".civitai.info", build_info, 4, True),
    "user": (".json", build_user, 4, False),
    "meta": (".metadata.json", build_meta, 2, False),
    "cm": (".cm-info.json", build_cm, None, True),
}
def _garbage(t: int) -> bytes:
    return random.Random(t).randbytes(64)


# variant -> (suffix after the stem, bytes, whether they decode: Pillow's open() + verify() accept them).
# The *_garbage and png_cut variants have the right magic bytes and do not decode (§6, B's contract 3):
# checked against Pillow 9.5 and 10.4 by tests/library/test_fixtures.py when Pillow is installed.
PREVIEWS: Dict[str, Tuple[str, Callable[[int], bytes], bool]] = {
    "preview.png": (".preview.png", lambda t: png_bytes(tag=t), True),
    "png": (".png", lambda t: png_bytes("masterpiece, 1girl\nSteps: 28, Sampler: Euler a, CFG scale: 5", t), True),
    "jpeg_in_png": (".preview.png", lambda t: jpeg_bytes(), True),
    "jpg": (".jpg", lambda t: jpeg_bytes(), True),
    "preview.jpeg": (".preview.jpeg", lambda t: jpeg_bytes(), True),
    "webp": (".webp", lambda t: WEBP_1X1, True),
    "preview.webp": (".preview.webp", lambda t: WEBP_1X1, True),
    "gif": (".gif", lambda t: GIF_1X1, True),
    "PNG": (".PNG", lambda t: png_bytes(tag=t), True),
    "zero": (".preview.png", lambda t: b"", False),
    "corrupt": (".preview.png", lambda t: b"\x00not an image" + _garbage(t), False),
    "png_garbage": (".preview.png", lambda t: b"\x89PNG\r\n\x1a\n" + _garbage(t), False),
    "png_cut": (".png", lambda t: png_bytes(tag=t)[:-20], False),        # cut inside IDAT: an unfinished copy
    "jpeg_garbage": (".jpg", lambda t: b"\xff\xd8\xff\xe0" + _garbage(t), False),
    "webp_garbage": (".preview.webp", lambda t: b"RIFF" + struct.pack("<I", 68) + b"WEBP" + _garbage(t), False),
    "example": (".example.0.jpeg", lambda t: jpeg_bytes(), True),
    "example_webp": (".example.1.webp", lambda t: WEBP_1X1, True),
    "mp4": (".preview.mp4", lambda t: b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16, False),
}


# ==============================================================================================
# 5. The population: special cases (tiny: every case) and the bulk mix
# ==============================================================================================

@dataclass
class Extra:
    """A file that is not part of a LoRA bundle: a partial download, another model file, an orphan."""
    rel: str
    data: bytes


# A model whose training output name (ss_output_name, modelspec.title) holds no lineage token: the file was
# renamed after training, so its name alone says what it is.
NO_TOKEN = {"output_name": "lora"}
# A header whose checkpoint name says nothing (trained on a merge): no lineage from ss_sd_model_name.
NEUTRAL = {"ss_sd_model_name": "merged_v3.safetensors"}


def special_cases(mk: Callable[..., Spec], huge: bool) -> Tuple[List[Spec], List[Extra]]:
    """The hand-listed cases. `mk(rel, base, category, subject, m={model fields}, like=rel, **spec)`."""
    sha_of = hashlib.sha256
    pk = pickle.dumps({"state_dict": {"lora_unet_down_blocks_0.lora_down.weight": [0.0] * 8}}, protocol=2)
    specs = [
        # --- style/: category-first; user json beats Civitai for triggers; preview ordering
        mk("style/anime/mksks style.safetensors", "SD 1.5", "style", "mksks style", info="new", user="forge",
           previews=("preview.png", "jpg"), extras=("txt",)),
        mk("style/anime/Style.safetensors", "SD 1.5", "style", "ohwx watercolor", header="none",
           previews=("png", "preview.png")),                       # case-only twin of Pony/style/style
        mk("style/anime/lineart_a.safetensors", "SD 1.5", "style", "clean lineart", m={"output_name": "lineart"},
           info="old"),                                             # same alias as Illustrious/style/lineart_b
        mk("style/anime/stale_size_style.safetensors", "SD 1.5", "style", "90s anime screencap",
           info="new+stale_size", previews=("PNG",)),
        mk("style/painterly/ohwx watercolor [SDXL].safetensors", "SDXL 1.0", "style", "ohwx watercolor",
           info="new", user="helper", previews=("webp", "preview.jpeg"), extras=("desc",)),
        mk("style/realistic/Film Grain & Light Leaks.safetensors", "SD 1.5", "style", "film grain",
           header="kohya_old", previews=("gif",)),
        mk("style/pixel art/Pixel-Art_XL_v1.1.safetensors", "SDXL 1.0", "style", "pixel art", header="onetrainer",
           info="old", previews=("preview.jpeg",)),
        mk("style/anime/浮世絵 ukiyo-e [SD1.5].safetensors", "SD 1.5", "style", "浮世絵", info="new:bom",
           previews=("zero",)),
        mk("style/painterly/impasto_dora.safetensors", "SDXL 1.0", "style", "thick impasto oil painting",
           network="dora", info="new+kb_int", user="forge+wstr"),
        # --- character/: Civitai beats the header (Illustrious over SDXL 1.0), helper joins, CJK, emoji
        mk("_unsorted/frieren_illustrious_v2.safetensors", "Illustrious", "character", "frieren",
           m={"trained_words": ["frieren", "elf, pointy ears, white hair, twintails",
                                "white capelet, black pantyhose"]},
           info="new", previews=("preview.png",)),
        mk("character/anime/sousou no frieren/Frieren IL v2.safetensors", "Illustrious", "character", "frieren",
           like="_unsorted/frieren_illustrious_v2.safetensors", copy_of="_unsorted/frieren_illustrious_v2.safetensors",
           info="new", user="helper", previews=("jpeg_in_png",)),   # renamed byte copy: duplicate + alias clash
        mk("character/anime/sousou no frieren/fern_v1.safetensors", "Illustrious", "character", "fern",
           m={"trained_words": ["fern, purple hair, long hair", "fern, black robe ", " ", "(fern:1.2)"]},
           info="new", user="helper", meta="civitai+tips"),
        mk("character/anime/genshin impact/胡桃 Hu Tao [Pony].safetensors", "Pony", "character", "hu tao",
           info="new", user="helper", previews=("jpeg_in_png",), extras=("sha256",)),
        mk("character/anime/genshin impact/raiden_shogun_multi.safetensors", "Pony", "character",
           "raiden shogun", info="new+multifile", previews=("preview.webp",)),
        mk("character/anime/vocaloid/miku_v1.safetensors", "SD 1.5", "character", "hatsune miku",
           info="old:comma", previews=("preview.png",)),            # same stem as Illustrious/miku_v1
        mk("character/anime/vocaloid/初音ミク_v3.safetensors", "SD 1.5 LCM", "character", "初音ミク",
           info="new:utf16"),
        mk("character/anime/chainsaw man/makima_il.safetensors", "Illustrious", "character", "makima",
           info="new", previews=("preview.png",)),
        mk("character/VTuber (JP)/Houshou Marine 🏴‍☠️.safetensors", "NoobAI", "character", "houshou marine",
           meta="local+lower", previews=("webp",)),          # base_model "noobai": normalised
        mk("character/VTuber (JP)/gawr_gura_noob.safetensors", "NoobAI", "character", "gawr gura",
           cm="cm", previews=("preview.png",)),
        mk("character/game/2B (NieR) __ v3.safetensors", "Pony", "character", "2b", user="forge+sd=SDXL",
           header="kohya_old"),                                     # user_json SDXL, no Civitai
        mk("character/original/oc_aria.safetensors", "SDXL 1.0", "character", "asuka langley",
           user="forge+sd=Pony"),                                   # invalid sd version: ignored
        mk("character/game/tifa_lockhart_ff7.ckpt", "SD 1.5", "character", "tifa lockhart", info="old",
           previews=("preview.png",)),                              # a .ckpt LoRA: not_safetensors, still read
        mk("character/anime/spy x family/anya_forger.safetensors", "SD 1.5", "character", "anya forger",
           user="raw"),                                             # a raw Civitai object as .json: ignored
        # --- concept/, clothing/, pose/, background/, detailer/, slider/
        mk("concept/lighting/rim_light_concept.safetensors", "SD 1.5", "concept", "rim lighting", header="minimal",
           info="empty", extras=("txt",), previews=("webp_garbage",)),  # RIFF....WEBP, then garbage: broken
        mk("concept/lighting/glow runes (magic).safetensors", "SDXL 1.0", "concept", "glowing runes, magic circle",
           info="error", previews=("example", "example_webp")),     # example images are not previews
        mk("concept/composition/dutch angle.safetensors", "Flux.1 D", "concept", "dutch angle", info="new+kb_near",
           m={"trained_words": []}, previews=("mp4",)),
        mk("concept/.dotfile_concept.safetensors", "SD 1.5", "concept", "double exposure", header="list_tags"),
        mk("clothing/uniforms/school uniform (serafuku).safetensors", "SD 1.5", "clothing", "serafuku",
           info="skeleton"),                                        # skeleton: ignored, header + dataset
        mk("clothing/fantasy armor/Elven Armor [IL].safetensors", "Illustrious", "clothing", "fantasy armor",
           meta="civitai+tips", extras=("sha256",)),
        mk("clothing/maid outfit & apron.safetensors", "Pony", "clothing", "maid outfit", info="new:trunc",
           user="forge:bom"),
        mk("pose/hand_on_hip_pony.safetensors", "Pony", "pose", "hand on hip, looking back", cm="cm",
           previews=("corrupt",)),
        mk("pose/from_above.pt", "SD 1.5", "pose", "from above", info="new"),
        mk("pose/sitting_crossed_legs.safetensors", "SD 1.5", "pose", "sitting on chair, crossed legs",
           info="new:zero", user="forge:zero"),
        mk("background/cyberpunk_city_flux.safetensors", "Flux.1 D", "background",
           "cyberpunk city street, neon lights, night", header="aitoolkit", keys="flux_diffusers",
           previews=("webp",)),
        mk("background/japanese shrine (神社).safetensors", "Flux.1 D", "background", "japanese shrine, torii",
           header="aitoolkit", keys="flux_diffusers", info="new"),
        mk("background/library_interior.safetensors", "SD 1.5", "background", "library interior, bookshelves",
           info="new", user="forge:list"),
        mk("detailer/detail_tweaker_xl.safetensors", "SDXL 1.0", "detailer", "detail tweaker", network="locon",
           info="new+noprimary", user="forge"),
        mk("detailer/hands fix (SD1.5).ckpt", "SD 1.5", "detailer", "hands fix"),
        mk("detailer/eye_enhancer_loha.safetensors", "SD 1.5", "detailer", "eye enhancer", network="loha",
           meta="civitai:trunc"),
        mk("slider/age_slider_v2.safetensors", "SD 1.5", "slider", "age slider", header="none",
           user="forge", m={"weight": -2.0}),
        mk("slider/Breasts size slider_alpha16.0_rank32_full.safetensors", "SDXL 1.0", "slider", "muscle slider",
           network="lokr", user="forge", m={"weight": -3.0}),
        mk("slider/detail slider.safetensors", "SD 1.5", "slider", "detail slider", header="merged"),
        # --- base-model-first trees; add_detail for three bases (stem collision, not duplicates)
        mk("Pony/add_detail.safetensors", "Pony", "detailer", "add detail", info="new", cm="cm"),
        mk("Illustrious/add_detail.safetensors", "Illustrious", "detailer", "add detail", meta="local"),
        mk("SDXL/add_detail.safetensors", "SDXL 1.0", "detailer", "add detail"),
        mk("Pony/style/style.safetensors", "Pony", "style", "ohwx watercolor", header="none"),
        mk("Pony/characters/[PONY] Frieren (Sousou no Frieren).safetensors", "Pony", "character", "frieren",
           info="new", previews=("preview.png",)),
        mk("Illustrious/style/lineart_b.safetensors", "Illustrious", "style", "clean lineart",
           m={"output_name": "lineart"}),
        mk("Illustrious/miku_v1.safetensors", "Illustrious", "character", "hatsune miku",
           m={"tags": ["style", "character", "anime"]}, info="new"),  # tag priority: character before style
        mk("Illustrious/marin_kitagawa_il.safetensors", "Illustrious", "character", "marin kitagawa",
           meta="civitai"),
        mk("Illustrious/NoobAI/broken_header_noob.safetensors", "NoobAI", "character", "gawr gura",
           defect="bad_json"),                                      # folder: the nearest one wins
        mk("Illustrious/character/makima_edited.safetensors", "Illustrious", "character", "makima",
           like="character/anime/chainsaw man/makima_il.safetensors", header="ssmd",
           tensors_of="character/anime/chainsaw man/makima_il.safetensors",
           facts_of="character/anime/chainsaw man/makima_il.safetensors", info="new"),  # resave: >1 KiB bigger
        mk("SDXL/neon_glow.safetensors", "SDXL 1.0", "concept", "holographic", header="kohya",
           m={"tags": ["concept", "lighting"]}, meta="civitai"),
        mk("SDXL/age_adjuster.safetensors", "SDXL 1.0", "slider", "age slider", cm="cm"),
        mk("SDXL/Lightning/lightning_pose_pack.safetensors", "SDXL Lightning", "pose", "jumping", info="new"),
        mk("SDXL/tifa_sdxl_original.safetensors", "SDXL 1.0", "character", "tifa lockhart", info="new"),
        mk("SDXL/tifa_sdxl_swarm.safetensors", "SDXL 1.0", "character", "tifa lockhart", header="swarm",
           like="SDXL/tifa_sdxl_original.safetensors", tensors_of="SDXL/tifa_sdxl_original.safetensors",
           facts_of="SDXL/tifa_sdxl_original.safetensors", info="new"),  # resave: <1 KiB, sidecar sha kept
        mk("SDXL/tifa_sdxl_stripped.safetensors", "SDXL 1.0", "character", "tifa lockhart", header="none",
           like="SDXL/tifa_sdxl_original.safetensors", tensors_of="SDXL/tifa_sdxl_original.safetensors"),
        mk("SDXL/wrong_model_info.safetensors", "SDXL 1.0", "concept", "melting", info="new+wrong_model"),
        mk("SDXL/stale_autov3.safetensors", "SDXL 1.0", "concept", "bokeh, depth of field", info="new+stale_v3"),
        mk("SD15/diffusers_format_lora.safetensors", "SD 1.5", "character", "asuka langley", header="none",
           keys="sd1_diffusers"),                                   # no kohya keys: folder SD15
        mk("SD15/old_hypernet_style.pt", "SD 1.5", "style", "clean lineart"),
        mk("SD15/random_thing.safetensors", "SD 1.5", "concept", "melting", header="none", keys="sd1",
           previews=("jpeg_garbage",)),                           # JPEG magic, then garbage: broken
        mk("SD15/zip_renamed.safetensors", "SD 1.5", "concept", "melting", defect="zip"),
        mk("SD15/hyper_sd15_helper.safetensors", "SD 1.5 Hyper", "concept", "bokeh, depth of field", info="new",
           user="helper"),
        mk("Flux/flux_film_style.safetensors", "Flux.1 D", "concept", "film look", header="kohya",
           m={"trigger_phrase": "cinematic film still"}),
        mk("Flux/schnell/fast_sketch_schnell.safetensors", "Flux.1 S", "style", "clean lineart", header="kohya"),
        mk("Flux/chroma_portrait.safetensors", "Chroma", "character", "fern", header="kohya"),
        mk("Flux/flux2_klein_test.safetensors", "Flux.2 D", "concept", "melting", header="none", info="new"),
        mk("Flux/flux_trigger_phrase.safetensors", "Flux.1 D", "concept", "holographic", header="onetrainer",
           m={"trigger_phrase": "holographic foil, iridescent"}, keys="flux_diffusers"),
        mk("_SDXL_1_0/civbrowser_style_xl.safetensors", "SDXL 1.0", "style", "flat cel shading", defect="bad_len"),
        mk("_SDXL_1_0/over_cap_header.safetensors", "SDXL 1.0", "concept", "melting", defect="over_cap"),
        mk("_SDXL_1_0/not_an_object.safetensors", "SDXL 1.0", "concept", "melting", defect="not_object"),
        mk("_Other/wan_motion_lora.safetensors", "Wan Video 14B t2v", "concept", "jumping", header="none"),
        mk("_Other/hunyuan_video_dance.safetensors", "Hunyuan Video", "pose", "jumping", header="none",
           info="new"),
        mk("_Other/sd35_large_style.safetensors", "SD 3.5", "style", "ink wash painting", header="kohya"),
        mk("_Other/sd35_no_metadata.safetensors", "SD 3.5", "style", "ink wash painting", header="none"),
        mk("_Other/lumina_test.safetensors", "Lumina", "style", "ink wash painting", header="kohya"),
        mk("_Other/pony_v7_aura.safetensors", "Pony V7", "character", "frieren", header="none", info="new"),
        mk("_Other/odd_base_other.safetensors", "Other", "concept", "melting", info="new"),
        # --- _unsorted/: Civitai default names, copies, defects
        mk("_unsorted/marin_kitagawa.safetensors", "SD 1.5", "character", "marin kitagawa", header="minimal",
           info="old", cm="cm"),
        mk("_unsorted/marin_kitagawa (1).safetensors", "SD 1.5", "character", "marin kitagawa",
           like="_unsorted/marin_kitagawa.safetensors", copy_of="_unsorted/marin_kitagawa.safetensors",
           info="old"),                                             # duplicate by sha256 only
        mk("_unsorted/sd21_v_style.safetensors", "SD 2.1 768", "style", "oil painting", header="kohya"),
        mk("_unsorted/sd2_old_kohya.safetensors", "SD 2.1", "concept", "melting", header="kohya_old",
           previews=("png_garbage",)),                            # PNG magic, then garbage: broken
        mk("_unsorted/lora_7731.safetensors", "SD 1.5", "concept", "melting", header="bad_tags", keys="sd1"),
        mk("_unsorted/truncated_download.safetensors", "SDXL 1.0", "character", "makima", defect="truncated"),
        mk("_unsorted/offsets_backwards.safetensors", "SD 1.5", "concept", "rim lighting", defect="bad_offsets"),
        mk("_unsorted/zero_bytes.safetensors", "SD 1.5", "concept", "melting", defect="zero"),
        mk("_unsorted/totally_a_lora.safetensors", "SD 1.5", "concept", "melting", defect="pickle"),
        mk("_unsorted/LoRA_UPPER_EXT.SAFETENSORS", "SD 1.5", "character", "2b", info="new", previews=("preview.png",)),
        mk("_unsorted/trained_comment_jp.safetensors", "Illustrious", "character", "frieren", header="comment"),
        mk("_unsorted/network_dylora.safetensors", "SD 1.5", "concept", "underwater, caustics", network="dylora",
           previews=("png_cut",)),                                # a PNG cut inside IDAT: broken
        mk("_unsorted/" + "長い名前のロラ" * 10 + "_long_name_v1.safetensors", "SD 1.5", "concept", "melting",
           previews=("preview.png",)),
        mk("_unsorted/sd15_no_keys_match.ckpt", "SD 1.5", "concept", "melting"),
        # --- B's cases: a folder reached twice (favourites -> Pony/characters/genshin), one alias for two files
        mk("Pony/characters/genshin/hu_tao_pony_v2.safetensors", "Pony", "character", "hu tao", info="new",
           previews=("preview.png",)),                              # sha256 and tensor hash known: no self-duplicate
        mk("Pony/characters/genshin/raiden_shogun-000012.safetensors", "Pony", "character", "raiden shogun",
           m={"output_name": "raiden shogun pony"}, previews=("webp",)),  # alias != stem: no self-collision
        mk("concept/composition/double_exposure_v1.safetensors", "SD 1.5", "concept", "double exposure",
           m={"output_name": "DoubleExposure"}),                     # same alias as the next, case aside
        mk("SDXL/double_exposure_xl.safetensors", "SDXL 1.0", "concept", "double exposure",
           m={"output_name": "doubleexposure"}),
        # --- A's cases: video LoRAs by their tensor keys alone (no header, no sidecar)
        mk("_Other/video/hunyuan_musubi_dance.safetensors", "Hunyuan Video", "pose", "jumping", header="musubi",
           keys="hunyuan_musubi"),                                   # kohya names + img_mlp_fc1
        mk("_Other/video/hunyuan_pipe_walk.safetensors", "Hunyuan Video", "pose", "jumping", header="none",
           keys="hunyuan_pipe"),                                     # .img_attn_qkv as one module
        mk("_Other/video/hunyuan_attn_only.safetensors", "Hunyuan Video", "concept", "melting", header="none",
           keys="hunyuan_attn"),                                     # no mark: reads as Flux (the contract's limit)
        mk("_Other/video/hunyuan_attn_only_civitai.safetensors", "Hunyuan Video", "concept", "melting",
           header="none", keys="hunyuan_attn", info="new"),          # the same keys, Civitai says Hunyuan Video
        mk("_Other/video/ltxv_camera_orbit.safetensors", "LTXV", "concept", "motion blur", header="none", keys="ltxv"),
        mk("_Other/video/mochi_diffusers_pan.safetensors", "Mochi", "concept", "motion blur", header="none",
           keys="mochi"),
        mk("_Other/video/mochi_genmo_smoke.safetensors", "Mochi", "concept", "motion blur", header="none",
           keys="mochi_genmo"),
        mk("_Other/video/wan_musubi_i2v.safetensors", "Wan Video 14B i2v 480p", "concept", "jumping",
           header="musubi", keys="wan_musubi", info="new"),          # Civitai's full Wan name is kept
        mk("_Other/video/wan_diffusers_t2v.safetensors", "Wan Video 1.3B t2v", "concept", "jumping", header="none",
           keys="wan_diffusers"),
        mk("Pony/video_lora_in_pony.safetensors", "Pony", "concept", "jumping", header="none", keys="wan_musubi",
           info="new"),                                               # Civitai says Pony, the keys say Wan: Wan
        # --- lineage in one place only (the checkpoint named in the header, a title, the name, a folder)
        mk("_unsorted/chun-li_v3.safetensors", "Pony", "character", "chun-li", m=NO_TOKEN,
           edits={"ss_sd_model_name": "ponyDiffusionV6XL_v6StartWithThisOne.safetensors"}),
        mk("_unsorted/chun-li_v4.safetensors", "Illustrious", "character", "chun-li", m=NO_TOKEN,
           edits={"ss_sd_model_name": "/content/pretrained_model/illustriousXL_v01.safetensors"}),
        mk("_unsorted/chun-li_v5.safetensors", "NoobAI", "character", "chun-li", m=NO_TOKEN,
           edits={"ss_sd_model_name": "noobaiXLNAIXL_vPred10Version.safetensors"}),
        mk("_unsorted/chun-li_v6.safetensors", "Pony", "character", "chun-li", header="onetrainer",
           edits={"modelspec.title": "Chun-Li (Street Fighter) | PDXL"}),
        mk("_unsorted/chun-li_v7.safetensors", "Illustrious", "character", "chun-li", header="onetrainer",
           edits={"modelspec.title": "chunli", "modelspec.description": "Trained on Illustrious-XL v0.1, 40 images."}),
        mk("_unsorted/chunli_renamed.safetensors", "NoobAI", "character", "chun-li",
           m={"output_name": "chunli_noob_v1"}, edits=NEUTRAL),       # only ss_output_name (and the title) say it
        mk("_unsorted/[PDXL] Chun-Li (Street Fighter) v3.safetensors", "Pony", "character", "chun-li", m=NO_TOKEN,
           edits=NEUTRAL),
        mk("_unsorted/qipao_dress_ponyXL-000012.safetensors", "Pony", "clothing", "qipao", m=NO_TOKEN, edits=NEUTRAL,
           previews=("preview.png",)),
        mk("_unsorted/hu_tao_pony_v6.safetensors", "Pony", "character", "hu tao", m=NO_TOKEN, edits=NEUTRAL),
        mk("_unsorted/frieren_IL_v2.safetensors", "Illustrious", "character", "frieren", m=NO_TOKEN, edits=NEUTRAL),
        mk("_unsorted/makima_ILXL.safetensors", "Illustrious", "character", "makima", m=NO_TOKEN, edits=NEUTRAL),
        mk("_unsorted/Furina_IllustriousXL.safetensors", "Illustrious", "character", "hu tao", m=NO_TOKEN,
           edits=NEUTRAL),
        mk("_unsorted/Hitori_Gotoh_NAI-XL.safetensors", "NoobAI", "character", "gotoh hitori", m=NO_TOKEN,
           edits=NEUTRAL),
        mk("_unsorted/marin_noob_eps.safetensors", "NoobAI", "character", "marin kitagawa", m=NO_TOKEN,
           edits=NEUTRAL),
        mk("_unsorted/ILLUMINATION_lighting_xl.safetensors", "SDXL 1.0", "concept", "rim lighting", m=NO_TOKEN,
           edits=NEUTRAL),                                            # no IL in ILLUMINATION: plain SDXL
        mk("_unsorted/ponytail_slider_xl.safetensors", "SDXL 1.0", "slider", "ponytail slider", m=NO_TOKEN,
           edits=NEUTRAL),                                            # ponytail is not pony
        mk("_unsorted/frieren_nai.safetensors", "SD 1.5", "character", "frieren", m=NO_TOKEN),  # nai alone: SD1
        mk("Illustrious/chara/fern_ilxl_test.safetensors", "Illustrious", "character", "fern", m=NO_TOKEN,
           edits=NEUTRAL, user="forge+sd=SDXL"),                      # coarse user json refined by the name
        mk("Illustrious/chara/hu_tao.safetensors", "Illustrious", "character", "hu tao", m=NO_TOKEN, edits=NEUTRAL,
           user="forge+sd=SDXL"),                                     # coarse user json refined by the folder
        mk("_Pony/Outfits/bunny_suit.safetensors", "Pony", "clothing", "bunny suit", m=NO_TOKEN, edits=NEUTRAL),
        mk("SDXL - Illustrious/2. Poses/looking_back.safetensors", "Illustrious", "pose", "looking back",
           m=NO_TOKEN, edits=NEUTRAL),                                # folder tokens; numbered folder
        mk("_unsorted/makima_header_title.safetensors", "Illustrious", "character", "makima", header="onetrainer",
           user="forge+sd=SDXL", edits={"modelspec.title": "makima | Illustrious"}),  # user json SDXL refined
        mk("_unsorted/conflict_pony_vs_naixl.safetensors", "Pony", "character", "makima", info="new",
           edits={"modelspec.title": "makima NAI-XL v1"}),          # Civitai Pony vs title NoobAI: Pony, warned
        mk("_unsorted/conflict_sd15_civitai.safetensors", "SD 1.5", "character", "makima", keys="sdxl",
           header="none", info="new"),                                 # Civitai SD 1.5 on SDXL tensors: SDXL
        mk("_unsorted/sd21_768_kohya.safetensors", "SD 2.1 768", "style", "oil painting", header="kohya_old"),
        mk("_unsorted/flux_schnell_anime_aitk.safetensors", "Flux.1 S", "style", "flat cel shading",
           header="aitoolkit", keys="flux_diffusers"),               # only the name says schnell
        mk("_unsorted/flux_dev_kohya.safetensors", "Flux.1 D", "style", "flat cel shading"),
        # --- categories: folders at any depth and their synonyms, training tags, triggers, names
        mk("SD15/Artists/ciloranko.safetensors", "SD 1.5", "style", "ciloranko", m=NO_TOKEN, header="minimal"),
        mk("Effects/GodRays_XL.safetensors", "SDXL 1.0", "concept", "god rays", header="minimal"),
        mk("FX/glitch_v1.safetensors", "SDXL 1.0", "concept", "glitch", header="minimal"),
        mk("Hands & Gestures/heart_hands_sd15.safetensors", "SD 1.5", "pose", "heart hands", header="minimal"),
        mk("BG/ruins_background_ponyXL.safetensors", "Pony", "background", "ruins", header="minimal"),
        mk("Costumes/witch_hat_il.safetensors", "Illustrious", "clothing", "witch hat", header="minimal"),
        mk("Tools/better_hands_v2.safetensors", "SDXL 1.0", "detailer", "hands fix", header="minimal"),
        mk("Enhancers/skin_texture_xl.safetensors", "SDXL 1.0", "detailer", "skin texture", header="minimal"),
        mk("Misc/thing_v2.safetensors", "SDXL 1.0", "concept", "melting", header="minimal"),
        mk("01 - Characters/frieren_sd15.safetensors", "SD 1.5", "character", "frieren", header="minimal"),
        mk("_unsorted/lora_4419.safetensors", "Illustrious", "clothing", "qipao", m=NO_TOKEN, edits=NEUTRAL),
        mk("_unsorted/lora_4420.safetensors", "Illustrious", "pose", "hand on hip, looking back", m=NO_TOKEN,
           edits=NEUTRAL),                                            # training tags vote
        mk("_unsorted/bocchi_v1.safetensors", "Illustrious", "character", "gotoh hitori", user="forge",
           m={"trained_words": ["(gotoh_hitori_(bocchi_the_rock):1.2), solo, pink hair"]}),
        mk("_unsorted/pose_pack_v2.safetensors", "SD 1.5", "pose", "hand on hip, looking back", user="forge",
           m={"trained_words": ["hand on hip, looking back", "sitting, crossed legs"]}),
        mk("_unsorted/lens_flare_sd15.safetensors", "SD 1.5", "concept", "lens flare", info="new",
           m={"tags": ["anime"], "trained_words": ["lens flare, god rays"]}),
        mk("_unsorted/library_bg_xl.safetensors", "SDXL 1.0", "background", "library", header="minimal"),
        mk("_unsorted/hatsune miku (vocaloid) pdxl.safetensors", "Pony", "character", "hatsune miku",
           user="forge", m={"trained_words": ["hatsune miku \\(vocaloid\\), twintails, aqua hair"]}),
        # --- .hidden/, linked/ (through the symlink)
        mk(".hidden/secret_outfit.safetensors", "Pony", "clothing", "techwear jacket", info="new"),
        mk("linked/Art Style/ink wash (墨絵).safetensors", "SD 1.5", "style", "ink wash painting", cm="cm",
           previews=("preview.png",)),
        mk("linked/flux_realism_v2.safetensors", "Flux.1 D", "concept", "bokeh, depth of field", info="new",
           meta="civitai+tips"),
        mk("linked/nested/pose/peace_sign.safetensors", "SD 1.5", "pose", "peace sign", meta="civitai+stale"),
    ]
    if huge:
        specs.append(mk("style/anime/huge_header_style.safetensors", "Illustrious", "style", "flat cel shading",
                        header="huge", ascii_header=True))
    partial = lambda n: b"\x10\x00\x00\x00\x00\x00\x00\x00{\"__metadata__\":" + bytes(n)  # noqa: E731
    extras = [
        Extra("character/anime/sousou no frieren/frieren_v3.safetensors.part", partial(300)),
        Extra("character/anime/sousou no frieren/frieren_v3.civitai.info", b'{"id": 1, "baseModel": "Illustrious"}'),
        Extra("_unsorted/ponyStyleMix.safetensors.tmp", partial(100)),
        Extra("_unsorted/Civitai download 8f3a.crdownload", partial(64)),
        Extra("Flux/flux_lora_2.safetensors.download", b""),
        Extra("_unsorted/flux1-dev-Q4_K_S.gguf", b"GGUF\x03\x00\x00\x00" + bytes(56)),
        Extra("_unsorted/frieren_training_data.zip", zip_bytes({"10_frieren/001.txt": b"frieren, 1girl"})),
        Extra("_unsorted/pytorch_lora_weights.bin", pk),
        Extra("style/anime/deleted_style.preview.png", png_bytes()),
        Extra("style/anime/deleted_style.civitai.info", b"{}"),
        Extra("concept/orphan.png", png_bytes()),
        Extra("concept/lighting/README.txt", "Rim light LoRAs — see Civitai.\n".encode()),
        Extra("_unsorted/notes.sha256", sha_of(b"notes").hexdigest().encode()),
        # AppleDouble files from a macOS copy: never LoRAs, whatever their bytes (the last one holds a
        # valid safetensors header whose alias would clash with Pony/add_detail if it were read)
        Extra("style/anime/._mksks style.safetensors", appledouble_bytes("mksks style.safetensors")),
        Extra("style/anime/._mksks style.civitai.info", appledouble_bytes("mksks style.civitai.info")),
        Extra("style/anime/._mksks style.preview.png", appledouble_bytes("mksks style.preview.png")),
        Extra("_unsorted/._frieren_illustrious_v2.safetensors",
              appledouble_bytes("frieren_illustrious_v2.safetensors")),
        Extra("Pony/._add_detail.safetensors", safetensors_bytes(
            {"ss_output_name": "add_detail", "ss_base_model_version": "sdxl_base_v1-0"}, {}, b"", True)[0]),
    ]
    return specs, extras


def place(rng: random.Random, m: Model) -> str:
    """A folder for a bulk LoRA, mixing the conventions of research §7.1."""
    fam, r = family_of(m.base), rng.random()
    if r < 0.55:
        sub = {"style": ("style/anime", "style/painterly", "style/realistic", "style/pixel art"),
               "concept": ("concept", "concept/lighting", "concept/composition"),
               "clothing": ("clothing/uniforms", "clothing/fantasy armor"), "pose": ("pose",),
               "background": ("background",), "detailer": ("detailer",), "slider": ("slider",)}
        if m.category == "character":
            row = next((c for c in CHARACTERS if c[0] == m.subject), CHARACTERS[0])
            return rng.choice((f"character/anime/{row[1]}", "character/game", "character/original",
                               "character/VTuber (JP)"))
        return rng.choice(sub[m.category])
    if r < 0.80 and m.base in ("Pony", "Illustrious", "SDXL 1.0", "NoobAI", "SD 1.5", "Flux.1 D"):
        top = {"Pony": "Pony", "Illustrious": "Illustrious", "NoobAI": "Illustrious/NoobAI", "SDXL 1.0": "SDXL",
               "SD 1.5": "SD15", "Flux.1 D": "Flux"}[m.base]
        cat = {"style": "style", "character": "characters", "concept": "concepts", "clothing": "clothes",
               "pose": "poses", "background": "scenery", "detailer": "tools", "slider": "sliders"}[m.category]
        return f"{top}/{cat}" if rng.random() < 0.6 else top
    if r < 0.86:
        return {"sdxl": "_SDXL_1_0", "flux": "_Flux_1_D"}.get(fam, "_Other")
    if r < 0.96:
        return "_unsorted"
    if r < 0.985:
        return rng.choice(("linked", "linked/Art Style", "linked/nested"))
    return ".hidden"


def bulk_headers(rng: random.Random, base: str) -> Tuple[str, str, str]:
    """(header profile, key template, network) in realistic proportions for the base model."""
    fam = family_of(base)
    if fam == "video":
        return "none", default_keys(base), "lora"
    if fam == "flux":
        header = weighted(rng, (("kohya", 55), ("aitoolkit", 30), ("none", 15)))
        return header, "flux_diffusers" if header == "aitoolkit" else "flux", "lora"
    header = weighted(rng, (("kohya", 62), ("kohya_old", 8 if fam == "sd1" else 0), ("minimal", 8),
                            ("onetrainer", 6 if fam == "sdxl" else 0), ("none", 10), ("ssmd", 2), ("merged", 2),
                            ("swarm", 1), ("bad_tags", 1), ("comment", 1)))
    network = weighted(rng, (("lora", 80), ("locon", 8), ("dora", 4), ("loha", 4), ("lokr", 2), ("dylora", 2)))
    return header, default_keys(base), network


def bulk_sidecars(rng: random.Random, m: Model, ext: str) -> Dict[str, Any]:
    """Sidecar and preview choices in the proportions of research §7.4 (common defects only)."""
    info = weighted(rng, (("new", 45), ("old", 15), ("skeleton", 8), ("empty", 2), ("corrupt", 2), ("", 28)))
    if info == "corrupt":
        info = "new:" + rng.choice(("trunc", "bom", "comma", "utf16", "zero"))
    elif info in ("new", "old") and rng.random() < 0.01:
        info += "+stale_size"
    user = ""
    if info.startswith(("new", "old")) and rng.random() < 0.45:
        user = "helper"
    elif rng.random() < 0.15:
        user = "forge+wstr" if rng.random() < 0.05 else "forge"
    meta = weighted(rng, (("civitai+tips", 6), ("local", 4), ("", 90))) if ext == ".safetensors" else ""
    previews: Tuple[str, ...] = ()
    if rng.random() < 0.7:
        previews = (weighted(rng, (("preview.png", 45), ("png", 12), ("preview.jpeg", 10), ("webp", 8),
                                   ("jpeg_in_png", 10), ("jpg", 5), ("PNG", 2), ("zero", 1), ("corrupt", 1))),)
    extras = tuple(x for x, p in (("txt", 0.05), ("desc", 0.03), ("sha256", 0.03)) if rng.random() < p)
    return {"info": info, "user": user, "meta": meta, "cm": "cm" if rng.random() < 0.05 else "",
            "previews": previews, "extras": extras}


def bulk_specs(rng: random.Random, count: int, taken: set) -> List[Spec]:
    """`count` LoRAs in the mix of research §7.2; stems and aliases are unique (case-insensitively)
    except for the deliberate traps: `name (1)` copies and same-stem files in two folders."""
    specs: List[Spec] = []
    serial = 0
    while len(specs) < count:
        serial += 1
        category, base = weighted(rng, CATEGORY_MIX), weighted(rng, BASE_MIX)
        m = make_model(rng, category, base)
        ext = ".safetensors" if rng.random() < 0.985 else rng.choice((".pt", ".ckpt"))
        stem = _unique(taken, _bulk_stem(rng, m, serial))
        if rng.random() < 0.2:  # renamed on download: the training output name differs from the stem
            m = replace(m, output_name=_unique(taken, f"{slug(m.subject)}-{serial:06d}"))
        header, keys, network = bulk_headers(rng, base)
        spec = Spec(rel=f"{place(rng, m)}/{stem}{ext}", model=m, header=header, keys=keys, network=network,
                    **bulk_sidecars(rng, m, ext))
        specs.append(spec)
        trap = rng.random()
        if trap < 0.004 and len(specs) < count and ext == ".safetensors":   # Stability Matrix copy
            specs.append(replace(spec, rel=f"{spec.folder}/{stem} (1){ext}", copy_of=spec.rel, previews=(),
                                 cm="cm", info="", user="", meta=""))
            taken.add(f"{stem} (1)".lower())
        elif trap < 0.008 and len(specs) < count:                         # same stem, another folder
            other = make_model(rng, category, weighted(rng, BASE_MIX), m.subject)
            folder = place(rng, other)
            if folder != spec.folder:
                h, k, n = bulk_headers(rng, other.base)
                specs.append(Spec(rel=f"{folder}/{stem}.safetensors", model=other, header=h, keys=k, network=n,
                                  **bulk_sidecars(rng, other, ".safetensors")))
    return specs


def _bulk_stem(rng: random.Random, m: Model, serial: int) -> str:
    s, tag = slug(m.subject), BASE_TAG.get(m.base, "lora")
    return rng.choice((f"{s}_{tag}_v{serial % 5 + 1}", f"{s.replace('_', '-')}-{serial:06d}",
                       f"[{tag.upper()}] {m.subject.title()} v{serial % 3 + 1}", f"{s}_{tag}"))


def _unique(taken: set, name: str) -> str:
    candidate, n = name, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate.lower())
    return candidate


# ==============================================================================================
# 6. The writer, and the expected entry of each written file
# ==============================================================================================

@dataclass
class Sidecar:
    kind: str
    obj: Any             # what a (lenient) reader gets; None when unreadable
    warned: bool         # gives corrupt_sidecar


@dataclass
class Bundle:
    spec: Spec
    facts: FileFacts
    sidecars: Dict[str, Sidecar]


T_START, T_END, T_SAME, T_FUTURE = 1_640_995_200, 1_767_139_200, 1_700_000_000, 1_956_528_000  # 2022..2026, 2032


class Writer:
    def __init__(self, root: Path, seed: int, scale: int, all_modules: bool):
        self.root, self.lib, self.seed = root, root / "Lora", seed
        self.scale, self.all_modules = scale, all_modules
        self.folders: Dict[str, Dict[str, bool]] = {}   # folder rel -> {file name: image magic ok}
        self.lowered: Dict[str, Dict[str, str]] = {}    # folder rel -> {lower-cased name: name}
        self.made: set = set()
        self.specs: Dict[str, Spec] = {}
        self.models: Dict[str, Model] = {}                    # by rel, for bundles that share a model
        self.files: Dict[str, Tuple[bytes, FileFacts]] = {}   # kept for copies and shared tensors
        self.tensors: Dict[str, Tuple[dict, bytes, int, str]] = {}
        self.bundles: List[Bundle] = []
        self.extras: List[Tuple[str, bytes]] = []
        self.keep: set = set()
        self.undecodable: List[str] = []                # previews with an image magic that do not decode

    # -- plumbing --------------------------------------------------------------------------
    def rng(self, *parts: Any) -> random.Random:
        return random.Random("|".join(map(str, (self.seed,) + parts)))

    def put(self, rel: str, data: bytes, mtime: int, image_ok: Optional[bool] = None) -> None:
        """Write one file; `image_ok` says whether it is a decodable image (else its magic decides:
        only files written as decodable images carry an image magic outside PREVIEWS)."""
        folder, _, name = rel.rpartition("/")
        if folder not in self.made:
            (self.lib / folder).mkdir(parents=True, exist_ok=True)
            self.made.add(folder)
        path = self.lib / rel
        with open(path, "wb") as fh:
            fh.write(data)
        os.utime(path, (mtime, mtime))
        self.folders.setdefault(folder, {})[name] = image_magic_ok(data) if image_ok is None else image_ok
        self.lowered.pop(folder, None)

    def mtime(self, rng: random.Random) -> int:
        r = rng.random()
        if r < 0.03:
            return T_FUTURE + rng.randrange(86_400 * 30)
        if r < 0.06:
            return T_SAME
        return rng.randrange(T_START, T_END)

    # -- one bundle ------------------------------------------------------------------------
    def write_bundle(self, spec: Spec) -> None:
        self.specs[spec.rel] = spec
        rng = self.rng(spec.rel)
        mtime = spec.mtime or self.mtime(rng)
        data, facts = self.model_file(spec, rng)
        if spec.rel in self.keep:
            self.files[spec.rel] = (data, facts)
        self.put(spec.rel, data, mtime)
        described = self.files[spec.facts_of][1] if spec.facts_of else facts
        folder = spec.folder + "/" if spec.folder else ""
        sidecars = {}
        for kind in SIDECARS:
            choice = getattr(spec, kind)
            if choice:
                sidecars[kind] = self.write_sidecar(kind, choice, spec, described, rng, mtime)
        for extra in spec.extras:
            suffix, text = {"txt": (".txt", spec.model.description), "desc": (".description.txt", spec.model.title),
                            "sha256": (".sha256", facts.sha256)}[extra]
            self.put(f"{folder}{spec.stem}{suffix}", text.encode("utf-8"), mtime + rng.randint(-86_400, 86_400))
        for i, variant in enumerate(spec.previews):
            suffix, make, decodes = PREVIEWS[variant]
            data = make(len(self.bundles) * 8 + i)
            self.put(f"{folder}{spec.stem}{suffix}", data, mtime + rng.randint(0, 600), image_ok=decodes)
            if image_magic_ok(data) and not decodes:
                self.undecodable.append(f"{folder}{spec.stem}{suffix}")
        self.bundles.append(Bundle(spec, facts, sidecars))

    def write_sidecar(self, kind: str, choice: str, spec: Spec, f: FileFacts, rng: random.Random,
                      mtime: int) -> Sidecar:
        body, _, mode = choice.partition(":")
        variant, *tweaks = body.split("+")
        suffix, build, indent, ascii_only = SIDECARS[kind]
        obj = build(variant, tweaks, spec.model, f, spec.stem, rng)
        if kind == "info" and variant == "old":
            ascii_only = False            # raw UTF-8 next to \uXXXX-escaped new-era files
        folder = spec.folder + "/" if spec.folder else ""
        self.put(f"{folder}{spec.stem}{suffix}", encode_json(obj, mode, indent, ascii_only),
                 mtime + rng.randint(-3 * 86_400, 30 * 86_400))
        readable, warned = SIDECAR_MODES[mode]
        return Sidecar(kind, obj if readable else None, warned)

    def model_file(self, spec: Spec, rng: random.Random) -> Tuple[bytes, FileFacts]:
        filename = spec.rel.rsplit("/", 1)[-1]
        if spec.copy_of:
            data, facts = self.files[spec.copy_of]
            return data, replace(facts, filename=filename)
        lower = filename.lower()
        if lower.endswith(".pt"):
            data = pickle.dumps({"string_to_param": {"*": [round(rng.random(), 4) for _ in range(16)]},
                                 "name": spec.stem}, protocol=2)
            return data, self.facts(filename, data, "not_safetensors")
        if lower.endswith(".ckpt"):
            data = zip_bytes({"archive/data.pkl": pickle.dumps({"lora": spec.stem}, protocol=2),
                              "archive/data/0": rng.randbytes(256)})
            return data, self.facts(filename, data, "not_safetensors")
        if spec.defect == "pickle":
            data = pickle.dumps({"state_dict": {"lora_te_text_model.alpha": 1.0}}, protocol=4)
            return data, self.facts(filename, data, "not_safetensors")
        if spec.defect == "zip":
            data = zip_bytes({"archive/data.pkl": pickle.dumps({"lora": spec.stem}, protocol=2)})
            return data, self.facts(filename, data, "not_safetensors")
        if spec.defect == "zero":
            return b"", self.facts(filename, b"", "corrupt")
        entries, tensors, n_rank, dtype = self.tensor_data(spec, rng)
        tensor_hash = hashlib.sha256(tensors).hexdigest()
        # A header edit keeps the original's training facts: draw them from the original's seed.
        hrng = self.rng("header", spec.tensors_of or spec.rel)
        meta = HEADERS[spec.header](HeaderInput(spec, spec.stem, tensor_hash, n_rank, hrng))
        if meta is not None:
            for key, value in spec.edits.items():
                if value is None:
                    meta.pop(key, None)
                else:
                    meta[key] = value
        data, n = safetensors_bytes(meta, entries, tensors, spec.ascii_header or hrng.random() < 0.3)
        if spec.defect == "truncated":          # header readable, tensor data cut short: an unfinished download
            data = data[: len(data) - len(tensors) // 2]
            return data, self.facts(filename, data, "truncated", meta, list(entries),
                                    hashlib.sha256(data[8 + n:]).hexdigest())
        if spec.defect == "bad_offsets":        # every size right, one tensor's data_offsets backwards
            first = next(iter(entries))
            begin, end = entries[first]["data_offsets"]
            broken = {**entries, first: {**entries[first], "data_offsets": [end, begin]}}
            data, n = safetensors_bytes(meta, broken, tensors, True)
            return data, self.facts(filename, data, "truncated", meta, list(entries),
                                    hashlib.sha256(data[8 + n:]).hexdigest())
        if spec.defect in ("bad_len", "over_cap"):
            claimed = len(data) + 4096 if spec.defect == "bad_len" else HEADER_CAP + 8
            data = length_prefix(claimed) + data[8:]
            return data, self.facts(filename, data, "corrupt")
        if spec.defect == "bad_json":
            head = data[8: 8 + n].rstrip(b" ")
            head = head[:-1] + b",\"x\":}"
            data = length_prefix(len(head)) + head + data[8 + n:]
            return data, self.facts(filename, data, "corrupt")
        if spec.defect == "not_object":
            head = json.dumps([meta, list(entries)]).encode()
            data = length_prefix(len(head)) + head + tensors
            return data, self.facts(filename, data, "corrupt")
        assert not spec.defect, spec.defect
        return data, self.facts(filename, data, "ok", meta, list(entries), tensor_hash)

    def tensor_data(self, spec: Spec, rng: random.Random) -> Tuple[dict, bytes, int, str]:
        if spec.tensors_of:
            return self.tensors[spec.tensors_of]
        rank = spec.rank or rng.randint(1, 4 if self.scale == 1 else 2)
        dtype = spec.dtype or rng.choice(("F16", "F16", "F16", "F32", "BF16"))
        template = spec.keys or default_keys(spec.model.base)
        entries, data = build_tensors(template, spec.network, rank, dtype, f"{self.seed}|tensors|{spec.rel}",
                                      self.scale, self.all_modules)
        if spec.rel in self.keep:
            self.tensors[spec.rel] = (entries, data, rank, dtype)
        return entries, data, rank, dtype

    @staticmethod
    def facts(filename: str, data: bytes, status: str, meta: Optional[dict] = None, keys: Optional[list] = None,
              tensor_hash: Optional[str] = None) -> FileFacts:
        return FileFacts(filename=filename, size=len(data), sha256=hashlib.sha256(data).hexdigest(), status=status,
                         meta=meta, keys=keys or [], true_tensor_hash=tensor_hash,
                         crc32=f"{zlib.crc32(data):08X}",
                         autov1=hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8].upper())

    def write_extra(self, extra: Extra) -> None:
        self.put(extra.rel, extra.data, self.mtime(self.rng(extra.rel)))
        self.extras.append((extra.rel, extra.data))

    # -- previews (§6) -----------------------------------------------------------------------
    def preview_of(self, folder: str, stem: str) -> Tuple[Optional[str], bool]:
        """(preview path, broken). Choice: a broken first match gives null, with no fallback; the
        generator asserts that exact-then-case-insensitive gives the same file whether it is read
        as one pass over all names or per name."""
        names = self.folders.get(folder, {})
        if folder not in self.lowered:
            self.lowered[folder] = {}
            for name in names:
                self.lowered[folder].setdefault(name.lower(), name)
        lowered = self.lowered[folder]
        candidates = [f"{stem}{mid}.{ext}" for ext in PREVIEW_EXTS for mid in ("", ".preview")]
        whole = next((c for c in candidates if c in names), None) or next(
            (lowered[c.lower()] for c in candidates if c.lower() in lowered), None)
        each = next((c if c in names else lowered[c.lower()] for c in candidates if c.lower() in lowered), None)
        assert whole == each, f"ambiguous preview for {folder}/{stem}"
        if whole is None:
            return None, False
        if not names[whole]:
            return None, True
        return (f"{folder}/{whole}" if folder else whole), False


def expected_lora(w: Writer, b: Bundle, listing: str = "") -> dict:
    """The entry of one LoRA by §2-§6 (the cross-file warnings are added by `cross_file`). `listing` is the
    path it is listed under when that is not where it was written (a symlinked folder inside the library):
    folder names are read from the listed path, as Forge's walk gives it."""
    spec, f = b.spec, b.facts
    rel = listing or spec.rel
    folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
    warnings = set()
    if f.status in ("corrupt", "truncated"):
        warnings.add("corrupt_header")
    if f.status == "not_safetensors":
        warnings.add("not_safetensors")
    if any(s.warned for s in b.sidecars.values()):
        warnings.add("corrupt_sidecar")
    obj = {kind: s.obj for kind, s in b.sidecars.items()}
    meta = f.meta if f.status in ("ok", "truncated") else None  # truncated: resolved from its header as usual
    keys = f.keys if f.status in ("ok", "truncated") else []
    info = civitai_block(obj.get("info"))
    lm = obj.get("meta") if isinstance(obj.get("meta"), dict) else None
    lm_civ = civitai_block((lm or {}).get("civitai"))
    cm = obj.get("cm") if isinstance(obj.get("cm"), dict) else None
    user = obj.get("user") if isinstance(obj.get("user"), dict) else None
    if user is not None and (not any(k in user for k in USER_JSON_KEYS) or any(k in user for k in CIVITAI_KEYS)):
        user = None  # some other JSON (a raw Civitai object)
    folders = folder.split("/") if folder else []

    # §3 base model
    alias = meta.get("ss_output_name") if meta else None
    candidates, layout = base_candidates(info, lm, lm_civ, cm, user, meta, keys, spec.stem, folders)
    base, base_source, conflict = choose_base(candidates, layout)
    if is_excluded(base):
        warnings.add("excluded_architecture")
    if conflict:
        warnings.add("base_model_conflict")

    # §5 triggers (before §4: the category reads them)
    def alternatives(words: Any) -> List[str]:
        return [s for s in (x.strip() for x in words or [] if isinstance(x, str)) if s]
    activation = (user or {}).get("activation text")
    trigger_sources = [
        ("user_json", lambda: alternatives(activation.split("||") if isinstance(activation, str) else [])),
        ("civitai", lambda: alternatives((info or {}).get("trainedWords")) or alternatives(
            (lm_civ or {}).get("trainedWords")) or alternatives((cm or {}).get("TrainedWords"))),
        ("modelspec", lambda: alternatives([(meta or {}).get("modelspec.trigger_phrase")])),
        ("dataset", lambda: dataset_triggers(meta or {})),
    ]
    phrases, trigger_source = next(((v, s) for s, get in trigger_sources for v in [get()] if v), ([], None))
    activation_text = dedupe(phrases)
    triggers = dedupe([t for phrase in phrases for t in split_trigger(phrase)])
    suggested = suggested_tags(meta)

    # §4 category
    tags = next((t for t in ((info or {}).get("model", {}).get("tags"), (lm or {}).get("tags"),
                             (cm or {}).get("Tags")) if t), [])
    category, category_source = category_of(folders, tags, triggers, spec.stem, alias, suggested)

    tips = _json_dict((lm or {}).get("usage_tips"))
    weight_sources = [("user_json", (user or {}).get("preferred weight")), ("usage_tips", tips.get("strength")),
                      ("modelspec", (meta or {}).get("modelspec.lora_default_weight"))]
    weight, weight_source = next(((as_weight(v), s) for s, v in weight_sources if as_weight(v) is not None),
                                 (None, None))
    negative = (user or {}).get("negative text") or ""

    # §6 identity, staleness, preview
    sshs, spec_hash = (meta or {}).get("sshs_model_hash"), (meta or {}).get("modelspec.hash_sha256")
    # Never both an invalid sshs_model_hash and a modelspec hash: "else" may mean "absent" or "invalid".
    assert not (sshs and not valid_tensor_hash(sshs) and spec_hash), spec.rel
    tensor_hash = valid_tensor_hash(sshs) or valid_tensor_hash(spec_hash)
    sha256, stale = _known_sha256(info, lm, f.size, tensor_hash)
    if stale:
        warnings.add("stale_sidecar")
    preview, broken = w.preview_of(folder, spec.stem)
    if broken:
        warnings.add("broken_preview")
    return {
        "path": rel, "real_path": spec.rel, "name": spec.stem, "is_lora": True,
        "alias": alias, "base_model": base, "base_model_source": base_source, "base_model_candidates": candidates,
        "family": family_of(base),
        "category": category, "category_source": category_source,
        "trigger_words": triggers, "activation_text": activation_text, "trigger_source": trigger_source,
        "suggested_tags": suggested,
        "preferred_weight": weight, "weight_source": weight_source, "negative_text": negative,
        "sha256": sha256, "true_sha256": f.sha256, "tensor_hash": tensor_hash,
        "true_tensor_hash": f.true_tensor_hash, "duplicate_group": None, "preview": preview, "size": f.size,
        # Excluded: an architecture Forge cannot load, or tensor data Forge cannot read (B's contract 2).
        "warnings": warnings, "excluded": "excluded_architecture" in warnings or f.status == "truncated",
    }


def _json_dict(text: Any) -> dict:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _known_sha256(info: Optional[dict], lm: Optional[dict], size: int,
                  tensor_hash: Optional[str]) -> Tuple[Optional[str], bool]:
    """(sha256 known without hashing, stale_sidecar). Choice: an AutoV3 is only checked when the
    header gives a tensor_hash (a plain scan never hashes, so there is nothing to compare it with)."""
    stale, sha = False, None
    primary = primary_file(info)
    if primary is not None:
        hashes = primary.get("hashes") or {}
        size_kb = primary.get("sizeKB")
        off = isinstance(size_kb, (int, float)) and abs(size_kb * 1024 - size) >= 1024
        v3 = hashes.get("AutoV3")
        wrong_v3 = bool(v3 and tensor_hash and not tensor_hash.startswith(str(v3).lower()))
        stale = off or wrong_v3
        if not stale and isinstance(size_kb, (int, float)) and hashes.get("SHA256"):
            sha = str(hashes["SHA256"]).lower()
    if lm is not None and "size" in lm:
        if lm["size"] != size:
            stale = True
        elif sha is None and lm.get("sha256"):
            sha = str(lm["sha256"]).lower()
    return sha, stale


def cross_file(entries: List[dict]) -> None:
    """§6 warnings that compare LoRAs: stem_collision, alias_collision, duplicate. They compare real *files*:
    two listings of one real file (a folder reached through a symlink inside the library) are never
    collisions or duplicates of each other, so names and hashes are counted once per real file."""
    loras = [e for e in entries if e["is_lora"]]
    files: Dict[str, dict] = {}
    for e in loras:
        files.setdefault(e["real_path"], e)
    stems: Dict[str, int] = {}
    for e in files.values():
        stems[e["name"]] = stems.get(e["name"], 0) + 1
    by_alias: Dict[str, List[dict]] = {}
    by_stem: Dict[str, List[dict]] = {}
    for e in files.values():
        if e["alias"]:
            by_alias.setdefault(e["alias"].strip().lower(), []).append(e)
        by_stem.setdefault(e["name"].lower(), []).append(e)
    clashing = set()  # real paths
    for group in by_alias.values():
        for f in group:
            for g in group:
                # two files of one stem whose aliases are exactly that stem clash only as stems
                same_stem_only = f["name"] == g["name"] and f["alias"].strip() == f["name"] == g["alias"].strip()
                if f is not g and not same_stem_only:
                    clashing.add(f["real_path"])
    for f in files.values():  # an alias that is not its own stem, but another file's
        if f["alias"] and f["alias"].strip() != f["name"] and any(
                g is not f for g in by_stem.get(f["alias"].strip().lower(), [])):
            clashing.add(f["real_path"])
    for e in loras:
        if stems[e["name"]] > 1:
            e["warnings"].add("stem_collision")
        if e["real_path"] in clashing:
            e["warnings"].add("alias_collision")
    group_of: Dict[str, str] = {}  # real path -> duplicate group
    for key in ("tensor_hash", "sha256"):
        by_hash: Dict[str, List[str]] = {}
        for real, e in files.items():
            if e[key] and real not in group_of:
                by_hash.setdefault(e[key], []).append(real)
        for h, group in by_hash.items():
            if len(group) > 1:
                group_of.update((real, h) for real in group)
    for e in loras:
        e["duplicate_group"] = group_of.get(e["real_path"])
        if e["duplicate_group"]:
            e["warnings"].add("duplicate")


def expected_other(rel: str, data: Optional[bytes], code: str = "") -> dict:
    """A partial download, another model file, an AppleDouble file, or a symlink loop (`data` None).
    Choice: these are not read at all (no header, sidecars, preview); their derived fields hold the
    defaults, and the name of a file drops a partial suffix then a model extension (`._x.safetensors` ->
    `._x`); a loop's name is the link's file name, its size 0."""
    filename = rel.rsplit("/", 1)[-1]
    if not code:
        code = "partial_download" if listed_kind(filename) == "partial" else "not_safetensors"
    name = filename if data is None else entry_name(filename)
    return {"path": rel, "real_path": rel, "name": name, "is_lora": False, "alias": None, "base_model": "Unknown",
            "base_model_source": "none", "base_model_candidates": [], "family": "unknown", "category": "other",
            "category_source": "none", "trigger_words": [], "activation_text": [], "trigger_source": None,
            "suggested_tags": [], "preferred_weight": None,
            "weight_source": None, "negative_text": "", "sha256": None,
            "true_sha256": None if data is None else hashlib.sha256(data).hexdigest(),
            "tensor_hash": None, "true_tensor_hash": None, "duplicate_group": None, "preview": None,
            "size": 0 if data is None else len(data), "warnings": {code}, "excluded": False}


# ==============================================================================================
# 7. generate()
# ==============================================================================================

TINY_BULK = 14
# Symlinked folders inside the library (link -> target, both under Lora/): Forge's walk lists what they
# hold under both paths. The target is a folder the bulk mix never uses, so sizes stay exact.
LINKS_IN_LIBRARY = {"favourites": "Pony/characters/genshin"}
LOOP_LINKS = {"concept/lighting/loop": ".."}  # link -> target: a folder on the link's own path


def generate(root: "str | Path", size: "str | int" = "tiny", seed: int = 0) -> dict:
    """Write a synthetic LoRA library under root/"Lora" and its ground truth to root/"manifest.json"
    (outside the tree); return the manifest.

    size: "tiny" (the special cases, every rule at least once, plus a small random mix) or an int N
    (exactly N LoRA files, for benchmarks; the special cases are included once when N >= 400)."""
    root = Path(root)
    if isinstance(size, bool) or not (size == "tiny" or (isinstance(size, int) and size > 0)):
        raise ValueError(f'size must be "tiny" or a positive int, not {size!r}')
    if (root / "Lora").exists():
        raise FileExistsError(f"{root / 'Lora'} already exists: generate into a fresh folder")
    tiny = size == "tiny"
    specials = tiny or size >= 400
    w = Writer(root, seed, scale=1 if tiny else 16, all_modules=tiny)
    _make_tree(root, specials)

    def mk(rel: str, base: str, category: str, subject: str, m: Optional[dict] = None, like: str = "",
           **kw: Any) -> Spec:
        """A special case; `like` reuses another case's model (and its training output name)."""
        if (m or {}).get("output_name") == NO_TOKEN["output_name"]:  # kohya's default name, made unique
            m = {**(m or {}), "output_name": f"last-{zlib.crc32(rel.encode()):08x}"}
        if like:
            model = w.models[like]
            model = replace(model, output_name=model.output_name or str(lora_stem(like.rsplit("/", 1)[-1])))
        else:
            model = make_model(w.rng("model", rel), category, base, subject, **(m or {}))
        w.models[rel] = model
        return Spec(rel=rel, model=model, **kw)
    specs: List[Spec] = []
    extras: List[Extra] = []
    if specials:
        specs, extras = special_cases(mk, huge=tiny)
    n_bulk = TINY_BULK if tiny else size - len(specs)
    taken = {s.stem.lower() for s in specs} | {s.model.output_name.lower() for s in specs if s.model.output_name}
    specs += bulk_specs(w.rng("bulk"), n_bulk, taken)
    w.keep = {s.copy_of for s in specs if s.copy_of} | {s.tensors_of for s in specs if s.tensors_of} | {
        s.facts_of for s in specs if s.facts_of}
    for spec in specs:
        w.write_bundle(spec)
    for extra in extras:
        w.write_extra(extra)

    links = LINKS_IN_LIBRARY if specials else {}
    for link, target in links.items():  # the link's folders hold the target's files (for previews)
        for folder in [f for f in w.folders if f == target or f.startswith(target + "/")]:
            w.folders[link + folder[len(target):]] = w.folders[folder]
    entries = []
    for b in w.bundles:
        entries.append(expected_lora(w, b))
        entries += [expected_lora(w, b, link + b.spec.rel[len(target):]) for link, target in links.items()
                    if b.spec.rel.startswith(target + "/")]
    entries += [expected_other(rel, data) for rel, data in w.extras if listed_kind(rel.rsplit("/", 1)[-1]) in
                ("partial", "other", "appledouble")]
    entries += [expected_other(rel, None, "symlink_loop") for rel in (LOOP_LINKS if specials else ())]
    cross_file(entries)
    for e in entries:
        e["warnings"] = sorted(e["warnings"])
    entries.sort(key=lambda e: (natural_key(e["path"]), e["path"]))
    # Previews with an image's magic bytes that do not decode: broken by Pillow's verify(), fine by the
    # magic alone (what a scanner without Pillow sees). Paths as written, under Lora/.
    manifest = {"root": "Lora", "entries": entries, "undecodable_previews": sorted(w.undecodable)}
    with open(root / "manifest.json", "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1 if tiny else None)
    return manifest


def _make_tree(root: Path, specials: bool) -> None:
    """The folders that are not made by writing files: outside folder, symlinks, empty folders. The
    links inside the library (a loop, a second path to a folder) come with the special cases."""
    lib = root / "Lora"
    (root / "elsewhere" / "loras").mkdir(parents=True, exist_ok=True)
    stray, _ = safetensors_bytes({"ss_output_name": "not_in_library"}, {}, b"", False)
    (root / "elsewhere" / "not_in_library.safetensors").write_bytes(stray)
    (lib / "concept" / "lighting").mkdir(parents=True)
    (lib / "empty").mkdir()
    (lib / "character" / "game" / "empty subfolder").mkdir(parents=True)
    os.symlink(os.path.join("..", "elsewhere", "loras"), lib / "linked", target_is_directory=True)
    if specials:
        for link, target in LOOP_LINKS.items():
            os.symlink(target, lib / link, target_is_directory=True)
        for link, target in LINKS_IN_LIBRARY.items():  # relative, so the tree can be moved
            os.symlink(os.path.relpath(target, os.path.dirname(link) or "."), lib / link, target_is_directory=True)
