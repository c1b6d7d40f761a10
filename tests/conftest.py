"""Shared fixtures: wildcard folders written on the fly, and where the shared test data lives."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Union

import pytest

REPO = Path(__file__).resolve().parent.parent
# Real-world data outside the repository (absent in a user's clone: tests that need it skip).
SHARED = REPO.parent / "shared"
SDDP_WILDCARDS = SHARED / "wildcards" / "sd-dynamic-prompts"
BUNDLED = REPO / "wildcards"

Files = Dict[str, Union[str, bytes]]


@pytest.fixture
def make_wildcards(tmp_path: Path) -> Callable[..., str]:
    """make_wildcards({"colors.txt": "red\\nblue", "sub/x.yaml": "..."}) -> the folder's path."""
    counter = [0]

    def make(files: Files) -> str:
        counter[0] += 1
        root = tmp_path / f"wildcards{counter[0]}"
        root.mkdir()
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8", newline="")
        return str(root)

    return make


needs_shared = pytest.mark.skipif(not SDDP_WILDCARDS.is_dir(), reason="../shared test data not present")


@pytest.fixture
def serve():
    """Start fake LLM servers (tests/enhance/fake_servers.py) for a test; all shut down after it."""
    from .enhance.fake_servers import FakeServer

    servers = []

    def start(behaviour, delay=0.0):
        server = FakeServer(behaviour, delay)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def pytest_report_header(config: pytest.Config) -> str:
    return f"shared test data: {'present' if SDDP_WILDCARDS.is_dir() else 'absent (those tests skip)'}"


