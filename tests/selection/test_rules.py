"""Rules files: defaults without one, every key read, every mistake named with its line and column."""
from __future__ import annotations

import pytest

from lib_orchestrator.selection import Rules, load_rules
from lib_orchestrator.selection.rules import RulesError


def write(tmp_path, text):
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_need_no_file():
    rules = Rules()
    assert (rules.min_total, rules.max_total) == (1, 6)
    assert rules.conflicts == (("style",),)
    assert rules.category("slider").weight_range == (-1.0, 1.0)
    assert rules.category("nonexistent") == rules.category("other")


def test_an_empty_file_is_the_defaults(tmp_path):
    assert load_rules(write(tmp_path, "")) == Rules()


def test_every_key(tmp_path):
    rules = load_rules(write(tmp_path, """
count: {min: 2, max: 4}
temperature: 0
min_score: 3
min_relative_score: 0.5
fallback: false
detailer: {probability: 0.5}
jitter: 0.05
categories:
  style: {max: 2, weight: 5, lora_weight: 0.6}
  slider: {weight_range: [-3, -1]}
conflicts: [[character, clothing], [style]]
pinned: [add_detail]
blocked: [bad_lora]
"""))
    assert (rules.min_total, rules.max_total, rules.temperature, rules.min_score) == (2, 4, 0.0, 3.0)
    assert (rules.min_relative_score, rules.fallback) == (0.5, False)
    assert (rules.detailer_probability, rules.jitter) == (0.5, 0.05)
    assert (rules.category("style").max, rules.category("style").weight, rules.category("style").lora_weight) == \
        (2, 5.0, 0.6)
    assert rules.category("slider").weight_range == (-3.0, -1.0)
    assert rules.category("character").max == 2  # untouched categories keep their defaults
    assert rules.conflicts == (("character", "clothing"), ("style",))
    assert (rules.pinned, rules.blocked) == (("add_detail",), ("bad_lora",))


@pytest.mark.parametrize("text, line, column, fragment", [
    ("count: {min: 5, max: 2}", 1, 8, "above count.max"),
    ("temprature: 1", 1, 1, "unknown key 'temprature'"),
    ("categories:\n  styles: {max: 1}", 2, 3, "unknown key 'styles'"),
    ("categories:\n  style: {max: -1}", 2, 16, "between"),
    ("categories:\n  style: {maximum: 1}", 2, 11, "unknown key 'maximum'"),
    ("detailer: {probability: 1.5}", 1, 25, "between 0 and 1"),
    ("jitter: lots", 1, 9, "must be a number"),
    ("conflicts: style", 1, 12, "list of groups"),
    ("pinned: [[a]]", 1, 9, "list of names"),
    ("categories:\n  slider: {weight_range: [1, -1]}", 2, 26, "low (1) is above high (-1)"),
    ("count: [1, 2", 2, 1, "invalid YAML"),
    ("- a list", 1, 1, "must be a mapping"),
])
def test_mistakes_name_the_place_and_what_to_do(tmp_path, text, line, column, fragment):
    path = write(tmp_path, text)
    with pytest.raises(RulesError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as info:
        load_rules(path)
    assert (info.value.location.source, info.value.location.line, info.value.location.column) == \
        (path, line, column), str(info.value)


def test_a_missing_file(tmp_path):
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize("content, fragment", [
    (b"? [a]\n: 1\n", "a key in the rules must be a name"),
    (b"categories:\n  ? {style: 1}\n  : {max: 1}\n", "a key in categories must be a name"),
    (b"min_score: .inf", "must be a number"),
    (b"min_score: inf", "finite"),
    (b"count: {min: 1e999}", "finite"),
    (b"count: {min: 1}\n\xff\xfe", r"not UTF-8 text \(byte 16\)"),
    (b"\xef\xbb\xbfcount: {min: 1, max: 0}", "above count.max"),  # a BOM is fine, the mistake is reported
    (b"# " + b"x" * 2**20, "larger than 1 MiB"),
    (b"[" * 5000, "YAML|nested"),
    (b"pinned: &a [*a, *a]", "list of names"),  # a list holding itself
])
def test_hostile_files_raise_a_rules_error_and_nothing_else(tmp_path, content, fragment):
    path = tmp_path / "rules.yaml"
    path.write_bytes(content)
    with pytest.raises(RulesError, match=fragment):
        load_rules(str(path))


def test_a_path_with_a_nul_is_a_rules_error(tmp_path):
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(str(tmp_path / "a\x00b.yaml"))
