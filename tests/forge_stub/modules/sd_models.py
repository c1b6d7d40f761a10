"""modules.sd_models stand-in: checkpoint registry over real (tiny) .safetensors files, a placeholder model until
the first generation, and a fake loaded model (no weights) whose family comes from the file's tensor names.

As in Forge and Neo, nothing is loaded at start-up: `shared.sd_model` is a `FakeInitialModel` (no `is_*` flags, no
`sd_checkpoint_info`) until `processing.process_images` calls `forge_model_reload()`, which loads what
`select_checkpoint()` picks (the `opts.sd_model_checkpoint` alias, else the first registered checkpoint).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import sys
from types import SimpleNamespace

import stub_control

from modules import script_callbacks, shared

checkpoints_list: dict = {}
checkpoint_aliases: dict = {}

model_dir = "Stable-diffusion"
model_path = os.path.join(shared.models_path, model_dir)  # follows shared.models_path on reset()

# Stub-only. The stand-in cannot write a file whose sha256 is a chosen value (the golden checkpoint's), so a test
# says what hashing a file "gives": abspath -> sha256. Files not listed hash their real bytes.
_file_sha256: dict = {}
# Stub-only: Forge's hash cache (cache.json "hashes"): abspath -> sha256 known without hashing the file.
_hash_cache: dict = {}

# The checkpoint of the golden traces (random-weight SD1.5 of the real-Forge run).
DEFAULT_CHECKPOINT = "random-sd15.safetensors"
DEFAULT_CHECKPOINT_SHA256 = "3c6190d76a0fca5b20bbc5889898383a2f9345867df0c8949cfcda63ac28d556"

_OLD_HASH_OFFSET = 0x100000  # the old 8-hex "model hash" reads 64 KiB at 1 MiB
_OLD_HASH_LENGTH = 0x10000


def model_hash(filename):
    """The old short hash: sha256 of the 64 KiB at offset 1 MiB (of what is there), first 8 hex digits."""
    try:
        with open(filename, "rb") as file:
            file.seek(_OLD_HASH_OFFSET)
            return hashlib.sha256(file.read(_OLD_HASH_LENGTH)).hexdigest()[:8]
    except FileNotFoundError:
        return "NOFILE"


def _file_sha(filename):
    known = _file_sha256.get(os.path.abspath(filename))
    if known is not None:
        return known
    digest = hashlib.sha256()
    try:
        with open(filename, "rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _checkpoint_roots():
    """Folders a checkpoint's `.name` is made relative to: Forge `--ckpt-dir`, Neo `--ckpt-dirs`, then
    models/Stable-diffusion."""
    roots = []
    ckpt_dir = getattr(shared.cmd_opts, "ckpt_dir", None)
    if ckpt_dir:
        roots.append(ckpt_dir)
    roots.extend(getattr(shared.cmd_opts, "ckpt_dirs", None) or [])
    roots.append(model_path)
    return [os.path.abspath(r) for r in roots]


class CheckpointInfo:
    """Fields as in Forge/Neo: `.name` is the path relative to the checkpoint folder (subfolders and extension
    kept), `.title` is `.name` until a sha256 is known, then `name [shorthash]`; `.hash` is the old 8-hex hash;
    `.sha256`/`.shorthash` come from the hash cache only, else stay None until the model is loaded."""

    def __init__(self, filename):
        self.filename = filename
        abspath = os.path.abspath(filename)
        self.is_safetensors = os.path.splitext(filename)[1].lower() == ".safetensors"

        name = os.path.basename(filename)
        for root in _checkpoint_roots():
            if abspath.startswith(root):
                name = abspath[len(root):]
                break
        name = name.lstrip("/\\")

        self.metadata = {}
        if self.is_safetensors:
            try:
                self.metadata = read_metadata_from_safetensors(filename)
                self.metadata.pop("modelspec.thumbnail", None)
            except Exception:  # Forge reports and goes on
                self.metadata = {}

        self.name = name
        self.name_for_extra = os.path.splitext(os.path.basename(filename))[0]
        self.model_name = os.path.splitext(name.replace("/", "_").replace("\\", "_"))[0]
        self.hash = model_hash(filename)

        self.sha256 = _hash_cache.get(abspath)
        self.shorthash = self.sha256[:10] if self.sha256 else None
        self.title = name if self.shorthash is None else f"{name} [{self.shorthash}]"
        stem = self.name_for_extra
        self.short_title = stem if self.shorthash is None else f"{stem} [{self.shorthash}]"

        self.ids = [self.hash, self.model_name, self.title, name, self.name_for_extra, f"{name} [{self.hash}]"]
        if self.shorthash:
            self.ids += [self.shorthash, self.sha256, f"{self.name} [{self.shorthash}]",
                         f"{self.name_for_extra} [{self.shorthash}]"]

    def register(self):
        checkpoints_list[self.title] = self
        for i in self.ids:
            checkpoint_aliases[i] = self

    def calculate_shorthash(self):
        """Hash the file (sha256, stored in the hash cache); the title gains `[shorthash]`, more aliases."""
        self.sha256 = _file_sha(self.filename)
        if self.sha256 is None:
            return None
        _hash_cache[os.path.abspath(self.filename)] = self.sha256
        shorthash = self.sha256[:10]
        if self.shorthash == shorthash:
            return self.shorthash
        self.shorthash = shorthash
        if self.shorthash not in self.ids:
            self.ids += [self.shorthash, self.sha256, f"{self.name} [{self.shorthash}]",
                         f"{self.name_for_extra} [{self.shorthash}]"]
        old_title = self.title
        self.title = f"{self.name} [{self.shorthash}]"
        self.short_title = f"{self.name_for_extra} [{self.shorthash}]"
        _replace_key(checkpoints_list, old_title, self.title, self)
        self.register()
        return self.shorthash

    def __str__(self):
        return str(dict(filename=self.filename, hash=self.hash))

    __repr__ = __str__


def _replace_key(d, key, new_key, value):
    """Rename a key of an ordered dict in place, keeping its position."""
    items = [(new_key, value) if k == key else (k, v) for k, v in d.items()]
    if key not in d:
        items.append((new_key, value))
    d.clear()
    d.update(items)


# ---- family: what a real checkpoint's tensor names (and the telling shapes) look like ----------------------

P = "model.diffusion_model."
# family -> {tensor name: shape}. Shapes keep only the dimension detection reads (context/adm/in channels);
# the others are 1, so the files stay tiny and their data offsets valid.
FAMILY_TENSORS = {
    "sd1": {
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": [1, 768],
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": [768],
        P + "input_blocks.0.0.weight": [1, 4, 1, 1],
        P + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [1, 768],
        P + "out.2.weight": [4, 1, 1, 1],
        "first_stage_model.decoder.conv_in.weight": [1, 4, 1, 1],
    },
    "sd2": {
        "cond_stage_model.model.token_embedding.weight": [1, 1024],
        "cond_stage_model.model.ln_final.weight": [1024],
        P + "input_blocks.0.0.weight": [1, 4, 1, 1],
        P + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [1, 1024],
        P + "out.2.weight": [4, 1, 1, 1],
        "first_stage_model.decoder.conv_in.weight": [1, 4, 1, 1],
    },
    "sdxl": {
        "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [1, 768],
        "conditioner.embedders.1.model.token_embedding.weight": [1, 1280],
        "conditioner.embedders.1.model.text_projection": [1280, 1],
        P + "input_blocks.0.0.weight": [1, 4, 1, 1],
        P + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": [1, 2048],
        P + "label_emb.0.0.weight": [1, 2816],
        P + "out.2.weight": [4, 1, 1, 1],
        "first_stage_model.decoder.conv_in.weight": [1, 4, 1, 1],
    },
    "sdxl_refiner": {
        "conditioner.embedders.0.model.token_embedding.weight": [1, 1280],
        P + "input_blocks.0.0.weight": [1, 4, 1, 1],
        P + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": [1, 1280],
        P + "label_emb.0.0.weight": [1, 2560],
        P + "out.2.weight": [4, 1, 1, 1],
        "first_stage_model.decoder.conv_in.weight": [1, 4, 1, 1],
    },
    "sd3": {
        P + "joint_blocks.0.context_block.attn.qkv.weight": [1, 1536],
        P + "joint_blocks.0.x_block.attn.qkv.weight": [1, 1536],
        P + "x_embedder.proj.weight": [1, 16, 2, 2],
        "text_encoders.clip_l.transformer.text_model.final_layer_norm.weight": [768],
        "text_encoders.clip_g.transformer.text_model.final_layer_norm.weight": [1280],
        "text_encoders.t5xxl.transformer.encoder.final_layer_norm.weight": [4096],
        "first_stage_model.decoder.conv_in.weight": [1, 16, 1, 1],
    },
    "flux": {  # FLUX.1-dev: has guidance_in
        P + "double_blocks.0.img_attn.norm.key_norm.scale": [128],
        P + "double_blocks.0.img_attn.qkv.weight": [1, 3072],
        P + "img_in.weight": [1, 64],
        P + "guidance_in.in_layer.weight": [1, 256],
        P + "single_blocks.0.linear1.weight": [1, 3072],
    },
    "flux_schnell": {
        P + "double_blocks.0.img_attn.norm.key_norm.scale": [128],
        P + "double_blocks.0.img_attn.qkv.weight": [1, 3072],
        P + "img_in.weight": [1, 64],
        P + "single_blocks.0.linear1.weight": [1, 3072],
    },
    "chroma": {
        P + "double_blocks.0.img_attn.norm.key_norm.scale": [128],
        P + "img_in.weight": [1, 64],
        P + "distilled_guidance_layer.in_proj.weight": [1, 64],
        P + "single_blocks.0.linear1.weight": [1, 3072],
    },
    "wan": {  # Neo only
        P + "head.modulation": [1, 2, 1],
        P + "patch_embedding.weight": [1, 16, 1, 2, 2],
        P + "blocks.0.self_attn.q.weight": [1, 5120],
    },
}

HUGGINGFACE_REPO = {
    "sd1": "runwayml/stable-diffusion-v1-5",
    "sd2": "stabilityai/stable-diffusion-2-1",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    "sdxl_refiner": "stabilityai/stable-diffusion-xl-refiner-1.0",
    "sd3": "stabilityai/stable-diffusion-3-medium-diffusers",
    "flux": "black-forest-labs/FLUX.1-dev",
    "flux_schnell": "black-forest-labs/FLUX.1-schnell",
    "chroma": "Chroma",
    "wan": "Wan-AI/Wan2.1-T2V-14B",
}

# What each host's loader recognises (Neo dropped SD2 and SD3; Forge has no Wan).
_LOADABLE = {
    "forge": {"sd1", "sd2", "sdxl", "sdxl_refiner", "sd3", "flux", "flux_schnell", "chroma"},
    "classic": {"sd1", "sd2", "sdxl", "sdxl_refiner", "sd3", "flux", "flux_schnell", "chroma"},
    "neo": {"sd1", "sdxl", "sdxl_refiner", "flux", "flux_schnell", "chroma", "wan"},
}

PADDING_TENSOR = "stub_padding"  # stub-only: makes the file reach the old hash's window at 1 MiB (sparse zeros)
_PADDED_SIZE = _OLD_HASH_OFFSET + _OLD_HASH_LENGTH


def write_checkpoint_file(filename, family, metadata=None):
    """Stub-only: a valid .safetensors whose tensor names (and telling shapes) are those of `family`. The data is
    zeros except the 64 KiB window the old hash reads, which depends on the name (relative to the checkpoint
    folder) and family, so every checkpoint gets its own `.hash`, the same in every run."""
    if family not in FAMILY_TENSORS:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(FAMILY_TENSORS)}")
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    offset = 0
    for tensor, shape in FAMILY_TENSORS[family].items():
        size = 2
        for dim in shape:
            size *= dim
        header[tensor] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size

    def encoded(pad_len):
        h = dict(header)
        h[PADDING_TENSOR] = {"dtype": "U8", "shape": [pad_len], "data_offsets": [offset, offset + pad_len]}
        raw = json.dumps(h, separators=(",", ":")).encode("utf-8")
        return raw + b" " * (-len(raw) % 8)

    pad = 0
    for _ in range(8):  # the padding's length is written in the header, which moves the data: settle it
        raw = encoded(pad)
        wanted = max(0, _PADDED_SIZE - 8 - len(raw) - offset)
        if wanted <= pad:
            break
        pad = wanted
    total = 8 + len(raw) + offset + pad
    os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
    seed = os.path.relpath(os.path.abspath(filename), os.path.abspath(model_path)).replace(os.sep, "/")
    window = hashlib.sha256(f"{seed}:{family}".encode()).digest()
    with open(filename, "wb") as file:
        file.write(struct.pack("<Q", len(raw)) + raw)
        file.truncate(total)  # zeros, sparse on disk
        file.seek(_OLD_HASH_OFFSET)
        file.write((window * (_OLD_HASH_LENGTH // len(window) + 1))[:_OLD_HASH_LENGTH])
    return filename


def read_safetensors_header(filename):
    """{tensor name: {"dtype", "shape", "data_offsets"}} without __metadata__."""
    with open(filename, "rb") as file:
        n = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(n))
    header.pop("__metadata__", None)
    return header


def guess_family(filename):
    """The stand-in's loader: which family the tensor names and shapes say, as huggingface_guess decides it
    (unprefixed UNet keys count as if prefixed with `model.diffusion_model.`). None if unknown."""
    try:
        header = read_safetensors_header(filename)
    except Exception:
        return None
    if not any(k.startswith(P) for k in header):
        header = {P + k: v for k, v in header.items()}

    def shape(key, dim):
        try:
            return header[P + key]["shape"][dim]
        except (KeyError, IndexError, TypeError):
            return None

    if P + "double_blocks.0.img_attn.norm.key_norm.scale" in header or \
            P + "double_blocks.0.img_attn.norm.key_norm.weight" in header:
        if any(k.startswith(P + "distilled_guidance_layer.") for k in header):
            return "chroma"
        return "flux" if P + "guidance_in.in_layer.weight" in header else "flux_schnell"
    if P + "joint_blocks.0.context_block.attn.qkv.weight" in header:
        return "sd3"
    if P + "head.modulation" in header:
        return "wan"
    if P + "input_blocks.0.0.weight" in header:
        adm = shape("label_emb.0.0.weight", 1)
        if adm == 2816:
            return "sdxl"
        if adm == 2560:
            return "sdxl_refiner"
        context = shape("input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 1)
        if context == 768:
            return "sd1"
        if context == 1024:
            return "sd2"
    return None


# ---- models -----------------------------------------------------------------------------------------------


class FakeInitialModel:
    """`shared.sd_model` before the first generation (both hosts): no family flags, no checkpoint info."""

    def __init__(self):
        self.cond_stage_model = None
        self.first_stage_model = None
        self.chunk_length = 75

    def get_prompt_lengths_on_ui(self, prompt):
        words = prompt.strip("!?,. ")
        for ch in " .!?":
            words = words.replace(ch, ",")
        count = len([w for w in words.split(",")])
        return count, -(-max(count, 1) // self.chunk_length) * self.chunk_length


class StubSdModel:
    """Stub-only stand-in for a loaded model (shared.sd_model). Flags as the host's engine sets them: Forge
    `is_sd1`/`is_sd2`/`is_sdxl`/`is_sd3` (Flux and Chroma: none), Neo `is_sd1`/`is_sdxl`/`is_wan`."""

    def __init__(self, checkpoint_info: CheckpointInfo, family: str = "sd1"):
        variant = stub_control.current_variant()
        self.family = family  # stub-only
        self.model_config = SimpleNamespace(huggingface_repo=HUGGINGFACE_REPO.get(family))
        self.sd_checkpoint_info = checkpoint_info
        self.filename = checkpoint_info.filename
        self.sd_model_checkpoint = checkpoint_info.filename
        self.sd_model_hash = checkpoint_info.shorthash
        self.tiling_enabled = False
        self.use_distilled_cfg_scale = family == "flux"
        self.is_sd1 = family == "sd1"
        self.is_sdxl = family in ("sdxl", "sdxl_refiner")
        if variant == "neo":
            self.is_wan = family == "wan"
            self.use_shift = family == "wan"
        else:
            self.is_sd2 = family == "sd2"
            self.is_sd3 = family == "sd3"
        self.extra_generation_params = {}
        self.comments = []
        self.applied_loras = []  # stub-only: [(filename, te_multiplier, unet_multiplier)] currently patched


class _ModelData:
    def get_sd_model(self):
        return shared.sd_model

    def set_sd_model(self, v):
        shared.sd_model = v


model_data = _ModelData()


def add_checkpoint(name, family="sd1", sha256=None, *, hashed=None, metadata=None):
    """Stub-only: write `<checkpoint folder>/<name>` (subfolders allowed) as a tiny .safetensors of `family` and
    register it as list_models() would. `sha256`: what hashing the file gives (default: its real bytes'
    hash). `hashed` (default: sha256 given): Forge's hash cache already knows it, so `.sha256`, `.shorthash` and
    a title with `[shorthash]` exist before the first load. Adding a name again replaces the entry."""
    filename = os.path.join(model_path, name)
    write_checkpoint_file(filename, family, metadata)
    abspath = os.path.abspath(filename)
    if sha256 is not None:
        _file_sha256[abspath] = sha256
    else:
        _file_sha256.pop(abspath, None)
    if hashed is None:
        hashed = sha256 is not None
    if hashed:
        _hash_cache[abspath] = _file_sha(filename)
    else:
        _hash_cache.pop(abspath, None)
    info = CheckpointInfo(filename)
    _unregister(abspath)
    info.register()
    return info


def _unregister(abspath):
    old = [t for t, i in checkpoints_list.items() if os.path.abspath(i.filename) == abspath]
    for title in old:
        del checkpoints_list[title]
    for alias in [a for a, i in checkpoint_aliases.items() if os.path.abspath(i.filename) == abspath]:
        del checkpoint_aliases[alias]


def list_models():
    """Rescan the checkpoint folders (Forge: --ckpt-dir and models/Stable-diffusion; Neo: --ckpt-dirs too)."""
    checkpoints_list.clear()
    checkpoint_aliases.clear()
    seen = set()
    for root in _checkpoint_roots():
        for filename in shared.walk_files(root, allowed_extensions=[".ckpt", ".safetensors", ".gguf"]):
            if filename.lower().endswith((".vae.ckpt", ".vae.safetensors")) or filename in seen:
                continue
            seen.add(filename)
            CheckpointInfo(filename).register()


def make_model(name: str = DEFAULT_CHECKPOINT, sha256: str = DEFAULT_CHECKPOINT_SHA256, family: str = "sd1"):
    """Stub-only: the user picked this checkpoint and has generated once. add_checkpoint (hash known), select it
    (`opts.sd_model_checkpoint = info.name`) and load it into `shared.sd_model`. Returns the loaded model."""
    info = add_checkpoint(name, family, sha256)
    shared.opts.data["sd_model_checkpoint"] = info.name
    model, _ = forge_model_reload()
    return model


re_strip_checksum = re.compile(r"\s*\[[^]]+]\s*$")


def get_closet_checkpoint_match(search_string):
    """Exact alias, else the shortest title containing the string, else the same after stripping `[hash]`."""
    if not search_string:
        return None
    info = checkpoint_aliases.get(search_string)
    if info is not None:
        return info
    found = sorted([i for i in checkpoints_list.values() if search_string in i.title], key=lambda x: len(x.title))
    if found:
        return found[0]
    stripped = re.sub(re_strip_checksum, "", search_string)
    found = sorted([i for i in checkpoints_list.values() if stripped in i.title], key=lambda x: len(x.title))
    return found[0] if found else None


def select_checkpoint():
    """The `opts.sd_model_checkpoint` alias, else the first checkpoint (a fallback line on stderr each time,
    as both hosts print it), else None (Forge also prints that there is no model)."""
    wanted = shared.opts.sd_model_checkpoint
    info = checkpoint_aliases.get(wanted)
    if info is not None:
        return info
    if not checkpoints_list:
        if stub_control.current_variant() != "neo":
            print("You do not have any model!")
        return None
    info = next(iter(checkpoints_list.values()))
    if wanted is not None:
        print(f"Checkpoint {wanted} not found; loading fallback {info.title}", file=sys.stderr)
    return info


def forge_model_reload():
    """Load the selected checkpoint unless it is the loaded one: returns (model, just_loaded). The family comes
    from the file's header; one the host cannot recognise fails the load (Forge then has no model at all, Neo
    the placeholder)."""
    variant = stub_control.current_variant()
    info = select_checkpoint()
    current = shared.sd_model
    if isinstance(current, StubSdModel) and info is not None and \
            os.path.abspath(current.sd_checkpoint_info.filename) == os.path.abspath(info.filename):
        if current.sd_checkpoint_info is not info:  # the registry was rescanned: same file, new info
            current.sd_checkpoint_info = info
            info.calculate_shorthash()
        return current, False

    if variant != "neo":
        shared.sd_model = None  # Forge drops the old model first
    if info is None:
        if variant == "neo":
            shared.sd_model = FakeInitialModel()
            raise ValueError("Failed to find available model...")
        raise ValueError("You do not have any model! Please download at least one model in [models/Stable-diffusion].")

    family = guess_family(info.filename)
    if family not in _LOADABLE[variant]:
        if variant == "neo":
            shared.sd_model = FakeInitialModel()
            raise ModuleNotFoundError("Failed to recognize model...")
        raise ValueError("Failed to recognize model type!")

    model = StubSdModel(info, family)
    model.sd_model_hash = info.calculate_shorthash()
    shared.opts.data["sd_checkpoint_hash"] = info.sha256
    shared.sd_model = model
    script_callbacks.model_loaded_callback(model)
    return model, True


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    return shared.sd_model


def unload_model_weights(sd_model=None, info=None):
    """Neo puts the placeholder back; Forge only frees memory (the model object stays)."""
    if stub_control.current_variant() == "neo":
        shared.sd_model = FakeInitialModel()


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
    """Stub-only: Forge right after start-up. The default (golden) checkpoint is listed and selected by its
    `.name` (as main_entry does when the UI is built); nothing is loaded, so no hash is known yet."""
    global model_path
    model_path = os.path.join(shared.models_path, model_dir)
    checkpoints_list.clear()
    checkpoint_aliases.clear()
    _file_sha256.clear()
    _hash_cache.clear()
    info = add_checkpoint(DEFAULT_CHECKPOINT, "sd1", DEFAULT_CHECKPOINT_SHA256, hashed=False)
    shared.opts.data["sd_model_checkpoint"] = info.name
    shared.sd_model = FakeInitialModel()
