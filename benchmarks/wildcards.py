"""Wildcard engine throughput: dynamicprompts 0.31 (the anchor) and ours, side by side, in one run.

Ours is timed as the whole CLI process (`python -m lib_orchestrator prompts … --count 50000`),
interpreter start-up and output included; dynamicprompts in-process on fewer prompts, which flatters
it. The template has 9 wildcards and nested, weighted variants over the bundled wildcards.

    python benchmarks/wildcards.py [--count 50000] [--repeat 3]
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

ROOT = Path(__file__).resolve().parent.parent
WILDCARDS = ROOT / "wildcards"
TEMPLATE = ("{a|an|the} __style__ of {a|one} {lone|weary|{young|old} {proud|quiet}} __archetype__ in "
            "__setting__, __genre__, __lighting__, {__mood__|{2::deeply|softly} __mood__} mood, "
            "__palette__ palette, __camera__, __era__")
GOALS = {"random": 500, "combinatorial": 100}


def dynamicprompts_rate(mode: str, n: int) -> float:
    logging.disable(logging.CRITICAL)
    from dynamicprompts.generators import CombinatorialPromptGenerator, RandomPromptGenerator
    from dynamicprompts.wildcards import WildcardManager

    manager = WildcardManager(WILDCARDS)
    if mode == "random":
        generator = RandomPromptGenerator(manager, seed=1)
        start = time.perf_counter()
        made = len(generator.generate(TEMPLATE, n))
    else:
        combinatorial = CombinatorialPromptGenerator(manager)
        start = time.perf_counter()
        made = len(combinatorial.generate(TEMPLATE, max_prompts=n))
    return made / (time.perf_counter() - start)


# As a user's shell runs it: bytecode cached (some sandboxes set PYTHONDONTWRITEBYTECODE).
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cli_seconds(mode: str, count: int) -> float:
    cmd = [sys.executable, "-m", "lib_orchestrator", "prompts", TEMPLATE, "--mode", mode,
           "--count", str(count), "--seed", "1"]
    with tempfile.TemporaryFile() as out:  # as `… > prompts.txt` would
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=CLI_ENV, stdout=out, stderr=subprocess.PIPE, check=True)
        elapsed = time.perf_counter() - start
        out.seek(0)
        lines = out.read().count(b"\n")
    if lines != count:
        raise SystemExit(f"expected {count} prompts, got {lines}: {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dp-random", type=int, default=2_000, help="prompts dynamicprompts makes in random mode")
    parser.add_argument("--dp-combinatorial", type=int, default=20_000)
    args = parser.parse_args()
    print(f"template: {TEMPLATE}\nwildcards: {os.path.relpath(WILDCARDS)}   python {sys.version.split()[0]}\n")
    print(f"{'mode':<14} {'dynamicprompts/s':>17} {'ours/s (CLI, median)':>21} {'ours best':>10} "
          f"{'ratio':>8} {'goal':>6}")
    for mode in ("random", "combinatorial"):
        n_dp = args.dp_random if mode == "random" else args.dp_combinatorial
        cli_seconds(mode, args.count)  # warm-up: writes the bytecode cache, fills the OS file cache
        # Alternate the two so a noisy neighbour slows both alike.
        runs, anchors = [], []
        for i in range(args.repeat):
            runs.append(cli_seconds(mode, args.count))
            if i % 3 == 0:
                try:
                    anchors.append(dynamicprompts_rate(mode, n_dp))
                except ImportError:
                    anchors.append(float("nan"))
        anchor = statistics.median(anchors)
        median = args.count / statistics.median(runs)
        best = args.count / min(runs)
        ratio = median / anchor
        print(f"{mode:<14} {anchor:>17,.0f} {median:>21,.0f} {best:>10,.0f} {ratio:>7,.0f}x {GOALS[mode]:>5}x")


if __name__ == "__main__":
    main()
