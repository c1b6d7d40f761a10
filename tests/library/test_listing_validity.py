"""Listing as Forge lists (os.walk with followlinks=True, loops reported instead of walked) and validity as
Forge sees it (tensor data cut short, previews that do not decode, AppleDouble files, shared aliases).
Each test builds its own small tree; expected values come from what the test wrote, never from the
product's tables."""
from __future__ import annotations

import io
import json
import os
import struct

import pytest

from lib_orchestrator.library import previews as previews_module
from lib_orchestrator.library import scan_library
from lib_orchestrator.library.header import read_header
from lib_orchestrator.library.problems import ALIAS_COLLISION, Problem
from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.library.scan import _between_files

HASH_A = "a" * 64


def lora(path, meta=None, data_size=8, claimed=None, offsets=...) -> bytes:
    """A safetensors file with one tensor; `claimed` bytes of tensor data in the header, `data_size` on disk."""
    claimed = data_size if claimed is None else claimed
    header = {"__metadata__": meta or {},
              "lora_te1_a.lora_down.weight": {"dtype": "F16", "shape": [claimed // 2],
                                              "data_offsets": [0, claimed] if offsets is ... else offsets}}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    data = struct.pack("<Q", len(raw)) + raw + b"\1" * data_size
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def scan(root, tmp_path):
    """Cold, then warm from the cache: both must agree, so every rule also holds for cached records."""
    cache = str(tmp_path / "cache.sqlite")
    cold = scan_library(str(root), cache)
    warm = scan_library(str(root), cache)
    assert warm.read == 0 and warm.records == cold.records
    return {r.path: r for r in cold.records}


# --- listing -----------------------------------------------------------------------------------------

def test_a_folder_linked_inside_the_library_is_listed_under_both_paths_and_is_not_its_own_twin(tmp_path):
    root = tmp_path / "Lora"
    meta = {"ss_output_name": "Frieren", "sshs_model_hash": HASH_A, "ss_base_model_version": "sdxl_base_v1-0"}
    lora(root / "Pony" / "chara" / "frieren_pony.safetensors", meta)
    os.symlink(os.path.join("Pony", "chara"), root / "favourites", target_is_directory=True)
    got = scan(root, tmp_path)
    assert sorted(got) == ["Pony/chara/frieren_pony.safetensors", "favourites/frieren_pony.safetensors"]
    for record in got.values():
        # Same stem, same alias, same tensor hash: all three would clash between two real files.
        assert record.is_lora and record.warnings == () and record.duplicate_group is None, record.path


def test_a_real_copy_beside_a_linked_folder_clashes_with_both_listings(tmp_path):
    root = tmp_path / "Lora"
    meta = {"ss_output_name": "Frieren", "sshs_model_hash": HASH_A}
    lora(root / "Pony" / "frieren.safetensors", meta)
    lora(root / "backup" / "frieren.safetensors", meta)  # a second real file: stem, alias and hash shared
    os.symlink("Pony", root / "fav", target_is_directory=True)
    got = scan(root, tmp_path)
    assert sorted(got) == ["Pony/frieren.safetensors", "backup/frieren.safetensors", "fav/frieren.safetensors"]
    for record in got.values():
        assert set(record.warnings) == {"stem_collision", "alias_collision", "duplicate"}, record.path
        assert record.duplicate_group == HASH_A
    dup = next(p for p in got["backup/frieren.safetensors"].problems if p.code == "duplicate")
    assert "Pony/frieren.safetensors" in dup.message and "fav/frieren.safetensors" in dup.message
    dup = next(p for p in got["fav/frieren.safetensors"].problems if p.code == "duplicate")
    assert "backup/frieren.safetensors" in dup.message and "Pony/" not in dup.message  # not its own twin


@pytest.mark.skipif(os.name == "nt", reason="hard links are known by inode, which Windows' listing does not give")
def test_a_hard_link_under_another_name_is_one_file(tmp_path):
    root = tmp_path / "Lora"
    lora(root / "a.safetensors", {"ss_output_name": "shared", "sshs_model_hash": HASH_A})
    os.link(root / "a.safetensors", root / "b.safetensors")
    got = scan(root, tmp_path)
    assert {p: r.warnings for p, r in got.items()} == {"a.safetensors": (), "b.safetensors": ()}


def test_a_link_to_a_folder_outside_the_library_is_listed(tmp_path):
    root = tmp_path / "Lora"
    lora(root / "here.safetensors")
    lora(tmp_path / "elsewhere" / "deep" / "there.safetensors")
    os.symlink(os.path.join("..", "elsewhere"), root / "linked", target_is_directory=True)
    got = scan(root, tmp_path)
    assert sorted(got) == ["here.safetensors", "linked/deep/there.safetensors"]
    assert got["linked/deep/there.safetensors"].is_lora and not got["linked/deep/there.safetensors"].problems


def test_a_loop_is_reported_once_and_not_walked(tmp_path):
    root = tmp_path / "Lora"
    lora(root / "top.safetensors")
    lora(root / "concept" / "lighting" / "rim.safetensors")
    os.symlink("..", root / "concept" / "lighting" / "loop", target_is_directory=True)  # back to concept/
    os.symlink(".", root / "self", target_is_directory=True)  # back to the library folder
    got = scan(root, tmp_path)
    assert sorted(got) == ["concept/lighting/loop", "concept/lighting/rim.safetensors", "self",
                           "top.safetensors"]
    for path, name in (("concept/lighting/loop", "loop"), ("self", "self")):
        record = got[path]
        assert (record.name, record.is_lora, record.warnings) == (name, False, ("symlink_loop",))
        assert [p.file for p in record.problems] == [path]
    assert "'concept/'" in got["concept/lighting/loop"].problems[0].message
    assert "library folder itself" in got["self"].problems[0].message


def test_a_loop_is_caught_where_the_real_path_is_spelled_otherwise(tmp_path, monkeypatch):
    """On a case-insensitive volume (macOS) `loop -> ../LIB` resolves to a path spelled unlike the folder it
    is: the folder is known by its device and inode, so the loop is still caught at once."""
    root = tmp_path / "Lora"
    lora(root / "concept" / "rim.safetensors")
    os.symlink("..", root / "concept" / "loop", target_is_directory=True)
    realpath = os.path.realpath
    monkeypatch.setattr(os.path, "realpath",
                        lambda p, *a, **k: realpath(p, *a, **k).upper() if str(p).endswith("loop") else
                        realpath(p, *a, **k))
    got = scan_library(str(root))
    assert [r.path for r in got.records] == ["concept/loop", "concept/rim.safetensors"]
    assert got.records[0].warnings == ("symlink_loop",)


def test_a_folder_reached_twice_is_no_loop_but_a_way_back_through_it_is(tmp_path):
    # fav -> Pony/chara; Pony/chara/up -> .. (Pony). Under Pony/chara, `up` leads back to Pony: a loop.
    # Under fav, `up` is Pony, not a folder on that path, so it is walked (os.walk does too); its `chara` is
    # then the folder fav itself is: the loop closes there.
    root = tmp_path / "Lora"
    lora(root / "Pony" / "p.safetensors")
    lora(root / "Pony" / "chara" / "c.safetensors")
    os.symlink("..", root / "Pony" / "chara" / "up", target_is_directory=True)
    os.symlink(os.path.join("Pony", "chara"), root / "fav", target_is_directory=True)
    got = scan(root, tmp_path)
    assert sorted(got) == ["Pony/chara/c.safetensors", "Pony/chara/up", "Pony/p.safetensors",
                           "fav/c.safetensors", "fav/up/chara", "fav/up/p.safetensors"]
    loops = sorted(p for p, r in got.items() if r.warnings == ("symlink_loop",))
    assert loops == ["Pony/chara/up", "fav/up/chara"]
    assert all(r.warnings == () for p, r in got.items() if p not in loops)


def test_hidden_folders_and_broken_links_follow_forge(tmp_path):
    root = tmp_path / "Lora"
    lora(root / ".hidden" / "h.safetensors")
    lora(root / ".dotfile.safetensors")
    os.symlink("nowhere", root / "gone", target_is_directory=True)  # a broken folder link: nothing to list
    os.symlink("missing.safetensors", root / "dangling.safetensors")
    everything = {r.path: r.warnings for r in scan_library(str(root)).records}
    assert everything == {".hidden/h.safetensors": (), ".dotfile.safetensors": (),
                          "dangling.safetensors": ("unreadable",)}
    # Forge's list_hidden_files=False skips files below a dot folder, never a dot file's own name.
    shown = {r.path for r in scan_library(str(root), include_hidden=False).records}
    assert shown == {".dotfile.safetensors", "dangling.safetensors"}


# --- truncated tensor data ----------------------------------------------------------------------------

def test_tensor_data_cut_short_is_corrupt_header_and_excluded_but_still_resolved(tmp_path):
    root = tmp_path / "Lora"
    meta = {"ss_base_model_version": "sdxl_base_v1-0", "ss_output_name": "cut"}
    lora(root / "cut.safetensors", meta, data_size=100, claimed=200)
    lora(root / "whole.safetensors", meta | {"ss_output_name": "whole"}, data_size=200, claimed=200)
    lora(root / "backwards.safetensors", meta | {"ss_output_name": "backwards"}, offsets=[8, 4])
    got = scan(root, tmp_path)
    whole = got["whole.safetensors"]
    assert whole.warnings == () and not whole.excluded and whole.base_model == "SDXL 1.0"
    for path, words in (("cut.safetensors", "truncated"), ("backwards.safetensors", "data_offsets")):
        record = got[path]
        assert record.is_lora and record.excluded and record.warnings == ("corrupt_header",), path
        assert record.base_model == "SDXL 1.0" and record.family == "sdxl", path  # the header was read
        assert words in record.problems[0].message, record.problems[0].message
    assert "unfinished download" in got["cut.safetensors"].problems[0].message


@pytest.mark.parametrize("offsets", [[0, 8], [8, 8], [0, 0]])
def test_offsets_that_end_within_the_file_are_fine(tmp_path, offsets):
    path = tmp_path / "a.safetensors"
    lora(path, data_size=8, offsets=offsets)
    assert read_header(str(path)).data_problem is None


@pytest.mark.parametrize("offsets", [[0, 9], [-1, 4], [4, 2], [0], [0, 4, 8], [0.0, 4], [True, 4], ["0", "4"],
                                     None, "04", {"a": 0, "b": 4}])
def test_offsets_past_the_end_or_not_two_ordered_ints_are_a_data_problem(tmp_path, offsets):
    path = tmp_path / "a.safetensors"
    lora(path, data_size=8, offsets=offsets)
    problem = read_header(str(path)).data_problem
    assert problem and ("truncated" in problem if offsets == [0, 9] else "data_offsets" in problem)


def test_a_tensor_without_offsets_is_a_data_problem(tmp_path):
    raw = json.dumps({"__metadata__": {"a": "b"}, "t": {"dtype": "F16", "shape": [1]}}).encode()
    path = tmp_path / "a.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0\0")
    header = read_header(str(path))
    assert header.metadata == {"a": "b"} and "'t'" in header.data_problem


# --- previews -----------------------------------------------------------------------------------------

def image_bytes(fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 120, 200)).save(out, fmt)
    return out.getvalue()


UNDECODABLE = {  # the right magic bytes, then garbage or a cut
    "garbage.png": lambda: b"\x89PNG\r\n\x1a\n" + b"garbage!" * 16,
    "cut.png": lambda: image_bytes("PNG")[:60],
    "garbage.jpg": lambda: b"\xff\xd8\xff\xe0" + b"garbage!" * 16,
    "garbage.webp": lambda: b"RIFF\x40\0\0\0WEBPVP8 " + b"garbage!" * 8,
}


def test_previews_that_do_not_decode_are_broken_and_good_ones_are_kept(tmp_path):
    pytest.importorskip("PIL")
    root = tmp_path / "Lora"
    for name, make in UNDECODABLE.items():
        lora(root / (name.split(".")[0] + "_" + name.split(".")[1] + ".safetensors"))
        (root / (name.split(".")[0] + "_" + name.split(".")[1] + "." + name.split(".")[1])).write_bytes(make())
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("GIF", "gif")):
        lora(root / f"good_{ext}.safetensors")
        (root / f"good_{ext}.{ext}").write_bytes(image_bytes(fmt))
    lora(root / "jpeg_in_png.safetensors")
    (root / "jpeg_in_png.png").write_bytes(image_bytes("JPEG"))  # what Civitai Helper writes: fine
    got = {r.name: r for r in scan(root, tmp_path).values()}
    for name in UNDECODABLE:
        record = got[name.replace(".", "_")]
        assert record.preview is None and record.warnings == ("broken_preview",), name
        assert record.problems[0].file == name.replace(".", "_") + "." + name.split(".")[1]
        assert str(tmp_path) not in record.problems[0].message  # no absolute path in a cached message
    for name in ("good_png", "good_jpg", "good_webp", "good_gif", "jpeg_in_png"):
        assert got[name].preview is not None and got[name].warnings == (), name


def test_without_pillow_the_magic_bytes_decide(tmp_path, monkeypatch):
    monkeypatch.setattr(previews_module, "_pillow_looked", True)
    monkeypatch.setattr(previews_module, "_pillow", None)
    good = tmp_path / "garbage.png"
    good.write_bytes(UNDECODABLE["garbage.png"]())
    bad = tmp_path / "text.png"
    bad.write_bytes(b"not an image at all")
    assert previews_module.image_problem(str(good)) is None
    assert "not a PNG" in previews_module.image_problem(str(bad))


# --- AppleDouble --------------------------------------------------------------------------------------

def test_appledouble_files_are_not_loras_whatever_they_hold(tmp_path):
    root = tmp_path / "Lora"
    meta = {"ss_output_name": "frieren", "sshs_model_hash": HASH_A}
    data = lora(root / "frieren.safetensors", meta)
    (root / "._frieren.safetensors").write_bytes(data)  # the LoRA's own bytes: still not a LoRA
    (root / "._other.safetensors").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\0" * 64)
    (root / "._frieren.png").write_bytes(b"\x00\x05\x16\x07")  # not the preview of anything
    got = scan(root, tmp_path)
    assert sorted(got) == ["._frieren.safetensors", "._other.safetensors", "frieren.safetensors"]
    assert got["frieren.safetensors"].warnings == () and got["frieren.safetensors"].is_lora
    for path, name in (("._frieren.safetensors", "._frieren"), ("._other.safetensors", "._other")):
        record = got[path]
        assert (record.name, record.is_lora, record.warnings) == (name, False, ("not_safetensors",))
        assert "AppleDouble" in record.problems[0].message and record.size == os.path.getsize(root / path)


# --- alias collisions ---------------------------------------------------------------------------------

def codes_by_path(root, tmp_path):
    return {p: r.warnings for p, r in scan(root, tmp_path).items()}


def test_one_alias_on_two_files_marks_both_even_when_it_is_one_files_own_stem(tmp_path):
    root = tmp_path / "Lora"
    lora(root / "Hero.safetensors", {"ss_output_name": "Hero"})  # its alias is its own stem
    lora(root / "hero_v2.safetensors", {"ss_output_name": "Hero"})  # a renamed copy keeps the alias
    lora(root / "alone.safetensors", {"ss_output_name": "alone"})
    assert codes_by_path(root, tmp_path) == {"Hero.safetensors": ("alias_collision",),
                                             "hero_v2.safetensors": ("alias_collision",),
                                             "alone.safetensors": ()}


def test_aliases_clash_whatever_their_case(tmp_path):
    root = tmp_path / "Lora"
    lora(root / "a.safetensors", {"ss_output_name": "Makima"})
    lora(root / "b.safetensors", {"ss_output_name": "MAKIMA"})
    assert codes_by_path(root, tmp_path) == {"a.safetensors": ("alias_collision",),
                                             "b.safetensors": ("alias_collision",)}


def test_an_alias_that_is_another_files_stem_marks_only_the_alias(tmp_path):
    root = tmp_path / "Lora"
    lora(root / "x.safetensors", {"ss_output_name": "Tifa"})
    lora(root / "tifa.safetensors")  # no alias of its own: <lora:tifa> still names it
    lora(root / "Own.safetensors", {"ss_output_name": "Own"})
    lora(root / "own.safetensors")  # its alias is its own stem: another file's stem in another case is fine
    assert codes_by_path(root, tmp_path) == {"x.safetensors": ("alias_collision",), "tifa.safetensors": (),
                                             "Own.safetensors": (), "own.safetensors": ()}


def test_one_stem_twice_with_that_stem_as_alias_is_only_a_stem_collision(tmp_path):
    root = tmp_path / "Lora"
    lora(root / "a" / "same.safetensors", {"ss_output_name": "same"})
    lora(root / "b" / "same.safetensors", {"ss_output_name": "same"})
    lora(root / "a" / "twin.safetensors", {"ss_output_name": "Other"})
    lora(root / "b" / "twin.safetensors", {"ss_output_name": "Other"})  # <lora:Other> names neither
    assert codes_by_path(root, tmp_path) == {
        "a/same.safetensors": ("stem_collision",), "b/same.safetensors": ("stem_collision",),
        "a/twin.safetensors": ("alias_collision", "stem_collision"),
        "b/twin.safetensors": ("alias_collision", "stem_collision")}


def test_a_clash_goes_when_its_other_file_goes(tmp_path):
    root = tmp_path / "Lora"
    lora(root / "Hero.safetensors", {"ss_output_name": "Hero"})
    lora(root / "hero_v2.safetensors", {"ss_output_name": "Hero"})
    assert codes_by_path(root, tmp_path)["Hero.safetensors"] == ("alias_collision",)
    os.remove(root / "hero_v2.safetensors")
    assert codes_by_path(root, tmp_path) == {"Hero.safetensors": ()}


def test_a_record_from_the_cache_never_keeps_a_stale_clash():
    stale = Problem(ALIAS_COLLISION, "a.safetensors", "alias 'x' is also the alias of gone.safetensors")
    record = LoraRecord("a.safetensors", "a", alias="x", problems=(stale,))
    assert _between_files([record])[0].problems == ()
