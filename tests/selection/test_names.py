"""One LoRA per name: `<lora:NAME>` loads one file, however many listings or files carry that name."""
from __future__ import annotations

import json
import os
import struct

import pytest

from lib_orchestrator.compose import compose
from lib_orchestrator.library import scan_library
from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.selection import LoraIndex, Rules


def write_lora(path, trigger):
    """A small SDXL safetensors file whose header carries its trigger phrase."""
    meta = {"ss_base_model_version": "sdxl_base_v1-0", "modelspec.trigger_phrase": trigger}
    header = json.dumps({"__metadata__": meta,
                         "lora_te1_a.lora_down.weight": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}})
    raw = header.encode() + b" " * (-len(header) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\1" * 8)


def test_a_folder_linked_inside_the_library_gives_its_loras_once(tmp_path):
    root = tmp_path / "Lora"
    write_lora(root / "chars" / "frieren.safetensors", "frieren, elf, white hair")
    try:
        os.symlink("chars", root / "fav", target_is_directory=True)
    except OSError:
        pytest.skip("this file system makes no symbolic links")
    records = scan_library(str(root)).records
    assert [r.path for r in records] == ["chars/frieren.safetensors", "fav/frieren.safetensors"]  # as Forge lists
    index = LoraIndex(records)
    assert [r.path for r in index.records] == ["chars/frieren.safetensors"]  # the first listing
    for seed in range(20):
        c = compose("t", "1girl, frieren elf mage", seed, index, Rules(), "sdxl", "SDXL 1.0")
        assert c.prompt.count("<lora:frieren:") == 1, c.prompt


def test_two_files_of_one_name_in_any_case_give_one_lora_the_first_listed():
    def record(path, name, trigger):
        return LoraRecord(path, name, base_model="SDXL 1.0", family="sdxl", category="character",
                          trigger_words=(trigger,), activation_text=(trigger,))

    index = LoraIndex([record("IL/Frieren.safetensors", "Frieren", "frieren"),
                       record("Pony/frieren.safetensors", "frieren", "frieren_pony"),
                       record("Pony/fern.safetensors", "fern", "fern")])
    assert [r.path for r in index.records] == ["IL/Frieren.safetensors", "Pony/fern.safetensors"]
    for seed in range(20):
        c = compose("t", "frieren, frieren_pony, fern", seed, index, Rules(min_total=3, max_total=6), "sdxl",
                    "SDXL 1.0")
        names = [p.name.lower() for p in c.loras]
        assert len(names) == len(set(names)) and "frieren" in names, c.prompt
