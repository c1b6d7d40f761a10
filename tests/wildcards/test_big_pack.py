"""A generated pack of thousands of files (tests/wildcards/big_pack.py) through the store, the engine and the
command line: every name and list as the plan wrote them, globs and the case fallback over the whole pack,
and a refresh after a file is added or removed deep inside it lists that one folder again, not the pack.

Expected values come from the plan (what the generator wrote on purpose) and from the standard library's
fnmatch, never from the store."""
from __future__ import annotations

import fnmatch
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Set

import pytest

from lib_orchestrator.cli import main
from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards import store as store_module
from lib_orchestrator.wildcards.store import WildcardStore

from .big_pack import PackPlan, make_pack, plan_pack, write_pack


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> tuple:
    plan = plan_pack(5_000, seed=3)
    root = tmp_path_factory.mktemp("pack5k")
    write_pack(root, plan)
    return str(root), plan


def folder_of(name: str) -> str:
    return name.rsplit("/", 1)[0]


def expansions(plan: PackPlan, name: str) -> Set[str]:
    """Every text one draw of `name` can give: a line naming another list gives each of that list's lines."""
    out: Set[str] = set()
    for line in plan.lists[name]:
        if line.endswith("__"):
            head, target = line[:-2].split("__", 1)
            out |= {head + value for value in plan.lists[target]}
        else:
            out.add(line)
    return out


def test_make_pack_writes_the_number_of_files_asked_for_and_gives_names_from_its_plan(tmp_path):
    names = make_pack(tmp_path, 600, seed=1)
    written = [f for _, _, files in os.walk(tmp_path) for f in files]
    assert len(written) == 600 and sum(f.endswith(".yaml") for f in written) == 1
    assert names == list(plan_pack(600, seed=1).samples) == make_pack(tmp_path / "again", 600, seed=1)


def test_every_name_of_the_pack_is_listed(pack):
    root, plan = pack
    assert WildcardStore([root]).names() == sorted(plan.lists)


def test_every_list_holds_its_files_lines_in_file_order(pack):
    root, plan = pack
    store = WildcardStore([root])
    wrong = {name: lines for name, lines in plan.lists.items()
             if tuple(e.text for e in store.entries_of(name)) != lines}
    assert wrong == {}


def test_sampled_names_are_found_by_a_fresh_store_each(pack):
    """The first lookup of a new process: nothing walked or read before it."""
    root, plan = pack
    for name in plan.samples:
        found = WildcardStore([root]).lookup(name)
        assert (found.names, found.note) == ((name,), "")
        assert [e.text for e in found.entries] == sorted(set(plan.lists[name]))


def test_a_folder_glob_and_a_case_fallback_see_the_whole_pack(pack):
    root, plan = pack
    store = WildcardStore([root])
    folder = folder_of(plan.samples[2])
    pattern = folder + "/*"
    assert list(store.lookup(pattern).names) == sorted(n for n in plan.lists if fnmatch.fnmatchcase(n, pattern))
    capitalised = next(n for n in plan.samples if n != n.lower())
    found = store.lookup(capitalised.lower())
    assert list(found.names) == sorted(n for n in plan.lists if n.lower() == capitalised.lower())
    assert "case" in found.note


def test_a_list_naming_another_is_expanded_by_the_engine(pack):
    root, plan = pack
    name = next(n for n in plan.samples if plan.lists[n][-1].endswith("__"))
    engine = PromptEngine([root])
    drawn = {engine.prompt(f"__{name}__", seed) for seed in range(300)}
    assert drawn <= expansions(plan, name)
    assert any(" with " in text for text in drawn)  # one in ~4-13 lines names another: 300 draws reach it


def test_the_first_prompt_of_the_command_line(pack):
    root, plan = pack
    name = plan.samples[-1]
    out, err = io.StringIO(), io.StringIO()
    assert main(["prompts", f"__{name}__", "--wildcards", root, "--count", "1"], out, err) == 0, err.getvalue()
    assert out.getvalue().rstrip("\n") in expansions(plan, name)


# -- refresh: one changed folder is listed again, the rest of the pack is not --------------------------


@pytest.fixture
def small_pack(tmp_path) -> tuple:
    plan = plan_pack(1_500, seed=4)
    write_pack(tmp_path / "pack", plan)
    return str(tmp_path / "pack"), plan


@pytest.fixture
def listed(monkeypatch) -> List[str]:
    """The folders the store lists (scans) from now on: a walk of the whole pack lists every folder."""
    seen: List[str] = []
    real = store_module._list

    def spy(folder: str, mtime: int):
        seen.append(folder)
        return real(folder, mtime)

    monkeypatch.setattr(store_module, "_list", spy)
    return seen


def bump_mtime(path: str) -> None:
    st = os.stat(path)  # coarse file system clocks: make the change visible whatever their resolution
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def deepest(plan: PackPlan) -> str:
    """The name of the .txt list deepest in the pack."""
    return max((rel[:-4] for rel in plan.files if rel.endswith(".txt")), key=lambda n: (n.count("/"), n))


def test_a_refresh_with_nothing_changed_lists_no_folder(small_pack, listed):
    root, plan = small_pack
    store = WildcardStore([root])
    assert store.lookup(plan.samples[0]).entries
    assert listed  # the first lookup walked the pack
    listed.clear()
    for _ in range(3):  # Forge refreshes before every generation
        assert store.refresh() is False
        assert store.lookup(plan.samples[1]).entries
    assert listed == []


def test_a_file_added_then_removed_deep_inside_is_seen_by_refresh(small_pack, listed):
    root, plan = small_pack
    store = WildcardStore([root])
    before = store.names()
    folder = os.path.join(root, *folder_of(deepest(plan)).split("/"))
    new = os.path.join(folder, "zz added.txt")
    new_name = folder_of(deepest(plan)) + "/zz added"
    listed.clear()
    Path(new).write_text("freshly added\n", encoding="utf-8")
    bump_mtime(folder)
    assert store.refresh() is True
    assert [e.text for e in store.lookup(new_name).entries] == ["freshly added"]
    assert store.names() == sorted(before + [new_name])
    assert listed == [folder]  # only the folder that changed was listed again
    listed.clear()
    os.remove(new)
    bump_mtime(folder)
    assert store.refresh() is True
    assert store.lookup(new_name).names == ()
    assert store.names() == before
    assert listed == [folder]


def test_a_file_edited_deep_inside_is_read_again_without_listing_any_folder(small_pack, listed):
    root, plan = small_pack
    store = WildcardStore([root])
    name = deepest(plan)
    assert [e.text for e in store.entries_of(name)] == list(plan.lists[name])
    path = os.path.join(root, *name.split("/")) + ".txt"
    Path(path).write_text("edited\n", encoding="utf-8")
    bump_mtime(path)
    listed.clear()
    assert store.refresh() is True
    assert [e.text for e in store.entries_of(name)] == ["edited"]
    assert listed == []


def test_a_folder_added_deep_inside_is_walked_on_refresh(small_pack):
    root, plan = small_pack
    store = WildcardStore([root])
    assert store.lookup(plan.samples[0]).entries
    parent = os.path.join(root, *folder_of(deepest(plan)).split("/"))
    os.makedirs(os.path.join(parent, "new folder", "deeper"))
    Path(parent, "new folder", "deeper", "x.txt").write_text("x\n", encoding="utf-8")
    bump_mtime(parent)
    assert store.refresh() is True
    assert [e.text for e in store.lookup(folder_of(deepest(plan)) + "/new folder/deeper/x").entries] == ["x"]


# -- the 50,000-file pack -----------------------------------------------------------------------------


@pytest.fixture
def memory_folder():
    """A folder in memory (tmpfs) where the system has one: writing 50,000 files to a slow disk takes longer
    than the rest of the test; the store's work is the same on either."""
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="orchestrator-pack-", dir=base)
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_50k_file_pack_gives_every_name_and_its_first_prompt(memory_folder):
    plan = plan_pack(50_000, seed=0)
    write_pack(memory_folder, plan)
    root = str(memory_folder)
    by_folder: Dict[str, int] = {}
    for rel in plan.files:
        by_folder[os.path.dirname(rel)] = by_folder.get(os.path.dirname(rel), 0) + 1
    assert len(plan.files) == 50_000 and max(by_folder.values()) <= 500
    name = plan.samples[len(plan.samples) // 2]
    out, err = io.StringIO(), io.StringIO()
    assert main(["prompts", f"__{name}__", "--wildcards", root, "--count", "1"], out, err) == 0, err.getvalue()
    assert out.getvalue().rstrip("\n") in expansions(plan, name)
    store = WildcardStore([root])
    assert [e.text for e in store.lookup(plan.samples[0]).entries] == sorted(set(plan.lists[plan.samples[0]]))
    assert store.names() == sorted(plan.lists)
    assert store.refresh() is False
