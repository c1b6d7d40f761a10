"""The safetensors header reader: 8 bytes of length, JSON, nothing more; every defect a typed error."""
from __future__ import annotations

import json
import struct

import pytest

from lib_orchestrator.library.header import MAX_HEADER_BYTES, HeaderError, json_value, read_header


def write(path, header: dict, data: bytes = b"\0" * 8, length=None) -> str:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return str(path)


def test_metadata_keys_and_data_offset(tmp_path):
    header = {"__metadata__": {"ss_output_name": "frieren", "ss_network_dim": "32"},
              "lora_te1_a.lora_down.weight": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}}
    got = read_header(write(tmp_path / "a.safetensors", header))
    assert got.metadata == {"ss_output_name": "frieren", "ss_network_dim": "32"}
    assert got.keys == ("lora_te1_a.lora_down.weight",)
    assert got.data_offset == 8 + len(json.dumps(header)) + (-len(json.dumps(header)) % 8)


def test_no_metadata_is_fine_and_nested_values_are_kept_as_json_text(tmp_path):
    assert read_header(write(tmp_path / "a.safetensors", {"k": {"dtype": "F16", "shape": [], "data_offsets": [0, 2]}})
                       ).metadata == {}
    meta = read_header(write(tmp_path / "b.safetensors", {"__metadata__": {"n": 3, "t": {"x": 1}}})).metadata
    assert meta == {"n": "3", "t": '{"x": 1}'}


def test_json_value_decodes_kohya_nested_strings():
    meta = {"ss_tag_frequency": '{"10_a": {"x": 1}}', "bad": "{not json", "plain": "5"}
    assert json_value(meta, "ss_tag_frequency") == {"10_a": {"x": 1}}
    assert json_value(meta, "bad") is None and json_value(meta, "plain") is None and json_value(meta, "nope") is None


@pytest.mark.parametrize("content, fragment, not_safetensors", [
    (b"", "empty", False),
    (b"\x10\x00", "too short", False),
    (struct.pack("<Q", 10_000) + b"{}", "past the end", False),
    (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}", "cap", False),
    (struct.pack("<Q", 8) + b"{not js}", "not valid JSON", False),
    (struct.pack("<Q", 8) + b"[1,2,3] ", "not an object", False),
    (b"\x80\x04\x95\x00\x00\x00\x00\x00pickle", "pickle", True),
    (b"PK\x03\x04zipzipzip", "zip", True),
])
def test_defects_raise_header_error(tmp_path, content, fragment, not_safetensors):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(HeaderError, match=fragment) as info:
        read_header(str(path))
    assert info.value.not_safetensors is not_safetensors


def test_a_valid_header_whose_length_starts_with_0x80_is_not_mistaken_for_a_pickle(tmp_path):
    header = {"__metadata__": {"pad": "x" * (0x280 - 40)}}
    raw = json.dumps(header).encode()
    raw += b" " * (0x280 - len(raw))
    path = tmp_path / "p.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert path.read_bytes()[:2] == b"\x80\x02"
    assert read_header(str(path)).metadata["pad"].startswith("xxx")


def test_truncated_tensor_data_still_has_a_readable_header(tmp_path):
    path = write(tmp_path / "t.safetensors", {"__metadata__": {"a": "b"}, "k": {"dtype": "F16", "shape": [100],
                                                                               "data_offsets": [0, 200]}}, data=b"")
    header = read_header(path)
    assert header.metadata == {"a": "b"}
    assert "truncated" in header.data_problem and "200" in header.data_problem  # the scan excludes it


def test_tensor_data_that_fits_is_no_problem_and_a_header_without_tensors_needs_none(tmp_path):
    tensor = {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}
    assert read_header(write(tmp_path / "a.safetensors", {"k": tensor})).data_problem is None
    assert read_header(write(tmp_path / "b.safetensors", {"__metadata__": {"a": "b"}}, data=b"")).data_problem is None


def test_preview_lookup_follows_forges_order_then_ignores_case():
    from lib_orchestrator.library.previews import find_preview

    def names(*files):
        return {f.lower(): f for f in files}

    assert find_preview("a", names("a.preview.png", "a.png", "a.jpg")) == "a.png"
    assert find_preview("a", names("a.preview.png", "a.jpg")) == "a.preview.png"
    assert find_preview("a", names("a.webp", "a.preview.jpeg")) == "a.preview.jpeg"
    assert find_preview("a", names("A.PNG")) == "A.PNG"
    assert find_preview("a", names("a.PNG", "a.jpg")) == "a.jpg"  # exact spelling first
    assert find_preview("a.preview", names("a.preview.png")) == "a.preview.png"
    assert find_preview("a", names("a.example.0.jpeg", "ab.png")) is None
