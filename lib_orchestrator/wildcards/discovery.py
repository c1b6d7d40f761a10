"""Which wildcard folders Forge's Orchestrator searches, in which order: the first folder that has a name owns it.

1. the bundled wildcards, 2. the templates saved from the tab, 3. the folders of Settings (the user's own),
4. every installed extension's `wildcards/` folder, in Forge's order (built-in extensions, then the others, each
by folder name), only of enabled extensions; sd-dynamic-prompts' folder is searched even when that extension is
disabled (users who switch turn it off and keep its packs), and its `wildcard_dir` setting (config.json), when
set, moves that folder as it does for sd-dynamic-prompts; set without that extension installed, it comes last.

A folder reached twice (the same real path) is searched the first time only. Pure: the file system is asked
only through `isdir` and `realpath`, which tests may replace.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

SDDP_NAME = "sd-dynamic-prompts"
SDDP_PACKAGE = "sd_dynamic_prompts"  # a renamed checkout or fork is known by its package folder


@dataclass(frozen=True)
class InstalledExtension:
    """An extension as Forge lists it: its folder name, path and whether it is enabled."""

    name: str
    path: str
    enabled: bool = True


@dataclass(frozen=True)
class WildcardFolder:
    """A folder searched for wildcards, and why it is: "bundled", "saved templates", "Settings", the extension's
    name, or "sd-dynamic-prompts (wildcard_dir)"."""

    path: str
    origin: str

    def to_dict(self) -> dict:
        return {"path": self.path, "origin": self.origin}


def is_sd_dynamic_prompts(extension: InstalledExtension, isdir: Callable[[str], bool] = os.path.isdir) -> bool:
    return extension.name == SDDP_NAME or isdir(os.path.join(extension.path, SDDP_PACKAGE))


def search_order(bundled: str, saved: str, settings: Sequence[str], extensions: Sequence[InstalledExtension],
                 own: str, sddp_dir: str = "", with_extensions: bool = True,
                 isdir: Callable[[str], bool] = os.path.isdir,
                 realpath: Callable[[str], str] = os.path.realpath) -> Tuple[WildcardFolder, ...]:
    """The folders in search order. `bundled` and `saved` are kept even before they exist (the saved templates'
    folder is made by the first save and found by a refresh); the others only when they are folders now.
    `extensions` in Forge's order, disabled ones included; `own` is Orchestrator's folder, never searched as an
    extension (its wildcards are the bundled ones)."""
    found: List[WildcardFolder] = [WildcardFolder(bundled, "bundled"), WildcardFolder(saved, "saved templates")]
    found += [WildcardFolder(d, "Settings") for d in settings if d and isdir(d)]
    if with_extensions:
        sddp_seen = False
        for ext in extensions:
            if realpath(ext.path) == realpath(own):
                continue
            if is_sd_dynamic_prompts(ext, isdir):
                sddp_seen = True
                folder = sddp_dir or os.path.join(ext.path, "wildcards")
                origin = f"{ext.name} (wildcard_dir)" if sddp_dir else ext.name
            elif ext.enabled:
                folder, origin = os.path.join(ext.path, "wildcards"), ext.name
            else:
                continue
            if isdir(folder):
                found.append(WildcardFolder(folder, origin))
        if sddp_dir and not sddp_seen and isdir(sddp_dir):
            found.append(WildcardFolder(sddp_dir, f"{SDDP_NAME} (wildcard_dir)"))
    unique: List[WildcardFolder] = []
    reals = set()
    for folder in found:
        real = realpath(folder.path)
        if real not in reals:
            reals.add(real)
            unique.append(folder)
    return tuple(unique)


def describe(folders: Sequence[WildcardFolder]) -> str:
    """The search order as the tab shows it, one folder a line: `1. path (origin)`."""
    return "\n".join(f"{k}. {f.path} ({f.origin})" for k, f in enumerate(folders, 1))
