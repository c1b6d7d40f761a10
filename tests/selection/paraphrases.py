"""Descriptive prompts over the realistic fixture library, each with the LoRAs that are right for it.

A user who wants a qipao LoRA writes "a young woman in a close-fitting high-collared silk gown from
Shanghai", not `qipao`. Each prompt here describes what LoRAs of the realistic library
(tests/library_realistic.py, seed 0) are *for* without naming any word of their triggers, their file names,
their subject or its training tag (checked by `banned_words` in tests/selection/test_semantic_accuracy.py).
About a third are marked `hard`: they share almost no word with anything a LoRA's files say, so only an
understanding of the words finds them.

The oracle is the generator's truth, by subject: every LoRA of the library that is of one of a prompt's
`subjects` is right (the truth records each LoRA's subject as the generator decided it), never anything
the product computes. Characters are left out on purpose: naming one without her name needs knowledge
of the world that no word-level embedding has.

Each prompt is tried on one checkpoint, `base_model`, where a right LoRA of the seed-0 library loads (the
base model its truth says it was trained on); the family comes from the generator's own table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Set, Tuple

from ..library_realistic import CHARACTERS, CIVITAI_TAGS, FAMILY_OF, SUBJECTS

SEED = 0  # the realistic library the bases below were chosen for


@dataclass(frozen=True)
class Paraphrase:
    prompt: str
    subjects: Tuple[str, ...]  # truth subjects whose LoRAs are right (several when they are the same thing)
    base_model: str  # the checkpoint it is tried on
    hard: bool = False  # almost no word in common with anything the LoRA's files say

    @property
    def family(self) -> str:
        return FAMILY_OF[self.base_model]


P = Paraphrase
PARAPHRASES: Tuple[Paraphrase, ...] = (
    # -- styles -------------------------------------------------------------------------------------------
    P("a fox in a meadow painted with soft translucent pigment washes bleeding into wet paper",
      ("watercolor",), "Illustrious"),
    P("a harbour at dawn, diluted pigments that bloom and pool on damp cotton sheets", ("watercolor",),
      "Illustrious", hard=True),
    P("a knight drawn as a chunky low-resolution 16-bit video game sprite", ("pixel art",), "Illustrious"),
    P("retro console graphics, a tiny palette and blocky squares, NES era", ("pixel art",), "Illustrious",
      hard=True),
    P("an illustration with plain unshaded fills, no gradients and no outlines, simple cel look",
      ("flat color",), "SD 1.5"),
    P("a black-and-white ink outline drawing of a girl, only contours and no fill", ("lineart",),
      "Illustrious"),
    P("a girl drawn like a cel-animated television series from the nineteen nineties, VHS era look",
      ("90s anime",), "Illustrious"),
    P("a portrait in heavy oil with chunky palette-knife strokes, like Van Gogh", ("thick paint",), "Pony"),
    P("Edo period Japanese print of a fishing village by Hokusai", ("ukiyo-e",), "Pony"),
    P("Hokusai-like great wave picture", ("ukiyo-e",), "SDXL 1.0", hard=True),
    P("a grim gothic world of demons, blood and ruined cathedrals, grimdark and sinister", ("dark fantasy",),
      "SDXL 1.0"),
    P("a still frame from a Hollywood movie, anamorphic widescreen, dramatic colour grading", ("cinematic",),
      "Illustrious"),
    # -- concepts -----------------------------------------------------------------------------------------
    P("bright sun shining into the camera, hexagonal artifacts and streaks across the frame", ("lens flare",),
      "SDXL 1.0"),
    P("sunbeams piercing through clouds over a valley", ("god rays",), "Illustrious"),
    P("shafts of sunshine streaming between the trees of a misty forest", ("god rays",), "Illustrious",
      hard=True),
    P("corrupted digital signal, scrambled pixels and datamosh distortion over a portrait", ("glitch",),
      "SD 1.5"),
    P("red and blue colour fringing at the edges of the picture like a cheap camera lens",
      ("chromatic aberration",), "Illustrious"),
    P("a woman's silhouette blended with a forest, two photographs superimposed in one frame",
      ("double exposure",), "SD 1.5"),
    P("vivid luminous tubes of pink and cyan casting light on a wet street after dark", ("neon glow",),
      "Flux.1 D"),
    P("a racing car streaking past, everything smeared by a long shutter speed", ("motion blur",),
      "Illustrious"),
    P("a see-through radiograph showing the skeleton inside a hand", ("x-ray",), "NoobAI", hard=True),
    # -- clothing -----------------------------------------------------------------------------------------
    P("a young woman in a close-fitting high-collared silk gown from Shanghai", ("qipao",), "Illustrious"),
    P("a lady in a slim mandarin-collar gown with side slits", ("qipao",), "Illustrious", hard=True),
    P("a warrior woman in ornate steel plates and pauldrons, medieval knight", ("fantasy armor",),
      "Illustrious"),
    P("a paladin protected from head to toe by engraved metal", ("fantasy armor",), "Illustrious", hard=True),
    P("a teenage student in a sailor-collared blouse, pleated skirt and neckerchief", ("school uniform",),
      "SDXL 1.0"),
    P("a housekeeper in a black frilled servant's attire with a white pinafore", ("maid outfit",),
      "Illustrious", hard=True),
    P("a sorceress wearing a tall pointed wide-brimmed black cap", ("witch hat",), "SD 1.5"),
    P("a casino hostess in a strapless leotard with rabbit ears, fishnets and a bow tie", ("bunny suit",),
      "Pony"),
    P("a woman in a long-sleeved traditional Japanese silk robe tied with an obi sash", ("kimono",),
      "Illustrious"),
    P("a young lady at her coming-of-age ceremony, robe with very long swinging sleeves", ("kimono",),
      "Illustrious", hard=True),
    P("urban ninja streetwear, a black waterproof shell with straps, buckles and cargo pockets", ("techwear",),
      "Pony", hard=True),
    P("a bride in a flowing white gown at the altar", ("wedding dress",), "Pony"),
    P("a princess getting married in white lace", ("wedding dress",), "Pony", hard=True),
    # -- poses --------------------------------------------------------------------------------------------
    P("a girl glancing over her shoulder toward the viewer as she walks away", ("looking back",), "Illustrious"),
    P("a confident woman standing with one fist resting on her waist", ("hand on hip",), "Pony", hard=True),
    P("a girl seated on the floor with her knees folded", ("sitting",), "Illustrious"),
    P("a girl leaping high into the air, both feet off the ground", ("jumping",), "SDXL 1.0"),
    P("a girl holding up two fingers in a victory gesture beside her cheek", ("peace sign",), "Flux.1 D"),
    P("a girl forming a love symbol with her fingers and thumbs in front of her chest", ("heart hands",),
      "Pony", hard=True),
    P("a high-angle shot gazing down at a girl lying in the grass, bird's-eye perspective", ("from above",),
      "Pony"),
    P("a puzzled girl with her face tipped sideways, one ear toward her shoulder", ("head tilt",), "NoobAI",
      hard=True),
    # -- backgrounds --------------------------------------------------------------------------------------
    P("a girl reading among tall wooden shelves full of old books", ("library",), "Pony"),
    P("a girl standing on the roof of a tall building at dusk, the skyline behind a chain-link fence",
      ("rooftop",), "SD 1.5"),
    P("a crumbling stone temple swallowed by vines and moss in the jungle", ("ruins",), "Flux.1 D"),
    P("vermilion gates and stone lanterns at a sacred Japanese place in the woods", ("shrine",), "Flux.1 D",
      hard=True),
    P("a girl at a desk in front of a chalkboard, rows of desks behind her", ("classroom",), "Pony"),
    # -- detailers and sliders ----------------------------------------------------------------------------
    P("intricate, finely rendered small features and richer textures everywhere",
      ("add detail", "detail tweaker", "more details", "detail"), "Pony"),
    P("realistic pores, fine wrinkles and natural complexion on a close-up face", ("skin texture",),
      "Illustrious"),
    P("anatomically correct fingers, five per palm, no malformed digits", ("hand fix",), "Illustrious",
      hard=True),
    P("a bodybuilder with bulging biceps and a ripped physique", ("muscle",), "Pony"),
    P("make the character look older or younger", ("age",), "Pony", hard=True),
)

# ---------------------------------------------------------------------------------------------------------
# The oracle and the words a prompt may not use, from the generator's truth and tables only
# ---------------------------------------------------------------------------------------------------------

# Function words: they name nothing, so a prompt may share them with a trigger (`in the style of lineart`).
_FUNCTION_WORDS = frozenset("a an the of and or in on at to with for by from no not is".split())


def word_set(text: str) -> Set[str]:
    """Lower-case words of a text, `_` as space, camelCase and digit runs split (`GodRays` -> god, rays;
    `90sAnime` -> 90s, anime), function words and version tokens (`v2`, `000012`) left out."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text))
    found = set()
    for w in re.split(r"[^0-9a-z]+", spaced.replace("_", " ").lower()):
        if not w or w in _FUNCTION_WORDS or re.fullmatch(r"v?\d+(\.\d+)?|\d+", w):
            continue
        found.add(w)
    return found


def right_loras(truth: dict, paraphrase: Paraphrase) -> List[dict]:
    """The truth entries of the LoRAs that are right for a prompt: every non-video LoRA of its subjects."""
    wanted = set(paraphrase.subjects)
    return [t for t in truth["loras"] if t["subject"] in wanted and not t["video"]]


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def banned_words(truth: dict, paraphrase: Paraphrase) -> FrozenSet[str]:
    """What a prompt for these subjects may not say: the words of every right LoRA's triggers and file name,
    of the subject, its name words, its training set's own tag and its category's Civitai tag."""
    banned: Set[str] = set()
    rows = {row[0]: row for rows in SUBJECTS.values() for row in rows}
    characters = {row[0]: row for row in CHARACTERS}
    for subject in paraphrase.subjects:
        if subject in rows:
            name, triggers, name_words, own_tag = rows[subject]
            texts: Iterable[str] = (name, *triggers, name_words, own_tag)
        else:
            display, tag, _series, _look, _outfit = characters[subject]
            texts = (display, tag)
        for text in texts:
            banned |= word_set(text)
    for t in right_loras(truth, paraphrase):
        banned |= word_set(_stem(t["path"]))
        banned |= word_set(CIVITAI_TAGS[t["category"]])
        for trigger in t["triggers"]:
            banned |= word_set(trigger)
    return frozenset(banned)


def subjects_by_base(truth: dict) -> Dict[str, Set[str]]:
    """Subject -> the base models of its non-video LoRAs in this library."""
    found: Dict[str, Set[str]] = {}
    for t in truth["loras"]:
        if not t["video"]:
            found.setdefault(t["subject"], set()).add(t["base_model"])
    return found
