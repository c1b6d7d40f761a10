"""The generation parameters and size of one image file, read from its bytes without decoding a pixel.

Where Forge puts the infotext (modules/images.py `save_image_with_geninfo`), and so where we look:

- PNG: a `parameters` text chunk (Pillow's PngInfo.add_text: tEXt in Latin-1, or iTXt in UTF-8 when the
  text is not Latin-1; zTXt and compressed iTXt from other tools). Pillow writes text chunks before the
  first IDAT; when none is found there, the chunks after the pixel data are walked too (headers only, each
  IDAT is skipped by a seek), since some tools append their text at the end. A PNG eXIf chunk's UserComment
  is the next choice.
- JPEG: the EXIF UserComment of the APP1 "Exif" segment (Forge saves the image, then piexif.insert()s an
  EXIF block holding only the UserComment, "UNICODE\\0" + UTF-16 big-endian).
- WebP: the same EXIF in the RIFF "EXIF" chunk (piexif writes the TIFF block bare; some writers keep the
  "Exif\\0\\0" prefix: both are read).
- Any of them: the `<stem>.txt` Forge writes beside the image ("Create a text file next to every image"),
  when the file itself holds no parameters.

The size comes from the file's own header: IHDR, the JPEG frame header (SOF0..SOF15 but C4/C8/CC, which
are other segments), VP8X's canvas or the VP8/VP8L frame.

Reading is bounded: the first `HEAD` bytes are read at once (every metadata layout we know fits), anything
past them by a seek and a read of just what is needed, and a metadata segment over `MAX_METADATA` bytes is
never read. `read_image_info` never raises: a file that cannot be read, is no image, is cut short or broken
gives an ImageInfo whose `problem` says so, with whatever could still be read. The problems are the
`PROBLEM_*` strings below (`unreadable: …` carries the OS error).
"""
from __future__ import annotations

import errno
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from typing import Optional, Tuple

# Read at once: a Forge image's header and infotext (a few KB, twice that as UTF-16 EXIF) fit. 16 KiB measured a
# little faster than 64 KiB on 900 KB PNGs in the page cache (8.7 vs 10.8 us a file: less copied), and the
# kernel's read-ahead makes them alike on a cold disk; anything further is one more seek and read.
HEAD = 16 * 1024
MAX_METADATA = 8 * 1024 * 1024  # a text chunk, EXIF block or sidecar larger than this is no infotext

PROBLEM_EMPTY = "empty file"
PROBLEM_NOT_IMAGE = "not an image"
PROBLEM_TRUNCATED = "truncated file"
PROBLEM_PNG = "corrupt PNG chunk"
PROBLEM_JPEG = "corrupt JPEG segment"
PROBLEM_WEBP = "corrupt WebP chunk"
PROBLEM_EXIF = "corrupt EXIF"
PROBLEM_TOO_LARGE = "metadata too large"
PROBLEM_NO_PARAMETERS = "no generation parameters"
PROBLEM_UNREADABLE = "unreadable"  # as "unreadable: <the OS error>"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = (b"tEXt", b"zTXt", b"iTXt")
_KEYWORD = b"parameters"
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # C4 DHT, C8 JPG extension, CC DAC are no frames
_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}  # RSTn, TEM, SOI: markers without a length
_USER_COMMENT = 0x9286
_EXIF_IFD = 0x8769
_MAX_IFD_ENTRIES = 1000  # a real IFD0/Exif IFD has a few dozen


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "png" | "jpeg" | "webp" | "" (not one of those)
    width: Optional[int]  # from the file's own header
    height: Optional[int]
    text: Optional[str]  # the generation parameters, exactly as stored (None: none found)
    problem: str = ""  # "" or one short reason (the PROBLEM_* strings)


class _Cut(Exception):
    """The file ends before a structure it announced: the caller reports a truncated file."""


class _Broken(Exception):
    """A structure that cannot be what it claims: the caller reports it with the message (a PROBLEM_*)."""


class _File:
    """Bytes of an open file by absolute offset: from the head read at open, else by a seek and one read."""

    def __init__(self, fd: int, head: bytes, size: int) -> None:
        self.fd, self.head, self.size = fd, head, size

    def get(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes at `offset`, or _Cut."""
        if offset + length <= len(self.head):
            return self.head[offset:offset + length]
        if offset + length > self.size:
            raise _Cut()
        os.lseek(self.fd, offset, os.SEEK_SET)
        data = os.read(self.fd, length)
        if len(data) != length:  # the file shrank while we read it
            raise _Cut()
        return data


# Non-blocking: opening a FIFO named like an image must not wait for a writer (only regular files are read).
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)


def _open_regular(path: str) -> Tuple[int, int]:
    """(fd, size) of the regular file at `path`; OSError for anything else (a folder, a FIFO, a device)."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, status.st_size


def read_image_info(path: str) -> ImageInfo:
    """Format, size and generation parameters of the image at `path` (see the module's docstring)."""
    try:
        fd, size = _open_regular(path)
        try:
            head = os.read(fd, HEAD)
            if not head:
                return ImageInfo("", None, None, None, PROBLEM_EMPTY)
            file = _File(fd, head, max(size, len(head)))
            if head.startswith(_PNG_SIGNATURE):
                info = _read_png(file)
            elif head.startswith(b"\xff\xd8\xff"):
                info = _read_jpeg(file)
            elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                info = _read_webp(file)
            else:
                return ImageInfo("", None, None, None, PROBLEM_NOT_IMAGE)
        finally:
            os.close(fd)
    except OSError as error:
        return ImageInfo("", None, None, None, f"{PROBLEM_UNREADABLE}: {error.strerror or error}")
    except (ValueError, OverflowError) as error:  # a path no file can have (a NUL byte in it)
        return ImageInfo("", None, None, None, f"{PROBLEM_UNREADABLE}: {error}")
    if info.text is not None:
        return info
    sidecar = read_sidecar(path)
    if sidecar is not None:
        return ImageInfo(info.format, info.width, info.height, sidecar, info.problem)
    return ImageInfo(info.format, info.width, info.height, None, info.problem or PROBLEM_NO_PARAMETERS)


def read_sidecar(path: str) -> Optional[str]:
    """The text of the `<stem>.txt` beside `path`, without the one newline Forge ends it with; None when there
    is none (or it is empty, unreadable or too large to be an infotext)."""
    try:
        fd, size = _open_regular(os.path.splitext(path)[0] + ".txt")
    except (OSError, ValueError):
        return None
    try:
        if size > MAX_METADATA:
            return None
        chunks = []
        while True:
            data = os.read(fd, MAX_METADATA + 1)
            if not data:
                break
            chunks.append(data)
            if sum(map(len, chunks)) > MAX_METADATA:  # grew since the stat
                return None
    except OSError:
        return None
    finally:
        os.close(fd)
    # Forge writes it in text mode: "\r\n" on Windows; read back as the "\n" it wrote.
    # A byte-order mark is what an editor adds, never part of the text.
    text = b"".join(chunks).decode("utf-8-sig", "replace").replace("\r\n", "\n")
    if text.endswith("\n"):
        text = text[:-1]
    return text if text.strip() else None


# PNG ---------------------------------------------------------------------------------------------------

def _read_png(file: _File) -> ImageInfo:
    width = height = None
    text: Optional[str] = None
    exif_text: Optional[str] = None
    problem = ""
    pos = len(_PNG_SIGNATURE)
    try:
        while True:
            length, kind = struct.unpack(">I4s", file.get(pos, 8))
            if length > 0x7FFFFFFF or not kind.isalpha():
                raise _Broken(PROBLEM_PNG)
            data_at, pos = pos + 8, pos + 12 + length
            if kind == b"IDAT" and text is not None:
                break  # Forge's text is before the pixels; nothing after them is needed (nor read)
            if pos > file.size:
                raise _Cut()
            if width is None:  # the first chunk must be IHDR
                if kind != b"IHDR" or length != 13:
                    raise _Broken(PROBLEM_PNG)
                data = file.get(data_at, 17)
                if zlib.crc32(kind + data[:13]) != struct.unpack(">I", data[13:])[0]:
                    raise _Broken(PROBLEM_PNG)
                width, height = struct.unpack(">II", data[:8])
            elif kind in _PNG_TEXT and text is None:
                found, problem_here = _png_parameters(file, kind, data_at, length)
                if found:  # an empty `parameters` says nothing; an eXIf chunk or the sidecar still may
                    text = found
                problem = problem or problem_here
            elif kind == b"eXIf" and exif_text is None:
                if length > MAX_METADATA:
                    problem = problem or PROBLEM_TOO_LARGE
                else:
                    exif_text, problem_here = _exif_user_comment(file.get(data_at, length))
                    problem = problem or problem_here
            elif kind == b"IEND":
                break
    except _Cut:
        problem = problem or PROBLEM_TRUNCATED
    except _Broken as error:
        problem = problem or str(error)
    return ImageInfo("png", width, height, text if text is not None else exif_text, problem)


def _png_parameters(file: _File, kind: bytes, at: int, length: int) -> Tuple[Optional[str], str]:
    """The text of a tEXt/zTXt/iTXt chunk if its keyword is `parameters` (None otherwise), and a problem.
    Only the keyword is read of any other chunk (ComfyUI's workflow chunks run to megabytes)."""
    if length < len(_KEYWORD) + 1 or file.get(at, len(_KEYWORD) + 1) != _KEYWORD + b"\0":
        return None, ""
    if length > MAX_METADATA:
        return None, PROBLEM_TOO_LARGE
    chunk = file.get(at, length + 4)
    data, crc = chunk[:length], struct.unpack(">I", chunk[length:])[0]
    # A CRC mismatch is reported but the text still given: one flipped bit in a prompt is better seen than lost.
    problem = "" if zlib.crc32(kind + data) == crc else PROBLEM_PNG
    body = data[len(_KEYWORD) + 1:]
    try:
        if kind == b"tEXt":
            return body.decode("latin-1"), problem
        if kind == b"zTXt":  # method byte (0 = zlib), then the compressed Latin-1 text
            return _inflate(body[1:]).decode("latin-1"), problem
        # iTXt: compressed flag, method, language tag \0, translated keyword \0, UTF-8 text
        if len(body) < 2:
            raise _Broken(PROBLEM_PNG)
        compressed, rest = body[0], body[2:]
        parts = rest.split(b"\0", 2)
        if len(parts) != 3:
            raise _Broken(PROBLEM_PNG)
        raw = _inflate(parts[2]) if compressed else parts[2]
        return raw.decode("utf-8", "replace"), problem
    except _Broken as error:
        return None, str(error)


def _inflate(data: bytes) -> bytes:
    """zlib data, at most MAX_METADATA bytes of it (a bomb is refused, not expanded)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_METADATA)
    except zlib.error:
        raise _Broken(PROBLEM_PNG) from None
    if inflater.unconsumed_tail:
        raise _Broken(PROBLEM_TOO_LARGE)
    if not inflater.eof:  # the stream stops short: what came out is part of a text, not the text
        raise _Broken(PROBLEM_PNG)
    return out


# JPEG --------------------------------------------------------------------------------------------------

def _read_jpeg(file: _File) -> ImageInfo:
    width = height = None
    text: Optional[str] = None
    problem = ""
    pos = 2
    try:
        while True:
            if file.get(pos, 1) != b"\xff":
                raise _Broken(PROBLEM_JPEG)
            while True:  # fill bytes: any number of 0xFF before the marker code
                pos += 1
                marker = file.get(pos, 1)[0]
                if marker != 0xFF:
                    break
            pos += 1
            if marker in _STANDALONE:
                continue
            if marker == 0xD9 or marker == 0x00:  # EOI; FF00 only appears inside entropy-coded data
                if marker == 0x00:
                    raise _Broken(PROBLEM_JPEG)
                break
            length = struct.unpack(">H", file.get(pos, 2))[0]
            if length < 2:
                raise _Broken(PROBLEM_JPEG)
            if marker == 0xDA:  # start of scan: pixel data follows, every header is behind us
                break
            if marker in _SOF and width is None:
                if length < 7:
                    raise _Broken(PROBLEM_JPEG)
                height, width = struct.unpack(">HH", file.get(pos + 3, 4))
            elif marker == 0xE1 and text is None and length >= 8 and file.get(pos + 2, 6) == b"Exif\0\0":
                text, problem_here = _exif_user_comment(file.get(pos + 8, length - 8))
                problem = problem or problem_here
            pos += length
    except _Cut:
        problem = problem or PROBLEM_TRUNCATED
    except _Broken as error:
        problem = problem or str(error)
    return ImageInfo("jpeg", width, height, text, problem)


# WebP --------------------------------------------------------------------------------------------------

def _read_webp(file: _File) -> ImageInfo:
    width = height = None
    text: Optional[str] = None
    problem = ""
    riff_end = 8 + struct.unpack("<I", file.head[4:8])[0]
    end = min(riff_end, file.size)
    pos = 12
    try:
        while pos + 8 <= end:
            kind, length = struct.unpack("<4sI", file.get(pos, 8))
            data_at, pos = pos + 8, pos + 8 + length + (length & 1)
            if kind == b"VP8X" and width is None:
                if length < 10:
                    raise _Broken(PROBLEM_WEBP)
                data = file.get(data_at, 10)
                width = 1 + int.from_bytes(data[4:7], "little")
                height = 1 + int.from_bytes(data[7:10], "little")
            elif kind == b"VP8 " and width is None:
                data = file.get(data_at, 10)
                if data[3:6] != b"\x9d\x01\x2a":
                    raise _Broken(PROBLEM_WEBP)
                width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[6:10]))
            elif kind == b"VP8L" and width is None:
                data = file.get(data_at, 5)
                if data[0] != 0x2F:
                    raise _Broken(PROBLEM_WEBP)
                bits = int.from_bytes(data[1:5], "little")
                width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            elif kind == b"EXIF" and text is None:
                if length > MAX_METADATA:
                    problem = problem or PROBLEM_TOO_LARGE
                else:
                    data = file.get(data_at, length)
                    text, problem_here = _exif_user_comment(data[6:] if data[:6] == b"Exif\0\0" else data)
                    problem = problem or problem_here
        if riff_end > file.size or pos > file.size:
            raise _Cut()
    except _Cut:
        problem = problem or PROBLEM_TRUNCATED
    except _Broken as error:
        problem = problem or str(error)
    return ImageInfo("webp", width, height, text, problem)


# EXIF --------------------------------------------------------------------------------------------------

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


def _exif_user_comment(tiff: bytes) -> Tuple[Optional[str], str]:
    """The UserComment of a TIFF-structured EXIF block (IFD0 → Exif IFD → 0x9286), and a problem."""
    if len(tiff) < 8 or tiff[:4] not in (b"II*\0", b"MM\0*"):
        return None, PROBLEM_EXIF
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        ifd0 = struct.unpack(order + "I", tiff[4:8])[0]
        pointer = _ifd_entry(tiff, order, ifd0, _EXIF_IFD)
        # Some writers put the comment in IFD0 itself; the Exif IFD is where the standard (and Forge) puts it.
        entry = _ifd_entry(tiff, order, pointer[2], _USER_COMMENT) if pointer is not None else None
        if entry is None:
            entry = _ifd_entry(tiff, order, ifd0, _USER_COMMENT)
        if entry is None:
            return None, ""
        kind, count, value, inline = entry
        size = count * _TYPE_SIZES.get(kind, 1)
        raw = inline[:size] if size <= 4 else tiff[value:value + size]
        if len(raw) != size:
            return None, PROBLEM_EXIF
    except struct.error:
        return None, PROBLEM_EXIF
    return decode_user_comment(raw, order), ""


def _ifd_entry(tiff: bytes, order: str, offset: int, tag: int) -> Optional[Tuple[int, int, int, bytes]]:
    """(type, count, value or offset, the 4 value bytes) of `tag` in the IFD at `offset`, or None."""
    count = struct.unpack(order + "H", tiff[offset:offset + 2])[0]
    for k in range(min(count, _MAX_IFD_ENTRIES)):
        at = offset + 2 + 12 * k
        entry = tiff[at:at + 12]
        entry_tag, kind, n, value = struct.unpack(order + "HHII", entry)
        if entry_tag == tag:
            return kind, n, value, entry[8:12]
    return None


def decode_user_comment(raw: bytes, order: str = ">") -> Optional[str]:
    """The text of an EXIF UserComment: an 8-byte charset prefix, then the text. "UNICODE\\0" is UTF-16: a BOM
    says its byte order, else the order in which ASCII characters have their zero byte first (Forge/piexif
    write big-endian; some tools write the EXIF's own byte order, `order`). "ASCII\\0\\0\\0" is read as UTF-8
    (many tools put UTF-8 there), "JIS" as Shift-JIS, an undefined (zero) prefix as UTF-8, and a comment with no
    known prefix as UTF-8 whole. Trailing NULs (padding) are dropped; None when nothing is left."""
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\0":
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            encoding, body = ("utf-16-be" if body[:2] == b"\xfe\xff" else "utf-16-le"), body[2:]
        else:
            encoding = _utf16_order(body, order)
        text = body[:len(body) & ~1].decode(encoding, "replace")
    elif prefix == b"JIS\0\0\0\0\0":
        text = body.decode("shift_jis", "replace")
    elif prefix in (b"ASCII\0\0\0", b"\0" * 8):
        text = body.decode("utf-8", "replace")
    else:
        text = raw.decode("utf-8", "replace")
    text = text.rstrip("\0")
    return text if text else None


def _utf16_order(body: bytes, order: str) -> str:
    """The byte order of BOM-less UTF-16: text is mostly ASCII (infotexts are), whose high byte is zero, so the
    side of each pair that holds more zeros is the high byte. A tie (no ASCII seen) follows the EXIF's order
    only when that is little-endian and nothing says otherwise; big-endian is Forge's."""
    sample = body[:512]
    high_first = sample[0::2].count(0)
    low_first = sample[1::2].count(0)
    if high_first != low_first:
        return "utf-16-be" if high_first > low_first else "utf-16-le"
    return "utf-16-le" if order == "<" else "utf-16-be"
