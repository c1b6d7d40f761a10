"""Composing prompts with LoRA picks: per-image time against a 10k-LoRA library, already indexed.

Each image: the wildcard template is expanded, LoRAs are matched and picked, the prompt composed.

    python benchmarks/compose.py [--images 10000] [--loras 10000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib_orchestrator.compose import compose  # noqa: E402
from lib_orchestrator.library import scan_library  # noqa: E402
from lib_orchestrator.selection import LoraIndex, Rules  # noqa: E402
from lib_orchestrator.wildcards import PromptEngine  # noqa: E402
from tests.library_fixtures import generate  # noqa: E402

TEMPLATE = "__templates/*__, {1girl|1boy|landscape}, {frieren|watercolor|pixel art|add detail|}"
CHECKPOINTS = (("sdxl", "Illustrious"), ("sdxl", "Pony"), ("sd1", "SD 1.5"), ("flux", "Flux.1 D"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--loras", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        generate(scratch, size=args.loras, seed=3)
        start = time.perf_counter()
        index = LoraIndex(scan_library(os.path.join(scratch, "Lora")).records)
        print(f"library: {args.loras:,} LoRAs generated, scanned and indexed in {time.perf_counter() - start:.1f} s "
              f"({len(index.records):,} pickable)")
    engine = PromptEngine([str(ROOT / "wildcards")])
    rules = Rules()
    for family, base in CHECKPOINTS:  # warm the per-checkpoint caches, as a running Forge would have
        compose(TEMPLATE, "warm up", 0, index, rules, family, base)
    fn = engine.compile(TEMPLATE)
    times, loras = [], 0
    for seed in range(args.images):
        family, base = CHECKPOINTS[seed % len(CHECKPOINTS)]
        start = time.perf_counter()
        result = compose(TEMPLATE, fn(seed), seed, index, rules, family, base)
        times.append(time.perf_counter() - start)
        loras += len(result.loras)
    times.sort()
    ms = [t * 1000 for t in times]
    p50, p95 = statistics.median(ms), ms[int(len(ms) * 0.95)]
    print(f"{args.images:,} images, {loras / args.images:.1f} LoRAs each on average")
    print(f"per image: p50 {p50:.3f} ms   p95 {p95:.3f} ms   max {ms[-1]:.3f} ms   (goal: p95 ≤ 2 ms)")


if __name__ == "__main__":
    main()
