"""The command line: lib_orchestrator/cli.py (main(argv, out, err) -> exit status) and `python -m`."""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import time
from typing import Tuple

import pytest

from lib_orchestrator.cli import build_parser, main
from tests.conftest import BUNDLED, REPO

ERROR_LINE = re.compile(r"^.+:(\d+):(\d+): error: .+$")
SUMMARY = re.compile(r"^(\d+) error\(s\), (\d+) warning\(s\)$")


def run(*argv: str) -> Tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def lines(text: str):
    return text.splitlines()


@pytest.fixture
def colors(make_wildcards) -> str:
    return make_wildcards({"colors.txt": "red\nblue\ngreen\n", "a.txt": "x __a__\n",
                           "multi.yaml": "- |\n  first line\n  second line\n"})


# -- prompts -------------------------------------------------------------------------------------


def test_prompts_prints_count_lines(colors):
    code, out, err = run("prompts", "{big|small} __colors__", "--wildcards", colors, "--count", "5",
                         "--seed", "7")
    assert code == 0 and err == ""
    printed = lines(out)
    assert len(printed) == 5
    assert all(re.fullmatch(r"(big|small) (red|blue|green)", p) for p in printed)


def test_prompts_are_deterministic_for_a_seed(colors):
    args = ("prompts", "{a|b|c|d} {1|2|3} __colors__", "--wildcards", colors, "--count", "8", "--seed", "3")
    assert run(*args) == run(*args)


def test_prompts_jsonl_format(colors):
    code, out, _ = run("prompts", 'é "{a|b}" __colors__', "--wildcards", colors, "--count", "3",
                       "--seed", "10", "--format", "jsonl")
    assert code == 0
    records = [json.loads(line) for line in lines(out)]
    assert len(records) == 3
    assert all(set(r) == {"prompt", "seed", "index"} for r in records)
    assert [(r["seed"], r["index"]) for r in records] == [(10, 0), (11, 1), (12, 2)]
    assert all(re.fullmatch(r'é "(a|b)" (red|blue|green)', r["prompt"]) for r in records)


@pytest.mark.parametrize("mode", ["random", "cyclical"])
def test_prompt_k_equals_the_single_prompt_of_seed_plus_k(colors, mode):
    template = "{a|b|c|d} {1|2|3} __colors__ {x|y}"
    code, out, _ = run("prompts", template, "--wildcards", colors, "--count", "6", "--seed", "40",
                       "--mode", mode)
    assert code == 0
    batch = lines(out)
    singles = [lines(run("prompts", template, "--wildcards", colors, "--count", "1", "--seed", str(40 + k),
                         "--mode", mode)[1]) for k in range(6)]
    assert [[p] for p in batch] == singles


def test_template_file_is_read(colors, tmp_path):
    template_file = tmp_path / "t.txt"
    template_file.write_text("{p|q} __colors__\n", encoding="utf-8")
    code, out, _ = run("prompts", "--template-file", str(template_file), "--wildcards", colors, "--count", "4",
                       "--seed", "1")
    assert code == 0
    assert out == run("prompts", "{p|q} __colors__", "--wildcards", colors, "--count", "4", "--seed", "1")[1]


def test_template_file_with_utf8_bom(colors, tmp_path):
    template_file = tmp_path / "t.txt"
    template_file.write_bytes(b"\xef\xbb\xbf{p|q} __colors__\r\n")
    code, out, _ = run("prompts", "--template-file", str(template_file), "--wildcards", colors, "--count", "4",
                       "--seed", "1")
    assert code == 0
    assert "\ufeff" not in out
    assert out == run("prompts", "{p|q} __colors__", "--wildcards", colors, "--count", "4", "--seed", "1")[1]


def test_template_and_template_file_together_is_bad_input(colors, tmp_path):
    template_file = tmp_path / "t.txt"
    template_file.write_text("x", encoding="utf-8")
    code, out, err = run("prompts", "x", "--template-file", str(template_file), "--wildcards", colors)
    assert code == 2 and out == ""
    assert len(lines(err)) == 1 and "error:" in err


def test_no_template_is_bad_input(colors):
    code, out, err = run("prompts", "--wildcards", colors)
    assert code == 2 and out == ""
    assert len(lines(err)) == 1 and "no template" in err


def test_combinatorial_prints_exactly_all_combinations_in_order():
    code, out, _ = run("prompts", "{a|b} {x|y}", "--mode", "combinatorial", "--count", "100")
    assert code == 0
    assert lines(out) == ["a x", "a y", "b x", "b y"]


def test_combinatorial_count_is_a_maximum():
    code, out, _ = run("prompts", "{a|b} {x|y}", "--mode", "combinatorial", "--count", "3")
    assert (code, lines(out)) == (0, ["a x", "a y", "b x"])


def test_cyclical_mode_cycles_through_options():
    code, out, _ = run("prompts", "{a|b|c}", "--mode", "cyclical", "--seed", "0", "--count", "4")
    assert (code, lines(out)) == (0, ["a", "b", "c", "a"])


def test_multiline_yaml_entry_is_printed_on_one_line(colors):
    code, out, _ = run("prompts", "{a|b}: __multi__", "--wildcards", colors, "--count", "3", "--seed", "0")
    assert code == 0
    assert len(lines(out)) == 3
    assert all(re.fullmatch(r"(a|b): first line second line", p) for p in lines(out))


# -- bad input -----------------------------------------------------------------------------------

BAD_INPUTS = {
    "unclosed brace": (["prompts", "ok {a|b"], (1, 4), "never closed"),
    "missing wildcard": (["prompts", "x __colr__"], (1, 3), "did you mean __colors__"),
    "self reference": (["prompts", "__a__"], (1, 3), "refers to itself"),
    "undefined variable": (["prompts", "hi ${nope}"], (1, 4), "'nope' is not defined"),
    "nonexistent folder": (["prompts", "x", "--wildcards", "{missing}"], None, "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_error_line_and_status_2(colors, tmp_path, case):
    argv, _, fragment = BAD_INPUTS[case]
    argv = [a.replace("{missing}", str(tmp_path / "nowhere")) for a in argv]
    if "--wildcards" not in argv:
        argv += ["--wildcards", colors]
    code, out, err = run(*argv)
    assert code == 2
    assert out == ""
    assert len(lines(err)) == 1
    assert "error: " in err and fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_error_line_has_a_location(colors, tmp_path, case):
    argv, where, _ = BAD_INPUTS[case]
    argv = [a.replace("{missing}", str(tmp_path / "nowhere")) for a in argv]
    if "--wildcards" not in argv:
        argv += ["--wildcards", colors]
    _, _, err = run(*argv)
    if where is None:  # a folder has no line or column: the line starts with its path
        assert err.startswith(f"{tmp_path / 'nowhere'}: error: "), err
        return
    m = ERROR_LINE.match(err.rstrip("\n"))
    assert m is not None, err
    if where is not None:
        assert (int(m.group(1)), int(m.group(2))) == where


def test_self_reference_error_points_into_the_wildcard_file(colors):
    _, _, err = run("prompts", "__a__", "--wildcards", colors)
    path = err.split(":1:3: error:")[0]
    assert os.path.abspath(path) == os.path.join(colors, "a.txt")


@pytest.mark.parametrize("mode", ["combinatorial", "cyclical"])
def test_bad_input_in_other_modes_is_also_one_line(colors, mode):
    code, out, err = run("prompts", "x __colr__", "--wildcards", colors, "--mode", mode, "--count", "3")
    assert (code, out) == (2, "")
    assert len(lines(err)) == 1 and ERROR_LINE.match(err.strip())


def test_template_file_errors_name_the_file(colors, tmp_path):
    template_file = tmp_path / "t.txt"
    template_file.write_text("line one\n{oops", encoding="utf-8")
    code, _, err = run("prompts", "--template-file", str(template_file), "--wildcards", colors)
    assert code == 2
    assert err.startswith(f"{template_file}:2:1: error: ")


def test_undecodable_utf16_wildcard_is_read_with_a_warning_not_a_crash(make_wildcards):
    root = make_wildcards({"bad.txt": b"\xff\xfea\x00b"})
    code, out, err = run("prompts", "__bad__", "--wildcards", root)
    assert code == 0 and out.startswith("a")
    assert "bad.txt:1:1: warning: broken UTF-16" in err and "Traceback" not in err


def test_on_missing_keep_keeps_the_name_and_warns(colors):
    code, out, err = run("prompts", "a __nope__ b", "--wildcards", colors, "--on-missing", "keep")
    assert code == 0
    assert out == "a __nope__ b\n"
    assert "warning" in err and "nope" in err
    assert "Traceback" not in err


# -- count ---------------------------------------------------------------------------------------


def test_count_prints_the_number_of_combinations():
    assert run("count", "{a|b} {x|y|z}") == (0, "6\n", "")


def test_count_huge_space_is_instant(make_wildcards):
    files = {f"w{i}.txt": "".join(f"w{i} item {k}\n" for k in range(40)) for i in range(8)}
    root = make_wildcards(files)
    template = " ".join(f"__w{i}__" for i in range(8))
    start = time.perf_counter()
    code, out, _ = run("count", template, "--wildcards", root)
    elapsed = time.perf_counter() - start
    assert (code, out) == (0, f"{40 ** 8:,}\n")
    assert elapsed < 2.0


# -- lint ----------------------------------------------------------------------------------------


def test_lint_exits_1_on_errors_and_ends_with_a_summary(make_wildcards):
    root = make_wildcards({"a.txt": "x __colr__\n", "colors.txt": "red\nred\n"})
    code, out, _ = run("lint", "--wildcards", root)
    assert code == 1
    printed = lines(out)
    assert SUMMARY.match(printed[-1]).groups() == ("1", "1")
    assert sum(": error: " in p for p in printed[:-1]) == 1
    assert sum(": warning: " in p for p in printed[:-1]) == 1


def test_lint_exits_0_with_only_warnings(make_wildcards):
    root = make_wildcards({"colors.txt": "red\nred\n"})
    code, out, _ = run("lint", "--wildcards", root)
    assert code == 0
    assert lines(out)[-1] == "0 error(s), 1 warning(s)"


def test_lint_checks_templates_given_as_arguments(make_wildcards):
    root = make_wildcards({"colors.txt": "red\n"})
    code, out, _ = run("lint", "{oops", "__colors__", "--wildcards", root)
    assert code == 1
    assert lines(out) == ["<template 1>:1:1: error: '{' is never closed (add '}' or write a literal brace as \\{)",
                          "1 error(s), 0 warning(s)"]


def test_lint_of_bundled_wildcards_is_clean():
    assert run("lint") == (0, "0 error(s), 0 warning(s)\n", "")


# -- demo ----------------------------------------------------------------------------------------


def test_demo_prints_prompts_for_each_bundled_template():
    code, out, _ = run("demo")
    assert code == 0
    names = sorted(f"templates/{p.stem}" for p in (BUNDLED / "templates").glob("*.txt"))
    assert names
    for name in names:
        assert re.search(rf"^{re.escape(name)}  \([\d,]+ combinations\)$", out, re.M), name
    assert len(re.findall(r"^  seed \d+: \S", out, re.M)) == 2 * len(names)


# -- real processes --------------------------------------------------------------------------------


def _python_m(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib_orchestrator", *args], cwd=REPO, capture_output=True,
                          text=True, encoding="utf-8", timeout=60)


def test_subprocess_prompts(colors):
    proc = _python_m("prompts", "{a|b} __colors__", "--wildcards", colors, "--count", "3", "--seed", "5")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == run("prompts", "{a|b} __colors__", "--wildcards", colors, "--count", "3",
                              "--seed", "5")[1]
    assert len(lines(proc.stdout)) == 3


def test_subprocess_bad_input_has_no_traceback(colors):
    proc = _python_m("prompts", "x __colr__", "--wildcards", colors)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(lines(proc.stderr)) == 1
    assert ERROR_LINE.match(proc.stderr.strip())
    assert "did you mean __colors__" in proc.stderr


# -- what a user at a terminal expects ----------------------------------------------------------------------

def test_ctrl_c_exits_130_quietly_keeping_every_line_already_written():
    import signal

    # A user's terminal delivers Ctrl-C; a test run started in the background (`cmd &` in a script) inherits
    # SIGINT ignored, and Python then never raises KeyboardInterrupt: the child starts with the default.
    proc = subprocess.Popen([sys.executable, "-m", "lib_orchestrator", "prompts", "__templates/noir__", "--count",
                             "100000000", "--seed", "1"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stdout.readline()  # it is writing prompts now
    proc.send_signal(signal.SIGINT)
    # (not communicate(): it would skip what readline() buffered.) Read at most 64 MB: a child that went on
    # writing its 100,000,000 prompts once filled this process with 24 GB.
    chunks, size = [], 0
    while size < 64 << 20:
        chunk = proc.stdout.read1(1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    else:
        proc.kill()
        proc.wait()
        pytest.fail("the CLI went on writing after SIGINT")
    rest = b"".join(chunks)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 130 and err == b""
    text = (first + rest).decode("utf-8")
    assert text.endswith("\n") and len(text.splitlines()) > 1  # whole lines only, all flushed


def test_a_reader_that_stops_early_is_no_error():
    """`orchestrator prompts … | head -1`: the pipe closes under the writer; --help promises exit 0, no noise."""
    proc = subprocess.Popen([sys.executable, "-m", "lib_orchestrator", "prompts", "{a|b} {c|d}", "--count",
                             "1000000", "--seed", "1"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and err == b"" and first.strip() in (b"a c", b"a d", b"b c", b"b d")


@pytest.mark.parametrize("argv, message", [
    (("prompts", "a", "--count", "abc"), "argument --count: 'abc' is not a whole number"),
    (("prompts", "a", "--count", "-3"), "argument --count: -3 is below 0"),
    (("story", "x.yaml", "--scenes", "500"), "argument --scenes: 500 is not from 1 to 100"),
])
def test_a_bad_number_says_what_is_wrong_in_the_users_words(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_a_batch_of_a_billion_images_is_refused_at_once_not_after_filling_the_memory(tmp_path):
    started = time.perf_counter()
    code, _, err = run("batch", "plan", "a {cat|dog}", "--count", "1000000000", "--out", str(tmp_path / "b.json"))
    assert code == 2 and "a batch holds 0 to 100,000 images, not 1,000,000,000" in err
    assert not (tmp_path / "b.json").exists() and time.perf_counter() - started < 60  # refused, not computed


def test_lint_checks_a_template_file_and_a_wildcard_folder_given_as_paths(make_wildcards, tmp_path):
    folder = make_wildcards({"color.txt": "red\n{blue\n"})
    template = tmp_path / "scene.txt"
    template.write_text("a __color__ {cat|dog\n", encoding="utf-8")
    code, out, _ = run("lint", folder, str(template))
    found = lines(out)
    assert code == 1 and SUMMARY.match(found[-1]).group(1) == "2"
    assert any(line.startswith(f"{template}:1:") for line in found)  # the file, with its line and column
    assert any("color.txt:2:" in line for line in found)  # the folder was linted, not the bundled one
    code, _, err = run("lint", str(tmp_path / "missing.txt"))
    assert code == 2 and "missing.txt: error: no such file or folder" in err
    png = tmp_path / "image.txt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    code, _, err = run("lint", str(png))
    assert code == 2 and "not a text file" in err


# -- compose and batch plan keep the LoRA library's cache by default ------------------------------------------


def test_compose_and_batch_plan_cache_the_library_under_xdg_cache_home(tmp_path, monkeypatch):
    from tests.library.test_cache import safetensors

    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    root = tmp_path / "Lora"
    safetensors(root / "style" / "watercolor.safetensors",
                {"ss_base_model_version": "sdxl_base_v1-0", "modelspec.trigger_phrase": "watercolor"})
    compose = ["compose", "a cat, watercolor", "--loras", str(root), "--family", "sdxl", "--seed", "1"]
    first = run(*compose)
    caches = sorted(p.name for p in (home / "orchestrator").iterdir() if p.suffix == ".sqlite")
    assert first[0] == 0 and "<lora:watercolor:" in first[1] and len(caches) == 1
    assert run(*compose) == first  # from the cache, the same picks
    out = tmp_path / "b.json"
    code, _, _ = run("batch", "plan", "a cat, watercolor", "--count", "2", "--loras", str(root), "--out", str(out))
    assert code == 0 and "<lora:watercolor:" in out.read_text(encoding="utf-8")
    assert sorted(p.name for p in (home / "orchestrator").iterdir() if p.suffix == ".sqlite") == caches  # the same one


def test_library_commands_import_only_the_library():
    """`library scan` is run often on a big folder: it must not pay for YAML, the wildcard engine, the
    LLM client or selection (measured: the enhance package alone cost 20 ms of start-up)."""
    loras = str(REPO / "samples" / "loras")
    heavy = "('lib_orchestrator.wildcards', 'lib_orchestrator.enhance.', 'lib_orchestrator.selection')"
    code = ("import io, sys; from lib_orchestrator.cli import main; "
            f"main(['library', 'scan', {loras!r}, '--no-cache'], io.StringIO(), io.StringIO()); "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('yaml', 'requests') or "
            f"m.startswith({heavy}))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def _modules_after(argv: list) -> set:
    """The modules a fresh interpreter holds after main(argv): what that command line pays for at start-up."""
    code = ("import io, sys; from lib_orchestrator.cli import main\n"
            "try:\n"
            f"    main({argv!r}, io.StringIO(), io.StringIO())\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_prompts_imports_only_the_wildcard_engine():
    """`prompts` is timed as a whole process (50,000 prompts, start-up included): it must not pay for the
    other subcommands (their *_cli modules, the library, selection, LLM client, history, batches, dispatch)
    nor for YAML on a pack of .txt files (the bundled one)."""
    modules = _modules_after(["prompts", "{a|b} __mood__", "--count", "3"])
    ours = {m for m in modules if m.startswith("lib_orchestrator.")}
    assert "lib_orchestrator.wildcards.engine" in ours  # it did run
    # bounded_json: the wildcard file reader's, for JSON packs (imported with it today)
    assert sorted(m for m in ours if m.split(".")[1] not in ("wildcards", "cli", "errors", "bounded_json")) == []
    assert sorted(m for m in modules if m.split(".")[0] in ("yaml", "requests", "sqlite3")) == []


def test_help_imports_neither_the_engine_nor_the_subcommands():
    """`--help` and `prompts --help` are what a new user runs first: argparse and the CLI module, no more."""
    for argv in (["--help"], ["prompts", "--help"]):
        modules = _modules_after(argv)
        assert sorted(m for m in modules if m.startswith("lib_orchestrator.")) == ["lib_orchestrator.cli"], argv
        assert "dataclasses" not in modules and "json" not in modules, argv


def _tree(parser: argparse.ArgumentParser, path: tuple = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _tree(child, path + (name,))


def test_a_subcommand_built_alone_is_the_same_as_in_the_whole_parser():
    """main builds only the subcommand a command line starts with (or, for the top level's own --help,
    --version and errors, only the list of subcommands): every help text and every parse must read as the
    whole parser's."""
    from lib_orchestrator.cli import LISTING_ONLY

    whole = build_parser()
    names = [path[0] for path, _ in _tree(whole) if len(path) == 1]
    assert len(names) >= 10
    assert build_parser(LISTING_ONLY).format_help() == whole.format_help()
    for name in names:
        alone = dict(_tree(build_parser(name)))
        for path, parser in _tree(whole):
            if path[:1] == (name,):
                assert alone[path].format_help() == parser.format_help(), path
                assert alone[path].format_usage() == parser.format_usage(), path
    argv = ["prompts", "{a|b}", "--count", "3", "--seed", "7", "--mode", "cyclical", "--format", "jsonl"]
    assert build_parser("prompts").parse_args(argv) == whole.parse_args(argv)


@pytest.mark.parametrize("argv", [[], ["--bogus"], ["promts"], ["--version"], ["-h", "prompts"], ["prompts"],
                                  ["prompts", "--count", "x"], ["batch"], ["history", "rate"]])
def test_a_top_level_mistake_reads_as_before(argv, capsys):
    """What the whole parser prints and returns for command lines main parses with less of it."""
    def outcome(parser: argparse.ArgumentParser):
        try:
            parser.parse_args(argv)
            result = "parsed"
        except SystemExit as exc:
            result = exc.code
        printed = capsys.readouterr()
        return result, printed.out, printed.err

    expected = outcome(build_parser())
    try:
        code = main(argv, io.StringIO(), io.StringIO())
        got = ("parsed" if code is not None else None,) + capsys.readouterr()[:2]
    except SystemExit as exc:
        got = (exc.code,) + tuple(capsys.readouterr())
    assert got == expected


def test_prompts_written_to_a_real_stdout_keep_its_encoding_and_errors(colors):
    """A real stdout gets the prompts as bytes, encoded by us (faster than its text layer): with the stream's
    own encoding and error handler, exactly as its text layer would have written them."""
    argv = ["prompts", "café ☃ {a|b}: __multi__", "--wildcards", colors, "--count", "40", "--seed", "3"]
    env = {**os.environ, "PYTHONIOENCODING": "ascii:backslashreplace"}
    proc = subprocess.run([sys.executable, "-m", "lib_orchestrator", *argv], cwd=REPO, capture_output=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == run(*argv)[1].encode("ascii", "backslashreplace")
    assert b"caf\\xe9 \\u2603 " in proc.stdout and len(proc.stdout.splitlines()) == 40


def test_every_enhancement_template_name_is_still_a_family_and_picks_its_template():
    """`enhance --family pony` and the rest of the old values keep working: each is a family (or a base-model
    shortcut) the parser takes, and it picks the template of its own name."""
    from lib_orchestrator.enhance.templates import TEMPLATE_NAMES, template_for
    from lib_orchestrator.family_cli import FAMILY_CHOICES, checkpoint_of

    parser = build_parser()
    for name in TEMPLATE_NAMES:
        assert name in FAMILY_CHOICES
        args = parser.parse_args(["enhance", "a fox", "--family", name])
        assert template_for(*checkpoint_of(args)) == name
