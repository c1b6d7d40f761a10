"""The repository's promises: the README's commands, a Forge-free core, the bundled wildcards."""
from __future__ import annotations

import re
import runpy
import sys
import types

import pytest

from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards.lint import lint

from .conftest import BUNDLED, REPO

CATEGORIES = ["genre", "style", "archetype", "setting", "lighting", "mood", "palette", "camera", "era"]


def readme_commands():
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_starts_with_setup_and_demo_then_the_test_command_that_ci_runs():
    setup, tests = readme_commands()[:2]
    assert "lib_orchestrator demo" in setup
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert tests in ci.splitlines()


def test_the_core_imports_neither_forge_nor_gradio():
    pattern = re.compile(r"^\s*(from|import)\s+(modules|modules_forge|networks|gradio|launch)\b", re.M)
    offenders = [str(p) for p in (REPO / "lib_orchestrator").rglob("*.py") if pattern.search(p.read_text("utf-8"))]
    assert offenders == []


def test_script_files_import_their_sibling_modules_only_at_load():
    """Forge takes scripts/ off sys.path once a script file has loaded: a sibling module imported inside a
    function (a button's handler, run later) is not found in the real Forge."""
    import ast

    siblings = {p.stem for p in (REPO / "scripts").glob("*.py")}
    late = []
    for path in (REPO / "scripts").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                        [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                    late += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in siblings]
    assert late == []


@pytest.mark.parametrize("name", CATEGORIES)
def test_bundled_categories_have_at_least_30_distinct_entries(name):
    entries = PromptEngine([str(BUNDLED)]).store.entries_of(name)
    assert len({e.text.lower() for e in entries}) == len(entries) >= 30


def test_bundled_wildcards_and_templates_lint_clean_and_generate():
    assert lint([str(BUNDLED)]) == []
    engine = PromptEngine([str(BUNDLED)])
    templates = [n for n in engine.store.names() if n.startswith("templates/")]
    assert len(templates) >= 5
    for name in templates:
        for text in engine.texts(f"__{name}__", count=20):
            assert "__" not in text and "{" not in text and "$" not in text


def test_install_py_installs_only_what_is_missing(monkeypatch):
    calls = []
    fake = types.ModuleType("launch")
    fake.is_installed = lambda name: name != "PyYAML"
    fake.run_pip = lambda command, desc=None: calls.append(command)
    monkeypatch.setitem(sys.modules, "launch", fake)
    runpy.run_path(str(REPO / "install.py"))
    assert calls == ['install "PyYAML>=5.4"']
    calls.clear()
    fake.is_installed = lambda name: True
    runpy.run_path(str(REPO / "install.py"))
    assert calls == []
