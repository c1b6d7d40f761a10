"""Reading wildcard files: lib_orchestrator/wildcards/files.py (read_file, read_text_lines, decode)."""
from __future__ import annotations

import os
from typing import Dict, List, Tuple, Union

import pytest

from lib_orchestrator.errors import WildcardFileError
from lib_orchestrator.wildcards.files import Entry, ReadResult, decode, read_file, read_text_lines


@pytest.fixture
def read(make_wildcards):
    """read(name, content) -> ReadResult of that one file, displayed as its bare name."""

    def _read(name: str, content: Union[str, bytes]) -> ReadResult:
        root = make_wildcards({name: content})
        return read_file(os.path.join(root, name), name)

    return _read


def texts(result: ReadResult, name: str) -> List[str]:
    return [e.text for e in result.collections[name]]


def pairs(result: ReadResult, name: str) -> List[Tuple[str, float]]:
    return [(e.text, e.weight) for e in result.collections[name]]


def as_dict(result: ReadResult) -> Dict[str, List[str]]:
    return {k: [e.text for e in v] for k, v in result.collections.items()}


# -- .txt ------------------------------------------------------------------------------------------


def test_txt_gives_one_stripped_entry_per_line(read):
    result = read("colors.txt", "red\n  dark blue  \n\tgreen\t\n")
    assert as_dict(result) == {"colors": ["red", "dark blue", "green"]}
    assert result.warnings == ()


def test_txt_blank_and_comment_lines_are_skipped_and_line_numbers_kept(read):
    result = read("colors.txt", "# a comment\nred\n\n   \n  # indented comment\nblue\n")
    assert [(e.text, e.line) for e in result.collections["colors"]] == [("red", 2), ("blue", 6)]


def test_txt_entries_without_a_weight_prefix_have_weight_one(read):
    result = read("w.txt", "heavy\na::b\n{2::x|y}\n")
    assert pairs(result, "w") == [("heavy", 1.0), ("a::b", 1.0), ("{2::x|y}", 1.0)]


def test_read_text_lines_numbers_lines_from_one():
    assert list(read_text_lines("a\n\n#x\nb")) == [Entry("a", 1.0, 1), Entry("b", 1.0, 4)]


def test_crlf_line_endings_give_clean_entries_and_line_numbers(read):
    result = read("c.txt", b"red\r\n\r\nblue\r\n")
    assert [(e.text, e.line) for e in result.collections["c"]] == [("red", 1), ("blue", 3)]


def test_cr_only_line_endings_split_lines(read):
    result = read("c.txt", b"a\rb\rc\r")
    assert texts(result, "c") == ["a", "b", "c"]


def test_utf8_bom_is_stripped(read):
    result = read("c.txt", b"\xef\xbb\xbfred\nblue\n")
    assert texts(result, "c") == ["red", "blue"]
    assert result.warnings == ()


def test_utf8_bom_is_stripped_in_yaml(read):
    result = read("c.yaml", b"\xef\xbb\xbfkey:\n  - red\n")
    assert as_dict(result) == {"key": ["red"]}


@pytest.mark.parametrize("codec, bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_bom_is_decoded(read, codec, bom):
    result = read("c.txt", bom + "red\r\ncafé\n中文\n".encode(codec))
    assert texts(result, "c") == ["red", "café", "中文"]
    assert result.warnings == ()


def test_invalid_utf8_is_read_as_cp1252_with_a_warning(read):
    result = read("c.txt", b"caf\xe9\nprice \x80 5\nplain\n")
    assert texts(result, "c") == ["café", "price € 5", "plain"]
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert "UTF-8" in warning.message
    assert warning.location.source == "c.txt"


def test_decode_cp1252_fallback_keeps_every_byte():
    text, problem = decode(b"a\x81b\xe9", "x.txt")  # 0x81 is undefined in cp1252: latin-1 then
    assert text == "a\x81bé"
    assert problem and "UTF-8" in problem


def test_decode_clean_utf8_has_no_warning():
    assert decode("naïve 中文".encode(), "x.txt") == ("naïve 中文", None)


def test_broken_utf16_after_bom_is_not_an_unhandled_decode_error(read):
    try:
        result = read("c.txt", b"\xff\xfea\x00b")
    except WildcardFileError:
        return
    assert result.warnings


def test_nul_bytes_make_a_file_binary_and_refused_where_the_first_one_is(read):
    with pytest.raises(WildcardFileError) as info:
        read("c.txt", b"red\nbl\x00ue\n")
    err = info.value
    assert "not a text file" in err.message and "NUL" in err.message
    assert (err.location.source, err.location.line, err.location.column) == ("c.txt", 2, 3)
    assert "move this file" in err.hint


def test_cjk_text_is_kept_intact(read):
    result = read("c.txt", "赤い 花\n青い空\n한국어\n")
    assert texts(result, "c") == ["赤い 花", "青い空", "한국어"]


# -- .yaml / .yml / .json -----------------------------------------------------------------------


def test_yaml_nested_maps_become_slash_names(read):
    result = read("pack.yaml", "a:\n  b:\n    c:\n      - deep\n  d:\n    - shallow\n")
    assert as_dict(result) == {"a/b/c": ["deep"], "a/d": ["shallow"]}


def test_yaml_top_level_keys_are_not_prefixed_by_file_name(read):
    result = read("pack.yaml", "animals:\n  - cat\ncolors:\n  - red\n")
    assert set(result.collections) == {"animals", "colors"}


def test_yaml_flat_top_level_list_is_named_after_the_file(read):
    result = read("flat.yaml", "- one\n- two\n")
    assert as_dict(result) == {"flat": ["one", "two"]}


def test_yml_suffix_is_read_as_yaml(read):
    assert as_dict(read("flat.yml", "k: [x, y]\n")) == {"k": ["x", "y"]}


def test_yaml_string_value_becomes_a_one_item_list(read):
    assert as_dict(read("s.yaml", "greeting: hello world\n")) == {"greeting": ["hello world"]}


def test_yaml_empty_values_define_no_list(read):
    assert as_dict(read("s.yaml", "a:\nb: []\nc: {}\nd: [x]\n")) == {"d": ["x"]}


def test_weight_shorthand_when_item_starts_with_a_digit(read):
    result = read("w.yaml", "- 2::heavy\n- 0.5::light\n- plain\n")
    assert pairs(result, "w") == [("heavy", 2.0), ("light", 0.5), ("plain", 1.0)]


def test_weight_shorthand_needs_a_leading_digit(read):
    result = read("w.yaml", "- .5::x\n- a::b\n- ' 2::y'\n")
    assert pairs(result, "w") == [(".5::x", 1.0), ("a::b", 1.0), (" 2::y", 1.0)]


def test_weight_shorthand_splits_on_the_last_double_colon(read):
    # "2::3::x" splits into weight text "2::3" (not a number): the item stays literal.
    result = read("w.yaml", "- 2::3::x\n- 1.5::a b\n")
    assert pairs(result, "w") == [("2::3::x", 1.0), ("a b", 1.5)]


def test_weight_shorthand_in_a_string_value(read):
    assert pairs(read("w.yaml", "k: 3::x\n"), "k") == [("x", 3.0)]


def test_weighted_items_match_dynamicprompts():
    structured = pytest.importorskip("dynamicprompts.wildcards.collection.structured")
    items = ["2::heavy", "0.5::light", ".5::x", "2::3::x", "1::a::b", "10::", "plain", "1e1::sci"]
    from lib_orchestrator.wildcards.files import _list_entries

    ours = [(e.text, e.weight) for e in _list_entries([(i, 1, 1) for i in items], "w.yaml", [])]
    theirs = []
    for value in structured._parse_structured_file_list(items):
        if isinstance(value, str):
            theirs.append((value, 1.0))
        else:
            theirs.append((value.content, value.weight))
    assert ours == theirs


def test_object_form_text_and_weight(read):
    result = read("o.yaml", "- text: hero\n  weight: 3\n- {content: villain}\n- {text: extra, weight: 0.25}\n")
    assert pairs(result, "o") == [("hero", 3.0), ("villain", 1.0), ("extra", 0.25)]


def test_object_form_without_text_is_ignored_with_a_warning(read):
    result = read("o.yaml", "- {weight: 2}\n- ok\n")
    assert texts(result, "o") == ["ok"]
    assert any("text" in w.message for w in result.warnings)


def test_yaml_scalars_keep_their_source_text(read):
    result = read("y.yaml", "- 1990\n- 1.10\n- 007\n- true\n- 1e3\n")
    assert texts(result, "y") == ["1990", "1.10", "007", "true", "1e3"]


def test_yaml_keys_keep_their_source_text(read):
    assert as_dict(read("y.yaml", "1990:\n  - a\n")) == {"1990": ["a"]}


def test_yaml_block_scalar_keeps_multiline_text(read):
    result = read("b.yaml", "- |\n  first line\n  second line\n- single\n")
    entries = result.collections["b"]
    assert entries[0].text.rstrip("\n") == "first line\nsecond line"
    assert entries[1].text == "single"


def test_yaml_entries_keep_line_numbers(read):
    result = read("l.yaml", "k:\n  - a\n\n  - b\n")
    assert [(e.text, e.line) for e in result.collections["k"]] == [("a", 2), ("b", 4)]


def test_json_nested_maps_and_lists(read):
    result = read("j.json", '{"a": {"b": ["x", "2::y"], "c": "s"}, "d": [1990, {"text": "q", "weight": 2}]}')
    assert {k: [(e.text, e.weight) for e in v] for k, v in result.collections.items()} == {
        "a/b": [("x", 1.0), ("y", 2.0)],
        "a/c": [("s", 1.0)],
        "d": [("1990", 1.0), ("q", 2.0)],
    }


def test_json_flat_list_is_named_after_the_file(read):
    assert as_dict(read("flat.json", '["a", "b"]')) == {"flat": ["a", "b"]}


@pytest.mark.parametrize("content, line", [
    ("good:\n  - x\nbad:\n\t- y\n", 4),  # a tab cannot start a token
    ("a:\n  - x\n  b: y\nc: z\n", 3),  # a mapping key inside a sequence
])
def test_invalid_yaml_raises_wildcard_file_error_with_its_line(read, content, line):
    with pytest.raises(WildcardFileError) as info:
        read("bad.yaml", content)
    err = info.value
    assert err.location is not None
    assert err.location.source == "bad.yaml"
    assert err.location.line == line
    assert "YAML" in err.message


def test_invalid_json_raises_wildcard_file_error_with_its_line(read):
    with pytest.raises(WildcardFileError) as info:
        read("bad.json", '{"a": ["x"],\n "b": ["y"]\n "c": ["z"]}')
    err = info.value
    assert (err.location.source, err.location.line) == ("bad.json", 3)
    assert "JSON" in err.message
    assert err.one_line().startswith("bad.json:3:")


def test_empty_yaml_file_defines_nothing(read):
    assert read("e.yaml", "").collections == {}
