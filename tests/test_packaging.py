"""The package as a user gets it: a wheel built from this checkout (as `pip install .` or `pipx install .` builds
it), installed with its dependencies into a fresh virtual environment outside the checkout, and the `orchestrator`
command run from another folder. Expected values come from the checkout's own files (the bundled wildcard's lines,
the sample LoRAs' names), never from the product's code.

Slow by nature (a build, a fresh venv, a pip install: 10-13 s here from pip's cache or a local index, most of it
pip), and it needs the package index pip is configured with: where the index cannot be reached it skips and
says so.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

from lib_orchestrator import __version__

REPO = Path(__file__).resolve().parent.parent
PIP_TIMEOUT = 600  # a cold pip cache downloads Pillow and the build backend
# What pip prints when it cannot reach the index (then the test skips rather than fails). "(from versions: none)":
# the index listed nothing at all, which a wrong pin alone does not cause.
_OFFLINE = re.compile(r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
                      r"Network is unreachable|\(from versions: none\)")


def _env(**extra: str) -> Dict[str, str]:
    """The environment without anything that would let the installed command find the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")}
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


def _pip_env() -> Dict[str, str]:
    # The test session points XDG_CACHE_HOME at a temporary folder (conftest), which would make pip download
    # everything again on every run: pip keeps its usual cache.
    cache = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    return _env(PIP_CACHE_DIR=cache, PIP_DISABLE_PIP_VERSION_CHECK="1")


def _pip(args: List[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, env=_pip_env(), timeout=PIP_TIMEOUT)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        offline = [line.strip() for line in output.splitlines() if _OFFLINE.search(line)]
        if offline:
            pytest.skip(f"package index unreachable, so pip could not {what}: {offline[0][:200]}")
        pytest.fail(f"pip could not {what}:\n{output[-4000:]}")


def _source_copy(dest: Path) -> Path:
    """The checkout as a clone with the current edits holds it (tracked and untracked files git does not ignore),
    so building leaves no build/ or egg-info in the checkout itself."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, check=True).stdout.decode("utf-8").split("\0")
    except (OSError, subprocess.CalledProcessError):
        listed = []
    if "pyproject.toml" not in listed:  # not a git checkout (an unpacked archive, maybe inside an ignored folder)
        shutil.copytree(REPO, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", ".venv*", "__pycache__", "build", "dist", "*.egg-info", "cache", "data", "test-artifacts"))
        return dest
    for rel in filter(None, listed):
        source = REPO / rel
        if source.is_file():  # a tracked file deleted in the working tree is not there to copy
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    return dest


def _base_python() -> str:
    """This Python's own interpreter, not the venv's: a fresh venv is made from the base installation."""
    name = "python.exe" if os.name == "nt" else f"python{sys.version_info[0]}.{sys.version_info[1]}"
    candidate = Path(sys.base_prefix) / name if os.name == "nt" else Path(sys.base_prefix) / "bin" / name
    return str(candidate) if candidate.is_file() else sys.executable


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _source_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    _pip([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-w", str(out)], "build the wheel")
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the wheel and its dependencies installed; its scripts folder."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([_base_python(), "-m", "venv", str(root)], check=True, env=_env(), timeout=PIP_TIMEOUT)
    scripts = root / ("Scripts" if os.name == "nt" else "bin")
    _pip([str(scripts / "python"), "-m", "pip", "install", str(wheel)], "install the wheel")
    return scripts


def _orchestrator(scripts: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(scripts / "orchestrator"), *args], cwd=cwd, capture_output=True, text=True,
                          env=_env(), timeout=300)


def test_wheel_holds_the_package_and_its_bundled_data_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    # no scripts/, tests/, benchmarks/
    assert tops == {"lib_orchestrator", f"forge_orchestrator-{__version__}.dist-info"}
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "lib_orchestrator").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules <= set(names), modules - set(names)
    data = {f"lib_orchestrator/_bundled/{p.relative_to(REPO).as_posix()}" for folder in
            ("wildcards", "samples/loras", "samples/stories") for p in (REPO / folder).rglob("*") if p.is_file()}
    templates = {p.relative_to(REPO).as_posix() for p in (REPO / "lib_orchestrator/enhance/templates").glob("*.yaml")}
    assert data | templates <= set(names), (data | templates) - set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert f"forge_orchestrator-{__version__}.dist-info/licenses/LICENSE" in names


def test_wheel_declares_the_runtime_requirements_and_the_command(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        metadata = whl.read(f"forge_orchestrator-{__version__}.dist-info/METADATA").decode("utf-8")
        entry_points = whl.read(f"forge_orchestrator-{__version__}.dist-info/entry_points.txt").decode("utf-8")
    required = [line for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    assert re.findall(r"^Requires-Dist: (.*)$", metadata, re.M) == required
    # Forge pins these: torch is never asked for, numpy only with a lower bound Forge's (1.26) and Neo's (2.3) meet
    assert not re.search(r"^Requires-Dist: torch", metadata, re.M | re.I)
    assert re.findall(r"^Requires-Dist: (numpy.*)$", metadata, re.M | re.I) == ["numpy>=1.22"]
    assert f"\nVersion: {__version__}\n" in metadata
    assert "License-Expression: MIT" in metadata
    assert re.search(r"^orchestrator = lib_orchestrator\.cli:main$", entry_points, re.M)


def test_installed_command_reports_the_version(venv: Path, tmp_path: Path) -> None:
    done = _orchestrator(venv, tmp_path, "--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, f"orchestrator {__version__}\n", "")


def test_installed_package_is_the_venvs_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(venv / "python"), "-c", "import lib_orchestrator as m; print(m.__file__); "
                           "print(m.BUNDLED_WILDCARDS); print(m.SAMPLE_LORAS)"],
                          cwd=tmp_path, capture_output=True, text=True, env=_env(), check=True)
    package, wildcards, loras = (Path(line) for line in done.stdout.splitlines())
    venv_root = venv.parent.resolve()
    for path in (package, wildcards, loras):
        assert venv_root in path.resolve().parents, path
    assert wildcards == package.parent / "_bundled" / "wildcards"
    assert loras == package.parent / "_bundled" / "samples" / "loras"


def test_installed_demo_runs_from_another_folder(venv: Path, tmp_path: Path) -> None:
    done = _orchestrator(venv, tmp_path, "demo")
    assert done.returncode == 0, done.stderr
    assert str(REPO) not in done.stdout  # everything it read came with the wheel
    templates = sorted(p.stem for p in (REPO / "wildcards" / "templates").glob("*.txt"))
    for name in templates:
        assert f"templates/{name}  (" in done.stdout
    assert len(re.findall(r"^  seed \d+: \S", done.stdout, re.M)) == 2 * len(templates)
    sample_loras = {p.stem for p in (REPO / "samples" / "loras").rglob("*.safetensors")}
    assert f" {len(sample_loras)} sample LoRAs" in done.stdout
    picked = set(re.findall(r"^ {6}(\S+) @ ", done.stdout, re.M))
    assert picked and picked <= sample_loras


def test_installed_prompts_use_a_bundled_wildcard(venv: Path, tmp_path: Path) -> None:
    moods = [line for line in (REPO / "wildcards" / "mood.txt").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    done = _orchestrator(venv, tmp_path, "prompts", "{a|b} __mood__", "--count", "3", "--seed", "7")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        first, mood = line.split(" ", 1)
        assert first in ("a", "b") and mood in moods, line
