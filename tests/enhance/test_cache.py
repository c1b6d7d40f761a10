"""The answer cache survives a restart, skips a line cut short by a crash (and keeps the next answer off
it), and a folder it cannot write only costs speed."""
from __future__ import annotations

from lib_orchestrator.enhance.cache import AnswerCache, answer_key


def test_every_field_is_part_of_the_key():
    base = dict(prompt="a fox", model="m", url="u", temperature=0.7, seed=1)
    keys = {answer_key(**base)} | {answer_key(**{**base, name: "other"}) for name in base}
    assert len(keys) == len(base) + 1


def test_answers_persist_and_a_torn_line_is_skipped(tmp_path):
    path = tmp_path / "cache" / "answers.jsonl"
    cache = AnswerCache(str(path))
    cache.put("k1", "a fox")
    cache.put("k2", "a ⟦0⟧ hare")
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"key": "k3", "ans')  # the process died mid-line
    again = AnswerCache(str(path))
    assert (again.get("k1"), again.get("k2"), again.get("k3")) == ("a fox", "a ⟦0⟧ hare", None)


def test_an_unwritable_cache_keeps_answers_in_memory(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = AnswerCache(str(blocker / "answers.jsonl"))
    cache.put("k", "a fox")
    assert cache.get("k") == "a fox"
    assert "not saved" in capsys.readouterr().err


def test_an_answer_appended_after_a_torn_line_starts_a_line_of_its_own(tmp_path):
    path = tmp_path / "answers.jsonl"
    AnswerCache(str(path)).put("k1", "a fox")
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"key": "k2", "ans')  # the process died mid-line
    AnswerCache(str(path)).put("k3", "a hare")  # the next run appends
    again = AnswerCache(str(path))
    assert (again.get("k1"), again.get("k2"), again.get("k3")) == ("a fox", None, "a hare")
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[2] == '{"key": "k3", "answer": "a hare"}' and lines[3] == ""  # the test's own view of the file


def test_an_answer_glued_to_a_torn_line_by_an_older_version_is_still_read(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"key": "k1", "answer": "a fox"}\n{"key": "k2", "ans{"key": "k3", "answer": "a \\"hare\\""}\n'
                    '{"key": "k4", "answer": "an owl"}\n', encoding="utf-8")
    cache = AnswerCache(str(path))
    assert [cache.get(k) for k in ("k1", "k2", "k3", "k4")] == ["a fox", None, 'a "hare"', "an owl"]
