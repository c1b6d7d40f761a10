"""Image files written the way real Forge writes them, with realistic infotexts and what each one says, for
the history tests (the reader's, the index's, search's).

How Forge saves (modules/images.py `save_image_with_geninfo`, lllyasviel Forge f2.0.1):
- PNG: `image.save(path, format="PNG", quality=…, pnginfo=info)` where `info = PngImagePlugin.PngInfo()` got
  `add_text("parameters", infotext)` (Pillow writes tEXt, or iTXt when the text is not Latin-1).
- JPEG / WebP: `image.save(path, format=…, quality=…, lossless=…)` (RGBA converted to RGB first), then
  `piexif.insert(piexif.dump({"Exif": {UserComment: UserComment.dump(infotext, encoding="unicode")}}), path)`.
- With "Create a text file next to every image": `<stem>.txt` holding f"{infotext}\\n" (UTF-8, text mode).

Everything here is built with Pillow and piexif, the libraries Forge itself uses, never with the reader under
test. The expected values in SAMPLES are written by hand from the infotext text (an independent oracle).
Images are 8x8 (or what `size` says), so thousands are fast to make.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Tuple

import piexif
import piexif.helper
from PIL import Image, PngImagePlugin

VERSION = "f2.0.1v1.10.1-1.10.1"  # Forge's `Version` key in the real traces


def forge_quote(value: object) -> str:
    """Forge's infotext_utils.quote: a value holding a comma, newline or colon is written as a JSON string."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def forge_infotext(prompt: str, negative: str, params: Sequence[Tuple[str, object]]) -> str:
    """An infotext the way Forge's processing.create_infotext joins it (None values are left out)."""
    line = ", ".join(k if k == v else f"{k}: {forge_quote(v)}" for k, v in params if v is not None)
    negative_text = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_text}\n{line}".strip()


# Writers -----------------------------------------------------------------------------------------------

def _image(size: Tuple[int, int], mode: str = "RGB", color: int = 0) -> Image.Image:
    fill = (color % 256, (color * 7) % 256, (color * 13) % 256)
    return Image.new(mode, size, fill + (255,) if mode == "RGBA" else fill)


def write_png(path: str, text: Optional[str], size: Tuple[int, int] = (8, 8), color: int = 0,
              existing: Optional[dict] = None) -> str:
    """A PNG as Forge saves it; `text` None: saved with "Save text information … to png files" off."""
    image = _image(size, "RGBA", color)
    info = None
    if text is not None:
        info = PngImagePlugin.PngInfo()
        for key, value in {**(existing or {}), "parameters": text}.items():
            info.add_text(key, str(value))
    image.save(path, format="PNG", quality=80, pnginfo=info)
    return path


def _save_lossy(path: str, fmt: str, size: Tuple[int, int], color: int, lossless: bool) -> Image.Image:
    image = _image(size, "RGBA", color).convert("RGB")  # Forge: RGBA is converted before JPEG/WebP
    image.save(path, format=fmt, quality=80, lossless=lossless)
    return image


def forge_exif(text: str) -> bytes:
    """The EXIF block Forge inserts: only a UserComment, "UNICODE\\0" + UTF-16 big-endian (piexif's dump)."""
    return piexif.dump({"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(text, encoding="unicode")}})


def write_jpeg(path: str, text: Optional[str], size: Tuple[int, int] = (8, 8), color: int = 0) -> str:
    _save_lossy(path, "JPEG", size, color, False)
    if text is not None:
        piexif.insert(forge_exif(text), path)
    return path


def write_webp(path: str, text: Optional[str], size: Tuple[int, int] = (8, 8), color: int = 0,
               lossless: bool = False) -> str:
    _save_lossy(path, "WEBP", size, color, lossless)
    if text is not None:
        piexif.insert(forge_exif(text), path)
    return path


def write_image(path: str, text: Optional[str], size: Tuple[int, int] = (8, 8), color: int = 0) -> str:
    """By the extension, as Forge picks the writer (.png, .jpg/.jpeg, .webp)."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        return write_png(path, text, size, color)
    if ext in (".jpg", ".jpeg"):
        return write_jpeg(path, text, size, color)
    if ext == ".webp":
        return write_webp(path, text, size, color)
    raise ValueError(f"Forge writes no {ext!r} images here")


def write_with_sidecar(path: str, text: str, size: Tuple[int, int] = (8, 8), newline: str = "\n") -> str:
    """The image without embedded text ("save text information … as chunks" off) and `<stem>.txt` beside it
    ("Create a text file next to every image" on); `newline="\\r\\n"` is what text mode writes on Windows."""
    write_image(path, None, size)
    with open(os.path.splitext(path)[0] + ".txt", "w", encoding="utf8", newline=newline) as handle:
        handle.write(f"{text}\n")
    return path


def write_not_an_image(path: str) -> str:
    """A file named like an image that holds text (a download error page, say)."""
    with open(path, "wb") as handle:
        handle.write(b"<html><body>404 Not Found</body></html>\n")
    return path


def write_empty(path: str) -> str:
    open(path, "wb").close()
    return path


def write_truncated(path: str, text: str, keep: float = 0.5) -> str:
    """A Forge PNG cut inside its `parameters` chunk (a copy interrupted, a disk full): `keep` of the chunk stays."""
    write_png(path, text)
    data = open(path, "rb").read()
    at = data.index(b"parameters\0")
    length = struct.unpack(">I", data[at - 8:at - 4])[0]
    with open(path, "wb") as handle:
        handle.write(data[:at + int(length * keep)])
    return path


def write_corrupt_png(path: str, text: str) -> str:
    """A Forge PNG whose header chunk is damaged (one byte of IHDR flipped, its CRC no longer matches)."""
    write_png(path, text)
    data = bytearray(open(path, "rb").read())
    data[16] ^= 0xFF  # inside IHDR's width
    with open(path, "wb") as handle:
        handle.write(bytes(data))
    return path


# Other tools' layouts (not Forge's, met in users' folders) -----------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_text_after_pixels(path: str, text: str) -> str:
    """A PNG whose `parameters` tEXt comes after IDAT, just before IEND (some tools append their text)."""
    write_png(path, None)
    data = open(path, "rb").read()
    end = data.rindex(b"IEND") - 4
    with open(path, "wb") as handle:
        handle.write(data[:end] + _chunk(b"tEXt", b"parameters\0" + text.encode("latin-1")) + data[end:])
    return path


def write_png_compressed(path: str, text: str, kind: str = "zTXt") -> str:
    """`parameters` as zTXt (Latin-1 text) or compressed iTXt (UTF-8), via Pillow's own writers."""
    image = _image((8, 8), "RGB")
    info = PngImagePlugin.PngInfo()
    if kind == "zTXt":
        info.add_text("parameters", text, zip=True)
    else:
        info.add_itxt("parameters", text, zip=True)
    image.save(path, format="PNG", pnginfo=info)
    return path


def write_png_chunks(path: str, chunks: Iterable[Tuple[bytes, bytes]]) -> str:
    """A PNG with extra chunks (kind, data) inserted right after IHDR."""
    write_png(path, None)
    data = open(path, "rb").read()
    at = 8 + 25  # signature + IHDR chunk
    with open(path, "wb") as handle:
        handle.write(data[:at] + b"".join(_chunk(k, d) for k, d in chunks) + data[at:])
    return path


def write_jpeg_user_comment(path: str, comment: bytes, byte_order: str = "MM") -> str:
    """A JPEG whose EXIF UserComment is exactly `comment` (prefix included), in an EXIF block of either byte
    order, built by hand: other tools write "UNICODE" in little-endian, "ASCII", or no prefix at all."""
    _save_lossy(path, "JPEG", (8, 8), 0, False)
    piexif.insert(b"Exif\0\0" + tiff_with_user_comment(comment, byte_order), path)
    return path


def tiff_with_user_comment(comment: bytes, byte_order: str = "MM") -> bytes:
    """A minimal TIFF-structured EXIF block: IFD0 with one ExifIFD pointer, the Exif IFD with one UserComment."""
    o = ">" if byte_order == "MM" else "<"
    header = (b"MM\0*" if byte_order == "MM" else b"II*\0") + struct.pack(o + "I", 8)
    ifd0 = struct.pack(o + "H", 1) + struct.pack(o + "HHII", 0x8769, 4, 1, 8 + 18) + struct.pack(o + "I", 0)
    exif_at = 8 + 18
    data_at = exif_at + 18
    exif = struct.pack(o + "H", 1) + struct.pack(o + "HHII", 0x9286, 7, len(comment), data_at) + struct.pack(o + "I", 0)
    return header + ifd0 + exif + comment


def write_webp_exif_prefixed(path: str, text: str) -> str:
    """A WebP whose EXIF chunk keeps the "Exif\\0\\0" prefix (Pillow's own exif= writes it so in some versions)."""
    write_webp(path, text)
    data = open(path, "rb").read()
    at = data.index(b"EXIF")
    length = struct.unpack("<I", data[at + 4:at + 8])[0]
    body = b"Exif\0\0" + data[at + 8:at + 8 + length]
    chunk = b"EXIF" + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")
    rest = data[at + 8 + length + (length & 1):]
    out = data[12:at] + chunk + rest
    with open(path, "wb") as handle:
        handle.write(b"RIFF" + struct.pack("<I", 4 + len(out)) + b"WEBP" + out)
    return path


# Realistic infotexts and what they say ---------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    """An infotext and, written by hand, what a reader must find in it."""

    text: str
    prompt: str
    negative: str
    seed: Optional[int]
    width: Optional[int]
    height: Optional[int]
    checkpoint: str = ""
    checkpoint_hash: str = ""
    hires_prompt: str = ""
    loras: Tuple[Tuple[str, Optional[float], str, str], ...] = ()  # (name, weight, source, reason)
    template: str = ""
    batch: str = ""
    swatch: str = ""
    orchestrator: str = ""
    group: Optional[str] = None  # the `Orchestrator group` given; None: computed by the reader
    keywords: Tuple[str, ...] = field(default=())  # words a search for this image would use


SETTINGS_JSON = '{"loras":true,"count":[1,6],"detailer":0.3,"rules":"","fixed":false,"template":"__templates/noir__"}'

SAMPLES = {
    # Real Forge f2.0.1 (../shared/forge/real-forge-traces.json, A_batch2_iter2_lora[0]): a LoRA tag and its hash.
    "forge_lora": Sample(
        text='a cat <lora:test_lora:0.5>\nNegative prompt: blurry, lowres\nSteps: 1, Sampler: Euler, Schedule type: '
             'Automatic, CFG scale: 7.0, Seed: 1000, Size: 64x64, Model hash: 3c6190d76a, Model: random-sd15, '
             'Lora hashes: "test_lora: 1e736908a712", Version: f2.0.1v1.10.1-1.10.1',
        prompt="a cat <lora:test_lora:0.5>", negative="blurry, lowres", seed=1000, width=64, height=64,
        checkpoint="random-sd15", checkpoint_hash="3c6190d76a", loras=(("test_lora", 0.5, "tag", ""),),
        keywords=("cat",)),
    # Real Forge (D_rewrite_hires[1]): hires fix with its own prompt, a quoted value with commas and quotes.
    "forge_hires": Sample(
        text='a owl rewritten1 <lora:test_lora:0.4>\nNegative prompt: blurry, lowres\nSteps: 1, Sampler: Euler, '
             'Schedule type: Automatic, CFG scale: 7.0, Seed: 1001, Size: 64x64, Model hash: 3c6190d76a, Model: '
             'random-sd15, Denoising strength: 0.5, Trace list: item0, Trace job: "job, with \\"quotes\\": and '
             'colon", Hires Module 1: Use same choices, Hires prompt: "a owl rewritten0 <lora:test_lora:0.3>", '
             'Hires CFG Scale: 7.0, Hires upscale: 2.0, Hires steps: 1, Hires upscaler: Latent, Lora hashes: '
             '"test_lora: 1e736908a712", Trace image: img0-seed1000, Version: f2.0.1v1.10.1-1.10.1',
        prompt="a owl rewritten1 <lora:test_lora:0.4>", negative="blurry, lowres", seed=1001, width=64, height=64,
        checkpoint="random-sd15", checkpoint_hash="3c6190d76a",
        hires_prompt="a owl rewritten0 <lora:test_lora:0.3>", loras=(("test_lora", 0.4, "tag", ""),),
        keywords=("owl",)),
    # Made with the Orchestrator on (job.py's keys), two LoRAs picked, one of them a detailer.
    "orchestrator": Sample(
        text='masterpiece, 1girl, red coat, city street at night, <lora:Neon Noir v2:0.6>, <lora:add_detail:0.3>\n'
             'Negative prompt: lowres, bad hands\n'
             'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 832x1216, '
             'Model hash: 4496b36d48, Model: ponyDiffusionV6XL, '
             'Orchestrator: "{\\"loras\\":true,\\"count\\":[1,6],\\"detailer\\":0.3,\\"rules\\":\\"\\",'
             '\\"fixed\\":false,\\"template\\":\\"__templates/noir__\\"}", Orchestrator template: __templates/noir__, '
             'Orchestrator LoRAs: "Neon Noir v2:0.6:match; add_detail:0.3:detailer", '
             'Lora hashes: "Neon Noir v2: 0a1b2c3d4e5f, add_detail: 7a8b9c0d1e2f", Version: f2.0.1v1.10.1-1.10.1',
        prompt="masterpiece, 1girl, red coat, city street at night, <lora:Neon Noir v2:0.6>, <lora:add_detail:0.3>",
        negative="lowres, bad hands", seed=1234567890, width=832, height=1216, checkpoint="ponyDiffusionV6XL",
        checkpoint_hash="4496b36d48",
        loras=(("Neon Noir v2", 0.6, "orchestrator", "match"), ("add_detail", 0.3, "orchestrator", "detailer")),
        template="__templates/noir__", orchestrator=SETTINGS_JSON, keywords=("red coat", "street")),
    # An image of an Orchestrator batch, by LoRA: the lead's `Orchestrator group` ties it to its siblings.
    "batch": Sample(
        text='portrait of an old fisherman, harbour, fog <lora:film grain:0.8>\n'
             'Negative prompt: cartoon\n'
             'Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 42, Size: 512x768, '
             'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Orchestrator LoRAs: "film grain:0.8:user", '
             'Orchestrator batch: harbour set #12, Orchestrator group: 5d41402abc4b2a76, Version: f2.0.1v1.10.1-1.10.1',
        prompt="portrait of an old fisherman, harbour, fog <lora:film grain:0.8>", negative="cartoon", seed=42,
        width=512, height=768, checkpoint="v1-5-pruned-emaonly", checkpoint_hash="6ce0161689",
        loras=(("film grain", 0.8, "orchestrator", "user"),), batch="harbour set #12", group="5d41402abc4b2a76",
        keywords=("fisherman",)),
    # A swatch cell (scripts/orchestrator_runner.py: only the swatch key, quoted for its colon) and its baseline.
    "swatch_cell": Sample(
        text='a lighthouse on a cliff, stormy sea <lora:watercolor:0.75>\n'
             'Negative prompt: text, watermark\n'
             'Steps: 20, Sampler: Euler, Schedule type: Automatic, CFG scale: 7, Seed: 777, Size: 768x512, '
             'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Orchestrator swatch: "watercolor:0.75", '
             'Orchestrator group: 0f0e0d0c0b0a0908, Version: f2.0.1v1.10.1-1.10.1',
        prompt="a lighthouse on a cliff, stormy sea <lora:watercolor:0.75>", negative="text, watermark", seed=777,
        width=768, height=512, checkpoint="v1-5-pruned-emaonly", checkpoint_hash="6ce0161689",
        loras=(("watercolor", 0.75, "tag", ""),), swatch="watercolor:0.75", group="0f0e0d0c0b0a0908",
        keywords=("lighthouse",)),
    "swatch_baseline": Sample(
        text='a lighthouse on a cliff, stormy sea\n'
             'Negative prompt: text, watermark\n'
             'Steps: 20, Sampler: Euler, Schedule type: Automatic, CFG scale: 7, Seed: 777, Size: 768x512, '
             'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Orchestrator swatch: baseline, '
             'Orchestrator group: 0f0e0d0c0b0a0908, Version: f2.0.1v1.10.1-1.10.1',
        prompt="a lighthouse on a cliff, stormy sea", negative="text, watermark", seed=777, width=768, height=512,
        checkpoint="v1-5-pruned-emaonly", checkpoint_hash="6ce0161689", swatch="baseline", group="0f0e0d0c0b0a0908",
        keywords=("lighthouse",)),
    # Prompt and negative over several lines, text that is not Latin-1 (Pillow writes iTXt for it), no LoRA.
    "multiline_unicode": Sample(
        text='  cherry blossoms, 桜, spring\n   soft light 🌸  \nsecond paragraph\n'
             'Negative prompt: worst quality\n  jpeg artifacts\n'
             'Steps: 30, Sampler: DPM++ SDE, Schedule type: Karras, CFG scale: 5, Seed: 3725959732, Size: 1024x1024, '
             'Model: animagineXL, Clip skip: 2, Version: f2.0.1v1.10.1-1.10.1',
        prompt="cherry blossoms, 桜, spring\nsoft light 🌸\nsecond paragraph", negative="worst quality\njpeg artifacts",
        seed=3725959732, width=1024, height=1024, checkpoint="animagineXL", keywords=("cherry blossoms",)),
    # Latin-1 but not ASCII (tEXt holds it as Latin-1), no negative prompt.
    "latin1_no_negative": Sample(
        text='café crème, still life, <lora:oil paint:1>\n'
             'Steps: 25, Sampler: Euler, Schedule type: Automatic, CFG scale: 7, Seed: 5, Size: 512x512, '
             'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "oil paint: aaaaaaaaaaaa, '
             'unmentioned: bbbbbbbbbbbb", Version: f2.0.1v1.10.1-1.10.1',
        prompt="café crème, still life, <lora:oil paint:1>", negative="", seed=5, width=512, height=512,
        checkpoint="v1-5-pruned-emaonly", checkpoint_hash="6ce0161689",
        loras=(("oil paint", 1.0, "tag", ""), ("unmentioned", None, "hashes", "")), keywords=("still life",)),
    # Pasted by hand or from another tool: only a prompt, no parameters line.
    "prompt_only": Sample(
        text="a watercolor fox in the snow, minimal", prompt="a watercolor fox in the snow, minimal", negative="",
        seed=None, width=None, height=None, keywords=("fox",)),
}


def write_samples(folder: str, formats: Sequence[str] = ("png", "jpg", "webp")) -> dict:
    """Every sample in every format into `folder`: {path: Sample}."""
    written = {}
    for name, sample in SAMPLES.items():
        for k, ext in enumerate(formats):
            path = os.path.join(folder, f"{name}.{ext}")
            write_image(path, sample.text, color=k)
            written[path] = sample
    return written
