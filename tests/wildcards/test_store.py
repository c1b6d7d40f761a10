"""The wildcard store: lib_orchestrator/wildcards/store.py (WildcardStore, bad_name_reason)."""
from __future__ import annotations

import os
import shutil
import threading
from typing import List

import pytest

from lib_orchestrator.wildcards.store import WildcardStore, bad_name_reason


def texts(store: WildcardStore, pattern: str) -> List[str]:
    return [e.text for e in store.lookup(pattern).entries]


def bump_mtime(path: str, seconds: int = 5) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


# -- names -----------------------------------------------------------------------------------


def test_txt_names_are_paths_below_the_root_without_extension(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n", "sub/deeper/animals.txt": "cat\n"})
    assert WildcardStore([root]).names() == ["colors", "sub/deeper/animals"]


def test_structured_keys_are_prefixed_by_folder_not_file_name(make_wildcards):
    root = make_wildcards({"pack/things.yaml": "top:\n  inner: [q]\nplain: [z]\n",
                           "flat.yaml": "- f\n", "sub/list.json": '["j"]'})
    store = WildcardStore([root])
    assert store.names() == ["flat", "pack/plain", "pack/top/inner", "sub/list"]
    assert texts(store, "pack/top/inner") == ["q"]
    assert texts(store, "sub/list") == ["j"]


def test_txt_and_yaml_lists_of_the_same_name_merge(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n", "more.yaml": "colors: [blue]\n"})
    assert texts(WildcardStore([root]), "colors") == ["blue", "red"]


def test_first_root_having_a_name_owns_it(make_wildcards):
    first = make_wildcards({"colors.txt": "red\n"})
    second = make_wildcards({"colors.txt": "purple\n", "only2.txt": "o\n"})
    store = WildcardStore([first, second])
    assert texts(store, "colors") == ["red"]
    assert texts(store, "only2") == ["o"]
    assert texts(WildcardStore([second, first]), "colors") == ["purple"]


def test_names_with_spaces_and_mixed_case(make_wildcards):
    root = make_wildcards({"Dir With Space/My Colors.txt": "x\n"})
    store = WildcardStore([root])
    assert store.names() == ["Dir With Space/My Colors"]
    found = store.lookup("Dir With Space/My Colors")
    assert [e.text for e in found.entries] == ["x"]
    assert found.note == ""


def test_missing_name_finds_nothing(make_wildcards):
    store = WildcardStore([make_wildcards({"colors.txt": "red\n"})])
    found = store.lookup("nope")
    assert found.names == () and found.entries == ()


# -- lookup -------------------------------------------------------------------------------------


def test_glob_star_matches_several_names(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n", "colors2.txt": "green\n", "other.txt": "o\n"})
    found = WildcardStore([root]).lookup("colors*")
    assert found.names == ("colors", "colors2")
    assert [e.text for e in found.entries] == ["green", "red"]


def test_glob_folder_star(make_wildcards):
    root = make_wildcards({"dir/a.txt": "1\n", "dir/b.txt": "2\n", "dirt.txt": "no\n", "x.txt": "no\n"})
    found = WildcardStore([root]).lookup("dir/*")
    assert found.names == ("dir/a", "dir/b")
    assert [e.text for e in found.entries] == ["1", "2"]


def test_double_star_matches_across_slashes(make_wildcards):
    root = make_wildcards({"a/b/c/name.txt": "deep\n", "a/name.txt": "shallow\n", "name.txt": "top\n",
                           "a/other.txt": "no\n"})
    found = WildcardStore([root]).lookup("**/name")
    assert found.names == ("a/b/c/name", "a/name")
    assert [e.text for e in found.entries] == ["deep", "shallow"]


def test_case_insensitive_fallback_with_a_note(make_wildcards):
    root = make_wildcards({"Colors.txt": "red\n"})
    found = WildcardStore([root]).lookup("colors")
    assert found.names == ("Colors",)
    assert [e.text for e in found.entries] == ["red"]
    assert "case" in found.note


def test_case_insensitive_fallback_for_globs(make_wildcards):
    root = make_wildcards({"Dir/A.txt": "1\n"})
    found = WildcardStore([root]).lookup("dir/*")
    assert found.names == ("Dir/A",)
    assert "case" in found.note


def test_exact_case_match_wins_without_a_note(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n", "sub/Colors.txt": "blue\n"})
    found = WildcardStore([root]).lookup("colors")
    assert (found.names, found.note) == (("colors",), "")


def test_basename_fallback_with_a_note(make_wildcards):
    root = make_wildcards({"deep/x/y/name.txt": "deep\n"})
    store = WildcardStore([root])
    found = store.lookup("name")
    assert found.names == ("deep/x/y/name",)
    assert [e.text for e in found.entries] == ["deep"]
    assert "deep/x/y/name" in found.note
    assert store.lookup("y/name").names == ("deep/x/y/name",)


def test_entries_are_deduplicated_and_sorted_by_text(make_wildcards):
    root = make_wildcards({"a.txt": "pear\napple\npear\nZebra\n", "b.txt": "apple\nbanana\n"})
    found = WildcardStore([root]).lookup("*")
    assert [e.text for e in found.entries] == ["Zebra", "apple", "banana", "pear"]  # sorted(key=str)


def test_entries_of_keeps_file_order_and_duplicates(make_wildcards):
    root = make_wildcards({"a.txt": "pear\napple\npear\n"})
    entries = WildcardStore([root]).entries_of("a")
    assert [(e.text, e.line) for e in entries] == [("pear", 1), ("apple", 2), ("pear", 3)]
    assert all(os.path.abspath(e.source) == os.path.join(root, "a.txt") for e in entries)


def test_hidden_folders_and_non_wildcard_files_are_ignored(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n", ".hidden/secret.txt": "h\n", ".dot.txt": "d\n",
                           "notes.md": "n\n", "image.png": b"\x89PNG", "sub/.git/x.txt": "g\n"})
    assert WildcardStore([root]).names() == ["colors"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_loop_does_not_hang(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n", "sub/s.txt": "s\n"})
    try:
        os.symlink(root, os.path.join(root, "sub", "up"))  # sub/up -> its parent
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symlinks here")
    result: list = []
    worker = threading.Thread(target=lambda: result.append(WildcardStore([root]).names()), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "walking a symlink loop hangs"
    assert result == [["colors", "sub/s"]]


@pytest.mark.parametrize("name", ["../x", "a/../../x", "..", "/etc/passwd", "a\\b", "..\\x", "x\x00y"])
def test_bad_name_reason_refuses(name):
    assert bad_name_reason(name) != ""


@pytest.mark.parametrize("name", ["colors", "dir/sub name", "a..b", "**/x", "Colors*"])
def test_bad_name_reason_accepts_ordinary_names(name):
    assert bad_name_reason(name) == ""


# -- refresh -------------------------------------------------------------------------------------


def test_refresh_is_false_when_nothing_changed(make_wildcards):
    store = WildcardStore([make_wildcards({"colors.txt": "red\n", "y.yaml": "k: [1]\n"})])
    assert texts(store, "colors") == ["red"]
    assert store.refresh() is False
    assert store.refresh() is False
    assert store.generation == 0


def test_refresh_after_a_txt_file_is_edited(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n"})
    store = WildcardStore([root])
    assert texts(store, "colors") == ["red"]
    path = os.path.join(root, "colors.txt")
    write(path, "teal\n")  # same size: only the mtime tells
    bump_mtime(path)
    assert store.refresh() is True
    assert store.generation == 1
    assert texts(store, "colors") == ["teal"]
    assert store.refresh() is False


def test_refresh_after_a_yaml_file_is_edited(make_wildcards):
    root = make_wildcards({"y.yaml": "k: [1]\n"})
    store = WildcardStore([root])
    assert texts(store, "k") == ["1"]
    path = os.path.join(root, "y.yaml")
    write(path, "k: [2]\nm: [3]\n")
    bump_mtime(path)
    assert store.refresh() is True
    assert store.names() == ["k", "m"]
    assert texts(store, "k") == ["2"]


def test_refresh_after_a_file_is_added(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n", "sub/a.txt": "a\n"})
    store = WildcardStore([root])
    assert texts(store, "colors*") == ["red"]
    write(os.path.join(root, "colors2.txt"), "green\n")
    bump_mtime(root)
    assert store.refresh() is True
    assert store.generation == 1
    assert texts(store, "colors*") == ["green", "red"]
    write(os.path.join(root, "sub", "b.txt"), "b\n")
    bump_mtime(os.path.join(root, "sub"))
    assert store.refresh() is True
    assert store.generation == 2
    assert texts(store, "sub/b") == ["b"]


def test_refresh_after_a_file_is_removed(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n", "gone.txt": "g\n"})
    store = WildcardStore([root])
    assert texts(store, "gone") == ["g"]
    os.remove(os.path.join(root, "gone.txt"))
    bump_mtime(root)
    assert store.refresh() is True
    assert store.names() == ["colors"]
    assert texts(store, "gone") == []


# -- reading lazily: one bad file spoils only the templates that name it --------------------------------


def test_structured_files_are_read_only_when_a_name_below_their_folder_needs_them(make_wildcards, monkeypatch):
    from lib_orchestrator.wildcards import store as store_module

    root = make_wildcards({"colors.txt": "red\n", "top.yaml": "t: [1]\n", "sub/pack.yaml": "k: [2]\n",
                           "sub/deeper/more.json": '{"m": ["3"]}'})
    read: List[str] = []
    real = store_module.read_file
    monkeypatch.setattr(store_module, "read_file", lambda path, display: read.append(
        os.path.relpath(path, root).replace(os.sep, "/")) or real(path, display))
    store = WildcardStore([root])
    assert texts(store, "colors") == ["red"]
    assert sorted(read) == ["colors.txt", "top.yaml"]  # top.yaml could define `colors`; sub/ files cannot
    assert texts(store, "sub/k") == ["2"]
    assert read[2:] == ["sub/pack.yaml"]  # top.yaml is not read again; sub/deeper/ is below the name
    assert store.names() == ["colors", "sub/deeper/m", "sub/k", "t"]
    assert read[3:] == ["sub/deeper/more.json"]


def test_a_bad_file_is_skipped_with_a_warning_by_the_names_it_might_have_defined(make_wildcards):
    from lib_orchestrator.wildcards import PromptEngine

    engine = PromptEngine([make_wildcards({"bad.yaml": "k: [a, b\nj: c\n", "colors.txt": "red\n"})])
    assert engine.prompt("a __colors__", 1) == "a red"
    warning = [w for w in engine.warnings if "bad.yaml:2:" in w and ": warning: invalid YAML" in w]
    assert warning and "__colors__" in warning[0] and "left out" in warning[0]


def test_a_name_only_an_unreadable_file_could_define_fails_with_that_files_error(make_wildcards):
    from lib_orchestrator.errors import WildcardFileError
    from lib_orchestrator.wildcards import PromptEngine

    engine = PromptEngine([make_wildcards({"heavy.yaml": "heavy:\n  - 1e308::a\n  - c\n", "ok.txt": "o\n"})])
    with pytest.raises(WildcardFileError) as info:
        engine.prompt("__heavy__", 1)
    assert "heavy.yaml:2:5: error: weight 1e308 is over" in info.value.one_line()
    assert engine.prompt("__ok__", 1) == "o"


def test_a_hostile_pack_spoils_only_what_names_it_in_prompts_and_lint(make_wildcards):
    """Each file of the pack used to hang, exhaust memory or raise RecursionError for every template. In a
    child process capped at 1 GiB and 60 s: `prompts` of other names works, `prompts` of a bad name fails
    with its file:line:col, and `lint` reports every bad file and finishes."""
    from .hostile import hostile_pack, isolated

    root = make_wildcards({**hostile_pack(), "colors.txt": "red\n", "sub/ok.yaml": "shape: [round]\n"})
    done = isolated(f"""
        import io
        from lib_orchestrator.cli import main
        for argv in (["prompts", "__colors__ __sub/shape__"], ["prompts", "__recursive__"], ["lint"]):
            out, err = io.StringIO(), io.StringIO()
            code = main(argv + ["--wildcards", {root!r}], out, err)
            print(code, repr(out.getvalue()), repr(err.getvalue()))
    """, timeout=60, memory_mb=1024)
    results = done.stdout.splitlines()
    assert len(results) == 3, done.stderr[-2000:]
    good, named, linted = results
    assert good.startswith("0 'red round\\n'")
    assert named.startswith("2 ''") and "recursive.yaml:1:8: error: alias *r is used inside" in named
    assert linted.startswith("1 ")
    for bad in ("recursive.yaml:1:8: error", "laughs.yaml:6:", "brackets.json:1:65: error", "flow.yaml:1:",
                "block.yaml:65:65: error", "picture.txt:", "nul.txt:2:3: error", "heavy.yaml:2:5: error"):
        assert bad in linted, bad
    assert "error(s)" in linted


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_a_folder_linked_twice_is_walked_once_under_the_first_path_the_walk_reaches(make_wildcards):
    """Top-down, sub-folders by name: a link sorting before its target claims the target's files."""
    root = make_wildcards({"b/x.txt": "x\n", "c/y.txt": "y\n"})
    try:
        os.symlink(os.path.join(root, "b"), os.path.join(root, "a_link"))
        os.symlink(os.path.join(root, "b"), os.path.join(root, "z_link"))
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symlinks here")
    assert WildcardStore([root]).names() == ["a_link/x", "c/y"]


def test_a_folder_that_appears_inside_a_root_later_is_found_by_refresh(make_wildcards, tmp_path):
    root = make_wildcards({"a.txt": "a\n"})
    store = WildcardStore([root])
    assert store.names() == ["a"]
    os.makedirs(os.path.join(root, "later", "deeper"))
    write(os.path.join(root, "later", "deeper", "n.txt"), "n\n")
    bump_mtime(root)
    assert store.refresh() is True
    assert store.names() == ["a", "later/deeper/n"]
    shutil.rmtree(os.path.join(root, "later"))
    bump_mtime(root)
    assert store.refresh() is True
    assert store.names() == ["a"]


def test_a_windows_junction_counts_as_a_link(monkeypatch):
    # is_symlink() does not see junctions before Python 3.12: the reparse-point attribute does.
    from types import SimpleNamespace

    from lib_orchestrator.wildcards import store

    monkeypatch.setattr(store, "_REPARSE_POINT", 0x400)  # FILE_ATTRIBUTE_REPARSE_POINT

    def entry(attributes: int, symlink: bool = False):
        return SimpleNamespace(is_symlink=lambda: symlink,
                               stat=lambda follow_symlinks=True: SimpleNamespace(st_file_attributes=attributes))

    assert store._is_link(entry(0x410)) and store._is_link(entry(0, symlink=True))
    assert not store._is_link(entry(0x10))  # a plain folder
