"""The parser: dynamicprompts' grammar, its fixes, and errors that say where and what to do."""
from __future__ import annotations

import pytest

from lib_orchestrator.errors import TemplateError
from lib_orchestrator.wildcards.ast import Seq, Text, VarGet, Variant, VarSet, Wildcard, Wrap
from lib_orchestrator.wildcards.parser import MAX_NESTING, parse


def texts(node):
    return node.text if isinstance(node, Text) else None


def test_variant_options_weights_and_sampler():
    node = parse("{~2::a| b |.5::c}")
    assert isinstance(node, Variant)
    assert node.sampler == "~"
    assert [(texts(o.body), o.weight) for o in node.options] == [("a", 2.0), ("b ", 1.0), ("c", 0.5)]


def test_bounds_and_custom_separator_follow_dynamicprompts_defaults():
    assert (parse("{2$$a|b|c}").lo, parse("{2$$a|b|c}").hi, parse("{2$$a|b|c}").sep) == (2, 2, ",")
    node = parse("{1-3$$ and $$a|b|c}")
    assert (node.lo, node.hi, node.sep) == (1, 3, " and ")
    assert (parse("{-2$$a|b|c}").lo, parse("{-2$$a|b|c}").hi) == (1, 2)
    assert (parse("{2-$$a|b|c}").lo, parse("{2-$$a|b|c}").hi) == (2, 3)
    assert parse("{2$$|$$a|b}").sep == "|"
    assert (parse("{3-1$$a|b|c}").lo, parse("{3-1$$a|b|c}").hi) == (1, 3)  # reversed bounds are sorted


def test_wildcard_with_path_sampler_and_parameters():
    node = parse("__@dir/my colors(k=v, j={a|b})__")
    assert isinstance(node, Wildcard)
    assert node.sampler == "@"
    assert texts(node.path) == "dir/my colors"
    assert [k for k, _ in node.params] == ["k", "j"]
    assert texts(node.params[0][1]) == "v"
    assert isinstance(node.params[1][1], Variant)


def test_dynamic_wildcard_paths():
    assert isinstance(parse("__{a|b}__").path, Variant)
    path = parse("__dir/${k}__").path
    assert isinstance(path, Seq) and isinstance(path.items[1], VarGet)
    assert texts(path.items[1].default) == "k"  # dynamicprompts: an unset variable in a path is its name


def test_variables():
    node = parse("${a=x}${b=!{p|q}}${c?=y}${d}${e:dflt}")
    a, b, c, d, e = node.items
    assert isinstance(a, VarSet) and not a.immediate and not a.keep_existing
    assert isinstance(b, VarSet) and b.immediate
    assert isinstance(c, VarSet) and c.keep_existing
    assert isinstance(d, VarGet) and d.default is None
    assert isinstance(e, VarGet) and texts(e.default) == "dflt"


def test_wrap():
    node = parse("%{big ... here$$cat}")
    assert isinstance(node, Wrap)
    assert (texts(node.wrapper), texts(node.inner)) == ("big ... here", "cat")


@pytest.mark.parametrize("template", [
    "(word:1.2), [a|b], [from:to:0.5], a BREAK b AND c :1.2",
    "<lora:name:0.8> <lyco:x:1:0.5> <hypernet:h:1> embedding_name",
    "\\(escaped parens\\) \\[brackets\\]",
    "score_9, score_8_up, a_b __c",
    "see http://x.com now",
    "100% cotton, $10 taco",
])
def test_a1111_syntax_and_plain_text_pass_through_untouched(template):
    assert texts(parse(template)) == template


@pytest.mark.parametrize("template, text", [
    ("\\{a\\|b\\}", "{a|b}"),
    ("\\$\\{x\\}", "${x}"),
    ("\\#tag", "#tag"),
    ("100\\% \\%\\{x\\}", "100% %{x}"),
    ("\\_\\_name\\_\\_", "__name__"),
])
def test_escapes_give_the_literal_character(template, text):
    assert texts(parse(template)) == text


def test_hash_inside_a_word_is_text_and_comments_still_work():
    assert texts(parse("color #ff0000 shirt, #hashtag")) == "color #ff0000 shirt, #hashtag"
    assert texts(parse("a # comment")) == "a "
    assert texts(parse("# whole line\nb")) == "\nb"
    assert texts(parse("a#b")) == "a#b"


def test_slash_comments_only_after_a_construct_as_in_dynamicprompts():
    assert isinstance(parse("{a|b} // gone"), Variant)
    assert isinstance(parse("{a|b} /* gone */"), Variant)
    assert texts(parse("a // kept")) == "a // kept"


def test_underscore_runs_without_a_name_are_text():
    assert texts(parse("Goblin_____ Goblin")) == "Goblin_____ Goblin"
    assert texts(parse("a ____ b")) == "a ____ b"


@pytest.mark.parametrize("template, line, column, fragment", [
    ("a {b|c", 1, 3, "never closed"),
    ("x\n  {b|{c}", 2, 3, "never closed"),
    ("${}", 1, 3, "variable name"),
    ("${x=1", 1, 1, "never closed"),
    ("%{wrap}", 1, 1, "$$"),
    ("__a(k)__", 1, 5, "without '='"),
    ("{-1::a|b}", 1, 2, "negative weight"),
])
def test_errors_carry_line_column_excerpt_and_hint(template, line, column, fragment):
    with pytest.raises(TemplateError) as info:
        parse(template, "t.txt")
    err = info.value
    assert fragment in err.message
    assert (err.location.source, err.location.line, err.location.column) == ("t.txt", line, column)
    assert err.hint
    assert "^" in str(err)


def test_error_lines_count_from_the_entry_line_in_a_file():
    with pytest.raises(TemplateError) as info:
        parse("{oops", "pack/colors.txt", first_line=12)
    assert str(info.value.location) == "pack/colors.txt:12:1"


def test_nesting_is_capped_with_a_typed_error():
    with pytest.raises(TemplateError, match="nesting"):
        parse("{" * (MAX_NESTING + 5) + "x" + "}" * (MAX_NESTING + 5))


def test_equal_options_compare_equal_wherever_written():
    a, b = parse("{x {y|z}|x {y|z}}").options
    assert a.body == b.body and a.body.pos != b.body.pos
