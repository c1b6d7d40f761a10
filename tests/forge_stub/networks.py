"""`networks` (extensions-builtin/sd_forge_lora/networks.py) stand-in: registry, scanning, fake loading."""
from __future__ import annotations

import os

import network
import stub_control
from modules import errors, shared

available_networks: dict = {}
available_network_aliases: dict = {}
available_network_hash_lookup: dict = {}
forbidden_network_aliases = {}
loaded_networks: list = []
loaded_bundle_embeddings: dict = {}
networks_in_memory: dict = {}
extra_network_lora = None  # set by stub_control.reset()


def _forbid(alias):
    if isinstance(forbidden_network_aliases, set):
        forbidden_network_aliases.add(alias)
    else:
        forbidden_network_aliases[alias] = 1


def reset_registry():
    """Stub-only: empty registry; forbidden_network_aliases is a dict (Forge/Classic) or a set (Neo)."""
    global forbidden_network_aliases
    available_networks.clear()
    available_network_aliases.clear()
    available_network_hash_lookup.clear()
    loaded_networks.clear()
    forbidden_network_aliases = set() if stub_control.current_variant() == "neo" else {}
    for alias in ("none", "Addams"):
        _forbid(alias)


def process_network_files(names=None):
    """Forge scans --lora-dir; Neo --lora-dir, then every --lora-dirs folder (a later file of the same name
    wins)."""
    neo = stub_control.current_variant() == "neo"
    folders = [shared.cmd_opts.lora_dir, *(getattr(shared.cmd_opts, "lora_dirs", None) or [] if neo else [])]
    candidates = []
    for folder in folders:
        candidates.extend(shared.walk_files(folder, allowed_extensions=[".pt", ".ckpt", ".safetensors"]))
    for filename in candidates:
        if os.path.isdir(filename):
            continue
        name = os.path.splitext(os.path.basename(filename))[0]
        if names and name not in names:
            continue
        try:
            entry = network.NetworkOnDisk(name, filename)
        except OSError:
            errors.report(f"Failed to load network {name} from {filename}", exc_info=True)
            continue
        available_networks[name] = entry
        if entry.alias in available_network_aliases:
            _forbid(entry.alias.lower())
        available_network_aliases[name] = entry
        available_network_aliases[entry.alias] = entry
        if entry.shorthash:
            available_network_hash_lookup[entry.shorthash] = entry


def list_available_networks():
    available_networks.clear()
    available_network_aliases.clear()
    available_network_hash_lookup.clear()
    forbidden_network_aliases.clear()
    for alias in ("none", "Addams"):
        _forbid(alias)
    os.makedirs(shared.cmd_opts.lora_dir, exist_ok=True)
    process_network_files()


def _lookup(name):
    if name.lower() in forbidden_network_aliases:
        return available_networks.get(name, None)
    return available_network_aliases.get(name, None)


def load_networks(names, te_multipliers=None, unet_multipliers=None, dyn_dims=None):
    """Fake load: resolves names, records (filename, te, unet) on shared.sd_model.applied_loras.

    Forge: any unresolved name raises AttributeError before anything changes (the caller then resets LoRA).
    Neo: unresolved names are skipped.
    """
    networks_on_disk = [_lookup(name) for name in names]
    if any(x is None for x in networks_on_disk):
        list_available_networks()
        networks_on_disk = [_lookup(name) for name in names]

    targets = []
    for i, (name, nod) in enumerate(zip(names, networks_on_disk)):
        te = te_multipliers[i] if te_multipliers else 1.0
        unet = unet_multipliers[i] if unet_multipliers else 1.0
        if nod is None and stub_control.current_variant() == "neo":
            errors.report(f"Network {name} not found")
            continue
        targets.append((name, nod, nod.filename, te, unet, dyn_dims[i] if dyn_dims else None))

    loaded_networks.clear()
    for name, nod, _filename, te, unet, dyn in targets:
        net = network.Network(name, nod)
        net.te_multiplier = te
        net.unet_multiplier = unet
        net.dyn_dim = dyn
        net.mentioned_name = name
        nod.read_hash()
        loaded_networks.append(net)
    if shared.sd_model is not None:
        shared.sd_model.applied_loras = [(f, te, unet) for _n, _d, f, te, unet, _dy in targets]


def infotext_pasted(infotext, params):
    pass
