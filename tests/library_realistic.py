"""A realistic LoRA library and what each LoRA really is, to measure how often the scan is right.

``generate_realistic(root, seed=0)`` writes ``root/Lora`` (about 300 LoRAs named, filed and described the
way people really keep them) and ``root/truth.json``, and returns the truth. For each LoRA the truth says
what its *author* knows: the base model it was trained on, its category and its trigger words, one trigger
at a time. It is decided first, before any file is written, and never derived from the contract's rules.

The files are then written from the truth, with the noise real libraries have:

- names as uploaders and trainers leave them (``frieren_IL_v2``, ``[PDXL] Chun-Li (Street Fighter) v3``,
  ``qipao_dress_ponyXL-000012``, ``add-detail-xl``), some renamed after training;
- folders by base model (``Illustrious/chara/``, ``_Pony/Outfits/``, ``SD15/Artists/``), by category
  (``Effects``, ``Hands & Gestures``, ``BG``, ``Tools``, ``Misc``) or none at all;
- headers as kohya (naming the checkpoint it trained on, or a merge whose name says nothing), OneTrainer,
  ai-toolkit and musubi-tuner write them, or stripped;
- a ``.civitai.info`` for about half (a Pony LoRA uploaded as ``SDXL 1.0``, a NoobAI one as
  ``Illustrious``), a Forge user ``.json`` for some (``sd version: SDXL``), nothing for many.

Each field of the truth is **knowable** or not, decided from the evidence that was written (the generator
records which files say what, as it writes them), with the reason when it is not:

- base model: knowable when the most trusted file that names a lineage names the right one (Civitai's
  page, then the header's checkpoint, title, description or output name, then the file name, then a
  folder), or when the truth is a plain family (SD 1.5, SDXL 1.0, Flux.1 D) and nothing names a lineage.
  Choice: a wrong lineage from a more trusted file (a NoobAI LoRA that Civitai calls Illustrious) makes
  the truth unknowable, because the contract keeps the more trusted value (issue 15). A video LoRA is
  knowable when its tensor keys are a video layout's or Civitai names it; it is scored on being excluded.
- category: knowable when some file gives a sign of it that needs no knowledge of the world: a category
  folder, a Civitai category tag, a booru ``name_(series)`` trigger or a trigger naming a person's hair or
  eyes (a character), a category word in the name or the triggers (``qipao``, ``looking back``, ``glitch``),
  or the training set's own subject tag (a pose or an outfit LoRA's). Knowing that ``Chun-Li`` is a
  character is knowledge of the world: a name alone does not make it knowable.
- triggers: knowable when Civitai, the user's json or the header's trigger phrase list them, or when the
  only source is kohya's dataset folder and it holds the one trigger there is; a LoRA with no trigger is
  knowable unless a dataset folder name stands there as if it were one.

Stdlib only, python 3.10 compatible, deterministic from the seed.
"""
from __future__ import annotations

import json
import random
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from tests.library_fixtures import KOHYA_STATIC, build_tensors, encode_json, png_bytes, safetensors_bytes

# ---------------------------------------------------------------------------------------------------------
# What LoRAs are of
# ---------------------------------------------------------------------------------------------------------

# display name, booru tag (danbooru's, with its qualifier when it has one), series, appearance, outfit
CHARACTERS = (
    ("Frieren", "frieren", "Sousou no Frieren", ("white hair", "pointy ears", "twintails"), ("white capelet",)),
    ("Fern", "fern_(sousou_no_frieren)", "Sousou no Frieren", ("purple hair", "purple eyes"), ("black robe",)),
    ("Chun-Li", "chun-li", "Street Fighter", ("brown hair", "double bun"), ("china dress", "pelvic curtain")),
    ("Hu Tao", "hu_tao_(genshin_impact)", "Genshin Impact", ("brown hair", "twintails", "red eyes"), ("porkpie hat",)),
    ("Raiden Shogun", "raiden_shogun", "Genshin Impact", ("purple hair", "braid"), ("kimono",)),
    ("Furina", "furina_(genshin_impact)", "Genshin Impact", ("white hair", "heterochromia"), ("top hat",)),
    ("Nahida", "nahida_(genshin_impact)", "Genshin Impact", ("white hair", "green eyes"), ("white dress",)),
    ("Ganyu", "ganyu_(genshin_impact)", "Genshin Impact", ("blue hair", "horns"), ("bodystocking",)),
    ("Makima", "makima_(chainsaw_man)", "Chainsaw Man", ("red hair", "ringed eyes"), ("white shirt", "black necktie")),
    ("Power", "power_(chainsaw_man)", "Chainsaw Man", ("blonde hair", "horns"), ("hoodie",)),
    ("Marin Kitagawa", "kitagawa_marin", "Sono Bisque Doll", ("blonde hair", "gradient hair"), ("school uniform",)),
    ("Hitori Gotoh", "gotoh_hitori", "Bocchi the Rock!", ("pink hair", "cube hair ornament"), ("pink track jacket",)),
    ("Ikuyo Kita", "kita_ikuyo", "Bocchi the Rock!", ("red hair", "green eyes"), ("school uniform",)),
    ("Yor Forger", "yor_briar", "Spy x Family", ("black hair", "red eyes"), ("black dress",)),
    ("Anya Forger", "anya_(spy_x_family)", "Spy x Family", ("pink hair", "green eyes"), ("eden academy uniform",)),
    ("Tifa Lockhart", "tifa_lockhart", "Final Fantasy VII", ("black hair", "red eyes"), ("white tank top",)),
    ("Asuka Langley", "souryuu_asuka_langley", "Evangelion", ("orange hair", "blue eyes"), ("plugsuit",)),
    ("Rem", "rem_(re:zero)", "Re:Zero", ("blue hair", "hair over one eye"), ("maid", "roswaal mansion maid uniform")),
    ("Kafka", "kafka_(honkai:_star_rail)", "Honkai: Star Rail", ("purple hair", "purple eyes"), ("jacket",)),
    ("Firefly", "firefly_(honkai:_star_rail)", "Honkai: Star Rail", ("grey hair", "hairband"), ("white dress",)),
    ("Hatsune Miku", "hatsune_miku", "Vocaloid", ("aqua hair", "twintails"), ("detached sleeves", "necktie")),
    ("Gawr Gura", "gawr_gura", "Hololive", ("white hair", "shark tail"), ("blue hoodie",)),
    ("Houshou Marine", "houshou_marine", "Hololive", ("red hair", "heterochromia"), ("pirate hat",)),
    ("Lucy", "lucy_(cyberpunk)", "Cyberpunk Edgerunners", ("grey hair", "red eyeliner"), ("bodysuit",)),
    ("Zero Two", "zero_two_(darling_in_the_franxx)", "Darling in the Franxx", ("pink hair", "horns"),
     ("red bodysuit",)),
    ("Mikasa Ackerman", "mikasa_ackerman", "Attack on Titan", ("black hair", "short hair"), ("red scarf",)),
    ("Nami", "nami_(one_piece)", "One Piece", ("orange hair", "long hair"), ("bikini top",)),
    ("Megumin", "megumin", "Konosuba", ("brown hair", "red eyes"), ("witch hat",)),
    ("Aqua", "aqua_(konosuba)", "Konosuba", ("blue hair", "hair rings"), ("detached sleeves",)),
    ("Yae Miko", "yae_miko", "Genshin Impact", ("pink hair", "fox ears"), ("japanese clothes",)),
)

# category -> (subject, its triggers when it has some, name words, the training set's own subject tag).
# Name words and tags are what an uploader would write; some hold a word of the category and some do not.
SUBJECTS: Dict[str, Tuple[Tuple[str, Tuple[str, ...], str, str], ...]] = {
    "style": (("ciloranko", ("ciloranko",), "ciloranko", "ciloranko"),
              ("wlop", ("by wlop",), "wlop_artist", "wlop"),
              ("watercolor", ("watercolor",), "watercolor_style", "watercolor"),
              ("pixel art", ("pixel art",), "pixel-art", "pixel art"),
              ("flat color", ("flat color", "no lineart"), "FlatColorStyle", "flat color"),
              ("lineart", ("lineart", "monochrome"), "Anime_Lineart", "lineart"),
              ("90s anime", ("1990s (style)",), "90sAnimeStyle", "1990s (style)"),
              ("mksks", ("mksks style",), "mksks", "mksks style"),
              ("thick paint", ("impasto",), "thick_paint", "impasto"),
              ("ukiyo-e", ("ukiyo-e",), "ukiyoe_woodblock", "ukiyo-e"),
              ("dark fantasy", ("dark fantasy art",), "DarkFantasy", "dark fantasy"),
              ("cinematic", (), "cinematic_photo", "film grain")),
    "concept": (("lens flare", ("lens flare",), "lens_flare", "lens flare"),
                ("god rays", ("god rays", "light rays"), "GodRays", "light rays"),
                ("glitch", ("glitch",), "glitch_effect", "glitch"),
                ("chromatic aberration", ("chromatic aberration",), "ChromaticAberration", "chromatic aberration"),
                ("double exposure", ("double exposure",), "double_exposure", "double exposure"),
                ("neon glow", ("neon lights", "glowing"), "neon_glow", "glowing"),
                ("underwater", ("underwater", "caustics"), "underwater_scene", "underwater"),
                ("motion blur", ("motion blur",), "motion-blur", "motion blur"),
                ("x-ray", ("x-ray",), "xray_view", "x-ray")),
    "clothing": (("qipao", ("qipao", "china dress"), "qipao_dress", "china dress"),
                 ("fantasy armor", ("fantasy armor",), "fantasy_armor", "armor"),
                 ("school uniform", ("serafuku",), "school_uniform", "serafuku"),
                 ("maid outfit", ("maid", "maid headdress", "apron"), "maid_outfit", "maid"),
                 ("witch hat", ("witch hat",), "witch_hat", "witch hat"),
                 ("bunny suit", ("playboy bunny",), "bunnysuit", "playboy bunny"),
                 ("kimono", ("furisode", "kimono"), "furisode", "kimono"),
                 ("techwear", ("techwear jacket",), "techwear", "jacket"),
                 ("wedding dress", ("wedding dress", "veil"), "wedding_dress", "wedding dress")),
    "pose": (("looking back", ("looking back",), "looking_back", "looking back"),
             ("hand on hip", ("hand on hip", "looking back"), "hand_on_hip_pose", "hand on hip"),
             ("sitting", ("sitting", "crossed legs"), "sitting_pose", "sitting"),
             ("jumping", ("jumping",), "jumping", "jumping"),
             ("peace sign", ("peace sign",), "peace_sign", "v"),
             ("heart hands", ("heart hands",), "heart_hands", "heart hands"),
             ("from above", ("from above",), "from_above", "from above"),
             ("head tilt", ("head tilt",), "head_tilt", "head tilt")),
    "background": (("library", ("library", "bookshelf"), "library_bg", "library"),
                   ("cyberpunk street", ("cyberpunk", "street", "neon lights"), "cyberpunk_street", "street"),
                   ("shrine", ("shrine", "torii"), "shinto_shrine", "shrine"),
                   ("ruins", ("ruins", "overgrown"), "ancient_ruins", "ruins"),
                   ("classroom", ("classroom",), "classroom", "classroom"),
                   ("rooftop", ("rooftop", "city lights"), "rooftop_night", "rooftop")),
    "detailer": (("add detail", (), "add_detail", "highres"),
                 ("detail tweaker", (), "detail-tweaker", "highres"),
                 ("more details", (), "more_details", "highres"),
                 ("skin texture", ("detailed skin",), "skin_texture", "skin texture"),
                 ("hand fix", (), "better_hands", "hands"),
                 ("eye enhancer", (), "eye_enhancer", "eyes")),
    "slider": (("age", (), "age_slider", "age"), ("weight", (), "weight_slider", "weight"),
               ("muscle", (), "muscle_slider", "muscle"), ("contrast", (), "contrast_slider", "contrast"),
               ("detail", (), "detail_slider", "detail")),
}
CIVITAI_TAGS = {"character": "character", "style": "style", "concept": "concept", "clothing": "clothing",
                "pose": "poses", "background": "background", "detailer": "tool", "slider": "slider"}
NOISE_TAGS = ("anime", "woman", "girl", "sexy", "cute", "realistic", "photorealistic", "fantasy", "base model")

BASE_MIX = (("Illustrious", 28), ("Pony", 22), ("SD 1.5", 15), ("SDXL 1.0", 11), ("NoobAI", 8), ("Flux.1 D", 10),
            ("Flux.1 S", 1), ("SD 2.1 768", 1), ("SD 3.5 Large", 1), ("video", 3))
CATEGORY_MIX = (("character", 38), ("style", 18), ("concept", 11), ("clothing", 10), ("pose", 7), ("background", 4),
                ("detailer", 7), ("slider", 5))
LINEAGES = ("Pony", "Illustrious", "NoobAI", "Flux.1 S", "SD 2.1 768", "SD 3.5 Large")
VIDEO = (("Wan Video", "wan_musubi"), ("Wan Video", "wan_diffusers"), ("Hunyuan Video", "hunyuan_musubi"),
         ("Hunyuan Video", "hunyuan_pipe"), ("LTXV", "ltxv"), ("Mochi", "mochi"), ("Hunyuan Video", "hunyuan_attn"))

# How each base shows in names and folders (tokens people use) and in kohya's ss_sd_model_name.
NAME_TOKENS = {"Pony": ("PDXL", "ponyXL", "pony_v6", "pony", "Pony"), "Illustrious": ("IL", "ILXL", "IllustriousXL",
                                                                                         "Illustrious", "il"),
               "NoobAI": ("NAI-XL", "noob", "NoobAI", "noobai"), "SDXL 1.0": ("XL", "SDXL", "sdxl"),
               "SD 1.5": ("SD15", "sd15", "SD1.5"), "Flux.1 D": ("flux", "FLUX", "Flux1D"),
               "Flux.1 S": ("schnell", "FluxSchnell"), "SD 2.1 768": ("SD21-768",), "SD 3.5 Large": ("sd3.5L",)}
LINEAGE_CHECKPOINTS = {
    "Pony": ("ponyDiffusionV6XL_v6StartWithThisOne.safetensors", "/workspace/models/ponyDiffusionV6XL.safetensors",
             "autismmixSDXL_autismmixPony.safetensors"),
    "Illustrious": ("Illustrious-XL-v0.1.safetensors", "illustriousXL_v01.safetensors",
                    "D:\\sd\\models\\Stable-diffusion\\Illustrious-XL-v1.0.safetensors",
                    "waiNSFWIllustrious_v110.safetensors"),
    "NoobAI": ("noobaiXLNAIXL_epsilonPred11Version.safetensors", "NoobAI-XL-Vpred-v1.0.safetensors"),
    "Flux.1 S": ("flux1-schnell.safetensors",), "SD 2.1 768": ("v2-1_768-ema-pruned.safetensors",),
    "SD 3.5 Large": ("sd3.5_large.safetensors",),
}
# Merges and renamed checkpoints: a person who knows them knows their lineage, a name table does not.
MERGE_CHECKPOINTS = {"Pony": ("autismmixSDXL_autismmixConfetti.safetensors", "cyberrealisticPony_v65.safetensors"),
                     "Illustrious": ("novaAnimeXL_ilV50.safetensors", "/content/pretrained_model/model.safetensors"),
                     "NoobAI": ("catCarrier_v50.safetensors", "merged_v3.safetensors")}
FAMILY_CHECKPOINTS = {"SDXL 1.0": ("sd_xl_base_1.0.safetensors", "sd_xl_base_1.0_0.9vae.safetensors"),
                      "SD 1.5": ("v1-5-pruned-emaonly.safetensors", "animefull-final-pruned.ckpt",
                                 "runwayml/stable-diffusion-v1-5"),
                      "Flux.1 D": ("flux1-dev.safetensors", "/root/models/flux1-dev-fp8.safetensors")}
FAMILY_OF = {"Pony": "sdxl", "Illustrious": "sdxl", "NoobAI": "sdxl", "SDXL 1.0": "sdxl", "SD 1.5": "sd1",
             "Flux.1 D": "flux", "Flux.1 S": "flux", "SD 2.1 768": "sd2", "SD 3.5 Large": "sd3"}
KEYS_OF_FAMILY = {"sd1": "sd1", "sd2": "sd2", "sdxl": "sdxl", "flux": "flux", "sd3": "sd3"}

# Category folders users keep (a folder of one category), and folders that say nothing about it.
CATEGORY_FOLDERS = {"character": ("chara", "char", "Characters", "characters"), "style": ("Artists", "artist", "style",
                                                                                         "Styles"),
                    "concept": ("Effects", "FX", "concept"), "clothing": ("Outfits", "Costumes", "clothing"),
                    "pose": ("Poses", "Hands & Gestures"), "background": ("BG", "Backgrounds"),
                    "detailer": ("Tools", "Enhancers"), "slider": ("Sliders",)}
BASE_FOLDERS = {"Illustrious": ("Illustrious",), "Pony": ("_Pony", "Pony"), "NoobAI": ("NoobAI", "Illustrious"),
                "SDXL 1.0": ("XL", "SDXL"), "SD 1.5": ("SD15",), "Flux.1 D": ("Flux",), "Flux.1 S": ("Flux",),
                "SD 2.1 768": ("_Other",), "SD 3.5 Large": ("_Other",), "video": ("_Video", "_Other")}
UNSORTED = ("", "", "new", "downloads", "_temp")


# ---------------------------------------------------------------------------------------------------------
# The truth
# ---------------------------------------------------------------------------------------------------------

@dataclass
class Truth:
    """What one LoRA is, as its author knows it, and whether the files let anyone know it."""
    path: str
    base_model: str
    category: str
    triggers: Tuple[str, ...]
    video: bool = False
    subject: str = ""  # what it is of: a CHARACTERS display name or a SUBJECTS row's first item
    knowable: Dict[str, bool] = field(default_factory=dict)
    why: Dict[str, str] = field(default_factory=dict)         # field -> why it is not knowable
    evidence: Dict[str, List[str]] = field(default_factory=dict)  # field -> what the files say (for people)

    def to_dict(self) -> dict:
        return {"path": self.path, "base_model": self.base_model, "category": self.category,
                "triggers": list(self.triggers), "video": self.video, "subject": self.subject,
                "knowable": self.knowable, "why": self.why, "evidence": self.evidence}


@dataclass
class Plan:
    """How one LoRA's files are written (decided from its truth with the noise of real libraries)."""
    truth: Truth
    subject: str
    stem: str
    folder: str
    header: str                        # kohya | onetrainer | aitoolkit | musubi | none
    keys: str
    checkpoint: str = ""               # ss_sd_model_name
    output_name: str = ""              # ss_output_name (kohya, musubi); "" = the stem
    title: str = ""                    # modelspec.title (OneTrainer: the user's title)
    dataset: Dict[str, Dict[str, int]] = field(default_factory=dict)
    civitai_base: Optional[str] = None  # None: no .civitai.info
    civitai_words: List[str] = field(default_factory=list)
    civitai_tags: List[str] = field(default_factory=list)
    user_sd: Optional[str] = None       # None: no Forge user .json
    user_activation: str = ""
    arch: str = ""                      # modelspec.architecture


def _weighted(rng: random.Random, table: Sequence[Tuple[str, int]]) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def _character_triggers(rng: random.Random, row: tuple, base: str) -> Tuple[str, ...]:
    """The triggers an author of `base` would publish for a character (booru tags for Illustrious and
    NoobAI, invented tokens for Pony and SD 1.5, the name for Flux), some with appearance and outfit tags."""
    display, tag, _series, look, outfit = row
    spaced = tag.replace("_", " ")
    if base in ("Illustrious", "NoobAI"):
        main = rng.choice((tag, tag, spaced.replace("(", "\\(").replace(")", "\\)"), spaced))
    elif base == "Pony":
        main = rng.choice((_slug(display).replace("_", "") + rng.choice(("", "_pdxl", "v2")), spaced, tag))
    elif base.startswith("Flux"):
        main = rng.choice((f"{display} woman", display.lower(), f"ohwx {_slug(display)}"))
    else:
        main = rng.choice((_slug(display).replace("_", "") + rng.choice(("", "1", "_v2")), spaced))
    extra: Tuple[str, ...] = ()
    r = rng.random()
    if r < 0.35:
        extra = look[:rng.randint(1, len(look))]
    elif r < 0.55:
        extra = look[:1] + outfit[:1]
    elif r < 0.65:
        extra = outfit
    triggers = (main,) + extra
    if base == "Pony" and rng.random() < 0.15:
        triggers = ("score_9", "score_8_up", "score_7_up") + triggers
    return triggers


def _render_words(rng: random.Random, triggers: Tuple[str, ...]) -> List[str]:
    """Civitai trainedWords as uploaders fill them: one trigger per entry, or all in one entry."""
    if not triggers:
        return []
    if len(triggers) > 1 and rng.random() < 0.4:
        return [", ".join(triggers)]
    return list(triggers)


def _stem(rng: random.Random, base: str, category: str, subject: str, display: str, series: str,
          token: str) -> str:
    """A file name as uploaders leave them (token: a lineage or family token, or "")."""
    s = _slug(subject) if category != "character" else _slug(display)
    camel = "".join(w.capitalize() for w in re.split(r"[^0-9a-zA-Z]+", display if category == "character"
                                                     else subject) if w)
    v = rng.randint(1, 6)
    epoch = f"-{rng.choice((6, 8, 10, 12, 16, 20)):06d}"
    if not token:
        return rng.choice((f"{s}_v{v}", f"{s}{epoch}", f"{camel}_v{v}.0", f"{s.replace('_', '-')}", f"{camel}"))
    forms = [f"{s}_{token}_v{v}", f"{s}_{token}{epoch}", f"{camel}_{token}", f"{s.replace('_', '-')}-{token}"]
    if category == "character":
        forms.append(f"[{token}] {display} ({series}) v{v}")
    return rng.choice(forms)


def _dataset(rng: random.Random, first_trigger: str, tags: List[str]) -> Dict[str, Dict[str, int]]:
    """kohya's ss_tag_frequency: one folder named `<repeats>_<instance token>`, its caption tags counted."""
    repeats = rng.choice((1, 3, 5, 10, 20))
    counts: Dict[str, int] = {}
    for i, tag in enumerate(tags):
        counts[tag] = max(counts.get(tag, 0), 120 - 9 * i - rng.randint(0, 4))
    return {f"{repeats}_{first_trigger}": counts}


def plan_lora(rng: random.Random, taken: set) -> Plan:
    """One LoRA: its truth first, then how its files tell it (or not)."""
    base = _weighted(rng, BASE_MIX)
    video = base == "video"
    category = _weighted(rng, CATEGORY_MIX)
    keys = ""
    if video:
        base, keys = rng.choice(VIDEO)
        category = rng.choice(("concept", "pose", "character", "style"))
    # -- the subject and its triggers (the truth) ------------------------------------------------------
    if category == "character":
        row = rng.choice(CHARACTERS)
        display, series = row[0], row[2]
        subject = display
        triggers = _character_triggers(rng, row, base)
        training = [row[1].replace("_", " "), "1girl", "solo"] + list(row[3]) + list(row[4]) + ["looking at viewer"]
    else:
        subject, trig, name_words, own_tag = rng.choice(SUBJECTS[category])
        display, series = subject, ""
        triggers = trig if (trig and rng.random() < 0.85) else ()
        if category == "style" and base.startswith("Flux") and triggers:
            triggers = (f"in the style of {subject}",)
        training = [own_tag, "1girl", "solo", "looking at viewer", "simple background", "smile"]
        subject = name_words if rng.random() < 0.5 else subject
    truth = Truth(path="", base_model=base, category=category, triggers=tuple(triggers), video=video,
                  subject=display)
    family = "video" if video else FAMILY_OF[base]
    lineage = base in LINEAGES
    # -- the name ------------------------------------------------------------------------------------
    token = ""
    if not video and rng.random() < (0.45 if lineage else 0.25):
        token = rng.choice(NAME_TOKENS[base])
    stem = _stem(rng, base, category, subject, display, series, token)
    unique, n = stem, 1
    while unique.lower() in taken:  # a second LoRA of the same subject: the uploader's next version
        n += 1
        unique = f"{stem}_v{n}" if not re.search(r"v\d", stem) else f"{stem} ({n - 1})"
    stem = unique
    taken.add(stem.lower())
    # -- the folder ------------------------------------------------------------------------------------
    r = rng.random()
    folder_base = "video" if video else base
    if r < 0.45:
        top = rng.choice(BASE_FOLDERS[folder_base])
        if base == "Illustrious" and rng.random() < 0.04:
            top = "_Pony"                                     # misfiled: the user tried it on Pony
        sub = rng.choice(CATEGORY_FOLDERS[category]) if rng.random() < 0.6 else ""
        if sub and category == "pose" and sub == "Hands & Gestures" and "hand" not in subject and "sign" not in subject:
            sub = "Poses"
        folder = "/".join(p for p in (top, sub) if p)
        if category == "character" and sub and rng.random() < 0.3:
            folder += "/" + series
    elif r < 0.70:
        folder = rng.choice(CATEGORY_FOLDERS[category] + ("Misc",))
        if folder == "Hands & Gestures" and category == "pose" and "hand" not in subject and "sign" not in subject:
            folder = "Poses"
    else:
        folder = rng.choice(UNSORTED)
    # -- the header --------------------------------------------------------------------------------------
    if video:
        header = "musubi" if "musubi" in keys else "none"
    elif family == "flux":
        header = _weighted(rng, (("kohya", 45), ("aitoolkit", 45), ("none", 10)))
    else:
        header = _weighted(rng, (("kohya", 62), ("onetrainer", 10), ("none", 20), ("minimal", 8)))
    plan = Plan(truth=truth, subject=subject, stem=stem, folder=folder, header=header,
                keys=keys or ("flux_diffusers" if header == "aitoolkit" else KEYS_OF_FAMILY[family]))
    if header == "kohya":
        if lineage:
            plan.checkpoint = rng.choice(LINEAGE_CHECKPOINTS[base]) if rng.random() < 0.65 else rng.choice(
                MERGE_CHECKPOINTS.get(base, ("model.safetensors",)))
        else:
            plan.checkpoint = rng.choice(FAMILY_CHECKPOINTS[base])
        if rng.random() < 0.35:  # trained under another name, renamed on upload
            out_token = rng.choice(NAME_TOKENS[base]) if (lineage and rng.random() < 0.5) else ""
            plan.output_name = f"{_slug(display if category == 'character' else subject)}" + (
                f"_{out_token}" if out_token else "") + f"_{rng.choice(('last', 'final', 'e10'))}"
    if header == "onetrainer":
        with_token = lineage and rng.random() < 0.4
        plan.title = f"{display} | {rng.choice(NAME_TOKENS[base])}" if with_token else display
    if header in ("kohya", "minimal", "onetrainer", "musubi"):
        plan.arch = {"sd1": "stable-diffusion-v1/lora", "sd2": "stable-diffusion-v2-768-v/lora",
                     "sdxl": "stable-diffusion-xl-v1-base/lora", "sd3": "stable-diffusion-3.5-large/lora",
                     "flux": "flux-1-schnell/lora" if base == "Flux.1 S" else "flux-1-dev/lora",
                     "video": "wan2.1/lora" if base.startswith("Wan") else "hunyuan-video/lora"}[family]
        if header == "kohya" and family == "flux" and rng.random() < 0.5:
            plan.arch = "flux-1/lora"  # kohya before it told dev from schnell
    if header == "kohya":  # the dataset folder is named after the instance token (never Pony's score tags)
        instance = next((t for t in triggers if not t.startswith("score_")), _slug(subject))
        plan.dataset = _dataset(rng, instance, training)
    # -- sidecars ----------------------------------------------------------------------------------------
    if rng.random() < 0.5:
        plan.civitai_base = _civitai_base(rng, base)
        plan.civitai_words = _render_words(rng, tuple(triggers))
        tags = list(rng.sample(NOISE_TAGS, 2))
        if rng.random() < 0.75:
            tags.insert(rng.randint(0, 2), CIVITAI_TAGS[category])
        if category == "character":
            tags.append(series.lower())
        plan.civitai_tags = tags
    if rng.random() < 0.15:
        plan.user_sd = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL", "flux": "Flux", "sd3": "SD3"}.get(family, "Unknown")
        plan.user_activation = ", ".join(triggers)
    return plan


def _civitai_base(rng: random.Random, base: str) -> str:
    """The baseModel an uploader picked: mostly right, sometimes the coarse SDXL 1.0, NoobAI often under its
    parent Illustrious (Civitai had no NoobAI at first)."""
    r = rng.random()
    if base == "Pony":
        return "SDXL 1.0" if r < 0.15 else "Pony"
    if base == "Illustrious":
        return "SDXL 1.0" if r < 0.10 else "Other" if r < 0.13 else "Illustrious"
    if base == "NoobAI":
        return "Illustrious" if r < 0.35 else "SDXL 1.0" if r < 0.45 else "NoobAI"
    return {"Wan Video": "Wan Video 14B t2v"}.get(base, base)


# ---------------------------------------------------------------------------------------------------------
# Knowability: from what was written
# ---------------------------------------------------------------------------------------------------------

# The tokens a person reads as a lineage (the list, the full words, and Flux/SD names). Written
# here from the issue and the model names, not from the contract's table.
LINEAGE_WORDS = {"pony": "Pony", "pdxl": "Pony", "ponyxl": "Pony", "ponyv6": "Pony", "ponydiffusionv6xl": "Pony",
                 "il": "Illustrious", "ilxl": "Illustrious", "illustrious": "Illustrious",
                 "illustriousxl": "Illustrious", "naixl": "NoobAI", "noob": "NoobAI", "noobai": "NoobAI",
                 "noobaixlnaixl": "NoobAI", "schnell": "Flux.1 S", "fluxschnell": "Flux.1 S",
                 "flux1schnell": "Flux.1 S",
                 "v21768": "SD 2.1 768", "sd21768": "SD 2.1 768", "sd35l": "SD 3.5 Large", "sd35large": "SD 3.5 Large"}


def _lineages_in(text: str) -> List[str]:
    """Lineages a reader finds in a text: its words split at case changes and punctuation, alone or
    joined with the next one or two (`pony_v6`, `NAI-XL`, `sd3.5_large`)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text))
    words = [w.lower() for w in re.split(r"[^0-9A-Za-z]+", spaced) if w]
    found = []
    for n in (1, 2, 3):
        for i in range(len(words) - n + 1):
            hit = LINEAGE_WORDS.get("".join(words[i:i + n]))
            if hit:
                found.append(hit)
    return list(dict.fromkeys(found))


def judge(plan: Plan) -> None:
    """Fill the truth's knowable/why/evidence from what the plan writes."""
    t = plan.truth
    base_ev: List[Tuple[str, List[str]]] = []  # (where, lineages named there), most trusted first
    if plan.civitai_base is not None:
        base_ev.append(("Civitai baseModel " + plan.civitai_base,
                        [plan.civitai_base] if plan.civitai_base in LINEAGES else []))
    header_texts = []
    if plan.header == "kohya":
        header_texts = [plan.checkpoint, plan.output_name or plan.stem]
    elif plan.header == "onetrainer":
        header_texts = [plan.title]
    for text in header_texts:
        base_ev.append((f"header {text!r}", _lineages_in(text)))
    named_by_arch = {"flux-1-schnell/lora": "Flux.1 S", "stable-diffusion-v2-768-v/lora": "SD 2.1 768",
                     "stable-diffusion-3.5-large/lora": "SD 3.5 Large"}.get(plan.arch)
    if named_by_arch:
        base_ev.append((f"header {plan.arch}", [named_by_arch]))
    if plan.header in ("kohya", "minimal") and FAMILY_OF.get(plan.truth.base_model) == "sd2":
        base_ev.append(("header ss_v2 with ss_v_parameterization", ["SD 2.1 768"]))
    base_ev.append((f"name {plan.stem!r}", _lineages_in(plan.stem)))
    for folder in reversed(plan.folder.split("/") if plan.folder else []):
        base_ev.append((f"folder {folder!r}", _lineages_in(folder)))
    t.evidence["base_model"] = [f"{where}: {', '.join(names)}" for where, names in base_ev if names]
    if t.video:
        known = plan.keys != "hunyuan_attn" or plan.civitai_base == t.base_model
        t.knowable["base_model"] = known
        if not known:
            t.why["base_model"] = "diffusers attention keys only (they read as Flux) and no sidecar"
    else:
        named = next((names for _, names in base_ev if names), [])
        if t.base_model in LINEAGES:
            t.knowable["base_model"] = named == [t.base_model]
            if not named:
                t.why["base_model"] = f"nothing names {t.base_model}: only the {FAMILY_OF[t.base_model]} family shows"
            elif named != [t.base_model]:
                t.why["base_model"] = f"the most trusted file that names a lineage says {', '.join(named)}"
        else:
            t.knowable["base_model"] = not named
            if named:
                t.why["base_model"] = f"a file names {', '.join(named)}"
    _judge_category(plan)
    _judge_triggers(plan)


_CATEGORY_WORDS = {  # words of the issue's lists and the categories' own names
    "character": ("character", "chara", "oc"), "style": ("style", "artist", "watercolor", "lineart", "pixel art",
                                                         "impasto", "flat color", "ukiyo e"),
    "concept": ("lens flare", "god rays", "glitch", "chromatic aberration", "double exposure", "motion blur",
                "glowing", "effect", "concept"),
    "clothing": ("qipao", "china dress", "armor", "uniform", "hat", "dress", "maid", "kimono", "jacket", "outfit",
                 "apron"),
    "pose": ("looking back", "sitting", "jumping", "hand on hip", "peace sign", "heart hands", "from above", "pose"),
    "background": ("library", "street", "shrine", "ruins", "classroom", "rooftop", "background", "bg"),
    "detailer": ("detail", "enhancer", "tweaker"), "slider": ("slider",),
}
_FOLDER_WORDS = {c: tuple(n.lower() for n in names) for c, names in CATEGORY_FOLDERS.items()}


def _words(text: str) -> str:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    return " " + " ".join(re.split(r"[^0-9a-z]+", spaced.lower())).strip() + " "


def _says(text: str, category: str) -> bool:
    return any(f" {w} " in _words(text) for w in _CATEGORY_WORDS[category])


def _judge_category(plan: Plan) -> None:
    t, cat = plan.truth, plan.truth.category
    ev = []
    for folder in plan.folder.split("/") if plan.folder else []:
        if folder.lower() in _FOLDER_WORDS[cat]:
            ev.append(f"folder {folder}")
    if CIVITAI_TAGS[cat] in plan.civitai_tags:
        ev.append(f"Civitai tag {CIVITAI_TAGS[cat]}")
    triggers = _read_triggers(plan)
    for trig in triggers:
        if cat == "character" and re.search(r"[_ ]\\?\([^()]+\\?\)$", trig) and "artist" not in trig:
            ev.append(f"booru trigger {trig}")
        elif cat == "character" and re.search(r"\b(hair|eyes)$|twintails|heterochromia|fox ears|pointy ears", trig):
            ev.append(f"appearance trigger {trig}")
        elif _says(trig, cat):
            ev.append(f"trigger {trig}")
    for name in (plan.stem, plan.output_name):
        if name and _says(name, cat):
            ev.append(f"name {name}")
    if plan.dataset and cat not in ("character", "detailer", "slider"):
        own = next(iter(next(iter(plan.dataset.values()))))
        if _says(own, cat):
            ev.append(f"training tag {own}")
    t.evidence["category"] = ev
    t.knowable["category"] = bool(ev)
    if not ev:
        t.why["category"] = "no folder, tag, trigger or word says it (the name is only a name)"


def _read_triggers(plan: Plan) -> Tuple[str, ...]:
    """The triggers the files carry, from the most trusted file that has any (what a reader finds)."""
    if plan.user_sd is not None and plan.user_activation:
        return plan.truth.triggers
    if plan.civitai_base is not None and plan.civitai_words:
        return plan.truth.triggers
    if plan.dataset:
        return (next(iter(plan.dataset)).split("_", 1)[1],)
    return ()


def _judge_triggers(plan: Plan) -> None:
    t = plan.truth
    listed = (plan.user_sd is not None and plan.user_activation) or (plan.civitai_base is not None
                                                                     and plan.civitai_words)
    if listed:
        t.knowable["triggers"] = True
        t.evidence["triggers"] = ["listed by " + ("the user's json" if plan.user_activation else "Civitai")]
    elif plan.dataset:
        folder = next(iter(plan.dataset)).split("_", 1)[1]
        t.knowable["triggers"] = t.triggers == (folder,)
        t.evidence["triggers"] = [f"dataset folder {folder!r}"]
        if not t.knowable["triggers"]:
            t.why["triggers"] = (f"only kohya's dataset folder {folder!r}, and the triggers are "
                                 f"{list(t.triggers) or 'none'}")
    else:
        t.knowable["triggers"] = not t.triggers
        t.evidence["triggers"] = []
        if t.triggers:
            t.why["triggers"] = "no file lists them"


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------

def _header(plan: Plan, rank: int) -> Optional[dict]:
    t = plan.truth
    if plan.header == "none":
        return None
    if plan.header == "aitoolkit":
        return {"name": plan.stem, "version": "1.0", "software": json.dumps({"name": "ai-toolkit", "version": "0.1.0"}),
                "training_info": json.dumps({"step": 2000, "epoch": 12})}
    if plan.header == "musubi":
        return {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(rank),
                "ss_output_name": plan.stem, "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": plan.arch,
                "modelspec.title": "LoRA@1741089600", "modelspec.resolution": "1280x720"}
    if plan.header == "onetrainer":
        return {"modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": plan.arch, "modelspec.title": plan.title,
                "modelspec.author": "OneTrainer user", "modelspec.date": "2024-10-02T18:00:00",
                "modelspec.resolution": "1024x1024"}
    family = FAMILY_OF[t.base_model]
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank), "ss_network_alpha": str(rank),
            "ss_v2": "True" if family == "sd2" else "False",
            "ss_base_model_version": {"sd1": "sd_v1", "sd2": "sd_v2_v", "sdxl": "sdxl_base_v1-0", "flux": "flux1",
                                      "sd3": "sd3"}[family]}
    if family == "sd2":
        meta["ss_v_parameterization"] = "True"
    if plan.header == "kohya":
        meta.update(KOHYA_STATIC)
        meta.update({"ss_sd_model_name": plan.checkpoint, "ss_output_name": plan.output_name or plan.stem,
                     "ss_tag_frequency": json.dumps(plan.dataset, ensure_ascii=False),
                     "ss_training_comment": "None", "modelspec.title": plan.output_name or plan.stem})
    meta.update({"modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": plan.arch})
    return meta


def _civitai_info(plan: Plan, size: int) -> dict:
    t = plan.truth
    model_id = zlib.crc32(plan.stem.encode()) % 900_000 + 10_000
    return {"id": model_id * 3, "modelId": model_id, "name": "v1.0", "baseModel": plan.civitai_base,
            "trainedWords": plan.civitai_words, "description": f"<p>{t.category} LoRA</p>",
            "model": {"name": plan.subject, "type": "LORA", "nsfw": False, "tags": plan.civitai_tags},
            "files": [{"name": plan.stem + ".safetensors", "sizeKB": size / 1024, "type": "Model", "primary": True,
                       "hashes": {}}], "images": []}


def write_lora(lib: Path, plan: Plan, rng: random.Random) -> None:
    rel = f"{plan.folder}/{plan.stem}.safetensors" if plan.folder else f"{plan.stem}.safetensors"
    plan.truth.path = rel
    rank = rng.randint(1, 2)
    entries, data = build_tensors(plan.keys, "lora", rank, "F16", f"realistic|{rel}", 16, False)
    blob, _ = safetensors_bytes(_header(plan, rank), entries, data, rng.random() < 0.5)
    path = lib / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    stem_path = path.parent / plan.stem
    if plan.civitai_base is not None:
        Path(f"{stem_path}.civitai.info").write_bytes(
            encode_json(_civitai_info(plan, len(blob)), "", 4, True))
    if plan.user_sd is not None:
        user = {"description": "", "sd version": plan.user_sd, "activation text": plan.user_activation,
                "preferred weight": rng.choice((0.6, 0.8, 1.0)), "negative text": "", "notes": ""}
        Path(f"{stem_path}.json").write_bytes(encode_json(user, "", 4, False))
    if rng.random() < 0.4:
        Path(f"{stem_path}.preview.png").write_bytes(png_bytes(tag=len(rel)))


def generate_realistic(root: "str | Path", seed: int = 0, count: int = 300) -> dict:
    """Write root/Lora and root/truth.json; return the truth ({"loras": [...]})."""
    root = Path(root)
    lib = root / "Lora"
    if lib.exists():
        raise FileExistsError(f"{lib} already exists: generate into a fresh folder")
    lib.mkdir(parents=True)
    rng = random.Random(f"realistic|{seed}")
    taken: set = set()
    truths = []
    for _ in range(count):
        plan = plan_lora(rng, taken)
        write_lora(lib, plan, rng)
        judge(plan)
        truths.append(plan.truth.to_dict())
    truths.sort(key=lambda t: t["path"])
    truth = {"root": "Lora", "seed": seed, "loras": truths}
    (root / "truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    return truth


# ---------------------------------------------------------------------------------------------------------
# Scoring (shared by tests/library/test_accuracy.py and the before/after measurement of older scanners)
# ---------------------------------------------------------------------------------------------------------

def score(truth: dict, records: Dict[str, dict]) -> dict:
    """Accuracy over the knowable LoRAs. `records` maps a path to the scan's record as a dict (the fields
    base_model, family, excluded, category, trigger_words). Returns figures and every miss."""
    out: Dict[str, dict] = {}
    for name in ("base_model", "category", "triggers", "video_excluded"):
        out[name] = {"right": 0, "knowable": 0, "misses": [], "right_of_all": 0, "all": 0}
    unknowable = {"base_model": 0, "category": 0, "triggers": 0}
    for t in truth["loras"]:
        rec = records.get(t["path"])
        if rec is None:
            for name in ("base_model", "category", "triggers"):
                out[name]["knowable"] += 1
                out[name]["misses"].append(f"{t['path']}: not in the scan")
            continue
        checks = {
            "base_model": (rec.get("base_model"), t["base_model"]),
            "category": (rec.get("category"), t["category"]),
            "triggers": (list(rec.get("trigger_words") or []), list(t["triggers"])),
        }
        if t["video"]:
            checks["video_excluded"] = ((rec.get("family"), bool(rec.get("excluded"))), ("video", True))
            del checks["base_model"]
        for name, (got, want) in checks.items():
            key = "base_model" if name == "video_excluded" else name
            out[name]["all"] += 1                      # for information: every LoRA, knowable or not
            out[name]["right_of_all"] += got == want
            if not t["knowable"].get(key, True):
                unknowable[key] += 1
                continue
            out[name]["knowable"] += 1
            if got == want:
                out[name]["right"] += 1
            else:
                out[name]["misses"].append(f"{t['path']}: expected {want!r}, got {got!r}")
    for figures in out.values():
        figures["accuracy"] = round(figures["right"] / figures["knowable"], 4) if figures["knowable"] else None
    return {"loras": len(truth["loras"]), "unknowable": unknowable, **out}
