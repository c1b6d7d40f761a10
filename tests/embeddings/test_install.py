"""install.py and the offline embedder's weights: installed with --no-deps and as a wheel only when missing;
a platform with no wheel prints one line and Forge starts all the same."""
from __future__ import annotations

import runpy
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORDLLAMA = 'install --no-deps --only-binary=:all: "wordllama==0.4.0.post1"'


def run_install(monkeypatch, missing, fails=()):
    """install.py under a stand-in `launch` where `missing` distributions are absent and pip fails for the
    commands holding any of `fails`, as Forge's run_pip does (RuntimeError with pip's output)."""
    calls = []
    fake = types.ModuleType("launch")
    fake.is_installed = lambda name: name not in missing

    def run_pip(command, desc=None, live=False):
        calls.append(command)
        if any(f in command for f in fails):
            raise RuntimeError(f"Couldn't install {desc}.\nCommand: pip {command}\nError code: 1\nstderr: "
                               "ERROR: No matching distribution found for wordllama==0.4.0.post1")
        return ""

    fake.run_pip = run_pip
    monkeypatch.setitem(sys.modules, "launch", fake)
    runpy.run_path(str(REPO / "install.py"))
    return calls


def test_the_weights_are_installed_without_their_dependencies_when_missing(monkeypatch):
    assert run_install(monkeypatch, {"wordllama"}) == [WORDLLAMA]
    assert run_install(monkeypatch, set()) == []


def test_no_wheel_for_the_platform_prints_one_line_and_the_start_goes_on(monkeypatch, capsys):
    calls = run_install(monkeypatch, {"wordllama", "tokenizers"}, fails=("wordllama",))
    assert calls == ['install "tokenizers>=0.13"', WORDLLAMA]  # the requirements first, then the weights
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "semantic LoRA matching will use keywords only" in out
    assert "No matching distribution" not in out


def test_requirements_txt_never_names_wordllama():
    # Its metadata asks for numpy>=2: in requirements.txt (which the wheel's dependencies come from, and which
    # install.py installs with dependencies) it would replace Forge's numpy.
    text = (REPO / "requirements.txt").read_text(encoding="utf-8").lower()
    assert "wordllama" not in text
    assert "numpy>=1.22" in text and "tokenizers>=0.13" in text


@pytest.mark.parametrize("line", ["wordllama==0.4.0.post1"])
def test_requirements_embed_pins_the_version_whose_weights_are_checked(line):
    lines = [raw.split("#", 1)[0].strip() for raw in (REPO / "requirements-embed.txt").read_text().splitlines()]
    assert [x for x in lines if x] == [line]
