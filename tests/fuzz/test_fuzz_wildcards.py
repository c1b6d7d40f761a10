"""Wildcard packs and templates as downloads, editors and attackers leave them, driven through the real
entry points: PromptEngine in every mode (random, combinatorial, cyclical, count) over a folder of random
and hostile .txt/.yaml/.json files, the parser on random and adversarial template text, and the linter.

Every case asserts: nothing escapes but our typed errors (OrchestratorError subclasses); the case ends
within its time budget (conftest.budget: a hang fails the case, whatever the machine's speed); memory stays
under a cap (the process's address space is capped with RLIMIT_AS while the cases run, so a blow-up is a
MemoryError in the case that caused it, and a child process capped the same way reads the files built to
exhaust memory); the wildcard files are byte for byte as they were; and a good file beside the hostile
ones keeps giving exactly its own lines. Which file must be reported as bad comes from how the test built
it (tests/wildcards/hostile.py and the builders here), never from the engine's code.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib_orchestrator.errors import OrchestratorError
from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards.lint import lint
from lib_orchestrator.wildcards.parser import parse

from ..wildcards.hostile import billion_laughs, deep_json, deep_yaml_block, deep_yaml_flow, png
from .conftest import budget, record

BUDGET = 20.0  # seconds per case: normal cases take milliseconds, so only a hang or a runaway trips it
MEMORY_CAP = 1024 << 20  # bytes of address space a case may add to what the process holds already
SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example])
GOOD = "zz_good"  # the good file's name: no generated key or name can spell it (see the alphabets below)
GOOD_LINES = ("k1", "k2 {x|y}")
GOOD_TEXTS = {"k1", "k2 x", "k2 y"}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@contextmanager
def address_space_cap(extra: int = MEMORY_CAP) -> Iterator[None]:
    """Cap this process's address space at what it uses now plus `extra` (the soft limit; restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as fh:
        in_use = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    cap = in_use + extra if hard == resource.RLIM_INFINITY else min(in_use + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def snapshot(root: str) -> Dict[str, bytes]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


# ---- packs ----------------------------------------------------------------------------------------------

# Template-ish text: syntax characters, words, and the names the pack defines.
PIECES = ["a", "b", " ", ", ", "{", "}", "|", "$", "${", "%{", "$$", "::", "2::", "__", "_", "#", "//", "\\",
          "(x:1.2)", "[p|q]", "<lora:l:1>", "\n", "~", "@", "!", "=", "?=", ":", "...", "0", "9"]
NAMES = [f"__f{k}__" for k in range(6)] + [f"__sub/f{k}__" for k in range(6)] + \
        ["__c0__", f"__{GOOD}__", "__*__", "__sub/*__", "__**__", "__nope__", "__F1__", "__x/y__"]
snippet = st.lists(st.sampled_from(PIECES + NAMES), max_size=12).map("".join)
keys = st.text(alphabet="abcxy/ _", min_size=1, max_size=5)  # cannot spell GOOD
scalars = st.one_of(snippet, st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.none(), st.sampled_from(["2::a", "1e308::b", "0::c", "-1::d", "9" * 400 + "::e"]))
trees = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4),
    st.fixed_dictionaries({"text": snippet, "weight": st.one_of(st.floats(), st.integers(), st.text(max_size=3))})),
    max_leaves=12)


def _yaml_dump(tree: object) -> str:
    try:
        return yaml.safe_dump(tree, allow_unicode=True)
    except yaml.YAMLError:  # pragma: no cover - safe_dump takes every tree the strategy makes
        return "x: 1\n"


# (relative path without extension, extension, content, must lint report an error on this file?)
File = Tuple[str, str, bytes, bool]

hostile_files = st.sampled_from([
    (".yaml", b"r: &r [*r, *r]\n"),
    (".yaml", billion_laughs().encode()),
    (".yaml", billion_laughs(12, 12).encode()),
    (".yaml", deep_yaml_flow(100_000).encode()),
    (".yaml", deep_yaml_block(100).encode()),
    (".yaml", b"a: &x [1]\nb: &x [2]\n"),
    (".yaml", b"w:\n  - 1e308::a\n  - 1e308::b\n  - c\n"),
    (".yaml", b"w:\n  - {text: a, weight: .nan}\n"),
    (".yaml", b"w:\n  - {text: a, weight: -3}\n"),
    (".json", deep_json(100_000).encode()),
    (".json", deep_json(65).encode()),
    (".json", b'{"w": [{"text": "a", "weight": 1e999}]}'),
    (".txt", png()),
    (".txt", b"red\nbl\x00ue\n"),
    (".txt", "red\nblue\n".encode("utf-16-le")),
    (".txt", b"PK\x03\x04" + bytes(range(256)) * 4),
])


@st.composite
def packs(draw) -> List[File]:
    files: List[File] = []
    for k in range(draw(st.integers(0, 6))):
        folder = draw(st.sampled_from(["", "sub/"]))
        kind = draw(st.sampled_from(["txt", "bytes", "yaml", "json", "text-as-yaml", "text-as-json", "hostile"]))
        if kind == "txt":
            files.append((f"{folder}f{k}", ".txt", "\n".join(draw(st.lists(snippet, max_size=6))).encode(), False))
        elif kind == "bytes":
            files.append((f"{folder}f{k}", ".txt", draw(st.binary(max_size=300)), False))
        elif kind == "yaml":
            files.append((f"{folder}f{k}", ".yaml", _yaml_dump(draw(trees)).encode(), False))
        elif kind == "json":
            tree = draw(trees)
            files.append((f"{folder}f{k}", ".json", json.dumps(tree, allow_nan=True).encode(), False))
        elif kind in ("text-as-yaml", "text-as-json"):
            files.append((f"{folder}f{k}", "." + kind[-4:], draw(snippet).encode(), False))
        else:
            ext, content = draw(hostile_files)
            files.append((f"{folder}f{k}", ext, content, True))
    depth = draw(st.integers(0, 70))  # a chain c0 → c1 → …; past 64 levels it is an error
    back = draw(st.booleans()) and depth > 1  # the last file names the first: a cycle
    for i in range(depth):
        nxt = "__c0__" if back and i == depth - 1 else f"__c{i + 1}__" if i < depth - 1 else "end"
        files.append((f"c{i}", ".txt", f"{{a|b}} {nxt}\n".encode(), False))
    return files


def write_pack(files: List[File]) -> str:
    root = tempfile.mkdtemp(prefix="wildcards-fuzz-")
    os.makedirs(os.path.join(root, "sub"))
    with open(os.path.join(root, f"{GOOD}.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(GOOD_LINES) + "\n")
    for rel, ext, content, _ in files:
        with open(os.path.join(root, rel + ext), "wb") as fh:
            fh.write(content)
    return root


def every_mode(engine: PromptEngine, template: str, seed: int) -> None:
    """The template in every mode; our errors are answers, anything else propagates."""
    for mode in ("random", "cyclical", "combinatorial"):
        try:
            list(engine.texts(template, mode, seed, 3))
        except OrchestratorError:
            pass
    try:
        engine.count(template)
    except OrchestratorError:
        pass


def test_packs_of_random_and_hostile_files_through_every_mode_and_the_linter():
    """120 cases: up to six files of any kind (random template lines, random bytes, YAML/JSON trees with
    odd scalars and weights, text posing as YAML/JSON, and the hostile files: recursive alias, billion
    laughs, deep nesting, duplicate anchors, bad weights, PNG, NUL, UTF-16 without BOM, ZIP) beside a chain
    of up to 70 wildcards (sometimes a cycle) and a good file. Templates naming them all, globs included,
    go through every mode; the good file's template gives its own lines; lint reports each hostile file
    as an error on that file and finishes; no file changes."""
    started, count = time.perf_counter(), [0]

    @settings(SETTINGS, max_examples=120)
    @given(files=packs(), templates=st.lists(snippet, min_size=1, max_size=3), seed=st.integers(0, 2 ** 32 - 1))
    def case(files, templates, seed):
        count[0] += 1
        root = write_pack(files)
        try:
            before = snapshot(root)
            engine = PromptEngine([root])
            names = [f"__{rel}__" for rel, *_ in files] + ["__c0__"]
            for template in templates + names:
                budget(BUDGET, every_mode, engine, template, seed)
            good = budget(BUDGET, lambda: [engine.prompt(f"__{GOOD}__", s) for s in range(seed, seed + 5)])
            assert set(good) <= GOOD_TEXTS, good
            assert budget(BUDGET, lambda: {p.text for p in engine.prompts(f"__{GOOD}__", "combinatorial",
                                                                          count=10)}) == GOOD_TEXTS
            findings = budget(BUDGET, lint, [root], templates)
            errors = {f.location.source for f in findings if f.severity == "error" and f.location}
            for rel, ext, _, bad in files:
                if bad:
                    assert any(src.endswith(rel + ext) for src in errors), (rel + ext, sorted(errors)[:5])
            assert snapshot(root) == before
        finally:
            shutil.rmtree(root, ignore_errors=True)

    with address_space_cap():
        case()
    record("wildcards: random and hostile packs, every mode and lint", count[0], time.perf_counter() - started)


# ---- templates ------------------------------------------------------------------------------------------

OPENERS = ["{a|", "{", "[", "__", "${v=", "${v=!", "${v:", "%{x$$", "%{", "{2$$a|", "{~", "{@", "{!", "__@", "(",
           "${", "{1-3$$ and $$", "__{", "__x(k="]
CLOSERS = {"{a|": "}", "{": "}", "[": "]", "__": "__", "${v=": "}", "${v=!": "}", "${v:": "}", "%{x$$": "}",
           "%{": "$$}", "{2$$a|": "}", "{~": "}", "{@": "}", "{!": "}", "__@": "__", "(": ")", "${": "}",
           "{1-3$$ and $$": "}", "__{": "}__", "__x(k=": ")__"}


@st.composite
def nested(draw) -> str:
    """One construct opened `depth` times (to far past every limit), closed or left open."""
    opener = draw(st.sampled_from(OPENERS))
    depth = draw(st.sampled_from([1, 2, 50, 63, 64, 65, 99, 100, 101, 150, 1000, 3000]))
    core = draw(st.sampled_from(["x", "__w__", "${v}", "__zz_good__", ""]))
    closed = draw(st.booleans())
    return opener * depth + core + (CLOSERS[opener] * depth if closed else "")


@st.composite
def huge_repeats(draw) -> str:
    """`{N$$…}` and `{N-M$$sep$$…}` with N up to 10^40, over up to 60 options."""
    lo = draw(st.one_of(st.integers(0, 70), st.integers(0, 10 ** 40)))
    hi = draw(st.one_of(st.none(), st.integers(0, 70), st.integers(0, 10 ** 40)))
    options = "|".join(f"o{i}" for i in range(draw(st.integers(1, 60))))
    bound = f"{lo}" if hi is None else f"{lo}-{hi}"
    sep = draw(st.sampled_from(["", " and $$", "|$$", "$$$$"]))
    return "{" + bound + "$$" + sep + options + "}" * draw(st.integers(0, 2))


@st.composite
def chains_of_variables(draw) -> str:
    n = draw(st.sampled_from([2, 50, 101, 500, 3000]))
    form = draw(st.sampled_from(["${{v{j}=${{v{i}}}x}}", "${{v{j}={{${{v{i}}}|${{v{i}}}}}}}", "${{v{j}=!${{v{i}}}x}}"]))
    return "${v0=a}" + "".join(form.format(i=i, j=i + 1) for i in range(n)) + f"${{v{n}}}"


templates = st.one_of(
    st.text(alphabet=st.sampled_from(list("{}|$%#_\\/:!@~=?()<>[].,- ab1\n\t")), max_size=300),
    st.lists(st.sampled_from(PIECES + NAMES), max_size=60).map("".join),
    nested(), huge_repeats(), chains_of_variables(),
    st.sampled_from(["__" * 20_000, "$" * 50_000, "{" * 50_000, "}" * 50_000, "|" * 50_000, "%{" * 25_000,
                     "\\" * 50_001, "#" * 10_000, "__w__" * 10_000, "{a|b}" * 10_000, "${v=x}" * 5000 + "${v}"]),
)


def test_the_parser_and_every_mode_on_random_and_adversarial_template_text(tmp_path):
    """400 cases: random text over the syntax characters, deep nesting of every construct (to 3,000 levels,
    closed or not), `{N$$…}` with N up to 10^40, chains of up to 3,000 variables, and long runs of one
    character: parse, every mode, count and lint give results or our errors, within the budget."""
    root = str(tmp_path / "w")
    os.makedirs(root)
    with open(os.path.join(root, "w.txt"), "w", encoding="utf-8") as fh:
        fh.write("w1\n{w2|w3}\n")
    with open(os.path.join(root, f"{GOOD}.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(GOOD_LINES) + "\n")
    before = snapshot(root)
    engine = PromptEngine([root])
    started, count = time.perf_counter(), [0]

    def all_of(template: str, seed: int) -> None:
        try:
            parse(template)
        except OrchestratorError:
            pass
        every_mode(engine, template, seed)
        lint([root], [template])

    @settings(SETTINGS, max_examples=400)
    @given(template=templates, seed=st.integers(0, 2 ** 32 - 1))
    def case(template, seed):
        count[0] += 1
        budget(BUDGET, all_of, template, seed)

    with address_space_cap():
        case()
    assert snapshot(root) == before
    record("wildcards: template text, every mode and lint", count[0], time.perf_counter() - started)


# ---- counting -------------------------------------------------------------------------------------------

small_templates = st.recursive(
    st.sampled_from(["a", "b", " ", "__w__", "__v__", "${x:d}", "c"]),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map("".join),
        st.tuples(st.sampled_from(["", "2$$", "1-2$$", "0-1$$", "2$$ & $$"]),
                  st.lists(st.tuples(st.sampled_from(["", "0::", "3::"]), inner).map("".join), min_size=1,
                           max_size=3).map("|".join)).map(lambda t: "{" + t[0] + t[1] + "}"),
        st.tuples(st.sampled_from(["${x=", "${x=!"]), inner).map(lambda t: t[0] + t[1] + "}${x}")),
    max_leaves=6)


def test_counting_agrees_with_listing_and_random_prompts_are_among_them(tmp_path):
    """500 cases: `count` equals the number of prompts combinatorial mode lists when asked for any number
    (10^30 included), and every random prompt of a few seeds is one of them (README: a random prompt is
    always one of the combinatorial ones)."""
    root = str(tmp_path / "w")
    os.makedirs(root)
    with open(os.path.join(root, "w.txt"), "w", encoding="utf-8") as fh:
        fh.write("w1\n{w2|w3}\n2::w4\n")
    with open(os.path.join(root, "v.yaml"), "w", encoding="utf-8") as fh:
        fh.write("v:\n  - 3::heavy\n  - light\n  - 0::never\n")
    engine = PromptEngine([root])
    started, count = time.perf_counter(), [0]

    def check(template: str) -> None:
        try:
            total = engine.count(template)
        except OrchestratorError:
            return
        if total > 5000:
            listed = list(engine.prompts(template, "combinatorial", count=50))
            assert len(listed) == 50
            return
        listed = [p.text for p in engine.prompts(template, "combinatorial", count=10 ** 30)]
        assert len(listed) == total
        every = set(listed)
        for seed in range(10):
            assert engine.prompt(template, seed) in every, (template, seed)

    @settings(SETTINGS, max_examples=500)
    @given(template=small_templates)
    def case(template):
        count[0] += 1
        budget(BUDGET, check, template)

    with address_space_cap():
        case()
    record("wildcards: count = listing ⊇ random", count[0], time.perf_counter() - started)


# ---- memory ---------------------------------------------------------------------------------------------

_MEMORY_CHILD = r"""
import io, json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (__LIMIT__, __LIMIT__))
from lib_orchestrator.cli import main
out = {}
for name, argv in (("good", ["prompts", "__zz_good__", "--seed", "1"]), ("count", ["count", "__zz_good__"]),
                   ("lint", ["lint"]), ("bomb", ["prompts", "__laughs__"])):
    o, e = io.StringIO(), io.StringIO()
    out[name] = [main(argv + ["--wildcards", sys.argv[1]], o, e), o.getvalue(), e.getvalue()]
with open("/proc/self/status") as fh:  # this process's own high-water mark
    out["peak_kib"] = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
print(json.dumps(out))
"""
CHILD_CAP = 1024 << 20


def test_files_built_to_exhaust_memory_stay_within_a_capped_child(tmp_path):
    """7 files in one folder, read by `prompts`, `count` and `lint` in a child process whose address space
    is capped at 1 GiB: billion laughs of 12 levels of 12 (9 × 10^12 values expanded), a 16 MiB YAML of
    5 million empty lists, a 16 MiB JSON of them, a 32 MiB .txt of 16 million lines, a JSON nested a
    million deep, a recursive alias, and a good file. Each bad one is refused by its cap, with its
    message; the good one generates; the child's peak memory is reported."""
    started = time.perf_counter()
    root = tmp_path / "w"
    root.mkdir()
    (root / f"{GOOD}.txt").write_text("\n".join(GOOD_LINES) + "\n")
    (root / "laughs.yaml").write_text(billion_laughs(12, 12))
    (root / "lists.yaml").write_text("k: [" + "[]," * ((16 << 20) // 3 - 3) + "[]]\n")
    (root / "lists.json").write_text("[" + "[]," * ((16 << 20) // 3 - 1) + "[]]")
    (root / "lines.txt").write_text("a\n" * (16 << 20))
    (root / "deep.json").write_text(deep_json(1_000_000))
    (root / "recursive.yaml").write_text("r: &r [*r, *r]\n")
    try:
        child = subprocess.run([sys.executable, "-c", _MEMORY_CHILD.replace("__LIMIT__", str(CHILD_CAP)), str(root)],
                               capture_output=True, text=True, timeout=180, cwd=REPO)
    finally:
        shutil.rmtree(root)  # 80 MiB that pytest would otherwise keep
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout)
    code, text, _ = out["good"]
    assert code == 0 and text.strip() in GOOD_TEXTS
    assert out["count"][:2] == [0, "3\n"]
    code, text, _ = out["lint"]
    assert code == 1
    for expected in ("laughs.yaml:", "aliases expand to over 100,000 values", "lists.yaml:1:", "over 1,000,000 values",
                     "lists.json:1:1: error: holds over 1,000,000 values", "lines.txt:1:1: error: wildcard file has",
                     "deep.json:1:65: error: nested deeper than 64 levels", "recursive.yaml:1:8: error"):
        assert expected in text, expected
    code, _, err = out["bomb"]
    assert code == 2 and "aliases expand" in err
    assert out["peak_kib"] < CHILD_CAP // 1024
    record(f"wildcards: memory-hostile files (peak {out['peak_kib'] // 1024} MiB of a {CHILD_CAP >> 20} MiB cap)",
           7, time.perf_counter() - started)


def test_the_harness_catches_a_blow_up_as_a_memory_error():
    """The harness itself: under the cap, an allocation past it fails the case instead of the machine."""
    with address_space_cap(64 << 20):
        try:
            bytearray(256 << 20)
        except MemoryError:
            pass
        else:
            raise AssertionError("the address-space cap did not stop a 256 MiB allocation")
