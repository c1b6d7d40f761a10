"""A big wildcard pack, generated: tens of thousands of .txt files in nested folders shaped like the packs
sd-dynamic-prompts users collect (jumbo, nsp, artists, devilkkw: folders of 10 to 500 lists, names with
`_`, `-`, spaces and capitals), a few YAML files (one at the top, some inside packs, as publicprompts.yaml
and the nsp YAML are) and some lists that name others.

Everything is decided by `plan_pack(files, seed)` before anything is written, so a test knows what each name
holds from the plan itself, never from the store it checks. `make_pack` writes the plan; benchmarks use it
too (benchmarks/wildcards.py), so its signature stays.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

_PACKS = ("jumbo", "nsp", "artists", "devilkkw", "parrotzone", "Collection Extra")
_TOPICS = ("creatures", "animals", "birds", "people", "nationalities", "medium", "photography", "clothing",
           "European Art", "baroque", "modern", "impressionism", "body-1", "pose", "nature and elements",
           "locations", "architecture", "food", "vehicles", "mtg", "colors", "materials", "lighting", "moods")
_WORDS = ("red", "amber", "teal", "violet", "stone", "glass", "river", "harbor", "owl", "heron", "fox", "moth",
          "cedar", "willow", "dusk", "dawn", "neon", "velvet", "brass", "linen", "quiet", "stormy", "ancient",
          "gothic", "baroque", "misty", "golden", "silver", "paper", "ember", "frost", "meadow", "canyon")
_YAML_EVERY = 5_000  # one YAML file per this many files, plus the top one: "a few"
_REFERENCE_EVERY = 97  # one list in this many names another list


@dataclass(frozen=True)
class PackPlan:
    """What the pack holds: file contents by path below the root (`/`-separated), and what each wildcard
    name's list is (the .txt lines and the YAML lists, in file order)."""

    files: Dict[str, str]
    lists: Dict[str, Tuple[str, ...]]
    samples: Tuple[str, ...]  # names spread over the pack: shallow, deep, YAML-defined, referencing


def _word(rnd: random.Random) -> str:
    return rnd.choice(_WORDS)


def _file_name(rnd: random.Random, k: int) -> str:
    style = rnd.randrange(4)
    words = [_word(rnd) for _ in range(rnd.randint(1, 3))] + [str(k)]
    if style == 0:
        return "_".join(words)
    if style == 1:
        return "-".join(words)
    if style == 2:
        return " ".join(words).title()
    return "".join(w.capitalize() for w in words)


def _folders(rnd: random.Random, files: int) -> List[Tuple[str, int]]:
    """(folder, how many lists it holds): folders of 10 to 500 lists, 1 to 4 levels below a pack."""
    out: List[Tuple[str, int]] = []
    left = files
    k = 0
    while left > 0:
        size = min(left, rnd.randint(10, 500))
        depth = rnd.randint(1, 4)
        parts = [rnd.choice(_PACKS)] + [rnd.choice(_TOPICS) for _ in range(depth - 1)] + [f"{rnd.choice(_TOPICS)} {k}"]
        out.append(("/".join(parts), size))
        left -= size
        k += 1
    return out


def plan_pack(files: int = 50_000, seed: int = 0) -> PackPlan:
    """The pack of about `files` files (exactly `files`: YAML files replace some .txt ones)."""
    rnd = random.Random(seed)
    contents: Dict[str, str] = {}
    lists: Dict[str, Tuple[str, ...]] = {}
    folders = _folders(rnd, files)
    txt_names: List[str] = []
    for folder, size in folders:
        for k in range(size):
            name = f"{folder}/{_file_name(rnd, k)}"
            lines = tuple(f"{_word(rnd)} {_word(rnd)} {j}" for j in range(rnd.randint(3, 12)))
            txt_names.append(name)
            contents[name + ".txt"] = "\n".join(lines) + "\n"
            lists[name] = lines
    yaml_count = files // _YAML_EVERY + 1
    removed = txt_names[-yaml_count:]  # the pack keeps its size: YAML files take the place of the last lists
    for name in removed:
        del contents[name + ".txt"], lists[name]
    txt_names = txt_names[:-yaml_count]
    yaml_names: List[str] = []
    for y in range(yaml_count):
        # the first sits at the top of the pack (read for every name, as publicprompts.yaml is), the others in
        # pack folders, defining names below those folders
        folder = "" if y == 0 else rnd.choice(folders)[0].rsplit("/", 1)[0] + "/"
        body, defined = _yaml(rnd, y)
        contents[f"{folder}prompts {y}.yaml"] = body
        for key, values in defined.items():
            lists[folder + key] = values
            yaml_names.append(folder + key)
    referencing: List[str] = []
    for i in range(0, len(txt_names), _REFERENCE_EVERY):
        name, target = txt_names[i], txt_names[(i * 7 + 1) % len(txt_names)]
        line = f"{_word(rnd)} with __{target}__"
        lists[name] = lists[name] + (line,)
        contents[name + ".txt"] += line + "\n"
        referencing.append(name)
    step = max(1, len(txt_names) // 12)
    samples = tuple(dict.fromkeys(txt_names[::step] + [txt_names[-1]] + yaml_names[:4] + referencing[:3]))
    return PackPlan(contents, lists, samples)


def _yaml(rnd: random.Random, y: int) -> Tuple[str, Dict[str, Tuple[str, ...]]]:
    """A nested YAML mapping and the names it defines (relative to its folder)."""
    defined: Dict[str, Tuple[str, ...]] = {}
    lines: List[str] = []
    for g in range(rnd.randint(2, 4)):
        group = f"yaml{y} group{g}"
        lines.append(f"{group}:")
        for s in range(rnd.randint(1, 3)):
            values = tuple(f"{_word(rnd)} {_word(rnd)} y{y}" for _ in range(rnd.randint(2, 6)))
            lines.append(f"  set{s}:")
            lines.extend(f"    - {v}" for v in values)
            defined[f"{group}/set{s}"] = values
    return "\n".join(lines) + "\n", defined


def write_pack(root: Path, plan: PackPlan) -> None:
    made = set()
    for rel, text in plan.files.items():
        folder = os.path.join(root, os.path.dirname(rel))
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        with open(os.path.join(root, rel), "w", encoding="utf-8", newline="") as fh:
            fh.write(text)


def make_pack(root: Path, files: int = 50_000, seed: int = 0) -> List[str]:
    """Write the pack under `root` (made if missing); some wildcard names in it, the same for the same
    arguments: shallow and deep .txt lists, YAML-defined lists, lists that name others."""
    plan = plan_pack(files, seed)
    write_pack(Path(root), plan)
    return list(plan.samples)
