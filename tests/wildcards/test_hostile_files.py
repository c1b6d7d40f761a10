"""Hostile and broken wildcard files: bounded YAML/JSON reading, binary files, bad weights
(lib_orchestrator/wildcards/structured.py, files.py; the caps in structured.py and options.py)."""
from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib_orchestrator.errors import TemplateError, WildcardFileError
from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards.ast import Option, Text, Variant
from lib_orchestrator.wildcards.files import read_file
from lib_orchestrator.wildcards.random_sampler import RandomCompiler
from lib_orchestrator.wildcards.resolve import Resolver
from lib_orchestrator.wildcards.store import WildcardStore
from lib_orchestrator.wildcards.structured import yaml_tree

from .hostile import (
    RECURSIVE_ALIAS,
    billion_laughs,
    deep_json,
    deep_yaml_block,
    deep_yaml_flow,
    isolated,
    png,
)


@pytest.fixture
def read(make_wildcards):
    def _read(name: str, content: Any):
        root = make_wildcards({name: content})
        return read_file(os.path.join(root, name), name)

    return _read


def refused(read, name: str, content: Any) -> WildcardFileError:
    with pytest.raises(WildcardFileError) as info:
        read(name, content)
    return info.value


# -- YAML aliases, nesting, JSON brackets ------------------------------------------------------------


def test_a_recursive_alias_is_refused_where_it_is_used(read):
    err = refused(read, "r.yaml", RECURSIVE_ALIAS)
    assert "recursive alias" in err.message
    assert (err.location.source, err.location.line, err.location.column) == ("r.yaml", 1, 8)  # the first *r
    assert err.hint


def read_in_a_child(path, name: str, **caps):
    """read_file in a fresh, capped interpreter (hostile.isolated); its stdout is the error's one line."""
    return isolated(f"""
        from lib_orchestrator.errors import WildcardFileError
        from lib_orchestrator.wildcards.files import read_file
        try:
            read_file({str(path)!r}, {name!r})
        except WildcardFileError as exc:
            print(exc.one_line())
    """, **caps)


def test_the_recursive_alias_file_finishes_at_once_in_a_fresh_process(tmp_path):
    # Before the fix this looped for ever (2**64 paths); the child is killed after 20 s.
    (tmp_path / "r.yaml").write_text(RECURSIVE_ALIAS)
    done = read_in_a_child(tmp_path / "r.yaml", "r.yaml", timeout=20)
    assert "recursive alias" in done.stdout, done.stderr


def test_billion_laughs_is_refused_within_a_small_memory_cap(tmp_path):
    text = billion_laughs()  # 9**9 = 387 million "lol"s once expanded
    assert len(text) < 600
    (tmp_path / "laughs.yaml").write_text(text)
    done = read_in_a_child(tmp_path / "laughs.yaml", "laughs.yaml", timeout=20, memory_mb=512)
    assert "aliases expand to over 100,000 values" in done.stdout, done.stderr
    assert done.stdout.startswith("laughs.yaml:")


def test_aliases_that_repeat_a_list_still_work(read):
    result = read("a.yaml", "base: &b [red, blue]\nmore: *b\nnested:\n  again: *b\n  key: &k solo\n  copy: *k\n")
    got = {name: [e.text for e in entries] for name, entries in result.collections.items()}
    assert got == {"base": ["red", "blue"], "more": ["red", "blue"], "nested/again": ["red", "blue"],
                   "nested/key": ["solo"], "nested/copy": ["solo"]}


def test_aliases_up_to_the_cap_are_read(read):
    # Each alias of the 999-item list adds 1,000 values (the list and its items): 100 aliases reach the
    # 100,000 cap exactly, the 101st (line 102) is over it.
    text = "l: &l [" + ", ".join(f"i{k}" for k in range(999)) + "]\n" + "".join(f"c{k}: *l\n" for k in range(99))
    result = read("a.yaml", text)
    assert len(result.collections) == 100 and all(len(v) == 999 for v in result.collections.values())
    assert len(read("b.yaml", text + "c99: *l\n").collections) == 101
    err = refused(read, "c.yaml", text + "c99: *l\nc100: *l\n")
    assert "aliases expand" in err.message and (err.location.line, err.location.column) == (102, 7)


@pytest.mark.parametrize("name, text, where", [
    ("deep.json", deep_json(100_000), (1, 65)),
    ("edge.json", deep_json(65), (1, 65)),
    ("block.yaml", deep_yaml_block(200), (65, 65)),
])
def test_nesting_past_64_levels_is_refused_where_it_starts(read, name, text, where):
    err = refused(read, name, text)
    assert "nested deeper than 64 levels" in err.message
    assert (err.location.line, err.location.column) == where


def test_deep_flow_yaml_is_refused_with_a_typed_error(read):
    err = refused(read, "flow.yaml", deep_yaml_flow(100_000))  # libyaml may stop it first: either is ours
    assert "nest" in err.message
    assert err.location.source == "flow.yaml"


def test_64_levels_are_read(read):
    assert read("ok.json", deep_json(64)).collections == {"ok": []}  # a list of lists: no entries
    nested = "k:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(62)) + " " * 63 + "- x\n"
    assert [e.text for e in read("ok.yaml", nested).collections["k/" + "/".join(f"k{i}" for i in range(62))]] == ["x"]


def test_a_json_alias_bomb_of_brackets_inside_strings_is_just_text(read):
    result = read("s.json", json.dumps({"k": ["[" * 10_000, "{" * 10_000]}))
    assert [len(e.text) for e in result.collections["k"]] == [10_000, 10_000]


def test_json_with_a_huge_integer_is_read_as_its_digits(read):
    digits = "9" * 5000  # int() refuses over 4,300 digits with a ValueError
    assert [e.text for e in read("n.json", "[" + digits + ", 7]").collections["n"]] == [digits, "7"]


def test_a_second_yaml_document_is_refused_as_yaml_compose_does(read):
    err = refused(read, "two.yaml", "- a\n---\n- b\n")
    assert "another document" in err.message and err.location.line == 2


def test_duplicate_and_undefined_anchors_are_refused(read):
    assert "duplicate anchor" in refused(read, "d.yaml", "a: &x [1]\nb: &x [2]\n").message
    assert "undefined alias" in refused(read, "u.yaml", "a: *nope\n").message


# -- the event reader gives what yaml.compose gave --------------------------------------------------


def composed(text: str) -> Any:
    """The tree as the old reader built it from yaml.compose: scalars keep their source text, null is
    None, non-scalar keys are dropped, a block scalar's line is the one below its indicator."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return (None, 1)

    def walk(node: Any) -> Any:
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            return ({k.value: walk(v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}, line)
        if isinstance(node, yaml.SequenceNode):
            return ([walk(v) for v in node.value], line)
        if node.tag == "tag:yaml.org,2002:null":
            return (None, line)
        return (node.value, line + (1 if node.style in ("|", ">") else 0))

    return walk(root)


def without_columns(tree: Any) -> Any:
    value, line, _ = tree
    if isinstance(value, dict):
        return ({k: without_columns(v) for k, v in value.items()}, line)
    if isinstance(value, list):
        return ([without_columns(v) for v in value], line)
    return (value, line)


scalars = st.one_of(st.text(max_size=8), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                    st.sampled_from(["1990", "1.10", "007", "~", "null", "yes", "2::x", "a: b", "- x", "#c"]))
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                     max_leaves=20)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, style=st.sampled_from([None, True, False]), shared=st.booleans())
def test_the_event_reader_builds_the_tree_yaml_compose_builds(tree, style, shared):
    if shared and isinstance(tree, (list, dict)):
        tree = {"first": tree, "again": tree, "list": [tree, tree]}  # safe_dump writes anchors and aliases
    text = yaml.safe_dump(tree, default_flow_style=style, allow_unicode=True)
    assert without_columns(yaml_tree(text, "t.yaml")) == composed(text)


@pytest.mark.parametrize("text", [
    "", "---\n...\n", "a:\n", "- |\n  block\n  text\n- >\n  folded\n", "? [complex, key]\n: v\nk: [1]\n",
    "!!null x: 1\nk: !!str 12\n", "~: a\nnull: [b]\n'': c\n", "<<: {a: 1}\nb: 2\n", "k: &a x\n*a : y\n",
])
def test_the_event_reader_matches_yaml_compose_on_corner_cases(text):
    assert without_columns(yaml_tree(text, "t.yaml")) == composed(text)


def test_the_shared_collections_yaml_reads_as_yaml_compose_reads_it():
    from ..conftest import SDDP_WILDCARDS

    path = SDDP_WILDCARDS / "publicprompts.yaml"
    if not path.is_file():
        pytest.skip("../shared test data not present")
    text = path.read_text(encoding="utf-8")
    assert without_columns(yaml_tree(text, "p.yaml")) == composed(text)


# -- binary files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content, looks_like", [
    (png(), "PNG image"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", "JPEG image"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "ZIP archive"),
    ("red\nblue\n".encode("utf-16-le"), "UTF-16 text without a byte-order mark"),
    (bytes(range(1, 32)) * 40, "control characters"),
    (b"\x00" * 64, "NUL bytes"),
    ((24).to_bytes(8, "little") + b'{"__metadata__": {}}    ' + b"\x00" * 16, ".safetensors model"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00", "MP4/MOV video"),
])
def test_a_binary_file_is_refused_saying_what_it_looks_like(read, content, looks_like):
    err = refused(read, "pic.txt", content)
    assert err.message.startswith("not a text file: it looks like") and looks_like in err.message
    assert "move this file out of the wildcard folder" in err.hint
    assert err.location.source == "pic.txt"


def test_text_with_tabs_escapes_and_cp1252_is_not_binary(read):
    result = read("t.txt", b"a\tb\n\x1b[1mbold\nna\xefve\n")
    assert [e.text for e in result.collections["t"]] == ["a\tb", "\x1b[1mbold", "na\u00efve"]


def test_a_png_named_as_a_wildcard_fails_the_template_that_names_it_and_no_other(make_wildcards):
    engine = PromptEngine([make_wildcards({"pic.txt": png(), "colors.txt": "red\n"})])
    with pytest.raises(WildcardFileError, match="PNG image"):
        engine.prompt("a __pic__", 1)
    assert engine.prompt("a __colors__", 1) == "a red"


# -- weights -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, text, where, problem", [
    ("w.yaml", "w:\n  - 1e308::a\n  - 1e308::b\n  - c\n", (2, 5), "over the 1,000,000,000 limit"),
    ("w.yaml", "w:\n  - a\n  - 1e999::b\n", (3, 5), "over the"),
    ("w.yaml", "w:\n  - {text: a, weight: .inf}\n", (2, 23), "not a number"),
    ("w.yaml", "w:\n  - {text: a, weight: .nan}\n", (2, 23), "not a number"),
    ("w.yaml", "w:\n  - text: a\n    weight: -2\n", (3, 13), "negative"),
    ("w.yaml", "w:\n  - {text: a, weight: heavy}\n", (2, 23), "not a number"),
    ("w.json", '{"w": [{"text": "a", "weight": 1e999}]}', (1, 32), "over the"),
    ("w.json", '{"w": [{"text": "a", "weight": NaN}]}', (1, 32), "not a number"),
    ("w.json", '{"w": [{"text": "a", "weight": true}]}', (1, 32), "not a number"),
])
def test_bad_weights_in_files_are_refused_where_they_are_written(read, name, text, where, problem):
    err = refused(read, name, text)
    assert err.message.startswith("weight ") and problem in err.message
    assert (err.location.line, err.location.column) == where
    assert "numbers from 0" in err.hint


def test_weights_up_to_the_cap_are_read(read):
    result = read("w.yaml", "w:\n  - 1000000000::a\n  - {text: b, weight: 0}\n  - 0.001::c\n")
    assert [(e.text, e.weight) for e in result.collections["w"]] == [("a", 1e9), ("b", 0.0), ("c", 0.001)]


@pytest.mark.parametrize("template, column", [("{1" + "0" * 400 + "::a|b}", 2), ("x {a|1000000001::b}", 6)])
def test_template_weights_over_the_cap_are_refused_at_their_column(template, column, make_wildcards):
    engine = PromptEngine([make_wildcards({"c.txt": "x\n"})])
    with pytest.raises(TemplateError, match="over the 1,000,000,000 limit") as info:
        engine.prompt(template, 1)
    assert info.value.location.column == column


def test_the_compiler_writes_no_infinite_number_whatever_weights_it_is_given(make_wildcards):
    # Weights no reader accepts, built by hand: their sum overflows to inf.
    variant = Variant((Option(Text("a"), 1e308), Option(Text("b"), 1e308), Option(Text("c"), 1.0)))
    fn = RandomCompiler(Resolver(WildcardStore([make_wildcards({})]))).compile(variant)
    draws = [fn(seed) for seed in range(2000)]
    assert set(draws) == {"a", "b"}  # c's share is 1e-308
    assert 800 < draws.count("a") < 1200


def test_a_weight_that_is_not_finite_is_a_typed_error_in_the_compiler(make_wildcards):
    variant = Variant((Option(Text("a"), float("inf")), Option(Text("b"), 1.0)))
    with pytest.raises(TemplateError, match="finite"):
        RandomCompiler(Resolver(WildcardStore([make_wildcards({})]))).compile(variant)


# -- size caps: what one file may cost in memory ----------------------------------------------------------


def test_a_txt_of_over_a_million_lines_is_refused_before_it_is_split(read):
    err = refused(read, "many.txt", "a\n" * 1_000_000)  # 1,000,001 lines with the empty last one
    assert "1,000,001 lines, over the 1,000,000 limit" in err.message


def test_json_of_over_a_million_values_is_refused_before_json_builds_them(read):
    err = refused(read, "arrays.json", "[" + "[]," * 1_000_000 + "[]]")
    assert "over 1,000,000 values" in err.message
    err = refused(read, "flat.json", "[" + "1," * 1_000_000 + "1]")  # one bracket: no nesting to measure
    assert "over 1,000,000 values" in err.message


@pytest.mark.parametrize("cap, refused_", [(1353, False), (1352, True)])
def test_yaml_values_are_counted_once_each_against_the_cap(read, monkeypatch, cap, refused_):
    from lib_orchestrator.wildcards import structured

    # The root map, its key, the list, and 450 lists of two scalars: 3 + 450 * 3 = 1,353 values.
    text = "k:\n" + "  - [a, b]\n" * 450
    monkeypatch.setattr(structured, "MAX_VALUES", cap)
    if refused_:
        assert "over 1,352 values" in refused(read, "v.yaml", text).message
    else:
        assert read("v.yaml", text).collections == {"k": []}  # a list of lists: no entries


def test_aliases_count_every_value_they_repeat(read, monkeypatch):
    from lib_orchestrator.wildcards import structured

    # a: a list of 3 (4 values) + key; b: its alias (4 more) + key; the root map: 11 in all.
    monkeypatch.setattr(structured, "MAX_VALUES", 10)
    assert "over 10 values" in refused(read, "a.yaml", "a: &l [x, y, z]\nb: *l\n").message
    monkeypatch.setattr(structured, "MAX_VALUES", 11)
    assert [e.text for e in read("a.yaml", "a: &l [x, y, z]\nb: *l\n").collections["b"]] == ["x", "y", "z"]
