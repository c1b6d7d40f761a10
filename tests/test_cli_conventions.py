"""The command line's conventions, the same in every subcommand: every option says what it does and its default,
one set of family names, thousands separators where people read counts (plain numbers in jsonl), combinatorial
mode lists every combination without --count, the exit codes `--help` lists are the ones main returns, and the
demo's closing hint is a command the user can paste."""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import subprocess
import sys
from typing import Dict, Iterator, List, Tuple

import pytest

from lib_orchestrator.cli import build_parser, command_name, main
from tests.conftest import REPO

SAMPLE_LORAS = str(REPO / "samples" / "loras")
BIBLE = str(REPO / "samples" / "stories" / "lighthouse.yaml")

# Written here, not read from the product: what a user may type after --family.
FAMILIES = {"sd1", "sd2", "sdxl", "flux", "sd3"}
SHORTCUTS = {"pony": "Pony", "illustrious": "Illustrious", "noobai": "NoobAI"}  # SDXL of that base model


def run(*argv: str) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def parsers(parser: argparse.ArgumentParser,
            path: Tuple[str, ...] = ()) -> Iterator[Tuple[str, argparse.ArgumentParser]]:
    """Every parser of the tree, named by its command words."""
    yield " ".join(path) or "(top)", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, path + (name,))


def options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if not isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            yield action


def help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help as `--help` prints it (with %(default)s and the like filled in), on one line."""
    return " ".join(parser._get_formatter()._expand_help(action).split())


def shown(default: object) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)


TREE = list(parsers(build_parser()))
# The template file is the other way to give the TEMPLATE argument: it has no default of its own.
NO_DEFAULT = {"template_file"}


# -- help for every option, with its default -----------------------------------------------------------------------


def test_the_tree_has_every_subcommand():
    names = {name for name, _ in TREE}
    assert {"prompts", "count", "lint", "demo", "compose", "enhance", "story", "batch plan", "batch show",
            "library scan", "library show", "history scan", "history search", "history rate", "history compare",
            "history loras"} <= names


@pytest.mark.parametrize("name, parser", TREE, ids=[name for name, _ in TREE])
def test_every_argument_has_help_and_every_option_states_its_default(name, parser):
    for action in options(parser):
        label = f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert action.help and action.help != argparse.SUPPRESS, f"{label} has no help"
        text = help_text(parser, action)
        if not action.option_strings or action.nargs == 0:  # arguments, and flags that are off unless given
            continue
        if action.required:
            assert "(required)" in text, f"{label}: {text}"
        elif action.dest not in NO_DEFAULT:
            assert "default: " in text, f"{label} does not state its default: {text}"
            if action.default not in (None, ""):
                assert f"default: {shown(action.default)}" in text, f"{label}: {text}"


def test_every_format_option_states_its_default():
    formats = [(name, help_text(parser, a)) for name, parser in TREE for a in options(parser) if a.dest == "format"]
    assert {name for name, _ in formats} == {"prompts", "count", "compose", "enhance", "story", "library scan",
                                             "library match", "history search", "history loras"}
    tables = ("library scan", "library match", "history search", "history loras")
    assert all(dict(formats)[name].endswith("(default: table)") for name in tables)
    assert all(text.endswith("(default: text)") for name, text in formats if name not in tables)


def test_prompts_help_tells_count_and_mode(capsys):
    with pytest.raises(SystemExit) as info:
        main(["prompts", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "how many prompts (default: 1;" in text and "every combination, at most 1,000" in text
    assert "--mode {random,combinatorial,cyclical} random:" in text and "(default: random)" in text


# -- one set of family names ------------------------------------------------------------------------------------


def family_options() -> Dict[str, argparse.Action]:
    return {name: a for name, parser in TREE for a in options(parser) if a.dest == "family"}


def test_every_family_option_takes_the_same_names_and_has_a_base_model_beside_it():
    found = family_options()
    assert set(found) == {"compose", "enhance", "story", "batch plan", "library match"}
    for name, action in found.items():
        assert set(action.choices) == FAMILIES | set(SHORTCUTS), name
    for name, parser in TREE:
        dests = {a.dest for a in options(parser)}
        assert ("family" in dests) == ("base_model" in dests), name


def test_the_architecture_families_are_the_librarys():
    from lib_orchestrator.library.base_models import FAMILIES as LIBRARY_FAMILIES

    assert set(LIBRARY_FAMILIES) - {"video", "unknown"} == FAMILIES


@pytest.mark.parametrize("command", ["compose", "enhance", "story", "batch plan"])
@pytest.mark.parametrize("family, expected", [
    ("sd1", ("sd1", "SD 1.5")), ("sd2", ("sd2", "SD 2.1")), ("sdxl", ("sdxl", "SDXL 1.0")),
    ("flux", ("flux", "Flux.1 D")), ("sd3", ("sd3", "SD 3.5")),
    ("pony", ("sdxl", "Pony")), ("illustrious", ("sdxl", "Illustrious")), ("noobai", ("sdxl", "NoobAI")),
    ("Pony", ("sdxl", "Pony")), ("SDXL", ("sdxl", "SDXL 1.0")),
])
def test_a_family_means_the_same_checkpoint_in_every_command(command, family, expected):
    from lib_orchestrator.family_cli import checkpoint_of

    argv = {"compose": ["compose", "a", "--loras", "x"], "enhance": ["enhance", "a"], "story": ["story", "b.yaml"],
            "batch plan": ["batch", "plan", "a", "--count", "1", "--out", "b.json"]}[command]
    assert checkpoint_of(build_parser().parse_args(argv + ["--family", family])) == expected


def test_a_shortcut_is_sdxl_with_that_base_model_in_compose():
    same = ["compose", "__templates/noir__", "--loras", SAMPLE_LORAS, "--no-cache", "--seed", "5", "--count", "4",
            "--format", "jsonl"]
    for shortcut, base in SHORTCUTS.items():
        assert run(*same, "--family", shortcut) == run(*same, "--family", "sdxl", "--base-model", base)


def test_a_shortcut_and_another_base_model_is_bad_input():
    code, out, err = run("compose", "a", "--loras", SAMPLE_LORAS, "--no-cache", "--family", "pony",
                         "--base-model", "Illustrious")
    assert (code, out) == (2, "") and len(err.splitlines()) == 1
    assert "--family pony means the base model Pony" in err
    code, _, err = run("batch", "plan", "a", "--count", "1", "--out", "x.json", "--family", "sd1", "--base-model",
                       "Pony")
    assert code == 2 and "not of the sd1 family" in err


def test_an_unknown_family_is_bad_input_in_every_command(capsys):
    for argv in (["compose", "a", "--loras", "x"], ["enhance", "a"], ["story", "b.yaml"],
                 ["batch", "plan", "a", "--count", "1", "--out", "b.json"]):
        with pytest.raises(SystemExit) as info:
            main(argv + ["--family", "sd4"])
        assert info.value.code == 2 and "invalid choice: 'sd4'" in capsys.readouterr().err


# Which template each family writes with: the story's first scene, from the outline (no LLM), shows it.
@pytest.mark.parametrize("family, same_as", [("sd2", ["--family", "sd1"]), ("sd3", ["--family", "sdxl"]),
                                             ("pony", ["--family", "sdxl", "--base-model", "Pony"]),
                                             ("noobai", ["--family", "illustrious"])])
def test_each_family_writes_with_the_template_it_means(family, same_as):
    story = ["story", BIBLE, "--scenes", "2", "--seed", "3"]
    assert run(*story, "--family", family) == run(*story, *same_as)


def test_the_old_enhance_family_names_write_their_own_style():
    story = ["story", BIBLE, "--scenes", "1"]
    prompts = {f: run(*story, "--family", f)[1] for f in ("sd1", "sdxl", "flux", "pony", "illustrious")}
    assert prompts["pony"].startswith("score_9,") and prompts["illustrious"].startswith("masterpiece, best quality")
    assert "BREAK" in prompts["sd1"] and prompts["sdxl"].startswith("Wide shot of")


# -- thousands separators ---------------------------------------------------------------------------------------


def test_count_prints_thousands_separators_and_jsonl_a_plain_number(make_wildcards):
    root = make_wildcards({f"w{i}.txt": "".join(f"w{i} item {k}\n" for k in range(40)) for i in range(8)})
    template = " ".join(f"__w{i}__" for i in range(8))  # 40 ** 8 combinations
    assert run("count", template, "--wildcards", root) == (0, "6,553,600,000,000\n", "")
    code, out, _ = run("count", template, "--wildcards", root, "--format", "jsonl")
    assert code == 0 and json.loads(out) == {"combinations": 6553600000000}
    assert run("count", "{a|b|c}") == (0, "3\n", "")


def test_lint_summary_has_separators(make_wildcards):
    root = make_wildcards({"bad.txt": "".join(f"{{oops {k}\n" for k in range(1200))})
    code, out, _ = run("lint", "--wildcards", root)
    assert code == 1 and out.splitlines()[-1] == "1,200 error(s), 0 warning(s)"


def test_library_summary_has_separators(tmp_path):
    for k in range(1000):
        (tmp_path / f"model{k}.pt").write_bytes(b"")  # a LoRA of another format, reported not_safetensors
        (tmp_path / f"._model{k}.safetensors").write_bytes(b"")  # macOS metadata beside it: not a LoRA
    code, out, _ = run("library", "scan", str(tmp_path), "--no-cache", "--summary")
    assert code == 0
    tail = out.splitlines()[-4:]
    assert tail[0] == "1,000 LoRAs, 1,000 other files reported"
    assert "unknown 1,000" in tail[1] and "not_safetensors 2,000" in tail[3]


def test_batch_plan_and_show_count_with_separators_and_the_file_keeps_plain_numbers(tmp_path):
    path = tmp_path / "big.json"
    code, out, _ = run("batch", "plan", "a {cat|dog}", "--count", "1500", "--seed", "2000", "--out", str(path))
    assert (code, out) == (0, f"wrote 1,500 images to {path}\n")
    code, out, _ = run("batch", "show", str(path))
    assert code == 0 and out.startswith("big: 1,500 images, seed 2000;")  # a seed is a name, not a count
    assert "1,500" not in path.read_text(encoding="utf-8")


def test_demo_counts_with_separators():
    code, out, _ = run("demo")
    assert code == 0
    counts = re.findall(r"\(([\d,]+) combinations\)", out)
    assert counts and all(int(c.replace(",", "")) >= 1000 for c in counts)  # the bundled templates are big
    assert all(c == f"{int(c.replace(',', '')):,}" for c in counts)


def test_jsonl_seeds_are_plain_numbers():
    code, out, _ = run("prompts", "{a|b}", "--seed", "123456", "--count", "2", "--format", "jsonl")
    assert code == 0 and [json.loads(line)["seed"] for line in out.splitlines()] == [123456, 123457]


# -- combinatorial mode without --count -------------------------------------------------------------------------


def test_combinatorial_without_count_lists_every_combination():
    assert run("prompts", "{a|b} {x|y|z}", "--mode", "combinatorial") == \
        (0, "a x\na y\na z\nb x\nb y\nb z\n", "")


def test_combinatorial_without_count_stops_at_1000_and_says_how_many_there_are(make_wildcards):
    root = make_wildcards({"n.txt": "".join(f"{k:02d}\n" for k in range(50))})
    code, out, err = run("prompts", "__n__ __n__", "--wildcards", root, "--mode", "combinatorial")  # 2,500
    printed = out.splitlines()
    assert code == 0 and len(printed) == 1000 and printed[:2] == ["00 00", "00 01"] and printed[-1] == "19 49"
    assert err == "note: listed the first 1,000 of 2,500 combinations; give --count N for more\n"


def test_combinatorial_count_is_still_the_maximum_and_says_nothing_more(make_wildcards):
    root = make_wildcards({"n.txt": "".join(f"{k:02d}\n" for k in range(50))})
    code, out, err = run("prompts", "__n__ __n__", "--wildcards", root, "--mode", "combinatorial", "--count", "2000")
    assert (code, len(out.splitlines()), err) == (0, 2000, "")
    code, out, err = run("prompts", "__n__ __n__", "--wildcards", root, "--mode", "combinatorial", "--count", "3")
    assert (code, out, err) == (0, "00 00\n00 01\n00 02\n", "")


@pytest.mark.parametrize("mode", ["random", "cyclical"])
def test_other_modes_without_count_make_one_prompt(mode):
    code, out, _ = run("prompts", "{a|b} {x|y|z}", "--mode", mode, "--seed", "1")
    assert code == 0 and len(out.splitlines()) == 1


# -- exit codes -------------------------------------------------------------------------------------------------


def listed_exit_codes(capsys) -> Dict[int, str]:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    section = text.split("exit status:\n", 1)[1]
    codes: Dict[int, str] = {}
    last = None
    for line in section.splitlines():
        m = re.match(r"^  (\d+) +(.+)$", line)
        if m:
            last = int(m.group(1))
            codes[last] = m.group(2)
        elif last is not None and line.startswith("       "):
            codes[last] += " " + line.strip()
    return codes


class _InterruptedStream(io.StringIO):
    def write(self, text: str) -> int:
        raise KeyboardInterrupt


def test_the_exit_codes_in_help_are_the_ones_main_returns(capsys, make_wildcards):
    listed = listed_exit_codes(capsys)
    bad = make_wildcards({"bad.txt": "{oops\n"})
    returned: Dict[int, List[str]] = {}

    def record(what: str, code: int) -> None:
        returned.setdefault(code, []).append(what)

    record("ok", run("prompts", "{a|b}")[0])
    record("lint", run("lint", "--wildcards", bad)[0])
    record("bad input", run("prompts", "x __nope__")[0])
    record("bad input", run("compose", "a", "--loras", SAMPLE_LORAS, "--family", "pony", "--base-model", "SD 1.5")[0])
    with pytest.raises(SystemExit) as info:
        main(["prompts", "a", "--count", "many"])
    record("bad input", info.value.code)
    record("Ctrl-C", main(["prompts", "{a|b}"], _InterruptedStream(), io.StringIO()))
    capsys.readouterr()
    assert set(listed) == set(returned)
    for code, whats in returned.items():
        assert all(what in listed[code] for what in whats if what != "ok"), (code, listed[code])
    assert listed[0].startswith("done")


def test_a_fallback_from_the_llm_is_exit_0_as_help_says(capsys):
    listed = listed_exit_codes(capsys)
    assert "`enhance` falls back to the original prompt" in listed[0]
    code, out, err = run("enhance", "a fox", "--url", "http://127.0.0.1:9/v1", "--timeout", "2")  # nobody there
    assert (code, out) == (0, "a fox\n") and err.startswith("fallback")


# -- the demo's hint --------------------------------------------------------------------------------------------


def test_the_hint_names_the_console_script_when_run_as_it(monkeypatch):
    for argv0 in ("/home/me/.local/bin/orchestrator", r"C:\venv\Scripts\orchestrator.exe"):
        monkeypatch.setattr(sys, "argv", [argv0])
        assert command_name() == "orchestrator"
        assert build_parser().prog == "orchestrator"
        assert run("demo")[1].splitlines()[-1].startswith("Try: orchestrator compose ")


def test_the_hint_names_the_interpreter_in_use(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", [str(REPO / "lib_orchestrator" / "__main__.py")])
    monkeypatch.setenv("PATH", str(tmp_path))  # no python on PATH: the full path is the one that works
    assert command_name() == f"{shlex.quote(sys.executable)} -m lib_orchestrator"
    assert build_parser().prog == "python -m lib_orchestrator"  # the usage line reads the same everywhere
    name = os.path.basename(sys.executable)
    if name in ("python", "python3"):  # this interpreter is the one its name finds on PATH
        monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
        assert command_name() == f"{name} -m lib_orchestrator"


def test_the_hint_can_be_pasted_and_runs():
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    demo = subprocess.run([sys.executable, "-m", "lib_orchestrator", "demo"], cwd=REPO, capture_output=True,
                          text=True, encoding="utf-8", timeout=120, env=env)
    assert demo.returncode == 0, demo.stderr
    hint = demo.stdout.splitlines()[-1]
    assert hint.startswith("Try: ")
    argv = shlex.split(hint[len("Try: "):])
    assert argv[argv.index("--loras") + 1] == os.path.join("samples", "loras")  # relative: we are in the checkout
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable  # the same interpreter, as the test above checks
    pasted = subprocess.run(argv + ["--no-cache"], cwd=REPO, capture_output=True, text=True, encoding="utf-8",
                            timeout=120)
    assert pasted.returncode == 0, pasted.stderr
    records = [json.loads(line) for line in pasted.stdout.splitlines()]
    assert len(records) == 3 and all(record["prompt"] for record in records)


def test_cache_means_the_library_cache_in_every_command_and_the_llm_answers_have_their_own_option():
    for command in (["enhance", "x"], ["story", "x.yaml"]):
        parser = build_parser()
        args = parser.parse_args(command + ["--llm-cache", "a.jsonl"])
        assert args.cache == "a.jsonl"
    tree = dict(parsers(build_parser()))
    for command in ("enhance", "story"):
        text = tree[command].format_help()
        assert "--llm-cache" in text and "--cache " not in text
    for command in ("compose", "batch plan", "library scan"):
        assert "library cache" in help_text(tree[command], next(a for a in options(tree[command])
                                                                if "--cache" in a.option_strings))


def test_every_match_option_takes_the_pickers_modes():
    from lib_orchestrator.selection.rules import MATCH_MODES

    found = {name: a for name, parser in TREE for a in options(parser) if a.dest == "match"}
    assert set(found) == {"compose", "batch plan", "library match"}
    assert tuple(found["compose"].choices) == tuple(found["library match"].choices) == MATCH_MODES
    assert tuple(found["batch plan"].choices) == tuple(m for m in MATCH_MODES if m != "llm")  # no LLM there
