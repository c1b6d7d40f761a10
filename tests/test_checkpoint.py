"""What a checkpoint is, from its file alone: Forge loads the selected checkpoint only on the first
generation, so the tab must know its family before that. The tensor names below are those real
checkpoints carry (text encoders and UNet/MMDiT blocks), written out here, not taken from the code."""
from __future__ import annotations

import json
import struct

import pytest

from lib_orchestrator.checkpoint import identify, identify_file
from lib_orchestrator.library.header import Header

SD1 = ["cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight",
       "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
       "first_stage_model.decoder.conv_in.weight"]
SD2 = ["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
       "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"]
SDXL = ["conditioner.embedders.0.transformer.text_model.encoder.layers.0.mlp.fc1.weight",
        "conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight",
        "model.diffusion_model.label_emb.0.0.weight", "model.diffusion_model.input_blocks.4.1.proj_in.weight"]
SD3 = ["model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight", "text_encoders.clip_l.x"]
FLUX = ["model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale",
        "model.diffusion_model.guidance_in.in_layer.weight"]
FLUX_BARE = ["double_blocks.0.img_attn.norm.key_norm.scale", "single_blocks.0.linear1.weight"]  # a bare UNet file


def write(path, keys, metadata=None) -> str:
    header = {k: {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]} for k in keys}
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0\0")
    return str(path)


@pytest.mark.parametrize("keys,family", [(SD1, "sd1"), (SD2, "sd2"), (SDXL, "sdxl"), (SD3, "sd3"), (FLUX, "flux"),
                                         (FLUX_BARE, "flux")])
def test_the_header_tells_the_family_whatever_the_file_is_called(tmp_path, keys, family):
    kind = identify_file(write(tmp_path / "model_v3.safetensors", keys))
    assert (kind.family, kind.source) == (family, "header")


def test_a_lineage_comes_from_the_name_or_the_headers_title(tmp_path):
    assert identify_file(write(tmp_path / "ponyDiffusionV6XL_v6.safetensors", SDXL)).base_model == "Pony"
    assert identify_file(write(tmp_path / "waiNSFWIllustrious_v140.safetensors", SDXL)).base_model == "Illustrious"
    titled = write(tmp_path / "merge_v2.safetensors", SDXL, {"modelspec.title": "NoobAI XL v-pred 1.0"})
    assert identify_file(titled).base_model == "NoobAI"
    assert identify_file(write(tmp_path / "juggernautXL_v9.safetensors", SDXL)).base_model == "SDXL 1.0"
    assert identify_file(write(tmp_path / "flux1-schnell.safetensors", FLUX)).base_model == "Flux.1 S"
    # a lineage word of another family does not count: "pony" in an SD1 merge's name is not a Pony model
    assert identify_file(write(tmp_path / "pony_style_sd15.safetensors", SD1)).base_model == "SD 1.5"


def test_the_native_size_follows_the_family(tmp_path):
    assert identify_file(write(tmp_path / "a.safetensors", SD1)).native_size == (512, 512)
    assert identify_file(write(tmp_path / "b.safetensors", SDXL)).native_size == (1024, 1024)


@pytest.mark.parametrize("name,family", [
    ("juggernautXL_v9.safetensors", "sdxl"), ("animagineXL40.safetensors", "sdxl"),
    ("hassakuXLIllustrious_v21.safetensors", "sdxl"), ("flux1-dev-Q8_0.gguf", "flux"),
    ("v1-5-pruned-emaonly.ckpt", "sd1"), ("sd3.5_large.safetensors", "sd3"), ("dreamshaper_8.safetensors", "unknown"),
])
def test_without_a_readable_header_the_name_is_the_only_witness(tmp_path, name, family):
    path = tmp_path / name
    path.write_bytes(b"GGUF not a safetensors header")
    assert identify_file(str(path)).family == family


def test_metadata_architecture_counts_when_the_keys_say_nothing():
    header = Header({"modelspec.architecture": "stable-diffusion-xl-v1-base"}, ("weird.key",))
    assert identify("x.safetensors", header).family == "sdxl"


def test_a_missing_file_is_judged_by_its_name_and_a_changed_file_is_read_again(tmp_path):
    assert identify_file(str(tmp_path / "gone_sd15.safetensors")).family == "sd1"
    path = tmp_path / "model.safetensors"
    write(path, SD1)
    assert identify_file(str(path)).family == "sd1"
    write(path, SDXL + ["padding.key.to.change.the.size"])
    assert identify_file(str(path)).family == "sdxl"
