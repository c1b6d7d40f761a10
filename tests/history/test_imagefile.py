"""Reading the generation parameters and size from image files written the way Forge writes them (and the way
other tools and accidents leave them), checked against what was written and against Pillow + piexif reading the
same file the way Forge's own `read_info_from_image` does."""
from __future__ import annotations

import io
import os
import struct
import sys
import zlib

import piexif
import piexif.helper
import pytest
from PIL import Image

from lib_orchestrator.history import imagefile
from lib_orchestrator.history.imagefile import ImageInfo, read_image_info

from . import forge_images as fi

TEXT = fi.SAMPLES["orchestrator"].text
UNICODE_TEXT = fi.SAMPLES["multiline_unicode"].text


def forge_reads(path: str):
    """(size, parameters) as Forge reads an image: Pillow's info `parameters`, else the EXIF UserComment."""
    with Image.open(path) as image:
        text = image.info.get("parameters")
        if "exif" in image.info:
            exif = piexif.load(image.info["exif"])
            comment = exif.get("Exif", {}).get(piexif.ExifIFD.UserComment, b"")
            try:
                comment = piexif.helper.UserComment.load(comment)
            except ValueError:
                comment = comment.decode("utf8", errors="ignore")
            text = comment or text
        return image.size, text


WRITERS = {
    "png": lambda p, t, size: fi.write_png(p + ".png", t, size),
    "jpeg": lambda p, t, size: fi.write_jpeg(p + ".jpg", t, size),
    "webp": lambda p, t, size: fi.write_webp(p + ".webp", t, size),
    "webp-lossless": lambda p, t, size: fi.write_webp(p + ".webp", t, size, lossless=True),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("name", sorted(fi.SAMPLES))
def test_every_sample_in_every_format_reads_back_exactly(tmp_path, kind, name):
    text = fi.SAMPLES[name].text
    path = WRITERS[kind](str(tmp_path / name), text, (24, 16))
    info = read_image_info(path)
    assert info == ImageInfo(kind.split("-")[0], 24, 16, text, "")
    assert forge_reads(path) == ((24, 16), text)  # the oracle agrees on what was written


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize("size", [(1, 1), (513, 7), (1024, 1536)])
def test_size_from_the_header(tmp_path, kind, size):
    path = WRITERS[kind](str(tmp_path / "s"), "p\nSteps: 1, Seed: 2, Size: 3x4", size)
    info = read_image_info(path)
    assert (info.width, info.height) == size == Image.open(path).size
    assert info.problem == ""


def test_a_large_photo_like_jpeg_with_many_segments(tmp_path):
    """A real-size JPEG (noise, so the entropy data is large) with an ICC profile and an XMP packet before
    the EXIF: segments past the first read are reached by seeking."""
    path = str(tmp_path / "big.jpg")
    image = Image.effect_noise((640, 480), 64).convert("RGB")
    icc = b"\0" * 60000
    image.save(path, format="JPEG", quality=95, icc_profile=icc)
    data = open(path, "rb").read()
    xmp_payload = b"http://ns.adobe.com/xap/1.0/\0" + b"<x:xmpmeta/>" + b" " * 30000
    xmp = b"\xff\xe1" + struct.pack(">H", len(xmp_payload) + 2) + xmp_payload
    open(path, "wb").write(data[:2] + xmp + data[2:])
    piexif.insert(fi.forge_exif(TEXT), path)
    data = open(path, "rb").read()
    assert data.index(b"Exif\0\0") > imagefile.HEAD or data.index(b"\xff\xc0") > imagefile.HEAD
    assert read_image_info(path) == ImageInfo("jpeg", 640, 480, TEXT, "")
    assert forge_reads(path)[1] == TEXT


def test_exif_with_other_tags_beside_the_comment(tmp_path):
    path = str(tmp_path / "camera.jpg")
    fi.write_jpeg(path, None)
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Model: b"EOS",
                                piexif.ImageIFD.Software: b"Forge"},
                        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2026:01:01 00:00:00",
                                 piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(TEXT, "unicode"),
                                 piexif.ExifIFD.PixelXDimension: 8},
                        "GPS": {piexif.GPSIFD.GPSVersionID: (2, 0, 0, 0)}})
    piexif.insert(exif, path)
    assert read_image_info(path).text == TEXT


def test_a_second_exif_segment_is_read_when_the_first_has_no_comment(tmp_path):
    path = str(tmp_path / "two.jpg")
    fi.write_jpeg(path, None)
    data = open(path, "rb").read()
    segments = b""
    for exif in (piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon"}}), fi.forge_exif(TEXT)):
        segments += b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
    open(path, "wb").write(data[:2] + segments + data[2:])
    assert read_image_info(path) == ImageInfo("jpeg", 8, 8, TEXT, "")


def test_a_camera_photo_without_a_comment_has_no_parameters(tmp_path):
    path = str(tmp_path / "camera.jpg")
    fi.write_jpeg(path, None)
    piexif.insert(piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon"}}), path)
    assert read_image_info(path) == ImageInfo("jpeg", 8, 8, None, "no generation parameters")


# PNG layouts -----------------------------------------------------------------------------------------------

def _chunk_types(path):
    data = open(path, "rb").read()
    pos, kinds = 8, []
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kinds.append(data[pos + 4:pos + 8].decode())
        pos += 12 + length
    return kinds


def test_forge_png_text_is_tEXt_for_latin1_and_iTXt_otherwise(tmp_path):
    latin = fi.write_png(str(tmp_path / "latin.png"), fi.SAMPLES["latin1_no_negative"].text)
    wide = fi.write_png(str(tmp_path / "wide.png"), UNICODE_TEXT)
    assert "tEXt" in _chunk_types(latin) and "iTXt" in _chunk_types(wide)
    assert read_image_info(latin).text == fi.SAMPLES["latin1_no_negative"].text
    assert read_image_info(wide).text == UNICODE_TEXT


@pytest.mark.parametrize("kind", ["zTXt", "iTXt"])
def test_compressed_text_chunks(tmp_path, kind):
    text = TEXT if kind == "zTXt" else UNICODE_TEXT
    path = fi.write_png_compressed(str(tmp_path / "z.png"), text, kind)
    assert kind in _chunk_types(path)
    assert read_image_info(path) == ImageInfo("png", 8, 8, text, "")


def test_other_text_chunks_are_passed_over_and_existing_info_kept(tmp_path):
    """Forge keeps an image's other PNG info (`existing_pnginfo`), and ComfyUI-made files carry big workflow
    chunks: only the keyword of those is read."""
    workflow = '{"nodes": [' + ", ".join(['{"id": 1}'] * 20000) + "]}"
    path = fi.write_png(str(tmp_path / "x.png"), TEXT, existing={"workflow": workflow, "Software": "x"})
    assert _chunk_types(path)[:4] == ["IHDR", "tEXt", "tEXt", "tEXt"]
    assert read_image_info(path).text == TEXT


def test_text_after_the_pixels_is_found(tmp_path):
    path = fi.write_png_text_after_pixels(str(tmp_path / "after.png"), TEXT)
    assert _chunk_types(path)[-2:] == ["tEXt", "IEND"]
    assert read_image_info(path) == ImageInfo("png", 8, 8, TEXT, "")


def test_a_large_png_with_text_after_many_pixel_chunks(tmp_path, monkeypatch):
    """Only chunk headers are read past the pixels: a 4 MB image costs a few dozen small reads."""
    path = str(tmp_path / "big.png")
    Image.effect_noise((1200, 1200), 100).convert("RGB").save(path, format="PNG", compress_level=0)
    data = open(path, "rb").read()
    end = data.rindex(b"IEND") - 4
    chunk = fi._chunk(b"tEXt", b"parameters\0" + TEXT.encode("latin-1"))
    open(path, "wb").write(data[:end] + chunk + data[end:])
    assert _chunk_types(path).count("IDAT") > 10
    counted = _count_reads(monkeypatch, lambda: read_image_info(path))
    assert counted["result"] == ImageInfo("png", 1200, 1200, TEXT, "")
    assert counted["bytes"] < imagefile.HEAD + 64 * 1024 < os.path.getsize(path) // 10


def test_a_large_png_without_text_is_walked_by_chunk_headers_only(tmp_path, monkeypatch):
    path = str(tmp_path / "plain.png")
    Image.effect_noise((1200, 1200), 100).convert("RGB").save(path, format="PNG", compress_level=0)
    counted = _count_reads(monkeypatch, lambda: read_image_info(path))
    assert counted["result"] == ImageInfo("png", 1200, 1200, None, "no generation parameters")
    assert counted["bytes"] < imagefile.HEAD + 8 * counted["calls"]


def test_parameters_larger_than_the_first_read(tmp_path):
    text = TEXT + ", Orchestrator note: " + "n" * 300000
    path = fi.write_png(str(tmp_path / "long.png"), text)
    assert read_image_info(path).text == text


def test_png_exif_chunk_is_the_next_choice(tmp_path):
    exif = fi.forge_exif(TEXT)[6:]
    path = fi.write_png_chunks(str(tmp_path / "exif.png"), [(b"eXIf", exif)])
    assert read_image_info(path) == ImageInfo("png", 8, 8, TEXT, "")
    both = fi.write_png_chunks(str(tmp_path / "both.png"), [(b"eXIf", exif), (b"tEXt", b"parameters\0own text")])
    assert read_image_info(both).text == "own text"


def test_a_flipped_byte_in_the_parameters_is_reported_but_the_text_kept(tmp_path):
    path = fi.write_png(str(tmp_path / "flip.png"), TEXT)
    data = bytearray(open(path, "rb").read())
    at = data.index(b"Steps: 28")
    data[at] = ord("s")
    open(path, "wb").write(bytes(data))
    info = read_image_info(path)
    assert info.problem == "corrupt PNG chunk" and info.text == TEXT.replace("Steps: 28", "steps: 28")


def test_a_parameters_chunk_over_the_cap_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefile, "MAX_METADATA", 1000)
    path = fi.write_png(str(tmp_path / "huge.png"), TEXT + ", X: " + "x" * 5000)
    assert read_image_info(path) == ImageInfo("png", 8, 8, None, "metadata too large")


def test_a_declared_length_beyond_the_file_is_a_truncated_file(tmp_path, monkeypatch):
    path = fi.write_png_chunks(str(tmp_path / "lie.png"), [(b"tEXt", b"parameters\0abc")])
    data = bytearray(open(path, "rb").read())
    at = data.index(b"tEXtparameters") - 4
    data[at:at + 4] = struct.pack(">I", 0x7FFFFF00)
    open(path, "wb").write(bytes(data))
    counted = _count_reads(monkeypatch, lambda: read_image_info(path))
    assert counted["result"] == ImageInfo("png", 8, 8, None, "truncated file")
    assert counted["bytes"] <= imagefile.HEAD


def test_a_zlib_bomb_is_refused_not_expanded(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefile, "MAX_METADATA", 1 << 20)
    bomb = zlib.compress(b"a" * (8 << 20), 9)
    path = fi.write_png_chunks(str(tmp_path / "bomb.png"), [(b"zTXt", b"parameters\0\0" + bomb)])
    assert read_image_info(path) == ImageInfo("png", 8, 8, None, "metadata too large")


@pytest.mark.parametrize("stream", [b"not zlib at all", zlib.compress(TEXT.encode())[:-20]])
def test_broken_or_cut_compressed_text(tmp_path, stream):
    path = fi.write_png_chunks(str(tmp_path / "bad.png"), [(b"zTXt", b"parameters\0\0" + stream)])
    assert read_image_info(path) == ImageInfo("png", 8, 8, None, "corrupt PNG chunk")


# EXIF UserComment encodings ------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["MM", "II"])
@pytest.mark.parametrize("comment, text", [
    (b"UNICODE\0" + UNICODE_TEXT.encode("utf-16-be"), UNICODE_TEXT),  # Forge, piexif
    (b"UNICODE\0" + UNICODE_TEXT.encode("utf-16-le"), UNICODE_TEXT),  # exiftool on a little-endian EXIF
    (b"UNICODE\0" + UNICODE_TEXT.encode("utf-16"), UNICODE_TEXT),  # with a byte-order mark
    (b"UNICODE\0" + "\ufeffa cat".encode("utf-16-be"), "a cat"),
    (b"ASCII\0\0\0" + TEXT.encode("ascii"), TEXT),
    (b"ASCII\0\0\0" + UNICODE_TEXT.encode("utf-8"), UNICODE_TEXT),  # UTF-8 under the ASCII label, as many write
    (b"\0" * 8 + TEXT.encode("utf-8"), TEXT),  # undefined charset
    (TEXT.encode("utf-8"), TEXT),  # no prefix at all
    (b"JIS\0\0\0\0\0" + "桜, Steps: 1".encode("shift_jis"), "桜, Steps: 1"),
    (b"UNICODE\0" + "padded".encode("utf-16-be") + b"\0\0\0\0", "padded"),
    (b"UNICODE\0", None),
    (b"", None),
])
def test_user_comment_encodings(tmp_path, order, comment, text):
    path = fi.write_jpeg_user_comment(str(tmp_path / "c.jpg"), comment, order)
    info = read_image_info(path)
    assert info.text == text
    assert info.problem == ("" if text is not None else "no generation parameters")


def test_webp_exif_with_its_exif_prefix(tmp_path):
    path = fi.write_webp_exif_prefixed(str(tmp_path / "p.webp"), TEXT)
    assert read_image_info(path) == ImageInfo("webp", 8, 8, TEXT, "")
    assert Image.open(path).size == (8, 8)


def test_a_broken_exif_block_is_reported(tmp_path):
    path = str(tmp_path / "b.jpg")
    fi.write_jpeg(path, None)
    data = open(path, "rb").read()
    payload = b"Exif\0\0MM\0*\0\0\xff\xff"  # IFD0 offset past the block
    open(path, "wb").write(data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:])
    assert read_image_info(path) == ImageInfo("jpeg", 8, 8, None, "corrupt EXIF")


# The `.txt` beside the image ------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", ["png", "jpg", "webp"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_sidecar_text_when_the_image_holds_none(tmp_path, ext, newline):
    path = fi.write_with_sidecar(str(tmp_path / f"00001-42.{ext}"), UNICODE_TEXT, newline=newline)
    info = read_image_info(path)
    assert (info.text, info.problem, info.width) == (UNICODE_TEXT, "", 8)


def test_an_empty_parameters_chunk_says_nothing(tmp_path):
    path = fi.write_png(str(tmp_path / "a.png"), "")
    assert read_image_info(path) == ImageInfo("png", 8, 8, None, "no generation parameters")
    (tmp_path / "a.txt").write_text(TEXT + "\n", encoding="utf-8")
    assert read_image_info(path).text == TEXT


def test_a_sidecar_saved_by_an_editor_with_a_byte_order_mark(tmp_path):
    path = fi.write_png(str(tmp_path / "a.png"), None)
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbf" + TEXT.encode("utf-8"))
    assert read_image_info(path).text == TEXT


def test_the_embedded_text_wins_over_the_sidecar(tmp_path):
    path = fi.write_png(str(tmp_path / "a.png"), TEXT)
    (tmp_path / "a.txt").write_text("something else\n", encoding="utf-8")
    assert read_image_info(path).text == TEXT


def test_an_empty_sidecar_or_a_folder_named_like_one_is_no_text(tmp_path):
    path = fi.write_png(str(tmp_path / "a.png"), None)
    (tmp_path / "a.txt").write_text("\n", encoding="utf-8")
    assert read_image_info(path) == ImageInfo("png", 8, 8, None, "no generation parameters")
    path = fi.write_png(str(tmp_path / "b.png"), None)
    (tmp_path / "b.txt").mkdir()
    assert read_image_info(path).problem == "no generation parameters"


def test_a_sidecar_does_not_make_a_non_image_an_image(tmp_path):
    path = fi.write_not_an_image(str(tmp_path / "x.png"))
    (tmp_path / "x.txt").write_text(TEXT, encoding="utf-8")
    assert read_image_info(path) == ImageInfo("", None, None, None, "not an image")


def test_a_truncated_image_still_gets_its_sidecar_with_the_problem_kept(tmp_path):
    path = fi.write_truncated(str(tmp_path / "t.png"), TEXT)
    (tmp_path / "t.txt").write_text(TEXT + "\n", encoding="utf-8")
    assert read_image_info(path) == ImageInfo("png", 8, 8, TEXT, "truncated file")


# Files that are no good ---------------------------------------------------------------------------------

def test_problem_files(tmp_path):
    assert read_image_info(fi.write_empty(str(tmp_path / "e.png"))) == ImageInfo("", None, None, None, "empty file")
    assert read_image_info(fi.write_not_an_image(str(tmp_path / "n.jpg"))).problem == "not an image"
    assert read_image_info(fi.write_truncated(str(tmp_path / "t.png"), TEXT)) == ImageInfo(
        "png", 8, 8, None, "truncated file")
    assert read_image_info(fi.write_corrupt_png(str(tmp_path / "c.png"), TEXT)) == ImageInfo(
        "png", None, None, None, "corrupt PNG chunk")
    assert read_image_info(fi.write_png(str(tmp_path / "plain.png"), None)) == ImageInfo(
        "png", 8, 8, None, "no generation parameters")
    assert read_image_info(str(tmp_path / "missing.png")).problem.startswith("unreadable: ")
    assert read_image_info(str(tmp_path)).problem == "unreadable: not a regular file"
    assert read_image_info("bad\0name.png").problem.startswith("unreadable: ")


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_every_truncation_gives_the_whole_text_or_none(tmp_path, kind):
    path = WRITERS[kind](str(tmp_path / "full"), TEXT, (16, 16))
    data = open(path, "rb").read()
    cut = str(tmp_path / ("cut" + os.path.splitext(path)[1]))
    seen = set()
    for length in range(0, len(data)):
        open(cut, "wb").write(data[:length])
        info = read_image_info(cut)
        assert info.text in (None, TEXT), length
        assert info.problem or info.text == TEXT, length  # a cut before the text is always noticed
        seen.add(info.problem)
    assert "truncated file" in seen


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_an_image_does_not_block(tmp_path):
    path = str(tmp_path / "pipe.png")
    os.mkfifo(path)
    assert read_image_info(path).problem == "unreadable: not a regular file"


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads every file")
def test_a_file_we_may_not_read(tmp_path):
    path = fi.write_png(str(tmp_path / "secret.png"), TEXT)
    os.chmod(path, 0)
    assert read_image_info(path).problem == "unreadable: Permission denied"


def test_a_png_lookalike_with_junk_chunks(tmp_path):
    path = str(tmp_path / "junk.png")
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + fi._chunk(b"IHDR", ihdr) + b"\0\0\0\x05\x01\x02\x03\x04junk")
    assert read_image_info(path) == ImageInfo("png", 8, 8, None, "corrupt PNG chunk")


def test_an_image_pillow_can_read_from_memory_is_what_we_read_from_disk(tmp_path):
    """Pillow as the anchor for the header: the same bytes, the same size."""
    for kind, writer in WRITERS.items():
        path = writer(str(tmp_path / kind.replace("-", "_")), TEXT, (33, 17))
        with Image.open(io.BytesIO(open(path, "rb").read())) as image:
            assert (read_image_info(path).width, read_image_info(path).height) == image.size


def _count_reads(monkeypatch, run):
    """`run()` with every os.read counted: {"result": …, "bytes": …, "calls": …}."""
    counted = {"bytes": 0, "calls": 0}
    real = os.read

    def read(fd, n):
        data = real(fd, n)
        counted["bytes"] += len(data)
        counted["calls"] += 1
        return data

    with monkeypatch.context() as patch:
        patch.setattr(os, "read", read)
        counted["result"] = run()
    return counted


def test_pngs_png_info_is_what_forge_writes(tmp_path):
    """The writer is Forge's: PngInfo.add_text under `parameters` (a guard on the fixture itself)."""
    path = fi.write_png(str(tmp_path / "a.png"), TEXT)
    with Image.open(path) as image:
        assert image.info["parameters"] == TEXT
