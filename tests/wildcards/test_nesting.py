"""Nesting limits hold in every mode, and no walk recurses past Python's stack
(lib_orchestrator/wildcards/nesting.py; the samplers, the counter and the linter)."""
from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List

import pytest

from lib_orchestrator.errors import OrchestratorError, TemplateError
from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards.lint import lint

from .hostile import isolated

MODES = ("random", "combinatorial", "cyclical", "count", "lint")


def chain(make_wildcards, levels: int, line: str = "x{i} __c{j}__") -> str:
    """c0 → c1 → … → c{levels-1}, each line naming the next; the last one is plain text. A template
    naming c0 nests `levels` wildcards deep."""
    files = {f"c{i}.txt": line.format(i=i, j=i + 1) + "\n" for i in range(levels - 1)}
    files[f"c{levels - 1}.txt"] = "end\n"
    return make_wildcards(files)


def run(root: str, template: str, mode: str) -> object:
    engine = PromptEngine([root])
    if mode == "count":
        return engine.count(template)
    if mode == "lint":
        errors = [f for f in lint([root], [template]) if f.severity == "error"]
        if errors:
            raise TemplateError(errors[0].message)
        return errors
    return list(engine.texts(template, mode, 0, 2))


def stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


# What the engine may use on top of its caller's frames, whatever it is given. nesting.py bounds every
# walk to MAX_NESTING (100) levels at about 4 frames a level (measured: 3.10 uses up to ~570, 3.13 ~400);
# Python's default limit is 1,000, so this leaves the caller 300 frames.
FRAME_BUDGET = 700


@contextmanager
def frame_budget(frames: int = FRAME_BUDGET) -> Iterator[None]:
    """Python's recursion limit set to the frames in use now plus `frames`: a walk that needs more is a
    RecursionError here, whatever the machine."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(stack_depth() + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


# -- the wildcard depth limit, in every mode ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_64_nested_wildcards_work_in_every_mode(make_wildcards, mode):
    root = chain(make_wildcards, 64)
    with frame_budget():
        result = run(root, "__c0__", mode)
    if mode in ("random", "combinatorial", "cyclical"):
        assert result[0] == " ".join(f"x{i}" for i in range(63)) + " end"  # type: ignore[index]
    elif mode == "count":
        assert result == 1


@pytest.mark.parametrize("mode", MODES)
def test_65_nested_wildcards_are_our_error_in_every_mode(make_wildcards, mode):
    root = chain(make_wildcards, 65)
    with frame_budget(), pytest.raises(TemplateError, match="wildcards nest deeper than 64 levels"):
        run(root, "__c0__", mode)


def test_the_64_deep_chain_works_on_a_fresh_interpreter_with_its_default_limit(make_wildcards):
    """The review's case, on whatever Python runs the tests (CI runs 3.10 and 3.13 too)."""
    root = chain(make_wildcards, 64, "x{i} {{a|b}} __c{j}__")
    done = isolated(f"""
        import sys
        from lib_orchestrator.errors import OrchestratorError
        from lib_orchestrator.wildcards import PromptEngine
        from lib_orchestrator.wildcards.lint import lint
        assert sys.getrecursionlimit() == 1000
        root = {root!r}
        for mode in ("random", "combinatorial", "cyclical"):
            try:
                next(iter(PromptEngine([root]).texts("__c0__", mode, 0, 1)))
                print(mode, "ok")
            except OrchestratorError as exc:
                print(mode, "ours", exc.message)
        try:
            print("count", PromptEngine([root]).count("__c0__"))
        except OrchestratorError as exc:
            print("count ours", exc.message)
        print("lint", len(lint([root], ["__c0__"])))
    """, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "RecursionError" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and all(" ok" in line or " ours " in line or line.startswith(("count", "lint"))
                                   for line in lines), lines


@pytest.mark.parametrize("mode", MODES)
def test_a_55_deep_chain_of_nested_variants_is_our_error_not_recursion_error(make_wildcards, mode):
    # Five variants inside one another on each of 55 levels: 330 levels of nesting in all.
    root = chain(make_wildcards, 55, "x {{a|{{b|{{c|{{d|{{e|__c{j}__}}}}}}}}}}")
    with frame_budget(), pytest.raises(TemplateError, match="nest deeper than 100 levels"):
        run(root, "__c0__", mode)


def test_the_error_points_at_the_construct_that_is_one_level_too_deep(make_wildcards):
    root = chain(make_wildcards, 60, "{{a|__c{j}__}}")
    with pytest.raises(TemplateError) as info:
        PromptEngine([root]).prompt("__c0__", 1)
    err = info.value
    # Level 1: __c0__ in the template. File c{i} holds the variant (level 2i+2) and __c{i+1}__ (2i+3);
    # level 101 is therefore __c50__ inside c49.txt, reached through c0 … c49.
    assert "nest deeper than 100 levels" in err.message
    assert err.location is not None and err.location.source.endswith("c49.txt")
    assert (err.location.line, err.location.column) == (1, 4)
    assert "__c0__ → __c1__" in err.message and "__c49__)" in err.message


# -- width: long sequences, many assignments, big picks ----------------------------------------------


WIDE: Dict[str, Callable[[], str]] = {
    "2,000 random parts": lambda: "{~a|a} " * 2000,
    "2,000 assignments": lambda: "".join(f"${{v{i}=x}}" for i in range(2000)) + "${v1999}",
    "2,000 immediate assignments": lambda: "".join(f"${{v{i}=!{{a|a}}}}" for i in range(2000)) + "${v0}",
    "a 1,500-option pick of 1,500": lambda: "{1500$$" + "|".join(f"o{i}" for i in range(1500)) + "}",
    "3,000 wildcards": lambda: "__w__ " * 3000,
}


@pytest.mark.parametrize("case", list(WIDE))
@pytest.mark.parametrize("mode", ["random", "combinatorial", "cyclical", "count"])
def test_wide_templates_need_no_deep_recursion(make_wildcards, case, mode):
    root = make_wildcards({"w.txt": "w\n"})
    template = WIDE[case]()
    with frame_budget(200):
        result = run(root, template, mode)
    if mode == "count":  # identical options are one option, random parts count once
        assert result == (math.factorial(1500) if case == "a 1,500-option pick of 1,500" else 1)
    elif case == "a 1,500-option pick of 1,500":
        every = [f"o{i}" for i in range(1500)]
        if mode == "combinatorial":  # the first permutation lists them in order
            assert result[0] == ",".join(every)  # type: ignore[index]
        else:
            assert sorted(result[0].split(",")) == sorted(every)  # type: ignore[index]


# -- variables and computed names are measured as they are read ------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_chain_of_3000_variables_is_our_error_in_every_mode(make_wildcards, mode):
    template = "${v0=x}" + "".join(f"${{v{i + 1}=${{v{i}}} }}" for i in range(3000)) + "${v3000}"
    root = make_wildcards({"w.txt": "w\n"})
    if mode == "lint":  # the linter does not read variables' values; it must finish all the same
        with frame_budget():
            run(root, template, mode)
        return
    with frame_budget(), pytest.raises(TemplateError, match="nest deeper than 100 levels"):
        run(root, template, mode)


@pytest.mark.parametrize("mode", ["random", "combinatorial", "cyclical", "count"])
def test_a_variable_read_deep_inside_wildcards_counts_where_it_is_read(make_wildcards, mode):
    # The value nests 50 levels where it is set (fine); read 60 wildcards down it would nest 110.
    root = chain(make_wildcards, 60, "__c{j}__")
    with open(os.path.join(root, "c59.txt"), "w", encoding="utf-8") as fh:
        fh.write("${deep}\n")
    template = "${deep=" + "{a|" * 50 + "z" + "}" * 50 + "}__c0__"
    with frame_budget(), pytest.raises(TemplateError, match="nest deeper than 100 levels"):
        run(root, template, mode)
    shallow = "${deep=" + "{a|" * 10 + "z" + "}" * 10 + "}__c0__"
    with frame_budget():
        assert run(root, shallow, mode)


@pytest.mark.parametrize("mode", ["random", "combinatorial", "cyclical", "count"])
def test_computed_wildcard_names_are_measured_when_reached(make_wildcards, mode):
    files = {f"d{i}.txt": f"__{{d{i + 1}|d{i + 1}}}__\n" for i in range(80)}
    files["d80.txt"] = "end\n"
    root = make_wildcards(files)
    with frame_budget(), pytest.raises(TemplateError, match="deeper than"):
        run(root, "__d0__", mode)


# -- at the limit, nothing needs more than the budget -------------------------------------------------------


AT_THE_LIMIT: Dict[str, str] = {
    "99 nested variants": "{a|b " * 99 + "x" + "}" * 99,
    "99 nested single options": "{a " * 99 + "x" + "}" * 99,
    "99 nested picks": "{2$$a|b " * 99 + "x" + "}" * 99,
    "99 nested wraps": "%{[...]$$" * 99 + "x" + "}" * 99,
    "49 nested assignments": "${a=" * 49 + "x" + "}" * 49 + "${a}",
    "99 nested defaults": "${a:" * 99 + "x" + "}" * 99,
    "two equal deep options": "{" + "{a|" * 48 + "x" + "}" * 48 + "|" + "{a|" * 48 + "x" + "}" * 48 + "}",
    "a deep value read at depth": "${v=" + "{a|" * 45 + "q" + "}" * 45 + "}" + "{b|" * 50 + "${v}" + "}" * 50,
}


@pytest.mark.parametrize("case", list(AT_THE_LIMIT))
@pytest.mark.parametrize("mode", MODES)
def test_templates_at_the_limit_fit_the_frame_budget(make_wildcards, case, mode):
    root = make_wildcards({"w.txt": "w\n"})
    with frame_budget():
        try:
            run(root, AT_THE_LIMIT[case], mode)
        except OrchestratorError:
            pass  # our error is a fine answer; a RecursionError is not


def test_hashing_and_comparing_deep_nodes_does_not_recurse():
    from lib_orchestrator.wildcards.parser import parse

    text = "{a|" * 99 + "x" + "}" * 99
    first, second, other = parse(text), parse(text), parse(text.replace("x", "y"))
    with frame_budget(50):
        assert first == second and hash(first) == hash(second) and first is not second
        assert other != first


def test_deep_chains_in_combinatorial_mode_list_the_right_prompts(make_wildcards):
    root = chain(make_wildcards, 30, "{{a|b}}{i} __c{j}__")
    engine = PromptEngine([root])
    with frame_budget():
        first: List[str] = [p.text for p in engine.prompts("__c0__", "combinatorial", count=3)]
    prefix = " ".join(f"a{i}" for i in range(27))
    assert first == [f"{prefix} a27 a28 end", f"{prefix} a27 b28 end", f"{prefix} b27 a28 end"]
    assert engine.count("__c0__") == 2 ** 29
