"""The dispatcher's image writer: infotext in the file (PNG chunk, or sidecar for JPEG/WebP), one file per image,
never half written. Checked with the project's reader and, independently, with Pillow and a chunk walk of our own."""
from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import zlib

import pytest
from PIL import Image, PngImagePlugin

from lib_orchestrator.dispatch import writer
from lib_orchestrator.dispatch.writer import sweep_temps, with_params, write_image
from lib_orchestrator.errors import OrchestratorError
from lib_orchestrator.history.imagefile import read_image_info
from lib_orchestrator.history.infotext import parse_infotext

from ..conftest import REPO

FORGE_TEXT = ("a cat, <lora:fluffy:0.8>\nNegative prompt: blurry, dark\n"
              "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1234, Size: 64x48, "
              "Model hash: abcd1234, Model: dream, Lora hashes: \"fluffy: 0123456789ab\", Version: f2.0.1")


def pillow_png(text_chunks=(), size=(8, 6)) -> bytes:
    """A PNG as Pillow (and so Forge) writes it, with the given (keyword, value, kind) text chunks."""
    image = Image.new("RGB", size, (10, 200, 30))
    image.putpixel((1, 1), (255, 0, 0))
    info = PngImagePlugin.PngInfo()
    for keyword, value, kind in text_chunks:
        if kind == "tEXt":
            info.add_text(keyword, value)
        elif kind == "zTXt":
            info.add_text(keyword, value, zip=True)
        else:
            info.add_itxt(keyword, value)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def chunks(data: bytes):
    """(kind, body, crc ok) of every chunk: a walk written here, not the product's."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, found = 8, []
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        found.append((kind, body, zlib.crc32(kind + body) & 0xFFFFFFFF == crc))
        pos += 12 + length
    return found


def pillow_text(path) -> dict:
    with Image.open(path) as image:
        image.load()
        return dict(image.text)


def listing(folder) -> list:
    return sorted(os.listdir(folder))


# with_params ----------------------------------------------------------------------------------------------------

def test_our_keys_are_appended_to_forges_parameters_line_and_read_back():
    text = with_params(FORGE_TEXT, {"Orchestrator LoRAs": "fluffy:0.8:match", "Orchestrator batch": "cats #3"})
    assert text.startswith("a cat, <lora:fluffy:0.8>\nNegative prompt: blurry, dark\nSteps: 20, Sampler: Euler a")
    assert text.endswith(', Version: f2.0.1, Orchestrator LoRAs: "fluffy:0.8:match", Orchestrator batch: cats #3')
    generation = parse_infotext(text)
    assert generation.prompt == "a cat, <lora:fluffy:0.8>"
    assert generation.negative == "blurry, dark"
    assert generation.seed == 1234 and (generation.width, generation.height) == (64, 48)
    assert generation.batch == "cats #3"
    assert [(u.name, u.weight, u.reason) for u in generation.loras] == [("fluffy", 0.8, "match")]
    assert generation.param("Lora hashes") == "fluffy: 0123456789ab"


def test_a_key_the_server_already_wrote_is_replaced_not_repeated():
    first = with_params(FORGE_TEXT, {"Orchestrator batch": "old #1", "Orchestrator template": "a {cat|dog}"})
    second = with_params(first, {"Orchestrator batch": "new #2"})
    assert second.count("Orchestrator batch") == 1
    generation = parse_infotext(second)
    assert generation.batch == "new #2"
    assert generation.template == "a {cat|dog}"
    keys = [key for key, _ in generation.params]
    assert keys[:3] == ["Steps", "Sampler", "Schedule type"] and keys[-1] == "Orchestrator batch"


@pytest.mark.parametrize("value", ['plain', 'a, comma', 'a: colon', 'two\nlines', '"quoted"', 'say "hi"',
                                   'ünïcödé 日本 🐱', 'back\\slash, too'])
def test_values_survive_the_parameters_line_whatever_they_hold(value):
    generation = parse_infotext(with_params(FORGE_TEXT, {"Orchestrator template": value}))
    assert generation.template == value
    assert generation.seed == 1234  # the line still parses whole


def test_an_infotext_without_a_parameters_line_gets_ours_as_one():
    text = with_params("just a prompt", {"Orchestrator batch": "b #1", "Orchestrator LoRAs": "none",
                                         "Orchestrator template": "t"})
    generation = parse_infotext(text)
    assert generation.prompt == "just a prompt" and generation.batch == "b #1" and generation.template == "t"
    assert with_params("", {"Orchestrator batch": "b #1"}) == "Orchestrator batch: b #1"
    assert with_params(FORGE_TEXT, {}) == FORGE_TEXT


# PNG ------------------------------------------------------------------------------------------------------------

def test_png_parameters_chunk_is_replaced_with_right_crcs(tmp_path):
    data = pillow_png([("parameters", "server's own text", "tEXt"), ("workflow", "{}", "tEXt")])
    text = with_params(FORGE_TEXT, {"Orchestrator batch": "cats #0"})
    path, digest = write_image(str(tmp_path), "cats-0123456789ab-00000", data, text)
    assert path == str(tmp_path / "cats-0123456789ab-00000.png")
    written = (tmp_path / "cats-0123456789ab-00000.png").read_bytes()
    assert digest == hashlib.sha256(written).hexdigest()
    found = chunks(written)
    assert all(ok for _, _, ok in found)
    kinds = [kind for kind, _, _ in found]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    params = [kind for kind, body, _ in found if body.startswith(b"parameters\0")]
    assert params == [b"iTXt"]
    assert kinds.index(b"iTXt") < kinds.index(b"IDAT")  # before the pixels, where readers stop looking
    # the project's reader and Pillow agree on the text; Pillow's verify() checks every chunk's CRC
    info = read_image_info(path)
    assert (info.format, info.width, info.height, info.text, info.problem) == ("png", 8, 6, text, "")
    assert pillow_text(path) == {"parameters": text, "workflow": "{}"}
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image, Image.open(io.BytesIO(data)) as original:
        assert image.tobytes() == original.tobytes()


@pytest.mark.parametrize("kinds", [("tEXt",), ("zTXt",), ("iTXt",), ("tEXt", "iTXt", "zTXt"), ()])
def test_every_parameters_chunk_of_any_kind_becomes_one_utf8_itxt(tmp_path, kinds):
    data = pillow_png([("parameters", f"old {k}", k) for k in kinds])
    text = "ünïcödé prompt 日本 🐱\nSteps: 20, Sampler: Euler, Seed: 7, Size: 8x6"
    path, _ = write_image(str(tmp_path), "s", data, text)
    assert pillow_text(path) == {"parameters": text}
    assert read_image_info(path).text == text
    found = chunks((tmp_path / "s.png").read_bytes())
    assert [kind for kind, body, _ in found if body.startswith(b"parameters\0")] == [b"iTXt"]


def test_a_png_chunks_after_the_pixels_are_kept_and_a_late_parameters_chunk_replaced(tmp_path):
    data = pillow_png()
    iend = data.rindex(b"IEND") - 4

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    late = data[:iend] + chunk(b"tEXt", b"parameters\0late") + chunk(b"tEXt", b"Comment\0kept") + data[iend:]
    path, _ = write_image(str(tmp_path), "late", late + b"trailing junk", "new text")
    assert pillow_text(path) == {"parameters": "new text", "Comment": "kept"}
    assert (tmp_path / "late.png").read_bytes().endswith(b"IEND\xaeB`\x82")


@pytest.mark.parametrize("damage", ["crc", "cut", "no-ihdr"])
def test_a_broken_png_is_refused_and_nothing_written(tmp_path, damage):
    data = bytearray(pillow_png())
    if damage == "crc":
        data[30] ^= 0xFF  # inside IHDR's CRC or body
    elif damage == "cut":
        data = data[:-20]
    else:
        data[12:16] = b"IDAT"
    with pytest.raises(OrchestratorError):
        write_image(str(tmp_path), "broken", bytes(data), "text")
    assert listing(tmp_path) == []


def test_anything_but_png_jpeg_webp_is_refused(tmp_path):
    with pytest.raises(OrchestratorError, match="no PNG, JPEG or WebP"):
        write_image(str(tmp_path), "x", b"GIF89a....", "text")
    assert listing(tmp_path) == []


# JPEG / WebP ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, ext", [("JPEG", ".jpg"), ("WEBP", ".webp")])
def test_jpeg_and_webp_keep_their_bytes_and_get_a_sidecar(tmp_path, fmt, ext):
    out = io.BytesIO()
    Image.new("RGB", (16, 8), (1, 2, 3)).save(out, fmt)
    data = out.getvalue()
    text = "a dog 🐕\nSteps: 20, Sampler: Euler, Seed: 1, Size: 16x8"
    path, digest = write_image(str(tmp_path), "dog", data, text)
    assert path == str(tmp_path / f"dog{ext}")
    assert (tmp_path / f"dog{ext}").read_bytes() == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "dog.txt").read_bytes() == (text + "\n").encode("utf-8")  # Forge's save_txt layout
    info = read_image_info(path)
    assert (info.text, info.width, info.height) == (text, 16, 8)
    assert listing(tmp_path) == sorted([f"dog{ext}", "dog.txt"])


def test_one_image_stays_one_file_when_a_server_answers_in_another_format(tmp_path):
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "JPEG")
    write_image(str(tmp_path), "img", pillow_png(), "t")
    write_image(str(tmp_path), "img", out.getvalue(), "t")
    assert listing(tmp_path) == ["img.jpg", "img.txt"]
    write_image(str(tmp_path), "img", pillow_png(), "t")
    assert listing(tmp_path) == ["img.png"]


# one file, never half -------------------------------------------------------------------------------------------

def test_rewriting_identical_content_gives_the_same_single_file(tmp_path):
    data = pillow_png([("parameters", "x", "tEXt")])
    first = write_image(str(tmp_path), "same", data, FORGE_TEXT)
    before = (tmp_path / "same.png").read_bytes()
    second = write_image(str(tmp_path), "same", data, FORGE_TEXT)
    assert first == second
    assert (tmp_path / "same.png").read_bytes() == before
    assert listing(tmp_path) == ["same.png"]


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failure_mid_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, failing):
    old = write_image(str(tmp_path), "img", pillow_png(), "old text")
    old_bytes = (tmp_path / "img.png").read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.os, failing, boom)
    with pytest.raises(OSError, match="No space"):
        write_image(str(tmp_path), "img", pillow_png(size=(9, 9)), "new text")
    monkeypatch.undo()
    assert listing(tmp_path) == ["img.png"]
    assert (tmp_path / "img.png").read_bytes() == old_bytes
    assert read_image_info(old[0]).text == "old text"


def test_a_writer_killed_mid_write_leaves_no_half_file_and_its_temporary_is_swept(tmp_path):
    # A child process is SIGKILLed after its temporary file is written and fsynced, just before the rename: the
    # one moment a kill can leave anything behind.
    if sys.platform == "win32":
        pytest.skip("SIGKILL is POSIX")
    (tmp_path / "src.bin").write_bytes(pillow_png())
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from lib_orchestrator.dispatch import writer
        writer.os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        writer.write_image({str(out)!r}, "img", open({str(tmp_path / "src.bin")!r}, "rb").read(), "text")
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    left = listing(out)
    assert "img.png" not in left and len(left) == 1 and left[0].startswith(".img.png.orchestrator-tmp.")
    # a live process's temporary (our own) is left alone; the dead child's is removed
    mine = out / f".mine.png.orchestrator-tmp.{socket.gethostname()}.{os.getpid()}.abcd1234"
    mine.write_bytes(b"in progress")
    assert sweep_temps(str(out)) == 1
    assert listing(out) == [mine.name]
    assert sweep_temps(str(out), now=os.stat(mine).st_mtime + writer.STALE_TEMP_S + 1) == 1
    assert listing(out) == []


def test_sweeping_a_missing_folder_removes_nothing(tmp_path):
    assert sweep_temps(str(tmp_path / "absent")) == 0
    (tmp_path / "visible.png").write_bytes(b"x")
    (tmp_path / ".hidden").write_bytes(b"x")
    assert sweep_temps(str(tmp_path), now=1e12) == 0
