"""`network` (extensions-builtin/sd_forge_lora/network.py) stand-in: NetworkOnDisk, Network, SdVersion."""
from __future__ import annotations

import enum
import hashlib
import os

from modules import sd_models, shared


class SdVersion(enum.Enum):
    Unknown = 1
    SD1 = 2
    SD2 = 3
    SDXL = 4
    Flux = 6


def _addnet_hash_safetensors(filename):
    """sha256 of the tensor data (everything after the JSON header), as kohya's sd-scripts hash it."""
    h = hashlib.sha256()
    with open(filename, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        f.seek(n + 8)
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_file(filename):
    h = hashlib.sha256()
    with open(filename, "rb") as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            h.update(chunk)
    return h.hexdigest()


class NetworkOnDisk:
    def __init__(self, name, filename):
        self.name = name
        self.filename = filename
        self.metadata = {}
        self.is_safetensors = os.path.splitext(filename)[1].lower() == ".safetensors"
        if self.is_safetensors:
            try:
                self.metadata = sd_models.read_metadata_from_safetensors(filename)
            except Exception as e:
                from modules import errors

                errors.display(e, f"reading lora {filename}")
        if self.metadata:
            m = {}
            for k, v in sorted(self.metadata.items(), key=lambda x: (x[0] != "ss_sd_model_name", x[0])):
                m[k] = v
            self.metadata = m
        self.alias = self.metadata.get("ss_output_name", self.name)
        self.hash = None
        self.shorthash = None
        self.set_hash(self.metadata.get("sshs_model_hash") or "")
        self.sd_version = self.detect_version()

    def detect_version(self):
        impl = str(self.metadata.get("modelspec.implementation", ""))
        impl += str(self.metadata.get("modelspec.architecture", ""))
        base = str(self.metadata.get("ss_base_model_version", ""))
        if "stable-diffusion-xl" in impl or base.startswith("sdxl_"):
            return SdVersion.SDXL
        if "flux" in impl.lower() or base.startswith("flux"):
            return SdVersion.Flux
        if str(self.metadata.get("ss_v2", "")) == "True" or base.startswith("sd_v2"):
            return SdVersion.SD2
        if len(self.metadata) > 0:
            return SdVersion.SD1
        return SdVersion.Unknown

    def set_hash(self, v):
        self.hash = v
        self.shorthash = self.hash[0:12]

    def read_hash(self):
        if not self.hash:
            v = _addnet_hash_safetensors(self.filename) if self.is_safetensors else _sha256_file(self.filename)
            self.set_hash(v or "")

    def get_alias(self):
        import networks

        if shared.opts.lora_preferred_name == "Filename" or self.alias.lower() in networks.forbidden_network_aliases:
            return self.name
        return self.alias


class Network:
    def __init__(self, name, network_on_disk: NetworkOnDisk):
        self.name = name
        self.network_on_disk = network_on_disk
        self.te_multiplier = 1.0
        self.unet_multiplier = 1.0
        self.dyn_dim = None
        self.modules = {}
        self.bundle_embeddings = {}
        self.mtime = None
        self.mentioned_name = None
