"""Writes the demo's sample LoRA library, samples/loras/: metadata-only stand-ins, no real weights.

Each LoRA is a valid safetensors file of a few hundred bytes (a kohya-style header, architecture-true
key names, zero-filled rank-1 tensors) with a Civitai-style `.civitai.info`; a few carry Forge's
`.json` user metadata. Run it again after changing the table; the output is deterministic.
"""
from __future__ import annotations

import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "loras")

KEYS = {
    "SD 1.5": ("lora_te_text_model_encoder_layers_0_mlp_fc1",
               "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2"),
    "SDXL 1.0": ("lora_te1_text_model_encoder_layers_0_mlp_fc1",
                 "lora_unet_output_blocks_5_1_transformer_blocks_1_ff_net_2"),
    "Flux.1 D": ("lora_unet_double_blocks_0_img_attn_proj", "lora_unet_single_blocks_0_linear1"),
}
ARCH = {"SD 1.5": "sd_v1", "SDXL 1.0": "sdxl_base_v1-0", "Flux.1 D": "flux1"}

# folder, file stem, Civitai base model, trained words, tags, Forge user metadata (or None)
SAMPLES = [
    ("style", "watercolor_wash_xl", "SDXL 1.0", ["watercolor wash"], ["style", "watercolor", "painting"], None),
    ("style", "oil_impasto_xl", "SDXL 1.0", ["thick impasto oil painting"], ["style", "oil painting"], None),
    ("style", "ukiyoe_print_xl", "SDXL 1.0", ["ukiyo-e woodblock print"], ["style", "ukiyo-e", "japanese"], None),
    ("style", "pixel_art_xl", "SDXL 1.0", ["pixel art", "16-bit sprite"], ["style", "pixel art"], None),
    ("style", "noir_film_xl", "SDXL 1.0", ["film noir still"], ["style", "noir", "black and white"], None),
    ("style", "art_deco_poster_xl", "SDXL 1.0", ["art deco poster"], ["style", "art deco", "poster"], None),
    ("style", "storybook_il", "Illustrious", ["storybook illustration"], ["style", "storybook", "illustration"],
     {"preferred weight": 0.7}),
    ("character", "wandering_knight_xl", "SDXL 1.0", ["wandering knight", "knight in dented armor"],
     ["character", "knight", "armor"], None),
    ("character", "lighthouse_keeper_xl", "SDXL 1.0", ["lighthouse keeper"], ["character", "sailor", "lighthouse"],
     None),
    ("character", "street_musician_xl", "SDXL 1.0", ["street musician, guitar"], ["character", "musician"], None),
    ("character", "detective_pony", "Pony", ["hardboiled detective, trench coat"], ["character", "detective"], None),
    ("concept", "glowing_runes_xl", "SDXL 1.0", ["glowing runes, magic circle"], ["concept", "magic", "runes"], None),
    ("concept", "god_rays_xl", "SDXL 1.0", ["volumetric god rays"], ["concept", "lighting", "light rays"], None),
    ("background", "neon_alley_xl", "SDXL 1.0", ["neon-lit alley, rain"], ["background", "city", "neon"], None),
    ("background", "misty_forest_xl", "SDXL 1.0", ["misty pine forest"], ["background", "forest", "fog"], None),
    ("clothing", "victorian_dress_xl", "SDXL 1.0", ["victorian gown, lace"], ["clothing", "victorian", "dress"], None),
    ("detailer", "add_detail_xl", "SDXL 1.0", [], ["tool", "detail", "enhancer"], {"preferred weight": 0.6}),
    ("slider", "age_slider_xl", "SDXL 1.0", [], ["concept", "slider", "age"], None),
    ("sd15", "watercolor_sd15", "SD 1.5", ["watercolor"], ["style", "watercolor"], None),
    ("flux", "film_grain_flux", "Flux.1 D", ["35mm film grain"], ["style", "film", "photography"],
     {"activation text": "35mm film grain", "negative text": "digital noise"}),
]


def safetensors(path: str, base: str, stem: str) -> None:
    meta = {"ss_output_name": stem, "ss_base_model_version": ARCH.get(base, ARCH["SDXL 1.0"]),
            "ss_network_module": "networks.lora", "ss_network_dim": "1", "ss_network_alpha": "1.0"}
    header: dict = {"__metadata__": meta}
    offset = 0
    for key in KEYS.get(base, KEYS["SDXL 1.0"]):
        for part in ("lora_down.weight", "lora_up.weight"):
            header[f"{key}.{part}"] = {"dtype": "F16", "shape": [1, 1], "data_offsets": [offset, offset + 2]}
            offset += 2
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    for n, (folder, stem, base, words, tags, user) in enumerate(SAMPLES, 1):
        os.makedirs(os.path.join(OUT, folder), exist_ok=True)
        path = os.path.join(OUT, folder, stem + ".safetensors")
        safetensors(path, base, stem)
        info = {"id": 900000 + n, "modelId": 800000 + n, "name": "v1.0", "baseModel": base, "trainedWords": words,
                "model": {"name": stem.replace("_", " ").title(), "type": "LORA", "tags": tags},
                "files": [{"name": stem + ".safetensors", "type": "Model", "primary": True,
                           "sizeKB": os.path.getsize(path) / 1024}]}
        with open(path[:-len(".safetensors")] + ".civitai.info", "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=4)
        if user:
            with open(path[:-len(".safetensors")] + ".json", "w", encoding="utf-8") as fh:
                json.dump(user, fh, indent=4)
    print(f"wrote {len(SAMPLES)} sample LoRAs to {OUT}")


if __name__ == "__main__":
    main()
