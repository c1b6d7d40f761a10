"""Wildcard engine speed: dynamicprompts 0.31 (the anchor) and ours, side by side, in one run.

Ours is timed as the whole CLI process (`python -m lib_orchestrator prompts … --count 50000 > file`),
interpreter start-up and output included; dynamicprompts in-process on fewer prompts, which flatters it.
Both read the bundled wildcards (wildcards/). Four parts:
- throughput for a heavy template (variables, nested and weighted variants, pick-N, a glob over wildcards
  whose lines hold more wildcards, a wrap) and a light one (9 wildcards, a few nested variants);
- start-up: `--help` and `prompts --help` beside a bare `python -c pass`;
- a 50,000-file pack (tests/wildcards/big_pack.py): the first prompt right after writing it, then warm.
Runs alternate between the things compared, so a noisy neighbour slows both alike; figures are medians.

    python benchmarks/wildcards.py [--count 50000] [--repeat 7] [--no-pack]
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Sequence

ROOT = Path(__file__).resolve().parent.parent
WILDCARDS = ROOT / "wildcards"
# Heavy use as sd-dynamic-prompts users write it: an immediate variable (drawn once per prompt) and a lazy one
# (drawn where used), variants nested three deep, weighted options, pick-2 and pick-1-to-3 with separators, a
# glob over templates/ whose lines hold ten wildcards and variants each, and a wrap.
HEAVY = ("${who=!{__archetype__|{young|old|{2::weary|proud}} __archetype__}}${place=__setting__}"
         "{3::masterpiece, best quality|0.5::high detail|1::sharp focus}, __style__ of a ${who} in ${place}, "
         "{1-3$$, $$__mood__|__lighting__|__palette__|__camera__|{soft|harsh} {rim|back} light}, "
         "{2$$ and $$__genre__|__era__|{dark|bright} __mood__|{0.5::rare|2::common} __palette__}, "
         "%{framed as ...$$__camera__}, "
         "__templates/*__, the ${who} {again|once more} in ${place}")
LIGHT = ("{a|an|the} __style__ of {a|one} {lone|weary|{young|old} {proud|quiet}} __archetype__ in "
         "__setting__, __genre__, __lighting__, {__mood__|{2::deeply|softly} __mood__} mood, "
         "__palette__ palette, __camera__, __era__")
CASES = (("heavy", HEAVY, "random", 500), ("light", LIGHT, "random", 500), ("light", LIGHT, "combinatorial", 100))
# As a user's shell runs it: bytecode cached (some sandboxes set PYTHONDONTWRITEBYTECODE), output buffered.
CLI_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
CLI = [sys.executable, "-m", "lib_orchestrator"]


def dynamicprompts_rate(template: str, mode: str, n: int) -> float:
    logging.disable(logging.CRITICAL)
    from dynamicprompts.generators import CombinatorialPromptGenerator, RandomPromptGenerator
    from dynamicprompts.wildcards import WildcardManager

    manager = WildcardManager(WILDCARDS)
    if mode == "random":
        generator = RandomPromptGenerator(manager, seed=1)
        generator.generate(template, 20)  # its files read and cached first, as ours are before the loop
        start = time.perf_counter()
        made = len(generator.generate(template, n))
    else:
        combinatorial = CombinatorialPromptGenerator(manager)
        start = time.perf_counter()
        made = len(combinatorial.generate(template, max_prompts=n))
    return made / (time.perf_counter() - start)


def process_seconds(argv: Sequence[str], lines: int = -1) -> float:
    """Wall time of one process, its output to a file as `… > prompts.txt` would; checks the line count."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        done = subprocess.run(list(argv), cwd=ROOT, env=CLI_ENV, stdout=out, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        out.seek(0)
        made = out.read().count(b"\n")
    if done.returncode != 0 or lines >= 0 and made != lines:
        raise SystemExit(f"{' '.join(argv)[:200]}: status {done.returncode}, {made} lines: {done.stderr.decode()}")
    return elapsed


def alternate(runs: int, *measures: Callable[[], float]) -> List[float]:
    """The median of each measure, run in turns."""
    results: List[List[float]] = [[] for _ in measures]
    for _ in range(runs):
        for result, measure in zip(results, measures):
            result.append(measure())
    return [statistics.median(r) for r in results]


def throughput(args: argparse.Namespace) -> None:
    print(f"{'template':<9} {'mode':<14} {'dynamicprompts/s':>17} {'ours/s (process)':>17} {f'{args.count:,} in':>8} "
          f"{'ratio':>7} {'goal':>6}")
    for name, template, mode, goal in CASES:
        n_dp = {"heavy": args.dp_heavy, "light": args.dp_light}[name] if mode == "random" else args.dp_combinatorial
        argv = CLI + ["prompts", template, "--mode", mode, "--count", str(args.count), "--seed", "1"]
        process_seconds(argv, args.count)  # warm-up: writes the bytecode cache, fills the OS file cache
        ours: List[float] = []
        anchors: List[float] = []
        for i in range(args.repeat):
            ours.append(process_seconds(argv, args.count))
            if i % 3 == 0:  # dynamicprompts takes seconds a run: a third as many runs
                try:
                    anchors.append(dynamicprompts_rate(template, mode, n_dp))
                except ImportError:
                    anchors.append(float("nan"))
        anchor = statistics.median(anchors)
        seconds = statistics.median(ours)
        rate = args.count / seconds
        print(f"{name:<9} {mode:<14} {anchor:>17,.0f} {rate:>17,.0f} {seconds:>7.2f}s {rate / anchor:>6,.0f}x "
              f"{goal:>5}x")


def start_up(args: argparse.Namespace) -> None:
    commands = {"python -c pass (the anchor)": [sys.executable, "-c", "pass"],
                "python -m lib_orchestrator --help": CLI + ["--help"],
                "python -m lib_orchestrator prompts --help": CLI + ["prompts", "--help"],
                "python -m lib_orchestrator prompts __mood__": CLI + ["prompts", "__mood__"]}
    for argv in commands.values():
        process_seconds(argv)
    medians = alternate(max(args.repeat * 2, 9), *(lambda a=argv: process_seconds(a) for argv in commands.values()))
    anchor = medians[0]
    print(f"\n{'start-up':<44} {'median':>8} {'beyond python':>14}")
    for label, seconds in zip(commands, medians):
        print(f"{label:<44} {seconds * 1000:>6.1f}ms {(seconds - anchor) * 1000:>12.1f}ms")


def big_pack(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from tests.wildcards.big_pack import make_pack
    except ImportError as exc:
        print(f"\n50k-file pack: skipped ({exc})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        pack = Path(tmp) / "pack"
        start = time.perf_counter()
        names = make_pack(pack, files=args.pack_files)
        written = time.perf_counter() - start
        files = sum(len(f) for _, _, f in os.walk(pack))
        name = names[len(names) // 2]
        argv = CLI + ["prompts", f"__{name}__", "--wildcards", str(pack), "--count", "1", "--seed", "1"]
        cold = process_seconds(argv, 1)
        warm = statistics.median(process_seconds(argv, 1) for _ in range(max(args.repeat, 5)))
        print(f"\n{files:,}-file pack (written in {written:.1f}s), `prompts __{name}__ --count 1`:\n"
              f"  first run after writing {cold * 1000:.0f}ms, warm {warm * 1000:.0f}ms (median; goal <= 1,000ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="prompts per process of ours")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dp-heavy", type=int, default=300, help="prompts dynamicprompts makes, heavy template")
    parser.add_argument("--dp-light", type=int, default=2_000, help="prompts dynamicprompts makes, light template")
    parser.add_argument("--dp-combinatorial", type=int, default=20_000)
    parser.add_argument("--pack-files", type=int, default=50_000)
    parser.add_argument("--no-pack", action="store_true", help="skip the 50k-file pack")
    args = parser.parse_args()
    print(f"heavy: {HEAVY}\nlight: {LIGHT}\nwildcards: {os.path.relpath(WILDCARDS)}   "
          f"python {sys.version.split()[0]}\n")
    throughput(args)
    start_up(args)
    if not args.no_pack:
        big_pack(args)


if __name__ == "__main__":
    main()
