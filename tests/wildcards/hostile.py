"""Hostile wildcard files, written on purpose (what each one does is known from how it is built), and a
way to run a piece of code in a child process under a wall-clock and an address-space limit: a hang or a
memory blow-up then fails one test instead of taking the whole run down with it."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib
from typing import Dict, Union

from tests.conftest import REPO

# 15 bytes: the alias sits inside the node it names; expanded, the list contains itself twice.
RECURSIVE_ALIAS = "r: &r [*r, *r]\n"


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """Each level lists the previous one `width` times: width**levels "lol"s from a few hundred bytes."""
    lines = ["a: &a [" + ", ".join(['"lol"'] * width) + "]"]
    names = "abcdefghijklmnopqrstuvwxyz"
    for prev, cur in zip(names[:levels - 1], names[1:levels]):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * width) + "]")
    return "\n".join(lines) + "\n"


def deep_json(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


def deep_yaml_flow(depth: int) -> str:
    return "k: " + "[" * depth + "x" + "]" * depth + "\n"


def deep_yaml_block(depth: int) -> str:
    """`depth` nested maps, one indentation step each, with a list at the bottom."""
    lines = [" " * i + f"k{i}:" for i in range(depth)]
    lines.append(" " * depth + "- x")
    return "\n".join(lines) + "\n"


def png() -> bytes:
    """A real 1×1 PNG (signature, IHDR, IDAT, IEND), as an image renamed to .txt would be."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


def hostile_pack() -> Dict[str, Union[str, bytes]]:
    """One file of each kind that used to hang, explode or turn into garbage, each with a name no
    ordinary template uses."""
    return {
        "recursive.yaml": RECURSIVE_ALIAS,
        "laughs.yaml": billion_laughs(),
        "brackets.json": deep_json(100_000),
        "flow.yaml": deep_yaml_flow(100_000),
        "block.yaml": deep_yaml_block(200),
        "picture.txt": png(),
        "nul.txt": b"red\nbl\x00ue\n",
        "heavy.yaml": "heavy:\n  - 1e308::a\n  - 1e308::b\n  - c\n",
    }


def isolated(code: str, timeout: float = 30.0, memory_mb: int = 1024) -> subprocess.CompletedProcess:
    """Run `code` (dedented) in a fresh interpreter at the repository root, its address space capped
    with RLIMIT_AS; the child's stdout is the result to check. A child past `timeout` is killed and
    raises subprocess.TimeoutExpired."""
    prelude = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({memory_mb << 20}, {memory_mb << 20}))\n"
               f"import sys; sys.path.insert(0, {str(REPO)!r})\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def write_pack(root: str, files: Dict[str, Union[str, bytes]]) -> None:
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(content if isinstance(content, bytes) else content.encode("utf-8"))
