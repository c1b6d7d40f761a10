"""Image files as copies, crashes and other tools leave them: real Forge-written PNG, JPEG and WebP files cut at
any length, with bytes flipped, junk inserted, a length field set to a lie, or random bytes behind an image
signature. Every case: `read_image_info` returns an ImageInfo (never raises) within its time budget, what it
returns is well-formed, a cut file never yields part of the text as if it were all of it, a PNG never yields
changed text without saying its chunk is corrupt, and the infotext parser takes whatever text came out.

The expectations come from how each case was built (the text the fixture wrote), never from the reader's code.
ORCH_FUZZ_SCALE=10 runs ten times as many cases.
"""
from __future__ import annotations

import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib_orchestrator.history.imagefile import ImageInfo, read_image_info
from lib_orchestrator.history.infotext import Generation, parse_infotext

from ..history import forge_images as fi
from .conftest import budget, record

BUDGET = 10.0  # seconds per case: a read takes microseconds, so only a hang or a runaway loop trips it
TEXT = fi.SAMPLES["orchestrator"].text
WIDE = fi.SAMPLES["multiline_unicode"].text
FORMATS = {"png", "jpeg", "webp", ""}


def cases(n: int) -> int:
    return max(1, int(n * float(os.environ.get("ORCH_FUZZ_SCALE", "1"))))


FUZZ = dict(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """{name: (bytes, text written, extension)} of real files in every layout the reader walks."""
    folder = tmp_path_factory.mktemp("originals")
    made = {
        "png": (fi.write_png(str(folder / "a.png"), TEXT, (16, 16)), TEXT),
        "png-itxt": (fi.write_png(str(folder / "b.png"), WIDE, (16, 16)), WIDE),
        "png-ztxt": (fi.write_png_compressed(str(folder / "c.png"), TEXT, "zTXt"), TEXT),
        "png-after": (fi.write_png_text_after_pixels(str(folder / "d.png"), TEXT), TEXT),
        "jpeg": (fi.write_jpeg(str(folder / "e.jpg"), WIDE, (16, 16)), WIDE),
        "jpeg-le": (fi.write_jpeg_user_comment(str(folder / "f.jpg"), b"UNICODE\0" + TEXT.encode("utf-16-le"), "II"),
                    TEXT),
        "webp": (fi.write_webp(str(folder / "g.webp"), TEXT, (16, 16)), TEXT),
        "webp-lossless": (fi.write_webp(str(folder / "h.webp"), WIDE, (16, 16), lossless=True), WIDE),
        "webp-prefixed": (fi.write_webp_exif_prefixed(str(folder / "i.webp"), TEXT), TEXT),
    }
    out = {}
    for name, (path, text) in made.items():
        assert read_image_info(path).text == text  # the unharmed file reads right
        out[name] = (open(path, "rb").read(), text, os.path.splitext(path)[1])
    return out


def _read(folder, ext: str, data: bytes) -> ImageInfo:
    path = os.path.join(folder, "case" + ext)
    with open(path, "wb") as handle:
        handle.write(data)
    info = budget(BUDGET, read_image_info, path)
    assert isinstance(info, ImageInfo)
    assert info.format in FORMATS
    assert isinstance(info.problem, str)
    assert info.text is None or (isinstance(info.text, str) and info.text)
    for side in (info.width, info.height):
        assert side is None or (isinstance(side, int) and 0 <= side < 2 ** 32)
    if info.format == "":
        assert info.text is None and info.problem
    assert isinstance(budget(BUDGET, parse_infotext, info.text), Generation)
    return info


def test_any_cut_gives_the_whole_text_or_none(originals, tmp_path):
    names = sorted(originals)
    started, count = time.perf_counter(), [0]

    @settings(**FUZZ, max_examples=cases(400))
    @given(st.sampled_from(names), st.floats(min_value=0, max_value=1, exclude_max=True))
    def case(name, fraction):
        count[0] += 1
        data, text, ext = originals[name]
        info = _read(str(tmp_path), ext, data[:int(len(data) * fraction)])
        assert info.text in (None, text)
        if info.text is None:
            assert info.problem  # a cut that lost the text is reported

    case()
    record("imagefile: cut", count[0], time.perf_counter() - started)


def test_flipped_bytes(originals, tmp_path):
    names = sorted(originals)
    started, count = time.perf_counter(), [0]

    @settings(**FUZZ, max_examples=cases(600))
    @given(st.sampled_from(names),
           st.lists(st.tuples(st.floats(min_value=0, max_value=1, exclude_max=True), st.integers(1, 255)),
                    min_size=1, max_size=4))
    def case(name, flips):
        count[0] += 1
        data, text, ext = originals[name]
        damaged = bytearray(data)
        for where, mask in flips:
            damaged[int(len(data) * where)] ^= mask
        info = _read(str(tmp_path), ext, bytes(damaged))
        if name.startswith("png") and info.text not in (None, text):
            assert info.problem == "corrupt PNG chunk"  # PNG text is CRC-checked: a change never passes silently

    case()
    record("imagefile: flipped bytes", count[0], time.perf_counter() - started)


def test_inserted_junk_and_lying_lengths(originals, tmp_path):
    names = sorted(originals)
    started, count = time.perf_counter(), [0]

    @settings(**FUZZ, max_examples=cases(400))
    @given(st.sampled_from(names), st.floats(min_value=0, max_value=1, exclude_max=True),
           st.one_of(st.binary(min_size=1, max_size=64),
                     st.sampled_from([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\0\0\0\0", b"\xff\xd8\xff\xe1",
                                      b"\xff\xda", b"IDAT", b"IEND", b"EXIF", b"VP8X"])),
           st.booleans())
    def case(name, where, junk, overwrite):
        count[0] += 1
        data, _text, ext = originals[name]
        at = int(len(data) * where)
        damaged = data[:at] + junk + data[at + (len(junk) if overwrite else 0):]
        _read(str(tmp_path), ext, damaged)

    case()
    record("imagefile: junk and lying lengths", count[0], time.perf_counter() - started)


def test_random_bytes_behind_an_image_signature(tmp_path):
    started, count = time.perf_counter(), [0]
    signatures = [b"", b"\x89PNG\r\n\x1a\n", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", b"\xff\xd8\xff", b"\xff\xd8\xff\xe1",
                  b"RIFF\xff\xff\xff\xffWEBP", b"RIFF\0\0\0\0WEBPVP8X", b"RIFF\x20\0\0\0WEBPEXIF"]

    @settings(**FUZZ, max_examples=cases(500))
    @given(st.sampled_from(signatures), st.binary(max_size=2048))
    def case(signature, tail):
        count[0] += 1
        _read(str(tmp_path), ".png", signature + tail)

    case()
    record("imagefile: random bytes", count[0], time.perf_counter() - started)
