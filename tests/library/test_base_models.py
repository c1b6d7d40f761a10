"""Base models, families, exclusion and compatibility; categories."""
from __future__ import annotations

import pytest

from lib_orchestrator.library import base_models, categories, compatibility, family_of, is_excluded
from lib_orchestrator.library.header import Header


@pytest.mark.parametrize("base, family", [
    ("SD 1.5", "sd1"), ("SD 1.5 Hyper", "sd1"), ("SD 2.1 768", "sd2"), ("SDXL Lightning", "sdxl"), ("Pony", "sdxl"),
    ("Illustrious", "sdxl"), ("NoobAI", "sdxl"), ("Flux.1 D", "flux"), ("Flux.1 Krea", "flux"), ("SD 3.5", "sd3"),
    ("Wan Video 14B t2v", "video"), ("Hunyuan Video", "video"), ("Chroma", "unknown"), ("Unknown", "unknown"),
    ("Pony V7", "unknown"), ("Something New", "unknown"),
])
def test_families(base, family):
    assert family_of(base) == family


def test_exclusion():
    assert is_excluded("Wan Video 2.2 T2V-A14B") and is_excluded("Chroma") and is_excluded("Flux.2 D")
    assert not is_excluded("Pony") and not is_excluded("Unknown")


@pytest.mark.parametrize("lora, checkpoint, score", [
    ("SD 1.5", "SD 1.5 LCM", 1.0), ("SD 1.5", "SDXL 1.0", 0.0), ("Illustrious", "NoobAI", 1.0),
    ("Illustrious", "SDXL 1.0", 0.6), ("SDXL Lightning", "Pony", 0.6), ("Pony", "Illustrious", 0.3),
    ("Flux.1 S", "Flux.1 D", 1.0), ("Flux.1 D", "SDXL 1.0", 0.0), ("Unknown", "Unknown", 0.0),
    ("Wan Video", "Wan Video", 0.0),
])
def test_compatibility_is_hard_by_family_and_soft_by_lineage(lora, checkpoint, score):
    assert compatibility(lora, checkpoint) == score
    assert compatibility(checkpoint, lora) == score or is_excluded(checkpoint) or family_of(checkpoint) == "unknown"


def test_soft_scores_are_configurable():
    assert compatibility("Pony", "Illustrious", {frozenset({"pony", "illustrious"}): 0.9}) == 0.9


def test_normalise_keeps_unknown_strings():
    assert base_models.normalise(" sdxl  1.0 ") == "SDXL 1.0"
    assert base_models.normalise("ZImageTurbo") == "ZImageTurbo"
    assert base_models.normalise("") == "Unknown"


@pytest.mark.parametrize("meta, base", [
    ({"modelspec.architecture": "flux-1-schnell/lora"}, "Flux.1 S"),
    ({"modelspec.architecture": "stable-diffusion-3.5-large/lora"}, "SD 3.5"),
    ({"ss_base_model_version": "sdxl_base_v1-0"}, "SDXL 1.0"),
    ({"ss_base_model_version": "sd_v2_v"}, "SD 2.1"),
    ({"ss_v2": "True"}, "SD 2.1"),
    ({"ss_base_model_version": "sd_v1", "modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}, "SDXL 1.0"),
    ({"ss_network_dim": "8"}, None),
])
def test_base_model_from_header(meta, base):
    assert base_models.from_header(Header(meta)) == base


@pytest.mark.parametrize("keys, base", [
    (["lora_unet_double_blocks_0_img_attn_proj.lora_down.weight"], "Flux.1 D"),
    (["transformer.single_transformer_blocks.3.attn.to_k.lora_A.weight"], "Flux.1 D"),
    (["lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha"], "SDXL 1.0"),
    (["lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2.lora_up.weight"], "SD 1.5"),
    (["diffusion_model.blocks.0.self_attn.q.lora_A.weight"], "Wan Video"),
    (["emb_params"], None),
])
def test_base_model_from_tensor_keys(keys, base):
    assert base_models.from_tensor_keys(keys) == base


def test_base_model_from_the_nearest_folder():
    assert base_models.from_folders(("Pony", "character")) == "Pony"
    assert base_models.from_folders(("SDXL", "Illustrious")) == "Illustrious"
    assert base_models.from_folders(("_SDXL_1_0",)) == "SDXL 1.0"
    assert base_models.from_folders(("style", "anime")) is None


def test_categories_from_folders_tags_and_names():
    assert categories.from_folders(("Pony", "Character", "anime")) == "character"
    assert categories.from_folders(("style", "sliders")) == "style"  # the outermost wins
    assert categories.from_tags(["concept", "slider"]) == "slider"
    assert categories.from_tags(["tool", "style"]) == "detailer"
    assert categories.from_tags(["anime"]) is None
    assert categories.from_name("age_slider_v2") == "slider" and categories.from_name("add_detail") == "detailer"
