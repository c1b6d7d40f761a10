"""The synthetic LoRA library generator itself: tests/library_fixtures.py (generate)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from collections import Counter
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

from tests.library_fixtures import generate

REPO = Path(__file__).resolve().parents[2]
CONTRACT = (REPO / "docs" / "lora-library.md").read_text(encoding="utf-8")

# Written out here (not imported) so that the generator is checked against the contract's words.
WARNING_CODES = {"partial_download", "not_safetensors", "corrupt_sidecar", "corrupt_header", "excluded_architecture",
                 "broken_preview", "stale_sidecar", "stem_collision", "alias_collision", "duplicate", "symlink_loop",
                 "base_model_conflict"}
BASE_SOURCES = {"civitai", "user_json", "header", "tensor_keys", "name", "folder", "none"}
TRUST = ["civitai", "user_json", "header", "tensor_keys", "name", "folder"]
CANDIDATE_FIELDS = {".civitai.info baseModel", ".metadata.json civitai.baseModel", ".metadata.json base_model",
                    ".cm-info.json BaseModel", "sd version", "modelspec.architecture", "ss_base_model_version", "ss_v2",
                    "ss_sd_model_name", "modelspec.title", "modelspec.description", "ss_output_name", "tensor keys",
                    "file name", "folder"}
CATEGORIES = {"style", "character", "concept", "clothing", "pose", "background", "detailer", "slider", "other"}
CATEGORY_SOURCES = {"folder", "tags", "trigger", "name", "training", "none"}
TRIGGER_SOURCES = {"user_json", "civitai", "modelspec", "dataset", None}
WEIGHT_SOURCES = {"user_json", "usage_tips", "modelspec", None}
FAMILIES = {"sd1", "sd2", "sdxl", "flux", "sd3", "video", "unknown"}
BASES = {"SD 1.5", "Pony", "Illustrious", "SDXL 1.0", "NoobAI", "Flux.1 D", "Flux.1 S", "SD 2.1", "SD 2.1 768",
         "SD 3.5", "SD 3.5 Large", "SDXL Lightning", "Wan Video", "Hunyuan Video", "LTXV", "Mochi", "Chroma",
         "Flux.2 D"}
FIELDS = {"path", "name", "is_lora", "alias", "base_model", "base_model_source", "family", "category",
          "category_source", "trigger_words", "trigger_source", "preferred_weight", "weight_source", "negative_text",
          "sha256", "true_sha256", "tensor_hash", "true_tensor_hash", "duplicate_group", "preview", "warnings",
          "excluded", "real_path", "base_model_candidates", "activation_text"}
LORA_EXTS = (".safetensors", ".pt", ".ckpt")
LISTED_EXTS = LORA_EXTS + (".part", ".tmp", ".crdownload", ".download", ".gguf", ".zip", ".bin", ".pth", ".onnx")
# Header readable, tensor data not (data_offsets past the end, or backwards): corrupt_header and excluded.
TRUNCATED = {"_unsorted/truncated_download.safetensors", "_unsorted/offsets_backwards.safetensors"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, dict]:
    root = tmp_path_factory.mktemp("tiny")
    return root, generate(root, "tiny", seed=0)


def by_path(manifest: dict) -> Dict[str, dict]:
    return {e["path"]: e for e in manifest["entries"]}


def loras(manifest: dict) -> List[dict]:
    return [e for e in manifest["entries"] if e["is_lora"]]


def tree_snapshot(lib: Path) -> List[Tuple[str, str, int]]:
    """(path, sha256, mtime) of every file and link under lib, without following links."""
    rows = []
    for folder, dirs, files in os.walk(lib):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            if path.is_symlink():
                rows.append((str(path.relative_to(lib)), "-> " + os.readlink(path), 0))
            elif path.is_file():
                rows.append((str(path.relative_to(lib)), hashlib.sha256(path.read_bytes()).hexdigest(),
                             int(path.stat().st_mtime)))
    return sorted(rows)


def listed_files(lib: Path) -> List[str]:
    """The files §1 lists: recursive, following symlinked folders, never re-entering a folder that is
    being walked (a symlink loop, which is listed itself, once). Paths relative to lib with "/" separators."""
    found: List[str] = []

    def walk(folder: Path, rel: str, active: Set[str]) -> None:
        real = os.path.realpath(folder)
        if real in active:
            found.append(rel)
            return
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=True):
                walk(Path(entry.path), child_rel, active | {real})
            elif entry.is_file(follow_symlinks=True) and entry.name.lower().endswith(LISTED_EXTS):
                found.append(child_rel)

    walk(lib, "", set())
    return found


# -- the manifest ---------------------------------------------------------------------------------

def test_manifest_is_written_outside_the_tree_and_equals_the_return_value(tiny):
    root, manifest = tiny
    assert json.loads((root / "manifest.json").read_text(encoding="utf-8")) == manifest
    assert manifest["root"] == "Lora"
    assert not list((root / "Lora").rglob("manifest.json"))


def test_tiny_has_60_to_200_loras(tiny):
    assert 60 <= len(loras(tiny[1])) <= 200


def test_every_entry_has_the_fields_and_sorted_warnings(tiny):
    for e in tiny[1]["entries"]:
        assert FIELDS <= set(e), e["path"]
        assert e["warnings"] == sorted(set(e["warnings"])), e["path"]
        assert set(e["warnings"]) <= WARNING_CODES, e["path"]
        assert "\\" not in e["path"] and not e["path"].startswith("/")
        assert e["excluded"] == ("excluded_architecture" in e["warnings"] or e["path"] in TRUNCATED), e["path"]


def test_the_warning_codes_listed_here_are_the_contracts():
    for code in WARNING_CODES:
        assert f"`{code}`" in CONTRACT, code


@pytest.mark.parametrize("field, values", [
    ("warnings", WARNING_CODES), ("base_model_source", BASE_SOURCES), ("category", CATEGORIES),
    ("category_source", CATEGORY_SOURCES), ("trigger_source", TRIGGER_SOURCES), ("weight_source", WEIGHT_SOURCES),
    ("family", FAMILIES),
])
def test_tiny_covers_every_value(tiny, field, values):
    seen = Counter()
    for e in loras(tiny[1]) if field != "warnings" else tiny[1]["entries"]:
        seen.update(e[field] if field == "warnings" else [e[field]])
    assert values <= set(seen), values - set(seen)


def test_tiny_covers_the_base_model_mix(tiny):
    seen = {e["base_model"] for e in loras(tiny[1])}
    assert BASES <= seen, BASES - seen


def test_entries_are_in_natural_order(tiny):
    def key(path: str) -> list:
        return [int(p) if i % 2 else p.lower() for i, p in enumerate(re.split(r"([0-9]+)", path))]
    paths = [e["path"] for e in tiny[1]["entries"]]
    assert paths == sorted(paths, key=lambda p: (key(p), p))


# -- the tree ---------------------------------------------------------------------------------------

def test_manifest_lists_exactly_the_files_the_listing_rules_find(tiny):
    root, manifest = tiny
    listed = listed_files(root / "Lora")
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(e["path"] for e in manifest["entries"])


def test_symlinked_folder_is_listed_once_and_the_loop_is_one_record(tiny):
    root, manifest = tiny
    lib = root / "Lora"
    assert (lib / "linked").is_symlink()
    assert os.path.realpath(lib / "linked") == str((root / "elsewhere" / "loras").resolve())
    assert os.path.realpath(lib / "concept" / "lighting" / "loop") == str((lib / "concept").resolve())
    paths = [e["path"] for e in manifest["entries"]]
    assert any(p.startswith("linked/") for p in paths)
    assert not any("/loop/" in p for p in paths)
    assert not any("not_in_library" in p for p in paths)
    loop = by_path(manifest)["concept/lighting/loop"]
    assert (loop["name"], loop["is_lora"], loop["warnings"], loop["excluded"]) == \
        ("loop", False, ["symlink_loop"], False)


def test_a_folder_linked_inside_the_library_is_listed_under_both_paths_and_is_not_its_own_twin(tiny):
    root, manifest = tiny
    lib = root / "Lora"
    assert (lib / "favourites").is_symlink()
    assert os.path.realpath(lib / "favourites") == str((lib / "Pony" / "characters" / "genshin").resolve())
    entries = by_path(manifest)
    twins = [p for p in entries if p.startswith("favourites/")]
    assert len(twins) == 2
    for path in twins:
        twin, real = entries[path], entries["Pony/characters/genshin/" + path.split("/", 1)[1]]
        assert twin["real_path"] == real["real_path"] == real["path"]
        assert os.path.samefile(lib / path, lib / real["path"])
        for e in (twin, real):
            assert not {"stem_collision", "alias_collision", "duplicate"} & set(e["warnings"]), e["path"]
            assert e["duplicate_group"] is None
        assert twin["preview"] == "favourites/" + real["preview"].rsplit("/", 1)[1]
        assert twin["true_sha256"] == real["true_sha256"] and twin["name"] == real["name"]
    hu_tao = entries["favourites/hu_tao_pony_v2.safetensors"]
    assert hu_tao["sha256"] and hu_tao["tensor_hash"]  # a scanner that compared listings would call it a duplicate
    assert entries["favourites/raiden_shogun-000012.safetensors"]["alias"] == "raiden shogun pony"


def test_tree_has_the_special_folders_and_names(tiny):
    root, manifest = tiny
    lib = root / "Lora"
    assert (lib / "empty").is_dir() and not list((lib / "empty").iterdir())
    paths = [e["path"] for e in manifest["entries"]]
    for needle in (".hidden/", "_unsorted/", "_SDXL_1_0/", "VTuber (JP)/", " ", "[", "&", "__", "胡桃", "🏴"):
        assert any(needle in p for p in paths), needle
    stems = [e["name"] for e in loras(manifest)]
    assert len({s.lower() for s in stems}) < len(set(stems))  # case-only differences exist


def test_mtimes_spread_over_years(tiny):
    years = {int(s[2]) // (365 * 86_400) for s in tree_snapshot(tiny[0] / "Lora") if s[2]}
    assert len(years) >= 3


# -- hashes -------------------------------------------------------------------------------------------

def test_true_sha256_is_the_hash_of_the_file(tiny):
    root, manifest = tiny
    for e in manifest["entries"]:
        if "symlink_loop" in e["warnings"]:
            assert e["true_sha256"] is None
            continue
        data = (root / "Lora" / e["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e["true_sha256"], e["path"]


def test_true_tensor_hash_is_the_hash_of_the_bytes_after_the_header(tiny):
    root, manifest = tiny
    checked = 0
    for e in manifest["entries"]:
        if e["true_tensor_hash"] is None:
            continue
        data = (root / "Lora" / e["path"]).read_bytes()
        (n,) = struct.unpack("<Q", data[:8])
        assert isinstance(json.loads(data[8:8 + n]), dict), e["path"]
        assert hashlib.sha256(data[8 + n:]).hexdigest() == e["true_tensor_hash"], e["path"]
        checked += 1
    assert checked > 50


def test_every_readable_safetensors_has_a_true_tensor_hash(tiny):
    for e in loras(tiny[1]):
        readable = e["path"].lower().endswith(".safetensors") and (e["path"] in TRUNCATED or not {
            "corrupt_header", "not_safetensors"} & set(e["warnings"]))
        assert (e["true_tensor_hash"] is not None) == readable, e["path"]


def test_header_tensor_hashes_are_true_except_for_the_truncated_file(tiny):
    wrong = [e["path"] for e in loras(tiny[1]) if e["tensor_hash"] and e["tensor_hash"] != e["true_tensor_hash"]]
    assert wrong == ["_unsorted/truncated_download.safetensors"]


def test_known_sha256_is_true_except_for_the_small_resave(tiny):
    # A header edit under 1 KiB keeps the copied .civitai.info within the size tolerance: by the rules
    # its SHA256 (the original file's) is reported, although it is not this file's.
    wrong = [e["path"] for e in loras(tiny[1]) if e["sha256"] and e["sha256"] != e["true_sha256"]]
    assert wrong == ["SDXL/tifa_sdxl_swarm.safetensors"]


def test_duplicates_share_a_known_hash(tiny):
    groups: Dict[str, List[dict]] = {}
    for e in loras(tiny[1]):
        assert ("duplicate" in e["warnings"]) == (e["duplicate_group"] is not None), e["path"]
        if e["duplicate_group"]:
            groups.setdefault(e["duplicate_group"], []).append(e)
    assert len(groups) >= 3 and all(len(g) >= 2 for g in groups.values())
    assert any(g[0]["true_sha256"] != g[1]["true_sha256"] for g in groups.values())  # same tensors, new header
    ai_toolkit = [e for e in loras(tiny[1]) if e["path"].startswith("background/") and e["family"] == "flux"]
    assert len(ai_toolkit) >= 2 and all(e["tensor_hash"] is None for e in ai_toolkit)  # e3b0… is no hash


def has_image_magic(data: bytes) -> bool:
    magic = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
    return data.startswith(magic) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def test_previews_exist_and_have_image_magic(tiny):
    root, manifest = tiny
    previews = [e["preview"] for e in manifest["entries"] if e["preview"]]
    assert len(previews) > 20
    for rel in previews:
        assert has_image_magic((root / "Lora" / rel).read_bytes()), rel


def test_undecodable_previews_have_the_magic_and_are_broken(tiny):
    root, manifest = tiny
    undecodable = manifest["undecodable_previews"]
    kinds = {Path(p).suffix.lower() for p in undecodable}
    assert kinds == {".png", ".jpg", ".webp"}
    by_stem = {}
    for e in loras(manifest):
        folder = e["path"].rsplit("/", 1)[0]
        by_stem[f"{folder}/{e['name']}"] = e
    for rel in undecodable:
        assert has_image_magic((root / "Lora" / rel).read_bytes()), rel
        owner = by_stem[rel.split(".", 1)[0]]
        assert owner["preview"] is None and "broken_preview" in owner["warnings"], rel


def test_pillow_decodes_every_preview_and_none_of_the_undecodable_ones(tiny):
    image = pytest.importorskip("PIL.Image")
    root, manifest = tiny

    def decodes(rel: str) -> bool:
        try:
            with image.open(root / "Lora" / rel) as im:
                im.verify()
            return True
        except Exception:  # Pillow raises several types for bad bytes; any of them means "broken"
            return False
    previews = {e["preview"] for e in manifest["entries"] if e["preview"]}
    assert [p for p in sorted(previews) if not decodes(p)] == []
    assert [p for p in manifest["undecodable_previews"] if decodes(p)] == []


# -- a few contract cases, spelled out ----------------------------------------------------------------

@pytest.mark.parametrize("path, expected", [
    ("character/anime/sousou no frieren/Frieren IL v2.safetensors",
     {"base_model": "Illustrious", "base_model_source": "civitai", "alias": "frieren_illustrious_v2"}),
    # a coarse user json (sd version: SDXL) refined by the checkpoint kohya names in the header
    ("character/game/2B (NieR) __ v3.safetensors", {"base_model": "Pony", "base_model_source": "header"}),
    ("character/original/oc_aria.safetensors", {"base_model": "SDXL 1.0", "base_model_source": "header"}),
    ("Illustrious/NoobAI/broken_header_noob.safetensors",  # the name (noob) is more trusted than the folders
     {"base_model": "NoobAI", "base_model_source": "name", "warnings": ["corrupt_header"]}),
    ("_Other/wan_motion_lora.safetensors",
     {"base_model": "Wan Video", "base_model_source": "tensor_keys", "family": "video", "excluded": True}),
    ("_unsorted/truncated_download.safetensors",
     {"warnings": ["corrupt_header"], "excluded": True, "base_model": "SDXL 1.0", "base_model_source": "header"}),
    ("_unsorted/offsets_backwards.safetensors",
     {"warnings": ["corrupt_header"], "excluded": True, "base_model": "SD 1.5", "base_model_source": "header"}),
    ("style/anime/._mksks style.safetensors",
     {"is_lora": False, "name": "._mksks style", "warnings": ["not_safetensors"], "excluded": False}),
    ("Pony/._add_detail.safetensors", {"is_lora": False, "warnings": ["not_safetensors"], "alias": None}),
    ("concept/composition/double_exposure_v1.safetensors",
     {"alias": "DoubleExposure", "warnings": ["alias_collision"]}),
    ("SDXL/double_exposure_xl.safetensors", {"alias": "doubleexposure", "warnings": ["alias_collision"]}),
    ("style/anime/lineart_a.safetensors", {"alias": "lineart", "warnings": ["alias_collision"]}),
    ("Illustrious/style/lineart_b.safetensors", {"alias": "lineart", "warnings": ["alias_collision"]}),
    ("_unsorted/sd2_old_kohya.safetensors", {"preview": None, "warnings": ["broken_preview"]}),
    ("SD15/zip_renamed.safetensors", {"is_lora": True, "warnings": ["not_safetensors"]}),
    ("slider/age_slider_v2.safetensors", {"preferred_weight": -2.0, "weight_source": "user_json"}),
    ("character/anime/sousou no frieren/fern_v1.safetensors",
     {"trigger_words": ["fern", "purple hair", "long hair", "black robe", "(fern:1.2)"],
      "activation_text": ["fern, purple hair, long hair", "fern, black robe", "(fern:1.2)"],
      "trigger_source": "user_json", "preferred_weight": 0.7, "weight_source": "usage_tips"}),
    ("Pony/add_detail.safetensors", {"warnings": ["stem_collision"], "duplicate_group": None}),  # same stem=alias
    # an alias that is exactly its own stem still clashes with another file's same alias (a renamed copy)
    ("_unsorted/frieren_illustrious_v2.safetensors", {"alias": "frieren_illustrious_v2",
                                                      "warnings": ["alias_collision", "duplicate"]}),
])
def test_contract_cases(tiny, path, expected):
    entry = by_path(tiny[1])[path]
    assert {k: entry[k] for k in expected} == expected


def lineage(path: str, base: str, source: str, **more) -> tuple:
    return path, {"base_model": base, "base_model_source": source, **more}


# Worked out by hand from docs/lora-library.md §3-§5 (the generator computes them by its own code).
@pytest.mark.parametrize("path, expected", [
    # lineage in one place only
    lineage("_unsorted/chun-li_v3.safetensors", "Pony", "header"),            # ss_sd_model_name ponyDiffusionV6XL…
    lineage("_unsorted/chun-li_v4.safetensors", "Illustrious", "header"),     # …/illustriousXL_v01.safetensors
    lineage("_unsorted/chun-li_v5.safetensors", "NoobAI", "header"),          # noobaiXLNAIXL_vPred10Version
    lineage("_unsorted/chun-li_v6.safetensors", "Pony", "header"),            # modelspec.title … | PDXL
    lineage("_unsorted/chun-li_v7.safetensors", "Illustrious", "header"),     # modelspec.description
    lineage("_unsorted/chunli_renamed.safetensors", "NoobAI", "header"),      # ss_output_name chunli_noob_v1
    lineage("_unsorted/[PDXL] Chun-Li (Street Fighter) v3.safetensors", "Pony", "name"),
    lineage("_unsorted/qipao_dress_ponyXL-000012.safetensors", "Pony", "name", category="clothing"),
    lineage("_unsorted/hu_tao_pony_v6.safetensors", "Pony", "name"),
    lineage("_unsorted/frieren_IL_v2.safetensors", "Illustrious", "name"),
    lineage("_unsorted/makima_ILXL.safetensors", "Illustrious", "name"),
    lineage("_unsorted/Furina_IllustriousXL.safetensors", "Illustrious", "name"),
    lineage("_unsorted/Hitori_Gotoh_NAI-XL.safetensors", "NoobAI", "name"),
    lineage("_unsorted/marin_noob_eps.safetensors", "NoobAI", "name"),
    lineage("_unsorted/ILLUMINATION_lighting_xl.safetensors", "SDXL 1.0", "header"),  # no IL in ILLUMINATION
    lineage("_unsorted/ponytail_slider_xl.safetensors", "SDXL 1.0", "header", category="slider"),
    lineage("_unsorted/frieren_nai.safetensors", "SD 1.5", "header"),         # nai alone is NovelAI's SD1
    lineage("Illustrious/chara/fern_ilxl_test.safetensors", "Illustrious", "name", category="character",
            category_source="folder"),                                     # user json SDXL refined
    lineage("Illustrious/chara/hu_tao.safetensors", "Illustrious", "folder", category="character"),
    lineage("_Pony/Outfits/bunny_suit.safetensors", "Pony", "folder", category="clothing", category_source="folder"),
    lineage("SDXL - Illustrious/2. Poses/looking_back.safetensors", "Illustrious", "folder", category="pose"),
    lineage("_unsorted/makima_header_title.safetensors", "Illustrious", "header", warnings=[]),
    # conflicts between specific sources keep the higher one, and say so
    lineage("_unsorted/conflict_pony_vs_naixl.safetensors", "Pony", "civitai", warnings=["base_model_conflict"]),
    lineage("_unsorted/conflict_sd15_civitai.safetensors", "SDXL 1.0", "tensor_keys",
            warnings=["base_model_conflict"]),
    # SD2 768-v, Flux S vs D
    lineage("_unsorted/sd21_768_kohya.safetensors", "SD 2.1 768", "header", family="sd2"),
    lineage("_unsorted/sd2_old_kohya.safetensors", "SD 2.1", "header", family="sd2"),
    lineage("_unsorted/flux_schnell_anime_aitk.safetensors", "Flux.1 S", "name", family="flux"),
    lineage("Flux/schnell/fast_sketch_schnell.safetensors", "Flux.1 S", "header", family="flux"),
    lineage("_unsorted/flux_dev_kohya.safetensors", "Flux.1 D", "header", family="flux"),
    # video LoRAs by their tensor keys
    lineage("_Other/video/hunyuan_musubi_dance.safetensors", "Hunyuan Video", "tensor_keys", excluded=True),
    lineage("_Other/video/hunyuan_pipe_walk.safetensors", "Hunyuan Video", "tensor_keys", excluded=True),
    lineage("_Other/video/hunyuan_attn_only.safetensors", "Flux.1 D", "tensor_keys", excluded=False),
    lineage("_Other/video/hunyuan_attn_only_civitai.safetensors", "Hunyuan Video", "civitai", excluded=True),
    lineage("_Other/video/ltxv_camera_orbit.safetensors", "LTXV", "tensor_keys", family="video", excluded=True),
    lineage("_Other/video/mochi_diffusers_pan.safetensors", "Mochi", "tensor_keys", excluded=True),
    lineage("_Other/video/mochi_genmo_smoke.safetensors", "Mochi", "tensor_keys", excluded=True),
    lineage("_Other/video/wan_musubi_i2v.safetensors", "Wan Video 14B i2v 480p", "civitai", family="video"),
    lineage("_Other/video/wan_diffusers_t2v.safetensors", "Wan Video", "tensor_keys", excluded=True),
    lineage("Pony/video_lora_in_pony.safetensors", "Wan Video", "tensor_keys",
            warnings=["base_model_conflict", "excluded_architecture"]),
    lineage("Flux/flux2_klein_test.safetensors", "Flux.2 D", "civitai", excluded=True),
])
def test_base_model_cases(tiny, path, expected):
    entry = by_path(tiny[1])[path]
    assert {k: entry[k] for k in expected} == expected


@pytest.mark.parametrize("path, category, source", [
    ("SD15/Artists/ciloranko.safetensors", "style", "folder"),
    ("Effects/GodRays_XL.safetensors", "concept", "folder"),
    ("FX/glitch_v1.safetensors", "concept", "folder"),
    ("Hands & Gestures/heart_hands_sd15.safetensors", "pose", "folder"),
    ("BG/ruins_background_ponyXL.safetensors", "background", "folder"),
    ("Costumes/witch_hat_il.safetensors", "clothing", "folder"),
    ("Tools/better_hands_v2.safetensors", "detailer", "folder"),
    ("Enhancers/skin_texture_xl.safetensors", "detailer", "folder"),
    ("Misc/thing_v2.safetensors", "other", "none"),  # Misc says nothing; no other signal
    ("01 - Characters/frieren_sd15.safetensors", "character", "folder"),
    ("_unsorted/bocchi_v1.safetensors", "character", "trigger"),               # a booru name_(series) trigger
    ("_unsorted/hatsune miku (vocaloid) pdxl.safetensors", "character", "trigger"),  # escaped \( \)
    ("_unsorted/pose_pack_v2.safetensors", "pose", "name"),                    # pose (name) + 2 pose triggers
    ("_unsorted/lens_flare_sd15.safetensors", "concept", "name"),
    ("_unsorted/library_bg_xl.safetensors", "background", "name"),
    ("_unsorted/lora_4420.safetensors", "pose", "trigger"),                   # dataset triggers hold pose words
    ("_unsorted/[PDXL] Chun-Li (Street Fighter) v3.safetensors", "background", "name"),  # "street": a guess
])
def test_category_cases(tiny, path, category, source):
    entry = by_path(tiny[1])[path]
    assert (entry["category"], entry["category_source"]) == (category, source)


@pytest.mark.parametrize("path, triggers, activation", [
    ("_unsorted/bocchi_v1.safetensors", ["(gotoh_hitori_(bocchi_the_rock):1.2)", "solo", "pink hair"],
     ["(gotoh_hitori_(bocchi_the_rock):1.2), solo, pink hair"]),
    ("_unsorted/pose_pack_v2.safetensors", ["hand on hip", "looking back"], ["hand on hip, looking back"]),
    ("_unsorted/lens_flare_sd15.safetensors", ["lens flare", "god rays"], ["lens flare, god rays"]),
    ("_unsorted/hatsune miku (vocaloid) pdxl.safetensors", ["hatsune miku \\(vocaloid\\)", "twintails", "aqua hair"],
     ["hatsune miku \\(vocaloid\\), twintails, aqua hair"]),
    ("Flux/flux_trigger_phrase.safetensors", ["holographic foil", "iridescent"], ["holographic foil, iridescent"]),
])
def test_trigger_cases(tiny, path, triggers, activation):
    entry = by_path(tiny[1])[path]
    assert (entry["trigger_words"], entry["activation_text"]) == (triggers, activation)


def test_base_model_candidates_are_in_trust_order_and_name_their_field(tiny):
    for e in loras(tiny[1]):
        cands = e["base_model_candidates"]
        assert [TRUST.index(c["source"]) for c in cands] == sorted(TRUST.index(c["source"]) for c in cands), e["path"]
        for c in cands:
            assert set(c) == {"source", "value", "specificity", "field"}, e["path"]
            assert c["field"] in CANDIDATE_FIELDS and c["specificity"] in ("family", "lineage"), e["path"]
        if e["base_model_source"] != "none":
            assert any(c["source"] == e["base_model_source"] and c["value"] == e["base_model"] for c in cands)
        else:
            assert not cands and e["base_model"] == "Unknown"
    chun = by_path(tiny[1])["_unsorted/chun-li_v3.safetensors"]["base_model_candidates"]
    assert {"source": "header", "value": "Pony", "specificity": "lineage", "field": "ss_sd_model_name"} in chun
    assert {"source": "header", "value": "SDXL 1.0", "specificity": "family", "field": "ss_base_model_version"} in chun


def test_activation_text_splits_into_the_trigger_words(tiny):
    for e in loras(tiny[1]):
        assert bool(e["activation_text"]) == bool(e["trigger_words"]), e["path"]
        joined = ", ".join(e["activation_text"]).lower()
        assert all(t.lower() in joined for t in e["trigger_words"]), e["path"]
        assert len({t.lower() for t in e["trigger_words"]}) == len(e["trigger_words"]), e["path"]


def test_partial_downloads_other_model_files_appledouble_and_loops_are_not_loras(tiny):
    others = [e for e in tiny[1]["entries"] if not e["is_lora"]]
    codes = Counter(c for e in others for c in e["warnings"])
    assert codes == {"partial_download": 4, "not_safetensors": 3 + 3, "symlink_loop": 1}
    apple = [e["path"] for e in others if e["name"].startswith("._")]
    assert len(apple) == 3 and all(e["warnings"] == ["not_safetensors"] for e in others if e["path"] in apple)


def test_appledouble_files_hold_appledouble_bytes_or_a_valid_header(tiny):
    root, manifest = tiny
    for e in manifest["entries"]:
        if e["name"].startswith("._"):
            data = (root / "Lora" / e["path"]).read_bytes()
            (n,) = struct.unpack("<Q", data[:8])
            assert data[:4] == b"\x00\x05\x16\x07" or isinstance(json.loads(data[8:8 + n]), dict), e["path"]


# -- determinism and sizes -------------------------------------------------------------------------------

def test_same_seed_gives_the_same_library(tiny, tmp_path):
    root, manifest = tiny
    again = generate(tmp_path, "tiny", seed=0)
    assert again == manifest
    assert tree_snapshot(tmp_path / "Lora") == tree_snapshot(root / "Lora")


def test_another_seed_gives_another_library(tiny, tmp_path):
    other = generate(tmp_path, "tiny", seed=1)
    assert [e["true_sha256"] for e in other["entries"]] != [e["true_sha256"] for e in tiny[1]["entries"]]


def test_a_number_gives_that_many_loras_with_every_warning(tmp_path):
    manifest = generate(tmp_path, 2000, seed=3)
    assert len({e["real_path"] for e in loras(manifest)}) == 2000
    assert len(loras(manifest)) == 2002  # two of them are listed twice (through favourites/)
    # plus 4 partial downloads, 3 other model files, 3 AppleDouble files and the loop
    assert len(manifest["entries"]) == 2013
    assert WARNING_CODES <= {c for e in manifest["entries"] for c in e["warnings"]}
    assert sorted(listed_files(tmp_path / "Lora")) == sorted(e["path"] for e in manifest["entries"])


def test_small_numbers_give_only_the_random_mix(tmp_path):
    manifest = generate(tmp_path, 25, seed=0)
    assert len(manifest["entries"]) == len(loras(manifest)) == 25


@pytest.mark.parametrize("size", ["huge", 0, -5, True, 2.5])
def test_bad_size_is_refused(tmp_path, size):
    with pytest.raises(ValueError):
        generate(tmp_path, size)


def test_existing_library_is_not_overwritten(tmp_path):
    (tmp_path / "Lora").mkdir()
    with pytest.raises(FileExistsError):
        generate(tmp_path)
