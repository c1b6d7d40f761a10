"""Sidecar readers: every variant users have, and damaged files that never stop a scan."""
from __future__ import annotations

import json

from lib_orchestrator.library.sidecars import civitai_facts, load_json, manager_facts, matrix_facts, user_facts

NEW_ERA = {
    "id": 1183765, "modelId": 1062418, "baseModel": "Illustrious",
    "trainedWords": ["frieren", "elf, pointy ears, white hair, twintails", " "],
    "model": {"name": "Frieren", "type": "LORA", "tags": ["character", "anime"]},
    "files": [{"type": "Training Data", "sizeKB": 10},
              {"type": "Model", "primary": True, "sizeKB": 223102.6875,
               "hashes": {"SHA256": "5A748DB12231F715F3365615E8C58C6FC90198F7FB567E96847CE34FCD9DDB65",
                          "AutoV3": "18CD6D156268"}}],
}


def load(tmp_path, content, name="x.json"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    notes = []
    return load_json(str(path), notes), notes


def test_clean_json_has_no_notes(tmp_path):
    assert load(tmp_path, '{"a": 1}') == ({"a": 1}, [])


def test_readable_oddities_are_read_with_a_note(tmp_path):
    assert load(tmp_path, b'\xef\xbb\xbf{"a": "\xc3\xa9"}') == ({"a": "é"}, ["starts with a UTF-8 byte order mark"])
    assert load(tmp_path, '{"a": 1}'.encode("utf-16")) == ({"a": 1}, ["UTF-16 encoded"])
    assert load(tmp_path, '{"a": [1, 2,], "b": 3,}') == ({"a": [1, 2], "b": 3}, ["trailing commas"])


def test_unreadable_files_give_none_and_say_why(tmp_path):
    for content, fragment in [(b"", "empty"), (b"\0\0\0", "empty"), ('{"a": 1', "invalid JSON"),
                              ("[1, 2]", "not a JSON object")]:
        obj, notes = load(tmp_path, content)
        assert obj is None and fragment in notes[0], (content, notes)


def test_civitai_new_era_file():
    facts = civitai_facts(NEW_ERA)
    assert facts.base_model == "Illustrious"
    assert facts.trained_words == ("frieren", "elf, pointy ears, white hair, twintails")
    assert facts.tags == ("character", "anime")
    assert (facts.model_id, facts.version_id, facts.size_kb) == (1062418, 1183765, 223102.6875)
    assert facts.sha256.startswith("5a748db1") and facts.autov3 == "18cd6d156268"


def test_civitai_skeletons_and_empty_objects_carry_no_facts():
    assert civitai_facts({}) is None
    assert civitai_facts({"id": "", "modelId": "", "baseModel": "Unknown", "skeleton_file": True}) is None


def test_civitai_old_era_without_primary_flag_uses_the_model_file():
    old = {"id": 5, "modelId": 2, "baseModel": "SD 1.5", "trainedWords": [],
           "files": [{"type": "Model", "sizeKB": 1.5, "hashes": {"SHA256": "AB" * 32}}],
           "images": [{"nsfw": "Soft"}], "stats": {"rating": 4.5}}
    facts = civitai_facts(old)
    assert facts.size_kb == 1.5 and facts.sha256 == "ab" * 32 and facts.autov3 == ""


def test_user_metadata_and_foreign_json():
    facts = user_facts({"activation text": "a || b", "preferred weight": "0.8", "sd version": "SDXL",
                        "negative text": "blurry"})
    assert (facts.activation_text, facts.preferred_weight, facts.sd_version, facts.negative_text) == \
        ("a || b", "0.8", "SDXL", "blurry")
    assert user_facts(NEW_ERA) is None  # a raw Civitai object saved as <stem>.json
    assert user_facts({**NEW_ERA, "description": "<p>from Civitai</p>"}) is None


def test_lora_manager_and_stability_matrix():
    lm = manager_facts({"sha256": "AA" * 32, "size": 10, "base_model": "Pony", "civitai": NEW_ERA,
                        "tags": ["style"], "usage_tips": json.dumps({"strength": 0.75})})
    assert (lm.sha256, lm.size, lm.base_model, lm.strength) == ("aa" * 32, 10, "Pony", 0.75)
    assert lm.civitai.base_model == "Illustrious"
    sm = matrix_facts({"BaseModel": "Pony", "TrainedWords": ["x"], "Tags": ["style"], "Hashes": {"SHA256": "BB"}})
    assert (sm.base_model, sm.trained_words, sm.tags, sm.sha256) == ("Pony", ("x",), ("style",), "bb")
