"""Base models: families, exclusion and compatibility; the candidates each source gives, name tokens,
tensor-key layouts, and how the candidates become one base model (docs/lora-library.md §3).

Expected values are written out by hand from the contract, never taken from the product's tables.
"""
from __future__ import annotations

from typing import Dict, Sequence

import pytest

from lib_orchestrator.library import base_models, compatibility, family_of, is_excluded
from lib_orchestrator.library.header import Header
from lib_orchestrator.library.resolve import resolve
from lib_orchestrator.library.sidecars import CivitaiFacts, ManagerFacts, Sidecars, UserFacts

SD1_KEYS = ("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
            "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2.lora_up.weight")
SDXL_KEYS = ("lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha",
             "lora_unet_output_blocks_5_1_transformer_blocks_1_ff_net_2.lora_up.weight")
FLUX_KEYS = tuple(f"lora_unet_double_blocks_{i}_img_attn_qkv.lora_down.weight" for i in range(19)) + \
    tuple(f"lora_unet_single_blocks_{i}_linear1.lora_down.weight" for i in range(38))


@pytest.mark.parametrize("base, family", [
    ("SD 1.5", "sd1"), ("SD 1.5 Hyper", "sd1"), ("SD 2.1 768", "sd2"), ("SDXL Lightning", "sdxl"), ("Pony", "sdxl"),
    ("Illustrious", "sdxl"), ("NoobAI", "sdxl"), ("Flux.1 D", "flux"), ("Flux.1 Krea", "flux"), ("SD 3.5", "sd3"),
    ("Wan Video 14B t2v", "video"), ("Hunyuan Video", "video"), ("LTXV 2.3", "video"), ("Mochi", "video"),
    ("Chroma", "unknown"), ("Unknown", "unknown"), ("Pony V7", "unknown"), ("Something New", "unknown"),
])
def test_families(base, family):
    assert family_of(base) == family


def test_exclusion():
    assert is_excluded("Wan Video 2.2 T2V-A14B") and is_excluded("Chroma") and is_excluded("Flux.2 D")
    assert is_excluded("LTXV") and is_excluded("Hunyuan Video") and is_excluded("Mochi")
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


# -- what the header says -----------------------------------------------------------------------------
@pytest.mark.parametrize("meta, said", [
    ({"modelspec.architecture": "flux-1-schnell/lora"}, [("Flux.1 S", "lineage", "modelspec.architecture")]),
    ({"modelspec.architecture": "flux-1-dev/lora"}, [("Flux.1 D", "lineage", "modelspec.architecture")]),
    ({"modelspec.architecture": "flux-1/lora"}, [("Flux.1 D", "family", "modelspec.architecture")]),
    ({"ss_base_model_version": "flux1"}, [("Flux.1 D", "family", "ss_base_model_version")]),
    ({"modelspec.architecture": "stable-diffusion-3-5-large/lora"},
     [("SD 3.5 Large", "lineage", "modelspec.architecture")]),
    ({"modelspec.architecture": "stable-diffusion-3.5-medium/lora"},
     [("SD 3.5 Medium", "lineage", "modelspec.architecture")]),
    ({"modelspec.architecture": "stable-diffusion-3-m/lora"}, [("SD 3", "lineage", "modelspec.architecture")]),
    ({"modelspec.architecture": "stable-diffusion-3/lora"}, [("SD 3.5", "family", "modelspec.architecture")]),
    ({"modelspec.architecture": "stable-diffusion-v2-768-v/lora"},
     [("SD 2.1 768", "lineage", "modelspec.architecture")]),
    ({"ss_base_model_version": "sd_v2_v"}, [("SD 2.1 768", "lineage", "ss_base_model_version")]),
    ({"ss_v2": "True", "ss_v_parameterization": "True"}, [("SD 2.1 768", "lineage", "ss_v2")]),
    ({"ss_v2": "True"}, [("SD 2.1", "family", "ss_v2")]),
    ({"ss_v2": "False"}, []),
    ({"ss_base_model_version": "sdxl_base_v1-0",
      "ss_sd_model_name": "ponyDiffusionV6XL_v6StartWithThisOne.safetensors"},
     [("SDXL 1.0", "family", "ss_base_model_version"), ("Pony", "lineage", "ss_sd_model_name")]),
    ({"modelspec.title": "frieren_illustrious_v2", "ss_output_name": "frieren NAI-XL"},
     [("Illustrious", "lineage", "modelspec.title"), ("NoobAI", "lineage", "ss_output_name")]),
    ({"modelspec.description": "works on pony and illustrious"}, []),
    ({"ss_network_dim": "8"}, []),
])
def test_header_candidates(meta, said):
    found = base_models.header_candidates(meta)
    assert [(c.value, c.specificity, c.field) for c in found] == said
    assert all(c.source == "header" for c in found)


# -- names ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, said", [
    ("ponyDiffusionV6XL_v6StartWithThisOne.safetensors", ("Pony", "lineage")),
    ("Illustrious-XL-v0.1.safetensors", ("Illustrious", "lineage")),
    ("noobaiXLNAIXL_epsilonPred10Version.safetensors", ("NoobAI", "lineage")),
    ("waiNSFWIllustrious_v110", ("Illustrious", "lineage")),
    ("hassakuXLIllustrious_v13StyleA", ("Illustrious", "lineage")),
    ("autismmixSDXL_autismmixPony", ("Pony", "lineage")),
    ("autismmixSDXL_autismmixConfetti", ("Pony", "lineage")),
    ("Frieren IL v2", ("Illustrious", "lineage")),
    ("frieren_ILXL", ("Illustrious", "lineage")),
    ("frieren_IllustriousXL_v1", ("Illustrious", "lineage")),
    ("gothic_dress_PDXL", ("Pony", "lineage")),
    ("gothicDress_ponyXL", ("Pony", "lineage")),
    ("gothic_dress_pony_v6", ("Pony", "lineage")),
    ("fern-NAI-XL-v1", ("NoobAI", "lineage")),
    ("fern_noob_eps", ("NoobAI", "lineage")),
    ("NoobAI-XL Illustrious merge", ("NoobAI", "lineage")),
    ("flux1-schnell-lora", ("Flux.1 S", "lineage")),
    ("FLUX.1-dev_style", ("Flux.1 D", "lineage")),
    ("style_sd3.5_large", ("SD 3.5 Large", "lineage")),
    ("v2-1_768-ema-pruned.safetensors", ("SD 2.1 768", "lineage")),
    ("watercolor_sdxl", ("SDXL 1.0", "family")),
    ("watercolor_sd15", ("SD 1.5", "family")),
    ("ILLUMINATION_lighting_concept", None),  # `il` is a token, never a fragment
    ("illumination", None),
    ("pony_and_illustrious_mix", None),  # two lineages: nothing
    ("nai_style", None),  # NovelAI's leak was SD1: `nai` alone is no lineage
    ("wai_style", None),
    ("ponytail", None),
    ("PonyTail_hairstyle_xl", ("SDXL 1.0", "family")),  # the camel-case split word is made whole again
    ("pony_tails_sdxl", ("SDXL 1.0", "family")),
    ("pony_tail_ponyXL", ("Pony", "lineage")),
    ("", None),
])
def test_lineage_and_family_from_a_name(text, said):
    found = base_models.name_evidence(text)
    assert (found[:2] if found else None) == said


def test_name_tokens_split_like_a_name():
    assert base_models.name_tokens("ponyDiffusionV6XL_v6") == ["pony", "diffusion", "v6xl", "v6"]
    assert base_models.name_tokens("hassakuXLIllustrious") == ["hassaku", "xl", "illustrious"]
    assert base_models.name_tokens("Frieren IL v2") == ["frieren", "il", "v2"]


def test_folder_candidates_nearest_first_whole_names_then_tokens():
    found = base_models.folder_candidates(("_SDXL_1_0", "Pony", "IL styles", "chara"))
    assert [(c.value, c.specificity, c.evidence) for c in found] == [
        ("Illustrious", "lineage", "IL styles"), ("Pony", "lineage", "Pony"), ("SDXL 1.0", "family", "_SDXL_1_0")]
    assert base_models.folder_candidates(("style", "anime")) == []
    assert [c.value for c in base_models.folder_candidates(("Flux1S",))] == ["Flux.1 S"]
    # any name term is also a whole folder name: four tokens would not join by tokens
    assert [c.value for c in base_models.folder_candidates(("SD_3_5_Large",))] == ["SD 3.5 Large"]
    assert [c.value for c in base_models.folder_candidates(("1.5",))] == ["SD 1.5"]


# -- tensor keys ------------------------------------------------------------------------------------
def _flux_diffusers(doubles: int, singles: int) -> tuple:
    return tuple(f"transformer.transformer_blocks.{i}.attn.to_q.lora_A.weight" for i in range(doubles)) + \
        tuple(f"transformer.single_transformer_blocks.{i}.attn.to_k.lora_A.weight" for i in range(singles))


@pytest.mark.parametrize("keys, layout, value", [
    (SD1_KEYS, "sd1", "SD 1.5"),
    (("lora_te_text_model_encoder_layers_22_mlp_fc1.lora_down.weight",
      "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"), "sd2", "SD 2.1"),
    (("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",), "sd1_or_sd2",
     "SD 1.5"),
    (SDXL_KEYS, "sdxl", "SDXL 1.0"),
    (("lora_unet_down_blocks_2_attentions_1_transformer_blocks_9_attn2_to_v.lora_up.weight",), "sdxl", "SDXL 1.0"),
    (("unet.down_blocks.2.attentions.1.transformer_blocks.3.attn1.to_q.lora_A.weight",), "sdxl", "SDXL 1.0"),
    (("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight",
      "text_encoder.text_model.encoder.layers.5.self_attn.q_proj.lora_A.weight"), "sd1", "SD 1.5"),
    (FLUX_KEYS, "flux", "Flux.1 D"),
    (("lora_unet_double_blocks_0_img_mod_lin.lora_down.weight",
      "lora_unet_single_blocks_0_modulation_lin.lora_down.weight"), "flux", "Flux.1 D"),
    (_flux_diffusers(19, 38), "flux", "Flux.1 D"),
    (("diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight",), "flux", "Flux.1 D"),
    (tuple(f"lora_unet_single_blocks_{i}_linear1.lora_down.weight" for i in range(48)), "flux", "Flux.1 D"),  # Flux.2
    # Hunyuan Video: its module names, or its 20 double / 40 single blocks
    (("lora_unet_double_blocks_0_img_mlp_fc1.lora_down.weight",), "hunyuan_video", "Hunyuan Video"),
    (("lora_unet_double_blocks_3_img_mod_linear.lora_down.weight",), "hunyuan_video", "Hunyuan Video"),
    (("lora_unet_single_blocks_3_modulation_linear.lora_down.weight",), "hunyuan_video", "Hunyuan Video"),
    (("diffusion_model.double_blocks.0.img_attn_qkv.lora_A.weight",), "hunyuan_video", "Hunyuan Video"),
    (tuple(f"lora_unet_double_blocks_{i}_img_attn_qkv.lora_down.weight" for i in range(20)), "hunyuan_video",
     "Hunyuan Video"),
    (tuple(f"lora_unet_single_blocks_{i}_linear1.lora_down.weight" for i in range(40)), "hunyuan_video",
     "Hunyuan Video"),
    (_flux_diffusers(20, 40), "hunyuan_video", "Hunyuan Video"),
    (("transformer.context_embedder.token_refiner.blocks.0.attn.to_q.lora_A.weight",
      "transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight"), "hunyuan_video", "Hunyuan Video"),
    # Wan: original, musubi (kohya-style) and diffusers names
    (("diffusion_model.blocks.0.self_attn.q.lora_A.weight",), "wan", "Wan Video"),
    (("lora_unet_blocks_0_cross_attn_k.lora_down.weight",), "wan", "Wan Video"),
    (("transformer.blocks.0.attn1.to_q.lora_A.weight", "transformer.blocks.0.ffn.net.0.proj.lora_A.weight"), "wan",
     "Wan Video"),
    # LTX Video (diffusers / LTX-Video-Trainer)
    (("transformer.transformer_blocks.0.attn1.to_q.lora_A.weight",
      "transformer.transformer_blocks.0.attn2.to_k.lora_A.weight"), "ltx", "LTXV"),
    (("diffusion_model.transformer_blocks.27.attn1.to_out.0.lora_B.weight",), "ltx", "LTXV"),
    # Mochi: diffusers (attn1 with add_*_proj) and genmo's own names
    (("transformer.transformer_blocks.0.attn1.to_q.lora_A.weight",
      "transformer.transformer_blocks.0.attn1.add_q_proj.lora_A.weight"), "mochi", "Mochi"),
    (("blocks.0.attn.qkv_x.lora_A.weight", "blocks.0.attn.proj_x.lora_B.weight"), "mochi", "Mochi"),
    (("lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight",), "sd3", "SD 3.5"),
    (("emb_params",), None, None),
    ((), None, None),
])
def test_tensor_key_layouts(keys, layout, value):
    found = base_models.layout_of(keys)
    assert (found.name if found else None, found.value if found else None) == (layout, value)


def test_an_mmdit_with_a_second_attention_is_not_ltx():
    keys = ("transformer.transformer_blocks.0.attn.to_q.lora_A.weight",
            "transformer.transformer_blocks.0.attn2.to_q.lora_A.weight")
    assert base_models.layout_of(keys) is None


def test_a_flux_lora_is_never_a_video_lora():
    for keys in (FLUX_KEYS, _flux_diffusers(19, 38), FLUX_KEYS[:5], _flux_diffusers(0, 7)):
        assert base_models.layout_of(keys).name == "flux"


# -- from every source to one base model, through the resolver --------------------------------------
def _record(meta: Dict[str, str] = None, keys: Sequence[str] = SDXL_KEYS, name: str = "lora",
            folders: tuple = (), civitai: str = "", user: str = "", manager: str = ""):
    side = Sidecars(civitai=CivitaiFacts(base_model=civitai) if civitai else None,
                    user=UserFacts(sd_version=user) if user else None,
                    manager=ManagerFacts(base_model=manager) if manager else None)
    header = Header(dict(meta or {}), tuple(keys))
    path = "/".join(folders + (name + ".safetensors",))
    return resolve(path, name, 1000, header, side, folders, None, [])


def _conflicted(record) -> bool:
    return "base_model_conflict" in record.warnings


def test_lineage_only_in_ss_sd_model_name_refines_kohya_sdxl():
    r = _record({"ss_base_model_version": "sdxl_base_v1-0",
                 "ss_sd_model_name": "ponyDiffusionV6XL_v6StartWithThisOne.safetensors"})
    assert (r.base_model, r.base_model_source, r.family) == ("Pony", "header", "sdxl") and not _conflicted(r)
    assert [(c.source, c.value, c.specificity, c.field) for c in r.base_model_candidates] == [
        ("header", "SDXL 1.0", "family", "ss_base_model_version"),
        ("header", "Pony", "lineage", "ss_sd_model_name"),
        ("tensor_keys", "SDXL 1.0", "family", "tensor keys")]


def test_pdxl_in_the_file_name_refines_a_coarse_civitai_sdxl():
    r = _record({"ss_base_model_version": "sdxl_base_v1-0"}, name="gothic_dress_PDXL", civitai="SDXL 1.0")
    assert (r.base_model, r.base_model_source) == ("Pony", "name") and not _conflicted(r)


def test_an_illustrious_folder_refines_a_coarse_user_json():
    r = _record({"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}, folders=("Illustrious", "chara"),
                name="frieren_v2", user="SDXL")
    assert (r.base_model, r.base_model_source) == ("Illustrious", "folder")
    assert r.category == "character" and r.category_source == "folder"


def test_a_coarse_user_json_is_refined_by_the_header():
    r = _record({"ss_sd_model_name": "noobaiXLNAIXL_epsilonPred10Version.safetensors"}, user="SDXL")
    assert (r.base_model, r.base_model_source) == ("NoobAI", "header")


def test_a_specific_civitai_value_is_never_replaced_by_a_lower_one():
    r = _record({"ss_sd_model_name": "Illustrious-XL-v0.1.safetensors"}, civitai="Pony")
    assert (r.base_model, r.base_model_source) == ("Pony", "civitai") and _conflicted(r)
    message = next(p.message for p in r.problems if p.code == "base_model_conflict")
    assert "Illustrious" in message and "Pony" in message


def test_two_civitai_sidecars_that_disagree_keep_the_first():
    r = _record(civitai="Illustrious", manager="Pony")
    assert (r.base_model, r.base_model_source) == ("Illustrious", "civitai") and _conflicted(r)


def test_a_name_that_disagrees_is_a_guess_and_not_warned():
    r = _record(civitai="Illustrious", name="frieren_PDXL", folders=("Pony",))
    assert r.base_model == "Illustrious" and not _conflicted(r)


def test_the_tensors_decide_the_family_over_civitai():
    r = _record(civitai="SD 1.5")
    assert (r.base_model, r.base_model_source, r.family) == ("SDXL 1.0", "tensor_keys", "sdxl") and _conflicted(r)


def test_a_wrong_family_in_the_header_is_a_conflict_and_the_tensors_win():
    r = _record({"ss_base_model_version": "sd_v1"}, keys=SDXL_KEYS)
    assert r.base_model == "SDXL 1.0" and _conflicted(r)


def test_sd2_768_v_from_modelspec_and_from_kohya_flags():
    assert _record({"modelspec.architecture": "stable-diffusion-v2-768-v/lora"}, keys=SD1_KEYS[1:]).base_model \
        == "SD 2.1 768"
    r = _record({"ss_v2": "True", "ss_v_parameterization": "True", "ss_base_model_version": "sd_v2"}, keys=SD1_KEYS[1:])
    assert (r.base_model, r.family) == ("SD 2.1 768", "sd2") and not _conflicted(r)
    assert _record({"ss_v2": "True"}, keys=SD1_KEYS[1:]).base_model == "SD 2.1"


def test_an_sd2_text_encoder_makes_it_sd2_without_metadata():
    keys = ("lora_te_text_model_encoder_layers_22_mlp_fc1.lora_down.weight",)
    assert _record(keys=keys).base_model == "SD 2.1"


def test_flux_schnell_and_dev_are_told_apart():
    schnell = _record({"modelspec.architecture": "flux-1-schnell/lora", "ss_base_model_version": "flux1"},
                      keys=FLUX_KEYS)
    assert (schnell.base_model, schnell.base_model_source) == ("Flux.1 S", "header")
    dev = _record({"modelspec.architecture": "flux-1-dev/lora", "ss_base_model_version": "flux1"}, keys=FLUX_KEYS)
    assert dev.base_model == "Flux.1 D"
    coarse = _record({"ss_base_model_version": "flux1"}, keys=FLUX_KEYS, name="style_flux1-schnell")
    assert (coarse.base_model, coarse.base_model_source) == ("Flux.1 S", "name")
    assert _record({"ss_base_model_version": "flux1"}, keys=FLUX_KEYS, civitai="Flux.1 D",
                   name="x_schnell").base_model == "Flux.1 D"


def test_sd35_variants():
    keys = ("lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight",)
    assert _record({"modelspec.architecture": "stable-diffusion-3-5-large/lora"}, keys=keys).base_model \
        == "SD 3.5 Large"
    assert _record({"modelspec.architecture": "stable-diffusion-3/lora"}, keys=keys).base_model == "SD 3.5"


@pytest.mark.parametrize("keys, base", [
    (("lora_unet_double_blocks_0_img_mlp_fc1.lora_down.weight",
      "lora_unet_single_blocks_0_linear1.lora_down.weight"), "Hunyuan Video"),
    (("diffusion_model.blocks.0.self_attn.q.lora_A.weight",), "Wan Video"),
    (("transformer.transformer_blocks.0.attn1.to_q.lora_A.weight",
      "transformer.transformer_blocks.0.attn2.to_q.lora_A.weight"), "LTXV"),
    (("transformer.transformer_blocks.0.attn1.add_q_proj.lora_A.weight",), "Mochi"),
])
def test_video_loras_are_excluded_by_their_tensors_whatever_the_sidecars_say(keys, base):
    r = _record(keys=keys, civitai="SDXL 1.0", name="cool_motion")
    assert (r.base_model, r.family, r.excluded) == (base, "video", True)
    assert "excluded_architecture" in r.warnings


def test_a_civitai_value_the_tensors_allow_is_kept():
    assert _record(keys=FLUX_KEYS, civitai="Chroma").base_model == "Chroma"
    assert _record(keys=FLUX_KEYS, civitai="Hunyuan Video").base_model == "Hunyuan Video"
    assert _record(keys=("diffusion_model.blocks.0.self_attn.q.lora_A.weight",),
                   civitai="Wan Video 14B t2v").base_model == "Wan Video 14B t2v"
    assert _record(civitai="Kolors").excluded


def test_without_tensor_keys_the_most_trusted_recognised_value_decides():
    r = _record({"ss_base_model_version": "sdxl_base_v1-0"}, keys=(), folders=("Illustrious",))
    assert (r.base_model, r.base_model_source) == ("Illustrious", "folder")
    r = _record(keys=(), civitai="Other", folders=("Pony",))
    assert r.base_model == "Pony"  # an unrecognised value gives way to a recognised one
    r = _record(keys=(), civitai="ZImageTurbo")
    assert (r.base_model, r.base_model_source, r.family) == ("ZImageTurbo", "civitai", "unknown")
    r = _record(keys=())
    assert (r.base_model, r.base_model_source, r.base_model_candidates) == ("Unknown", "none", ())


def test_a_unet_only_sd_lora_follows_a_source_that_says_sd2():
    keys = ("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight",)
    assert _record(keys=keys, user="SD2").base_model == "SD 2.1"
    assert _record(keys=keys).base_model == "SD 1.5"


def test_candidates_round_trip_through_the_record():
    from lib_orchestrator.library.record import LoraRecord
    r = _record({"ss_sd_model_name": "ponyDiffusionV6XL.safetensors"}, folders=("IL",), civitai="SDXL 1.0")
    again = LoraRecord.from_json(r.to_json())
    assert again == r and again.base_model_candidates[0].field == ".civitai.info baseModel"
    assert r.to_dict()["base_model_candidates"][0] == {"source": "civitai", "value": "SDXL 1.0",
                                                       "specificity": "family", "field": ".civitai.info baseModel",
                                                       "evidence": "SDXL 1.0"}


def test_checkpoints_read_lineage_from_the_same_table():
    from lib_orchestrator.checkpoint import base_model_of, family_from_name
    assert base_model_of("sdxl", ["noobaiXLNAIXL_epsilonPred10Version"]) == "NoobAI"
    assert base_model_of("sdxl", ["Frieren IL v2"]) == "Illustrious"
    assert base_model_of("sdxl", ["ILLUMINATION_xl"]) == "SDXL 1.0"
    assert base_model_of("flux", ["flux1-schnell"]) == "Flux.1 S"
    assert family_from_name("v2-1_768-ema-pruned") == "sd2"
