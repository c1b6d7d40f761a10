"""Categories scored from every signal (docs/lora-library.md §4). Expected values are written from the
contract by hand: the folder outvotes any one other signal, two or three that agree overrule it."""
from __future__ import annotations

import pytest

from lib_orchestrator.library.categories import classify, folder_name_key, qualifier
from lib_orchestrator.library.header import Header
from lib_orchestrator.library.resolve import resolve
from lib_orchestrator.library.sidecars import CivitaiFacts, Sidecars, UserFacts


@pytest.mark.parametrize("folders, category", [
    (("Illustrious", "chara"), "character"),
    (("_Pony", "char"), "character"),
    (("Artists",), "style"), (("artist", "wlop"), "style"),
    (("BG",), "background"), (("SDXL", "Backgrounds"), "background"),
    (("Outfits",), "clothing"), (("Costumes", "fantasy"), "clothing"),
    (("Effects",), "concept"), (("FX",), "concept"),
    (("Hands & Gestures",), "pose"), (("Poses",), "pose"), (("2. Poses",), "pose"),
    (("Tools",), "detailer"), (("Enhancers",), "detailer"),
    (("01 - Characters", "anime", "sousou no frieren"), "character"),
    (("character", "outfits"), "clothing"),  # the nearest category folder
    (("Sliders",), "slider"),
])
def test_folder_names_users_really_use(folders, category):
    assert classify(folders=folders) == (category, "folder")


@pytest.mark.parametrize("folders", [("Misc",), ("misc", "new"), ("Other",), ("_Other",)])
def test_a_misc_folder_says_nothing(folders):
    assert classify(folders=folders) == ("other", "none")
    assert classify(folders=("Characters",) + folders) == ("character", "folder")
    assert classify(folders=folders, names=["glitch_effect"]) == ("concept", "name")


@pytest.mark.parametrize("folders", [("Illustrious",), ("_Pony",), ("SDXL", "anime"), ("style sheet",), ()])
def test_base_model_and_other_folders_say_nothing(folders):
    assert classify(folders=folders) == ("other", "none")


def test_folder_names_are_read_whole():
    assert folder_name_key("Hands & Gestures") == "hands gestures"
    assert folder_name_key("01 - Characters") == "characters"
    assert folder_name_key("__Art_Style__") == "art style"


@pytest.mark.parametrize("triggers, category", [
    (["gotoh_hitori_(bocchi_the_rock)"], "character"),
    (["(gotoh_hitori_(bocchi_the_rock):1.2)", "pink hair"], "character"),
    (["hatsune miku (vocaloid)"], "character"),
    (["wlop_(artist)"], "style"),
    (["qipao"], "clothing"), (["fantasy armor"], "clothing"), (["school uniform"], "clothing"),
    (["witch hat"], "clothing"),
    (["library"], "background"), (["cyberpunk city street", "neon lights", "night"], "background"),
    (["shrine"], "background"), (["ancient ruins"], "background"),
    (["hand on hip", "looking back"], "pose"), (["sitting"], "pose"), (["jumping"], "pose"),
    (["lens flare"], "concept"), (["god rays"], "concept"), (["glitch"], "concept"),
    (["mksks style"], "style"),
    (["fern", "purple hair", "long hair", "black robe"], "character"),  # 2 appearance words against 1 robe
])
def test_triggers_vote(triggers, category):
    assert classify(triggers=triggers) == (category, "trigger")


def test_qualifiers():
    assert qualifier("gotoh_hitori_(bocchi_the_rock)") == "bocchi the rock"
    assert qualifier("(gotoh_hitori_(bocchi_the_rock):1.2)") == "bocchi the rock"
    assert qualifier(r"gotoh hitori \(bocchi the rock\)") == "bocchi the rock"
    assert qualifier("(frieren:1.2)") is None and qualifier("(frieren)") is None and qualifier("frieren") is None
    assert classify(triggers=["saber_(fate)_(cosplay)"]) == ("other", "none")


@pytest.mark.parametrize("name, category", [
    ("add_detail", "detailer"), ("DetailTweaker_xl", "detailer"), ("age_slider_v2", "slider"),
    ("watercolor_style", "style"), ("LookingBackPose", "pose"), ("lensFlare_pony", "concept"),
    ("qipao_IL", "clothing"), ("library_bg", "background"),
])
def test_names_vote(name, category):
    assert classify(names=[name]) == (category, "name")


def test_a_hairstyle_in_the_name_is_no_style_and_chat_no_hat():
    assert classify(names=["hairstyle_pack", "chat_bubble"]) == ("other", "none")


def test_training_tags_count_only_their_top_five_and_no_common_background():
    assert classify(training_tags=["1girl", "solo", "qipao", "china dress", "smile"]) == ("clothing", "training")
    assert classify(training_tags=["1girl", "solo", "simple background", "white background", "smile"]) == \
        ("other", "none")
    assert classify(training_tags=["1girl", "solo", "smile", "open mouth", "blush", "qipao"]) == ("other", "none")
    # appearance words do not count in training tags: every character dataset has hair colours
    assert classify(training_tags=["long hair", "blue eyes"]) == ("other", "none")


def test_civitai_tags_in_priority_order():
    assert classify(tags=["concept", "slider"]) == ("slider", "tags")
    assert classify(tags=["tool", "style"]) == ("detailer", "tags")
    assert classify(tags=["anime"]) == ("other", "none")


def test_a_folder_outvotes_one_signal_but_not_three():
    # 6 against 4: the folder
    assert classify(folders=("style",), tags=["character"]) == ("style", "folder")
    # 6 against 4 + 2: a tie the folder's single stronger vote wins
    assert classify(folders=("style",), tags=["clothing"], names=["qipao_v2"]) == ("style", "folder")
    # 6 against 4 + 2 + 1: overruled; the source is the winner's strongest vote
    assert classify(folders=("style",), tags=["clothing"], names=["qipao_v2"], triggers=["qipao"]) == \
        ("clothing", "tags")


def test_ties_between_votes_of_one_weight_go_by_category_order():
    # character (name 2) against clothing (name 2): style, character, concept, clothing … order
    assert classify(names=["character_outfit"]) == ("character", "name")


def test_trigger_votes_are_capped_at_three():
    triggers = ["dress", "hat", "boots", "gloves", "skirt"]  # 5 clothing triggers count 3
    assert classify(triggers=triggers, tags=["pose"]) == ("pose", "tags")  # 4 against 3


def test_the_resolver_scores_every_signal():
    side = Sidecars(civitai=CivitaiFacts(base_model="Illustrious", trained_words=("gotoh_hitori_(bocchi_the_rock)",)))
    r = resolve("chars/bocchi.safetensors", "bocchi", 10, Header({}, ()), side, ("chars",), None, [])
    assert (r.category, r.category_source) == ("character", "folder")
    r = resolve("Styles/bocchi.safetensors", "bocchi", 10, Header({}, ()), side, ("Styles",), None, [])
    # folder 6 against the qualifier's 4: the user's folder wins
    assert (r.category, r.category_source) == ("style", "folder")
    # `Misc` is where users drop what fits none of their folders: it says nothing, the trigger decides
    r = resolve("Misc/bocchi.safetensors", "bocchi", 10, Header({}, ()), side, ("Misc",), None, [])
    assert (r.category, r.category_source) == ("character", "trigger")
    r = resolve("x/bocchi.safetensors", "bocchi", 10, Header({}, ()), side, ("x",), None, [])
    assert (r.category, r.category_source) == ("character", "trigger")
    user = Sidecars(user=UserFacts(activation_text="hand on hip, looking back"))
    r = resolve("pose_v1.safetensors", "pose_v1", 10, Header({"ss_output_name": "hip pose"}, ()), user, (), None, [])
    # name 2 and triggers 1 + 1 for pose: each trigger is a vote of its own, the name's is the strongest
    assert (r.category, r.category_source) == ("pose", "name")


def test_a_weighted_trigger_is_read_without_its_weight():
    assert classify(triggers=["(white hair:1.2)", "(blue eyes:0.8)"]) == ("character", "trigger")
    assert classify(triggers=["(qipao:1.1)"]) == ("clothing", "trigger")
