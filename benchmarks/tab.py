"""The tab against a 10k-LoRA library: the browser's first page, a search, a 20-prompt preview.

The first page is what a user waits for when opening the library: the catalogue built from the scanned
records, page 1 searched, and its 48 cards' thumbnails made (cold: none cached yet).

    python benchmarks/tab.py [--loras 10000]
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

from lib_orchestrator.library import scan_library  # noqa: E402
from lib_orchestrator.library.overrides import OverrideStore  # noqa: E402
from lib_orchestrator.selection import LoraIndex  # noqa: E402
from lib_orchestrator.tab import TabModel  # noqa: E402
from lib_orchestrator.wildcards import PromptEngine  # noqa: E402
from tests.library_fixtures import generate  # noqa: E402


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loras", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        generate(scratch, size=args.loras, seed=6)
        root = os.path.join(scratch, "Lora")
        records = scan_library(root).records
        index = LoraIndex(records)
        engine = PromptEngine([str(ROOT / "wildcards")])
        model = TabModel(engine=lambda: engine, index=lambda: index, records=lambda: records,
                         checkpoint=lambda: ("sdxl", "Illustrious"),
                         overrides=OverrideStore(os.path.join(scratch, "o.json")), library_roots=lambda: [root],
                         saved_dir=os.path.join(scratch, "saved"), thumbs_dir=os.path.join(scratch, "thumbs"))
        (items, summary, _), first_page = timed(model.search, "", "", "", False, False, 0)
        searches = [timed(model.search, text, "", "", True, False, 0)[1]
                    for text in ("frieren", "watercolor", "add detail", "pixel art", "glowing runes", "zzz")]
        previews = [timed(model.compose_preview, "__templates/*__, {frieren|watercolor|}", seed, 20, "", "")[1]
                    for seed in range(5)]
    print(f"library: {len(records):,} files; {summary}")
    print(f"first page (catalogue + page 1 + {len(items)} thumbnails, cold): {first_page:.0f} ms   (goal ≤ 1000 ms)")
    print(f"search: median {statistics.median(searches):.1f} ms, max {max(searches):.1f} ms   (goal ≤ 100 ms)")
    print(f"preview of 20 composed prompts: median {statistics.median(previews):.0f} ms, "
          f"max {max(previews):.0f} ms   (goal ≤ 200 ms)")


if __name__ == "__main__":
    main()
