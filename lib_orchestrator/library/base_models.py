"""Base models as Civitai names them, their architecture family, and what loads on what; and how a
LoRA's base model is read from every source that says something about it (docs/lora-library.md §3).

A LoRA's family is hard (an SD1 LoRA does not load on SDXL); within a family, the lineage is soft
(an Illustrious LoRA works best on Illustrious or NoobAI, less well on plain SDXL or Pony).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

UNKNOWN = "Unknown"
FAMILIES = ("sd1", "sd2", "sdxl", "flux", "sd3", "video", "unknown")

_FAMILY_OF: Dict[str, str] = {}
for _family, _names in {
    "sd1": ("SD 1.4", "SD 1.5", "SD 1.5 LCM", "SD 1.5 Hyper"),
    "sd2": ("SD 2.0", "SD 2.0 768", "SD 2.1", "SD 2.1 768", "SD 2.1 Unclip"),
    "sdxl": ("SDXL 0.9", "SDXL 1.0", "SDXL 1.0 LCM", "SDXL Lightning", "SDXL Hyper", "SDXL Turbo",
             "SDXL Distilled", "Pony", "Illustrious", "NoobAI"),
    "flux": ("Flux.1 S", "Flux.1 D", "Flux.1 Krea", "Flux.1 Kontext"),
    "sd3": ("SD 3", "SD 3.5", "SD 3.5 Medium", "SD 3.5 Large", "SD 3.5 Large Turbo"),
    "video": ("SVD", "SVD XT", "Hunyuan Video", "LTXV", "LTXV2", "Mochi", "CogVideoX"),
}.items():
    for _name in _names:
        _FAMILY_OF[_name] = _family

# Image architectures Forge's LoRA loader cannot use.
_EXCLUDED_IMAGE = {"Chroma", "Lumina", "AuraFlow", "Pony V7", "Kolors", "PixArt a", "PixArt E", "Hunyuan 1",
                   "HiDream", "Qwen", "Stable Cascade"}

# Lineages inside a family: same lineage = fully compatible.
LINEAGE: Dict[str, str] = {
    **{n: "sdxl" for n in ("SDXL 0.9", "SDXL 1.0", "SDXL 1.0 LCM", "SDXL Lightning", "SDXL Hyper", "SDXL Turbo",
                           "SDXL Distilled")},
    "Pony": "pony", "Illustrious": "illustrious", "NoobAI": "illustrious",
}
# Soft scores between lineages of one family (symmetric); change them to taste.
DEFAULT_SOFT_SCORES: Dict[frozenset, float] = {
    frozenset({"sdxl", "pony"}): 0.6,
    frozenset({"sdxl", "illustrious"}): 0.6,
    frozenset({"pony", "illustrious"}): 0.3,
}

_CANONICAL = {re.sub(r"\s+", " ", n).lower(): n for n in list(_FAMILY_OF) + sorted(_EXCLUDED_IMAGE) + [UNKNOWN]}


def normalise(name: str) -> str:
    """Civitai spelling for a known base model (case and spacing); anything else as written."""
    cleaned = re.sub(r"\s+", " ", name.strip())
    return _CANONICAL.get(cleaned.lower(), cleaned) if cleaned else UNKNOWN


def family_of(base_model: str) -> str:
    if base_model.startswith(("Wan Video", "LTXV")):
        return "video"
    return _FAMILY_OF.get(base_model, "unknown")


def is_excluded(base_model: str) -> bool:
    """Video models and image architectures that Forge cannot load a LoRA for."""
    return family_of(base_model) == "video" or base_model in _EXCLUDED_IMAGE or base_model.startswith("Flux.2")


def compatibility(lora_base: str, checkpoint_base: str,
                  soft_scores: Optional[Mapping[frozenset, float]] = None) -> float:
    """0 when the LoRA cannot load on the checkpoint; 1 for the same lineage; between for kin."""
    family = family_of(lora_base)
    if family == "unknown" or is_excluded(lora_base) or family != family_of(checkpoint_base):
        return 0.0
    a = LINEAGE.get(lora_base, family)
    b = LINEAGE.get(checkpoint_base, family)
    if a == b:
        return 1.0
    scores = DEFAULT_SOFT_SCORES if soft_scores is None else soft_scores
    return float(scores.get(frozenset({a, b}), 0.0))


# -- candidates: what each source says ---------------------------------------------------------------
LINEAGE_LEVEL = "lineage"  # the source names the exact model (Pony, SD 2.1 768, Flux.1 S)
FAMILY_LEVEL = "family"  # it only knows the architecture (kohya's sdxl_base_v1-0: Pony or Illustrious?)
SOURCES = ("civitai", "user_json", "header", "tensor_keys", "name", "folder")  # most trusted first


@dataclass(frozen=True)
class Candidate:
    """One source's word on the base model. `field` says where exactly (the contract); `evidence` the
    text that gave it, for people."""

    source: str
    value: str
    specificity: str
    field: str
    evidence: str = ""

    def to_dict(self) -> Dict[str, str]:
        return {"source": self.source, "value": self.value, "specificity": self.specificity,
                "field": self.field, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Candidate":
        return cls(data["source"], data["value"], data["specificity"], data["field"], data.get("evidence", ""))


# Civitai's plain SDXL says only "SDXL": Pony, Illustrious and NoobAI LoRAs are uploaded as it too.
_COARSE_CIVITAI = {"SDXL 1.0", "SDXL 0.9"}


def civitai_candidate(raw: str, field: str) -> Optional[Candidate]:
    value = normalise(raw) if raw else UNKNOWN
    if value == UNKNOWN:
        return None
    return Candidate("civitai", value, FAMILY_LEVEL if value in _COARSE_CIVITAI else LINEAGE_LEVEL, field, raw)


USER_SD_VERSION = {"SD1": "SD 1.5", "SD2": "SD 2.1", "SDXL": "SDXL 1.0", "Flux": "Flux.1 D"}


def user_candidate(sd_version: str) -> Optional[Candidate]:
    """Forge's `sd version` names a family only (`SDXL` for Pony and Illustrious alike)."""
    value = USER_SD_VERSION.get(sd_version)
    return Candidate("user_json", value, FAMILY_LEVEL, "sd version", sd_version) if value else None


_ARCHITECTURE = {
    "stable-diffusion-v1": ("SD 1.5", FAMILY_LEVEL),
    "stable-diffusion-v2-512": ("SD 2.1", LINEAGE_LEVEL),
    "stable-diffusion-v2-768-v": ("SD 2.1 768", LINEAGE_LEVEL),
    "stable-diffusion-xl-v1-base": ("SDXL 1.0", FAMILY_LEVEL),
    "flux-1-dev": ("Flux.1 D", LINEAGE_LEVEL),
    "flux-1-schnell": ("Flux.1 S", LINEAGE_LEVEL),
    "flux-1": ("Flux.1 D", FAMILY_LEVEL),  # kohya's "flux model of unknown kind"
    "chroma": ("Chroma", LINEAGE_LEVEL),
    "lumina-2": ("Lumina", LINEAGE_LEVEL),
    "lumina": ("Lumina", LINEAGE_LEVEL),
}
_SD3 = {("5", "large", "turbo"): "SD 3.5 Large Turbo", ("5", "large"): "SD 3.5 Large", ("5", "l"): "SD 3.5 Large",
        ("5", "medium"): "SD 3.5 Medium", ("5", "m"): "SD 3.5 Medium", ("m",): "SD 3", ("medium",): "SD 3"}


def _architecture(arch: str) -> Optional[Tuple[str, str]]:
    arch = arch.strip().lower().split("/", 1)[0]
    if arch in _ARCHITECTURE:
        return _ARCHITECTURE[arch]
    if arch.startswith("stable-diffusion-3"):
        rest = tuple(t for t in re.split(r"[^a-z0-9]+", arch[len("stable-diffusion-3"):]) if t)
        return (_SD3[rest], LINEAGE_LEVEL) if rest in _SD3 else ("SD 3.5", FAMILY_LEVEL)
    return None


def _kohya_version(version: str) -> Optional[Tuple[str, str]]:
    version = version.strip().lower()
    if version in ("sd_v1", "sd_v1_v"):
        return "SD 1.5", FAMILY_LEVEL
    if version == "sd_v2":
        return "SD 2.1", FAMILY_LEVEL
    if version == "sd_v2_v":  # v-prediction: the 768 model
        return "SD 2.1 768", LINEAGE_LEVEL
    for prefix, value, level in (("sdxl", "SDXL 1.0", FAMILY_LEVEL), ("flux1", "Flux.1 D", FAMILY_LEVEL),
                                 ("sd3", "SD 3.5", FAMILY_LEVEL), ("chroma", "Chroma", LINEAGE_LEVEL),
                                 ("lumina", "Lumina", LINEAGE_LEVEL)):
        if version.startswith(prefix):
            return value, level
    return None


# Header fields whose text may name the checkpoint a LoRA was trained on, most telling first.
NAME_FIELDS = ("ss_sd_model_name", "modelspec.title", "modelspec.description", "ss_output_name")


def header_candidates(meta: Mapping[str, str]) -> List[Candidate]:
    found: List[Candidate] = []
    for field, read in (("modelspec.architecture", _architecture), ("ss_base_model_version", _kohya_version)):
        said = meta.get(field, "")
        hit = read(said) if said else None
        if hit:
            found.append(Candidate("header", hit[0], hit[1], field, said))
    if meta.get("ss_v2", "").strip() == "True":
        v_pred = meta.get("ss_v_parameterization", "").strip() == "True"
        found.append(Candidate("header", "SD 2.1 768" if v_pred else "SD 2.1",
                               LINEAGE_LEVEL if v_pred else FAMILY_LEVEL, "ss_v2", "True"))
    for field in NAME_FIELDS:
        text = meta.get(field, "")
        hit = name_evidence(text) if text else None
        if hit:
            found.append(Candidate("header", hit[0], hit[1], field, hit[2]))
    return found


# -- names: tokens and the terms they make -----------------------------------------------------------
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def name_tokens(text: str) -> List[str]:
    """`ponyDiffusionV6XL_v6` -> pony, diffusion, v6xl, v6: split between a lower-case letter and a
    capital, before the last capital of a run followed by a lower-case letter (`XLIllustrious`), and on
    anything that is not an ASCII letter or digit. Digits never split a token."""
    return [t for t in _NOT_ALNUM.split(_CAMEL.sub(" ", text).lower()) if t]


# Words that start with a lineage term but are something else: `PonyTail` splits into pony + tail.
_NOT_LINEAGE = frozenset({"ponytail", "ponytails"})


def _terms(tokens: Sequence[str]) -> Iterable[str]:
    """Each token, and two or three adjacent ones joined (`NAI-XL` -> naixl, `sd3.5-large` -> sd35large)."""
    tokens = _joined_words(tokens)
    for i in range(len(tokens)):
        yield tokens[i]
        if i + 1 < len(tokens):
            yield tokens[i] + tokens[i + 1]
            if i + 2 < len(tokens):
                yield tokens[i] + tokens[i + 1] + tokens[i + 2]


# One table for LoRAs and checkpoints (lib_orchestrator/checkpoint.py reads it too). Only names whose
# lineage is certain: `nai` alone is also NovelAI's SD1 leak, `wai` and `hassaku` made Pony and
# Illustrious models both.
def _joined_words(tokens: Sequence[str]) -> Sequence[str]:
    """Tokens with a camel-case split word made whole again (pony, tail -> ponytail)."""
    if not any(t == "pony" for t in tokens):
        return tokens
    out: List[str] = []
    for token in tokens:
        if out and out[-1] + token in _NOT_LINEAGE:
            out[-1] += token
        else:
            out.append(token)
    return out


_LINEAGE_TERMS = {
    **dict.fromkeys(("pony", "pdxl", "ponyxl", "ponyv6", "ponydiffusion", "autismmix"), "Pony"),
    **dict.fromkeys(("illustrious", "illustriousxl", "ilxl", "il"), "Illustrious"),
    **dict.fromkeys(("noobai", "noob", "noobaixl", "naixl"), "NoobAI"),
    **dict.fromkeys(("schnell", "flux1s", "fluxschnell", "flux1schnell"), "Flux.1 S"),
    **dict.fromkeys(("flux1d", "flux1dev", "fluxdev"), "Flux.1 D"),
    "krea": "Flux.1 Krea", "kontext": "Flux.1 Kontext",
    **dict.fromkeys(("sd35large", "sd35l"), "SD 3.5 Large"),
    **dict.fromkeys(("sd35medium", "sd35m"), "SD 3.5 Medium"),
    **dict.fromkeys(("v21768", "sd21768"), "SD 2.1 768"),
}
_FAMILY_TERMS = {
    **dict.fromkeys(("sdxl", "sdxl10", "xl"), "SDXL 1.0"), **dict.fromkeys(("sd15", "sd1"), "SD 1.5"),
    **dict.fromkeys(("sd21", "sd2"), "SD 2.1"), **dict.fromkeys(("flux", "flux1"), "Flux.1 D"),
    **dict.fromkeys(("sd3", "sd35"), "SD 3.5"),
}


def name_evidence(text: str) -> Optional[Tuple[str, str, str]]:
    """(value, specificity, the term) a name or title says, or None. A text naming two lineages
    (`pony and illustrious`) says nothing; Illustrious with NoobAI is NoobAI, which is trained from it."""
    lineages: Dict[str, str] = {}
    families: Dict[str, str] = {}
    for term in _terms(name_tokens(text)):
        if term in _LINEAGE_TERMS:
            lineages.setdefault(_LINEAGE_TERMS[term], term)
        elif term in _FAMILY_TERMS:
            families.setdefault(_FAMILY_TERMS[term], term)
    if set(lineages) == {"Illustrious", "NoobAI"}:
        return "NoobAI", LINEAGE_LEVEL, lineages["NoobAI"]
    if lineages:
        if len(lineages) > 1:
            return None
        (value, term), = lineages.items()
        return value, LINEAGE_LEVEL, term
    if len(families) == 1:
        (value, term), = families.items()
        return value, FAMILY_LEVEL, term
    return None


def lineage_in_text(text: str) -> Optional[str]:
    """The one lineage a name or title names (`ponyDiffusionV6XL` -> Pony), for checkpoints."""
    hit = name_evidence(text)
    return hit[0] if hit and hit[1] == LINEAGE_LEVEL else None


def name_candidate(stem: str) -> Optional[Candidate]:
    hit = name_evidence(stem)
    return Candidate("name", hit[0], hit[1], "file name", hit[2]) if hit else None


def _whole_folder(folder: str) -> Optional[Tuple[str, str]]:
    """A folder whose whole name, without spaces, `_`, `-` and `.`, is a term (`_SDXL_1_0/` -> sdxl10)."""
    key = re.sub(r"[\s_.\-]", "", folder).lower()
    if key in _LINEAGE_TERMS:
        return _LINEAGE_TERMS[key], LINEAGE_LEVEL
    if key in _FAMILY_TERMS or key == "15":  # civbrowser's `1.5/`
        return _FAMILY_TERMS.get(key, "SD 1.5"), FAMILY_LEVEL
    return None


def folder_candidates(folders: Tuple[str, ...]) -> List[Candidate]:
    """One candidate per enclosing folder that names a base model, the nearest first: by its whole
    name (`_SDXL_1_0/` -> sdxl10), else by its name's tokens (`IL styles/`)."""
    found = []
    for folder in reversed(folders):
        whole = _whole_folder(folder)
        if whole:
            found.append(Candidate("folder", whole[0], whole[1], "folder", folder))
            continue
        hit = name_evidence(folder)
        if hit:
            found.append(Candidate("folder", hit[0], hit[1], "folder", folder))
    return found


# -- tensor keys: the layout fixes what the file can be ----------------------------------------------
@dataclass(frozen=True)
class Layout:
    name: str
    value: str  # what the keys alone say
    evidence: str = ""  # a key or mark that told

    def allows(self, value: str) -> bool:
        """Whether a source's value is an architecture these tensors can belong to."""
        return _ALLOWS[self.name](value)


_ALLOWS = {
    "hunyuan_video": lambda v: v == "Hunyuan Video",
    # Chroma is Flux-shaped; a Hunyuan Video LoRA without its marks looks like Flux too
    "flux": lambda v: family_of(v) == "flux" or v in ("Chroma", "Hunyuan Video") or v.startswith("Flux.2"),
    "wan": lambda v: v.startswith("Wan Video"),
    "mochi": lambda v: v == "Mochi",
    "ltx": lambda v: v.startswith("LTXV"),
    "sd3": lambda v: family_of(v) == "sd3",
    "sdxl": lambda v: family_of(v) == "sdxl" or v == "Kolors",
    "sd2": lambda v: family_of(v) == "sd2",
    "sd1": lambda v: family_of(v) == "sd1",
    "sd1_or_sd2": lambda v: family_of(v) in ("sd1", "sd2"),
}


_FLUX_BLOCKS = re.compile(r"(?:double|single)_blocks_\d+_|single_transformer_blocks")
_HUNYUAN_MARKS = ("img_mlp_fc1", "img_mlp_fc2", "txt_mlp_fc1", "txt_mlp_fc2", "img_mod_linear", "txt_mod_linear",
                  "modulation_linear", "token_refiner")
_HUNYUAN_ONE_MODULE = re.compile(r"\.(?:img|txt)_attn_(?:qkv|proj)")
_DIFFUSERS_DOUBLE_19 = re.compile(r"transformer_blocks_19_")  # but not single_transformer_blocks_19_
_SINGLE_38_39 = re.compile(r"single_(?:transformer_)?blocks_(3[89])_")
_SINGLE_PAST_39 = re.compile(r"single_(?:transformer_)?blocks_(?:[4-9]\d|\d{3,})_")
# Written to start with a literal, which the regex engine finds fast; what comes before is checked apart.
_WAN_FLAT = re.compile(r"blocks_\d+_(?:self_attn|cross_attn)_")
_WAN_DIFFUSERS = re.compile(r"(?:^|\.)blocks\.\d+\.(?:attn1|attn2|ffn)\.", re.M)
_MOCHI_DIFFUSERS = (".attn1.add_q_proj", ".attn1.add_k_proj", ".attn1.add_v_proj", ".attn1.to_add_out")
# The run between is bounded: unbounded, a crafted 144 KB key of `blocks_1_` repeats took 7.6 s.
_MOCHI_GENMO = re.compile(r"blocks_\d+_[a-z0-9_]{0,48}?(?:qkv|proj)_[xy](?:_|$)", re.M)
_LTX = re.compile(r"^(?!.*(?:attentions|down_blocks|up_blocks|mid_block))(?:.*\.)?transformer_blocks\.\d+\.attn[12]\.",
                  re.M)
_MMDIT_ATTN = re.compile(r"transformer_blocks\.\d+\.attn\.")
_SDXL_START = re.compile(r"^(?:lora_te1_|lora_te2_|text_encoder_2_)", re.M)
_SDXL_DEEP = re.compile(r"transformer_blocks_[1-9]\d*_")  # within an SD UNet: SD1/2 have only block 0
_SD_START = re.compile(r"^(?:lora_te_|lora_te1_|lora_te2_|lora_unet_down_blocks_|lora_unet_up_blocks_|"
                       r"lora_unet_mid_block_|unet_|text_encoder_)|(?:down|up)_blocks_\d+_attentions", re.M)
_TE_LAYER_PAST_SD1 = re.compile(r"text_model_encoder_layers_(?:1[2-9]|[2-9]\d|\d{3,})_")  # 12 or more


def layout_of(keys: Iterable[str]) -> Optional[Layout]:
    """The architecture a LoRA's tensor names belong to (docs/lora-library.md §3.4), or None.

    Keys are searched as one joined text, as written and flattened (lower-case, `.` as `_`), so kohya,
    diffusers/PEFT and original module names read alike, and a LoRA of thousands of tensors costs a
    few scans in C rather than a Python loop per key. Each regular expression runs only after a plain
    substring says it may match: most LoRAs are SD1 or SDXL, and must not pay for the video tests."""
    text = "\n".join(keys)
    if not text:
        return None
    flat = text.lower().replace(".", "_")
    # First what only the SD UNets have, and no DiT: most LoRAs are SD1 or SDXL, and stop here after a
    # scan or two that ends at the first hit, never paying for the video and Flux tests.
    at = _first_found(flat, ("input_blocks_", "output_blocks_", "middle_block_"))  # SDXL's own UNet names
    if at >= 0:
        return Layout("sdxl", "SDXL 1.0", _line_at(flat, at))
    at = _first_found(flat, ("lora_unet_down_blocks_", "lora_unet_up_blocks_", "lora_unet_mid_block_", "lora_te_"))
    if at >= 0:  # kohya's names for an SD1, SD2 or SDXL LoRA (Flux's and SD3's text encoders are lora_te1_…)
        return _sd_layout(flat, at)
    if "double_blocks" in flat or "single_blocks" in flat or "single_transformer_blocks" in flat:
        flux = _FLUX_BLOCKS.search(flat)
        if flux:
            mark = _hunyuan_mark(text, flat)
            if mark:
                return Layout("hunyuan_video", "Hunyuan Video", mark)
            return Layout("flux", "Flux.1 D", _line_at(flat, flux.start()))
    bare_blocks = ".blocks." in text or "\nblocks." in text or text.startswith("blocks.")  # not `down_blocks.`
    if "self_attn" in flat or "cross_attn" in flat or bare_blocks:
        wan = (_wan_flat(flat) if "self_attn" in flat or "cross_attn" in flat else None) or \
            (_WAN_DIFFUSERS.search(text) if bare_blocks else None)
        if wan:
            return Layout("wan", "Wan Video", _line_at(text if wan.re is _WAN_DIFFUSERS else flat, wan.start()))
    at = _first_found(text, _MOCHI_DIFFUSERS) if ".attn1." in text else -1
    if at >= 0:
        return Layout("mochi", "Mochi", _line_at(text, at))
    if "qkv_x" in flat or "qkv_y" in flat or "proj_x" in flat or "proj_y" in flat:
        genmo = _MOCHI_GENMO.search(flat)
        if genmo:
            return Layout("mochi", "Mochi", _line_at(flat, genmo.start()))
    if "transformer_blocks." in text and ("attn1." in text or "attn2." in text):
        ltx = _LTX.search(text)
        if ltx and not _MMDIT_ATTN.search(text):
            return Layout("ltx", "LTXV", _line_at(text, ltx.start()))
    at = flat.find("joint_blocks")
    if at >= 0:
        return Layout("sd3", "SD 3.5", _line_at(flat, at))
    sd = _SD_START.search(flat)
    return _sd_layout(flat, sd.start()) if sd else None


def _sd_layout(flat: str, at: int) -> Layout:
    """SD1, SD2 or SDXL, for keys named like an SD UNet and CLIP text encoders."""
    sdxl = -1
    if "lora_te1_" in flat or "lora_te2_" in flat or "text_encoder_2_" in flat:
        found = _SDXL_START.search(flat)
        sdxl = found.start() if found else -1
    if sdxl < 0 and "transformer_blocks_" in flat:
        found = _SDXL_DEEP.search(flat)  # a second transformer block in an attention: SD1/2 have one
        sdxl = found.start() if found else -1
    if sdxl >= 0:
        return Layout("sdxl", "SDXL 1.0", _line_at(flat, sdxl))
    if "text_model_encoder_layers_" in flat:
        deep = _TE_LAYER_PAST_SD1.search(flat)  # SD1's CLIP has 12 layers, SD2's OpenCLIP 23
        if deep:
            return Layout("sd2", "SD 2.1", _line_at(flat, deep.start()))
        return Layout("sd1", "SD 1.5", _line_at(flat, at))
    return Layout("sd1_or_sd2", "SD 1.5", _line_at(flat, at))


def _first_found(text: str, needles: Sequence[str]) -> int:
    hits = [i for i in (text.find(n) for n in needles) if i >= 0]
    return min(hits) if hits else -1


def _wan_flat(flat: str) -> Optional["re.Match[str]"]:
    """`blocks_N_self_attn_` as a whole name part: at a line's start or after `_` (`lora_unet_blocks_0_…`,
    `diffusion_model_blocks_0_…`), but not inside another name such as `double_blocks_`."""
    for found in _WAN_FLAT.finditer(flat):
        at = found.start()
        if at == 0 or flat[at - 1] == "\n" or (flat[at - 1] == "_" and not flat.endswith(
                ("double_", "single_", "transformer_", "joint_", "input_", "output_", "down_", "up_"), 0, at)):
            return found
    return None


def _hunyuan_mark(text: str, flat: str) -> str:
    """What only a Hunyuan Video LoRA has, beside Flux-like double and single blocks: its module names, or
    a 20th double block / 39th-40th single block (Flux.1 has 19 and 38; Flux.2 48 single blocks)."""
    for mark in _HUNYUAN_MARKS:
        if mark in flat:
            return mark
    found = _HUNYUAN_ONE_MODULE.search(text)
    if found:
        return found.group(0)[1:]
    if "double_blocks_19_" in flat or any(not flat.endswith("single_", 0, m.start())
                                          for m in _DIFFUSERS_DOUBLE_19.finditer(flat)):
        return "double block 19"
    single = _SINGLE_38_39.search(flat)
    if single and not _SINGLE_PAST_39.search(flat):
        return f"single block {single.group(1)}"
    return ""


def _line_at(text: str, at: int) -> str:
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    return text[start:end if end >= 0 else len(text)][:200]


def tensor_candidate(keys: Iterable[str]) -> Tuple[Optional[Candidate], Optional[Layout]]:
    layout = layout_of(keys)
    if layout is None:
        return None, None
    return Candidate("tensor_keys", layout.value, FAMILY_LEVEL, "tensor keys", layout.evidence), layout


# -- from candidates to one base model ---------------------------------------------------------------
@lru_cache(maxsize=1024)  # a library has a few dozen distinct values, asked about thousands of times
def group_of(value: str) -> Optional[str]:
    """The architecture a value belongs to: its family, or for video and excluded models the model
    itself (`Wan Video …`, `LTXV …`, `Flux.2 …` by prefix); None when we do not know the value."""
    family = family_of(value)
    if family in ("sd1", "sd2", "sdxl", "flux", "sd3"):
        return family
    if family == "video" or is_excluded(value):
        for prefix in ("Wan Video", "LTXV", "Flux.2"):
            if value.startswith(prefix):
                return prefix
        return value
    return None


@dataclass(frozen=True)
class Resolution:
    base_model: str
    source: str
    conflicts: Tuple[Candidate, ...] = ()  # trusted candidates that were overruled

    def conflict_message(self) -> str:
        said = "; ".join(f"{c.source} {c.field} says {c.value}" for c in self.conflicts)
        return f"{said}; kept {self.base_model} from {self.source}"


_WARNED = ("civitai", "user_json", "header")  # names and folders are guesses: overruling them is no news


def resolve_base_model(candidates: Sequence[Candidate], layout: Optional[Layout] = None) -> Resolution:
    """The most trusted, most specific value consistent with the architecture (§3.6). `candidates` are
    in trust order; `layout` is what the tensor keys say, which decides the architecture when present."""
    known = [c for c in candidates if group_of(c.value) is not None]
    if layout is not None:
        fitting = next((c for c in known if layout.allows(c.value)), None)
        group = group_of(fitting.value if fitting else layout.value)
    elif known:
        group = group_of(known[0].value)
    else:
        return Resolution(candidates[0].value, candidates[0].source) if candidates else Resolution(UNKNOWN, "none")
    consistent = [c for c in known if group_of(c.value) == group and (layout is None or layout.allows(c.value))]
    chosen = next((c for c in consistent if c.specificity == LINEAGE_LEVEL), None) or \
        next(iter(consistent), None)
    if chosen is None:  # only the tensor keys' own value can be missing from the list
        return Resolution(layout.value if layout else UNKNOWN, "tensor_keys" if layout else "none")
    conflicts = tuple(c for c in known if c.source in _WARNED and (
        c not in consistent or (c.specificity == LINEAGE_LEVEL and c.value != chosen.value)))
    return Resolution(chosen.value, chosen.source, conflicts)
