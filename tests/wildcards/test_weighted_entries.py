"""Weighted entries in every file format (issue 20 item 1): `.txt` lines `W::entry`, YAML/JSON maps of
entry → weight; bad weights located; what packs already hold reads as before."""
from __future__ import annotations

import os
from collections import Counter

import pytest

from lib_orchestrator.errors import WildcardFileError
from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards.files import read_file
from lib_orchestrator.wildcards.lint import lint


def entries(root: str, name: str):
    result = read_file(os.path.join(root, name), name)
    return {k: [(e.text, e.weight, e.line) for e in v] for k, v in result.collections.items()}, \
        [str(w) for w in result.warnings]


# -- .txt -------------------------------------------------------------------------------------------------


def test_txt_weight_prefix(make_wildcards):
    root = make_wildcards({"c.txt": "3::red\n0.5 :: dark blue\n  10::  green  \ngrey\n.25::pale\n1.5e1::loud\n"})
    got, warnings = entries(root, "c.txt")
    assert got == {"c": [("red", 3.0, 1), ("dark blue", 0.5, 2), ("green", 10.0, 3), ("grey", 1.0, 4),
                         ("pale", 0.25, 5), ("loud", 15.0, 6)]}
    assert warnings == []


def test_txt_weight_applies_to_the_whole_rest_of_the_line(make_wildcards):
    # Only the first `::` is the weight's: the entry keeps its own syntax, scheduling included.
    root = make_wildcards({"c.txt": "2::{a|b} [cat::5]\n"})
    assert entries(root, "c.txt")[0] == {"c": [("{a|b} [cat::5]", 2.0, 1)]}


def test_txt_weight_alone_is_a_weighted_empty_entry(make_wildcards):
    root = make_wildcards({"c.txt": "3::\nhat\n"})
    assert entries(root, "c.txt")[0] == {"c": [("", 3.0, 1), ("hat", 1.0, 2)]}


def test_txt_lines_that_only_look_like_weights_stay_text_with_a_located_warning(make_wildcards):
    root = make_wildcards({"c.txt": "ok\n  -1::minus\n1,5::comma\n1.2.3::dots\n"})
    got, warnings = entries(root, "c.txt")
    assert got == {"c": [("ok", 1.0, 1), ("-1::minus", 1.0, 2), ("1,5::comma", 1.0, 3), ("1.2.3::dots", 1.0, 4)]}
    assert [w.split(": warning: ")[0] for w in warnings] == ["c.txt:2:3", "c.txt:3:1", "c.txt:4:1"]
    assert "'-1' is negative" in warnings[0] and "read as text" in warnings[0]
    assert "'1,5' is not a number" in warnings[1]


def test_txt_weight_over_the_limit_is_the_files_error(make_wildcards):
    root = make_wildcards({"c.txt": "a\n   5e12::huge\n"})
    with pytest.raises(WildcardFileError) as caught:
        read_file(os.path.join(root, "c.txt"), "c.txt")
    assert str(caught.value.location) == "c.txt:2:4"
    assert "over the" in caught.value.message


def test_weighted_txt_draws_follow_the_weights(make_wildcards):
    root = make_wildcards({"c.txt": "9::red\nblue\n0::never\n"})
    engine = PromptEngine([root])
    counts = Counter(engine.texts("__c__", "random", 0, 20_000))
    assert set(counts) == {"red", "blue"}
    assert 0.88 < counts["red"] / 20_000 < 0.92


def test_combinatorial_lists_every_live_weighted_entry_once(make_wildcards):
    root = make_wildcards({"c.txt": "9::red\nblue\n0::never\n"})
    assert sorted(PromptEngine([root]).texts("__c__", "combinatorial", 0, 10)) == ["blue", "red"]


# -- YAML / JSON maps of entry -> weight ----------------------------------------------------------------


def test_yaml_map_of_numbers_is_a_weighted_list(make_wildcards):
    root = make_wildcards({"p.yaml": "hair:\n  blonde: 3\n  black hair: 1\n  red: 0.5\nplain:\n  - x\n"})
    assert entries(root, "p.yaml")[0] == {"hair": [("blonde", 3.0, 2), ("black hair", 1.0, 3), ("red", 0.5, 4)],
                                          "plain": [("x", 1.0, 6)]}


def test_top_level_weight_map_is_named_after_the_file(make_wildcards):
    root = make_wildcards({"moods.yaml": "calm: 2\nangry: 1\n", "j.json": '{"a": 2, "b": 0.5}'})
    assert entries(root, "moods.yaml")[0] == {"moods": [("calm", 2.0, 1), ("angry", 1.0, 2)]}
    assert entries(root, "j.json")[0] == {"j": [("a", 2.0, 1), ("b", 0.5, 1)]}


def test_json_nested_weight_map(make_wildcards):
    root = make_wildcards({"j.json": '{"look": {"hat": 4, "scarf": 1}, "other": ["q"]}'})
    assert entries(root, "j.json")[0] == {"look": [("hat", 4.0, 1), ("scarf", 1.0, 1)], "other": [("q", 1.0, 1)]}


def test_quoted_numbers_are_text_not_weights(make_wildcards):
    # `red: "3"` is a one-line list as before; only numbers make a weight map.
    root = make_wildcards({"p.yaml": "colors:\n  red: '3'\n  blue: 1\n"})
    assert entries(root, "p.yaml")[0] == {"colors/red": [("3", 1.0, 2)], "colors/blue": [("1", 1.0, 3)]}


def test_list_items_that_are_numbers_stay_text(make_wildcards):
    root = make_wildcards({"years.yaml": "- 1990\n- 2001\n", "more.yaml": "ages:\n  - 30\n  - {text: 40}\none: 7\n",
                           "keys.yaml": "1990: 2\n2001: 1\n"})
    assert entries(root, "years.yaml")[0] == {"years": [("1990", 1.0, 1), ("2001", 1.0, 2)]}
    read = {name: read_file(os.path.join(root, name), name).collections for name in ("years.yaml", "more.yaml",
                                                                                       "keys.yaml")}
    texts = [e.text for lists in read.values() for entries_ in lists.values() for e in entries_]
    assert sorted(texts) == ["1990", "1990", "2001", "2001", "30", "40", "7"]
    assert {type(t) for t in texts} == {str}  # plain text, whatever YAML read it as
    # Every sampler takes them as text: pick-N and an immediate variable over a list of numbers.
    engine = PromptEngine([root])
    assert set(engine.texts("{2$$__years__}", "random", 0, 50)) <= {"1990,2001", "2001,1990"}
    assert {engine.prompt("${a=!__ages__}${a}", s) for s in range(40)} == {"30", "40"}
    assert set(engine.texts("__keys__ __one__", "combinatorial", 0, 10)) == {"1990 7", "2001 7"}


@pytest.mark.parametrize("text, where, problem", [
    ("hair:\n  blonde: 3\n  black: -1\n", "p.yaml:3:10", "negative"),
    ("hair:\n  blonde: .inf\n  black: 1\n", "p.yaml:2:11", "over the"),
    ("hair:\n  blonde: .nan\n", "p.yaml:2:11", "not a number"),
])
def test_bad_weight_in_a_map_is_located(make_wildcards, text, where, problem):
    root = make_wildcards({"p.yaml": text})
    with pytest.raises(WildcardFileError) as caught:
        read_file(os.path.join(root, "p.yaml"), "p.yaml")
    assert str(caught.value.location) == where
    assert problem in caught.value.message


def test_weighted_map_draws_follow_the_weights(make_wildcards):
    root = make_wildcards({"p.yaml": "hair:\n  blonde: 3\n  black: 1\n"})
    counts = Counter(PromptEngine([root]).texts("__hair__", "random", 0, 20_000))
    assert 0.72 < counts["blonde"] / 20_000 < 0.78


# -- lint -------------------------------------------------------------------------------------------------


def test_lint_reports_bad_weights_with_file_line_column(make_wildcards, monkeypatch):
    root = make_wildcards({"c.txt": "ok\n-2::x\n", "p.yaml": "hair:\n  a: 1\n  b: -3\n"})
    monkeypatch.chdir(root)
    lines = [str(f) for f in lint(["."])]
    assert any(line.startswith("c.txt:2:1: warning: weight '-2' is negative; the line is read as text")
               for line in lines), lines
    assert any(line.startswith("p.yaml:3:6: error: weight -3 is negative") for line in lines), lines
