"""The cost of the AlwaysOn script's process() for a 100-image job against a 10k-LoRA library.

process() is the job planner (lib_orchestrator/job.py) plus a few attribute writes on Forge's `p`; this
times the planner for whole jobs, per image, with the library already indexed as it is in a running
Forge (the index is built in the background).

    python benchmarks/forge_process.py [--images 100] [--loras 10000] [--jobs 20]
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

from lib_orchestrator.job import JobSettings, plan_job  # noqa: E402
from lib_orchestrator.library import scan_library  # noqa: E402
from lib_orchestrator.selection import LoraIndex, Rules  # noqa: E402
from lib_orchestrator.wildcards import PromptEngine  # noqa: E402
from tests.library_fixtures import generate  # noqa: E402

TEMPLATE = "__templates/*__, {1girl|1boy|landscape}, {frieren|watercolor|pixel art|add detail|}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--loras", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        generate(scratch, size=args.loras, seed=4)
        index = LoraIndex(scan_library(os.path.join(scratch, "Lora")).records)
    known = {r.name for r in index.records}  # what Forge's registry would list
    engine = PromptEngine([str(ROOT / "wildcards")])
    settings = JobSettings(enabled=True)

    def expand(text: str, seed: int) -> str:
        return engine.prompt(text, seed) if text else text

    per_image = []
    for job in range(args.jobs):
        seeds = list(range(job * args.images, (job + 1) * args.images))
        start = time.perf_counter()
        plan = plan_job([TEMPLATE] * args.images, ["lowres"] * args.images, seeds, settings, expand, index,
                        Rules(), "sdxl", "Illustrious", known, hr_templates=[TEMPLATE] * args.images)
        per_image.append((time.perf_counter() - start) / args.images * 1000)
        assert len(plan.prompts) == args.images
    print(f"{args.jobs} jobs of {args.images} images (hires on) against {len(index.records):,} LoRAs")
    print(f"process() per image: median {statistics.median(per_image):.3f} ms, worst job {max(per_image):.3f} ms "
          f"(goal ≤ 2 ms)")


if __name__ == "__main__":
    main()
