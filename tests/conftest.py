"""Shared fixtures: wildcard folders written on the fly, and where the shared test data lives."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Union

import pytest

REPO = Path(__file__).resolve().parent.parent
# Real-world data outside the repository (absent in a user's clone: tests that need it skip).
SHARED = REPO.parent / "shared"
SDDP_WILDCARDS = SHARED / "wildcards" / "sd-dynamic-prompts"
BUNDLED = REPO / "wildcards"

Files = Dict[str, Union[str, bytes]]


def write_files(root: Path, files: Files) -> None:
    """Each file of `files` ({"colors.txt": "red\\nblue", "sub/x.yaml": ...}) under `root`, bytes as given."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")


@pytest.fixture
def make_wildcards(tmp_path: Path) -> Callable[..., str]:
    """make_wildcards({"colors.txt": "red\\nblue", "sub/x.yaml": "..."}) -> the folder's path."""
    counter = [0]

    def make(files: Files) -> str:
        counter[0] += 1
        root = tmp_path / f"wildcards{counter[0]}"
        root.mkdir()
        write_files(root, files)
        return str(root)

    return make


needs_shared = pytest.mark.skipif(not SDDP_WILDCARDS.is_dir(), reason="../shared test data not present")


@pytest.fixture(autouse=True, scope="session")
def _cache_home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The command line caches each LoRA folder it scans under $XDG_CACHE_HOME: never the real ~/.cache
    in tests (child processes inherit it too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
        yield


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




# -- skips: counted and explained at the end; where ../shared is present (CI), the tests that need it must run --
_SKIPPED: Dict[str, int] = {}
# Skips that mean a test did not run although this machine should run it: its data is in ../shared, or its
# package is in requirements-dev.txt (the golden-data and compatibility tests).
_MUST_RUN = ("../shared", "could not import", "real-forge-traces", "package index unreachable",
             "wordllama is not installed", "builtin embedder is not usable",  # CI installs requirements-embed.txt
             "psycopg is not installed")  # requirements-dev.txt; only PostgreSQL's own binaries may be missing


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and report.when in ("setup", "call"):
        reason = _skip_reason(report)
        _SKIPPED[reason] = _SKIPPED.get(reason, 0) + 1


def _must_have_run() -> Dict[str, int]:
    if not SHARED.is_dir():  # a user's clone: these skip cleanly
        return {}
    return {reason: n for reason, n in _SKIPPED.items() if any(mark in reason for mark in _MUST_RUN)}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _SKIPPED:
        return
    terminalreporter.section(f"{sum(_SKIPPED.values())} tests skipped")
    for reason, n in sorted(_SKIPPED.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{n:4d}  {reason}")
    for reason, n in _must_have_run().items():
        terminalreporter.write_line(f"ERROR: ../shared is present, so these {n} must run, not skip: {reason}",
                                    red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _must_have_run() and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
