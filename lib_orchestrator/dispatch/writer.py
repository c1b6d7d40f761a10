"""Writing one dispatched image: Forge's infotext with our keys, into a file named by (batch, image), never half.

Where the infotext goes is where Forge itself puts it when it saves (modules/images.py `save_image_with_geninfo`
and `save_image`): a PNG's `parameters` text chunk; for JPEG and WebP the image stays as the server sent it and
the text goes into `<stem>.txt` beside it, as Forge writes with "Create a text file next to every image"
(images.py:770-773: the infotext and one newline, UTF-8). The history reads both (history/imagefile.py).

A file is written to a temporary file in the same folder, flushed to disk, renamed over its name and the folder
flushed too, so a crash at any moment leaves either the old file or the new one, never a part. Files are named by
`jobs.image_stem`: a job run twice (a lease that expired while its first server still worked, a rerun after a
kill) writes the same bytes to the same name, so no second file ever appears; a file of the same stem in another
format (one server saves JPEG, another PNG) is removed, so each image exists once.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import sys
import time
import uuid
import zlib
from typing import Dict, List, Optional, Tuple

from ..errors import OrchestratorError
from ..history.infotext import split_infotext

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_KEYWORD = b"parameters"
# Every extension an image of one stem may have been written with (ours and Forge's formats) and its sidecar.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
SIDECAR = ".txt"
# Temporary files: `.<stem><ext>.orchestrator-tmp.<host>.<pid>.<random>`. Hidden, so a gallery never lists one;
# named by host and process, so a later run can tell one left by a killed process (see `sweep_temps`).
_TEMP_MARK = ".orchestrator-tmp."
STALE_TEMP_S = 3600.0  # a temporary file this old is a leftover whoever wrote it: a write takes milliseconds


def forge_quote(value: str) -> str:
    """A value as Forge writes it into the parameters line (modules/infotext_utils.py `quote`: JSON when it holds
    a comma, colon or newline, which would otherwise end or split the pair), plus a value holding a double quote,
    which Forge's reader would otherwise take for a JSON string when it starts and ends with one."""
    if any(c in value for c in ',:"\n'):
        return json.dumps(value, ensure_ascii=False)
    return value


def with_params(infotext: str, params: Dict[str, str]) -> str:
    """`infotext` with `params` on its parameters line (its last line, when Forge's reader finds pairs there):
    a key it already has is replaced (ours win: the dispatcher knows the batch, the server does not), the others
    keep their order and values, ours come last in the order given. Without a parameters line ours become one."""
    if not params:
        return infotext
    head, newline, last = infotext.rpartition("\n")
    _prompt, _negative, pairs = split_infotext(last) if last.strip() else ("", "", ())
    if pairs:  # the parameters line: rebuilt from what Forge's reader sees in it, as Forge writes pairs
        kept = [(key, value) for key, value in pairs if key not in params]
        line = ", ".join(f"{key}: {forge_quote(value)}" for key, value in [*kept, *params.items()])
        return f"{head}{newline}{line}"
    ours = ", ".join(f"{key}: {forge_quote(value)}" for key, value in params.items())
    return f"{infotext}\n{ours}" if infotext else ours


def image_format(data: bytes) -> str:
    """"png", "jpeg" or "webp" from the first bytes (Forge's API answers in the user's `samples_format`)."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    raise OrchestratorError(f"the server sent no PNG, JPEG or WebP image ({len(data)} bytes starting {data[:8]!r})",
                            hint="check the server's 'samples_format' setting")


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_with_parameters(data: bytes, text: str) -> bytes:
    """The PNG `data` with its `parameters` text chunks (tEXt, zTXt or iTXt, any number) replaced by one
    uncompressed UTF-8 iTXt holding `text`, placed before the first IDAT as Pillow places it; every other chunk
    is kept byte for byte. A PNG whose chunks do not add up is refused rather than passed on broken."""
    if not data.startswith(PNG_SIGNATURE):
        raise OrchestratorError("the server's image is not a PNG")
    # iTXt: keyword \0, compression flag 0, method 0, empty language tag \0, empty translated keyword \0, text.
    ours = _chunk(b"iTXt", _KEYWORD + b"\0\0\0\0\0" + text.encode("utf-8", "surrogatepass"))
    parts: List[bytes] = [PNG_SIGNATURE]
    pos = len(PNG_SIGNATURE)
    placed = False
    while True:
        if pos + 12 > len(data):
            raise OrchestratorError("the server's PNG is cut short (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data) or not kind.isalpha():
            raise OrchestratorError(f"the server's PNG has a broken chunk at byte {pos}")
        if len(parts) == 1 and kind != b"IHDR":
            raise OrchestratorError("the server's PNG does not start with IHDR")
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", data[end - 4:end])[0]:
            raise OrchestratorError(f"the server's PNG has a {kind.decode('ascii')} chunk with a wrong CRC")
        if kind in (b"IDAT", b"IEND") and not placed:
            parts.append(ours)
            placed = True
        if not (kind in _TEXT_CHUNKS and body.split(b"\0", 1)[0] == _KEYWORD):
            parts.append(data[pos:end])
        pos = end
        if kind == b"IEND":  # anything after it is no part of the image
            return b"".join(parts)


def _fsync_folder(folder: str) -> None:
    """The rename itself made durable: POSIX keeps a directory entry in the folder's own blocks. Windows cannot
    open a folder this way (and its NTFS journal orders the rename): nothing to do there."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems (network, FUSE) refuse fsync on a folder: the rename still happened
        pass
    finally:
        os.close(fd)


def write_bytes_durable(path: str, data: bytes) -> None:
    """`data` at `path`, all or nothing: a temporary file beside it, written and fsynced, renamed over `path`, the
    folder fsynced. A failure leaves the old file as it was and removes the temporary file; a kill leaves at most
    the temporary file, which `sweep_temps` removes on the next run."""
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}{_TEMP_MARK}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def write_image(out_dir: str, stem: str, data: bytes, infotext: str) -> Tuple[str, str]:
    """Write the server's image `data` as `<out_dir>/<stem>.<ext>` holding `infotext`; (path, sha256 hex of the
    file's bytes). PNG: the infotext in its `parameters` chunk. JPEG/WebP: the bytes as sent and `<stem>.txt`
    (written first, so an image on disk always has its text). Any other file of this stem (another format, a
    sidecar a PNG no longer needs) is removed. Writing the same content again gives the same file."""
    kind = image_format(data)
    os.makedirs(out_dir, exist_ok=True)
    sidecar = os.path.join(out_dir, stem + SIDECAR)
    if kind == "png":
        content, ext = png_with_parameters(data, infotext), ".png"
    else:
        content, ext = data, (".jpg" if kind == "jpeg" else ".webp")
        write_bytes_durable(sidecar, (infotext + "\n").encode("utf-8", "surrogatepass"))
    path = os.path.join(out_dir, stem + ext)
    write_bytes_durable(path, content)
    others = [stem + other for other in IMAGE_EXTENSIONS if other != ext]
    if kind == "png":
        others.append(stem + SIDECAR)
    for other in others:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(out_dir, other))
    return path, hashlib.sha256(content).hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (POSIX only: on Windows signal 0 is CTRL_C_EVENT)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


def sweep_temps(out_dir: str, now: Optional[float] = None) -> int:
    """Remove the temporary files a killed writer left in `out_dir`: those of a process of this host that is gone,
    and any older than STALE_TEMP_S (another host's, or on Windows). A live writer's temporary file is left alone:
    several dispatchers may write into one folder. Returns how many were removed."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    removed = 0
    try:
        names = os.listdir(out_dir)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for name in names:
        if not name.startswith(".") or _TEMP_MARK not in name:
            continue
        path = os.path.join(out_dir, name)
        owner = name.rsplit(_TEMP_MARK, 1)[1].rsplit(".", 2)  # host (may hold dots), pid, random
        try:
            stale = now - os.stat(path).st_mtime > STALE_TEMP_S
            if not stale and sys.platform != "win32" and len(owner) == 3 and owner[0] == host:
                stale = owner[1].isdigit() and not pid_alive(int(owner[1]))
            if stale:
                os.unlink(path)
                removed += 1
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            continue
    return removed
