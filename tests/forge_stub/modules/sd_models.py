"""modules.sd_models stand-in: checkpoint registry and a fake loaded model (no weights)."""
from __future__ import annotations

import json
import os

from modules import shared

checkpoints_list: dict = {}
checkpoint_aliases: dict = {}


class CheckpointInfo:
    def __init__(self, filename, sha256=None):
        self.filename = filename
        abspath = os.path.abspath(filename)
        self.name = os.path.basename(abspath)
        self.name_for_extra = os.path.splitext(self.name)[0]
        self.model_name = self.name_for_extra
        self.sha256 = sha256
        self.hash = sha256[:8] if sha256 else None
        self.shorthash = sha256[:10] if sha256 else None
        self.title = self.name if self.shorthash is None else f"{self.name} [{self.shorthash}]"
        short = self.name_for_extra
        self.short_title = short if self.shorthash is None else f"{short} [{self.shorthash}]"
        self.ids = [self.hash, self.model_name, self.title, self.name, self.name_for_extra, self.short_title]
        self.metadata = {}

    def register(self):
        checkpoints_list[self.title] = self
        for i in self.ids:
            if i:
                checkpoint_aliases[i] = self

    def calculate_shorthash(self):
        return self.shorthash


class StubSdModel:
    """Stub-only stand-in for the loaded model object (shared.sd_model). Swap flags to test family filters."""

    def __init__(self, checkpoint_info: CheckpointInfo, family: str = "sd1"):
        self.sd_checkpoint_info = checkpoint_info
        self.sd_model_checkpoint = checkpoint_info.filename
        self.sd_model_hash = checkpoint_info.shorthash
        self.is_sd1 = family == "sd1"
        self.is_sd2 = family == "sd2"
        self.is_sdxl = family == "sdxl"
        self.is_sd3 = family == "sd3"
        self.is_flux = family == "flux"
        self.use_distilled_cfg_scale = family == "flux"
        self.extra_generation_params = {}
        self.comments = []
        self.applied_loras = []  # stub-only: [(filename, te_multiplier, unet_multiplier)] currently patched


# The checkpoint of the golden traces (random-weight SD1.5 of the real-Forge run).
DEFAULT_CHECKPOINT_SHA256 = "3c6190d76a0fca5b20bbc5889898383a2f9345867df0c8949cfcda63ac28d556"


def make_model(name: str = "random-sd15.safetensors", sha256: str = DEFAULT_CHECKPOINT_SHA256, family: str = "sd1"):
    """Stub-only: register a checkpoint and return a StubSdModel for it (assign to shared.sd_model)."""
    info = CheckpointInfo(os.path.join(shared.models_path, "Stable-diffusion", name), sha256=sha256)
    info.register()
    return StubSdModel(info, family=family)


class _ModelData:
    def get_sd_model(self):
        return shared.sd_model

    def set_sd_model(self, v):
        shared.sd_model = v


model_data = _ModelData()


def get_closet_checkpoint_match(search_string):
    if not search_string:
        return None
    info = checkpoint_aliases.get(search_string)
    if info is not None:
        return info
    found = sorted([i for i in checkpoints_list.values() if search_string in i.title], key=lambda x: len(x.title))
    return found[0] if found else None


def select_checkpoint():
    return shared.sd_model.sd_checkpoint_info if shared.sd_model is not None else None


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    return shared.sd_model


def read_metadata_from_safetensors(filename):
    with open(filename, mode="rb") as file:
        metadata_len = int.from_bytes(file.read(8), "little")
        json_start = file.read(2)
        assert metadata_len > 2 and json_start in (b'{"', b"{'"), f"{filename} is not a safetensors file"
        json_data = json_start + file.read(metadata_len - 2)
        json_obj = json.loads(json_data)
        res = {}
        for k, v in json_obj.get("__metadata__", {}).items():
            res[k] = v
            if isinstance(v, str) and v[0:1] == "{":
                try:
                    res[k] = json.loads(v)
                except Exception:
                    pass
        return res


def reset():
    checkpoints_list.clear()
    checkpoint_aliases.clear()
    shared.sd_model = make_model()
    shared.opts.data["sd_model_checkpoint"] = shared.sd_model.sd_checkpoint_info.title
