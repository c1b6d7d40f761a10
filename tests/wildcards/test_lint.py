"""The linter: lib_orchestrator/wildcards/lint.py (lint())."""
from __future__ import annotations

import os
import re
from typing import List

from lib_orchestrator.wildcards.diagnostics import Finding
from lib_orchestrator.wildcards.lint import lint
from tests.conftest import BUNDLED, SDDP_WILDCARDS, needs_shared

FINDING = re.compile(r"^(?P<path>.+):(?P<line>\d+):(?P<col>\d+): (?P<severity>error|warning): (?P<message>.+)$")


def errors(findings: List[Finding]) -> List[Finding]:
    return [f for f in findings if f.severity == "error"]


def warnings(findings: List[Finding]) -> List[Finding]:
    return [f for f in findings if f.severity == "warning"]


def in_file(finding: Finding, root: str, rel: str) -> bool:
    return finding.location is not None and \
        os.path.abspath(finding.location.source) == os.path.join(root, rel)


def test_syntax_error_in_a_txt_line_is_reported_with_path_and_line(make_wildcards):
    root = make_wildcards({"a.txt": "# comment\nfine\n\nbad {unclosed\n"})
    findings = lint([root])
    assert len(findings) == 1
    (f,) = findings
    assert f.severity == "error"
    assert in_file(f, root, "a.txt")
    assert (f.location.line, f.location.column) == (4, 5)
    assert "never closed" in f.message
    m = FINDING.match(str(f))
    assert m and (m["line"], m["col"], m["severity"]) == ("4", "5", "error")
    assert os.path.abspath(m["path"]) == os.path.join(root, "a.txt")


def test_syntax_error_in_a_crlf_file_has_the_right_line(make_wildcards):
    root = make_wildcards({"a.txt": "fine\r\n\r\n{a|b\r\n"})
    (f,) = lint([root])
    assert (f.severity, f.location.line) == ("error", 3)


def test_syntax_error_in_a_yaml_entry_has_the_files_line(make_wildcards):
    root = make_wildcards({"p.yaml": "k:\n  - ok\n  - 'x {a|b'\n"})
    (f,) = lint([root])
    assert f.severity == "error"
    assert in_file(f, root, "p.yaml")
    assert f.location.line == 3


def test_missing_wildcard_is_an_error_with_did_you_mean(make_wildcards):
    root = make_wildcards({"a.txt": "x __colr__\n", "color.txt": "red\n"})
    (f,) = lint([root])
    assert f.severity == "error"
    assert in_file(f, root, "a.txt")
    assert (f.location.line, f.location.column) == (1, 3)
    assert "'colr' not found" in f.message
    assert "did you mean __color__" in f.message


def test_missing_wildcard_without_a_close_name_has_no_did_you_mean(make_wildcards):
    root = make_wildcards({"a.txt": "x __zzzzzz__\n", "color.txt": "red\n"})
    (f,) = lint([root])
    assert f.severity == "error"
    assert "not found" in f.message
    assert "did you mean" not in f.message


def test_self_referencing_wildcard_is_a_cycle_error(make_wildcards):
    root = make_wildcards({"a.txt": "x __a__\n"})
    (f,) = lint([root])
    assert f.severity == "error"
    assert in_file(f, root, "a.txt")
    assert "refers to itself" in f.message
    assert "__a__ → __a__" in f.message


def test_two_file_cycle_is_an_error(make_wildcards):
    root = make_wildcards({"a.txt": "x __b__\n", "b.txt": "y __a__\n", "c.txt": "fine\n"})
    findings = lint([root])
    assert findings and all(f.severity == "error" for f in findings)
    assert all("refers to itself" in f.message for f in findings)
    messages = " ".join(f.message for f in findings)
    assert "__a__ → __b__ → __a__" in messages or "__b__ → __a__ → __b__" in messages


def test_empty_txt_file_is_a_warning(make_wildcards):
    root = make_wildcards({"empty.txt": "", "comments.txt": "# nothing\n\n", "ok.txt": "x\n"})
    findings = lint([root])
    assert not errors(findings)
    assert sorted(f.message for f in findings) == ["wildcard 'comments' has no entries",
                                                    "wildcard 'empty' has no entries"]
    assert any(in_file(f, root, "empty.txt") for f in findings)


def test_empty_yaml_file_is_a_warning(make_wildcards):
    root = make_wildcards({"empty.yaml": "", "ok.txt": "x\n"})
    assert [f.severity for f in lint([root])] == ["warning"]


def test_duplicate_entry_is_a_warning_naming_the_first_line(make_wildcards):
    root = make_wildcards({"a.txt": "one\ntwo\n\none\n"})
    (f,) = lint([root])
    assert f.severity == "warning"
    assert in_file(f, root, "a.txt")
    assert f.location.line == 4
    assert "duplicate" in f.message and "'one'" in f.message
    assert "first on line 1" in f.message


def test_json_findings_have_real_line_numbers(make_wildcards):
    root = make_wildcards({"j.json": '{\n  "k": [\n    "one",\n    "one"\n  ]\n}\n'})
    (f,) = lint([root])
    assert "duplicate" in f.message
    assert f.location.line == 4
    assert "first on line 3" in f.message


def test_unused_variable_in_a_template_is_a_warning(make_wildcards):
    root = make_wildcards({"a.txt": "z\n"})
    (f,) = lint([root], ["${x=1} hello"])
    assert f.severity == "warning"
    assert "variable 'x' is set but never used" in f.message
    assert str(f).startswith("<template>:1:1: warning: ")


def test_variable_read_by_a_referenced_wildcard_is_used(make_wildcards):
    root = make_wildcards({"r.txt": "value ${x}\n"})
    assert lint([root], ["${x=1} hello __r__"]) == []


def test_unused_variable_in_a_wildcard_file_is_a_warning(make_wildcards):
    root = make_wildcards({"a.txt": "${y=2} q\n", "b.txt": "${z=3} __r__\n", "r.txt": "${z}\n"})
    findings = lint([root])
    assert len(findings) == 1
    assert findings[0].severity == "warning" and "'y'" in findings[0].message
    assert in_file(findings[0], root, "a.txt")


def test_templates_are_checked_too(make_wildcards):
    root = make_wildcards({"a.txt": "z\n", "colors.txt": "red\n"})
    findings = lint([root], ["fine __a__", "{bad", "x __colr__"])
    assert [str(f) for f in findings] == [
        "<template 2>:1:1: error: '{' is never closed (add '}' or write a literal brace as \\{)",
        "<template 3>:1:3: error: wildcard 'colr' not found (did you mean __colors__?)",
    ]


def test_finding_str_format(make_wildcards):
    root = make_wildcards({"a.txt": "x\nx\n"})
    (f,) = lint([root])
    m = FINDING.match(str(f))
    assert m is not None
    assert (m["line"], m["col"], m["severity"]) == ("2", "1", "warning")
    assert m["message"] == f.message


def test_file_warnings_are_reported(make_wildcards):
    root = make_wildcards({"enc.txt": b"caf\xe9\n"})
    findings = lint([root])
    assert [f.severity for f in findings] == ["warning"]
    assert "UTF-8" in findings[0].message


def test_invalid_yaml_file_is_an_error_finding(make_wildcards):
    root = make_wildcards({"bad.yaml": "good:\n  - x\nbad:\n\t- y\n", "a.txt": "x __nope__\n"})
    findings = lint([root])
    assert any(f.severity == "error" and in_file(f, root, "bad.yaml") and f.location.line == 4
               for f in findings)
    assert any("nope" in f.message for f in findings)


def test_clean_bundled_wildcards_give_no_findings():
    findings = lint([str(BUNDLED)])
    assert errors(findings) == []
    assert warnings(findings) == []


@needs_shared
def test_linting_the_shared_collection_finds_real_typos_without_raising():
    findings = lint([str(SDDP_WILDCARDS)])
    errs = errors(findings)
    assert errs
    assert any("rusian_expressionist_painters" in f.message for f in errs)
    assert all(FINDING.match(str(f)) for f in findings)
