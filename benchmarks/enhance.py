"""The enhancement step's own cost, next to the LLM's: what Orchestrator adds to each image.

Measures per prompt, against a local fake server that answers at once: (1) the first call (protect,
template, HTTP round trip, cleanup, restore, budget, cache write); (2) a repeated image seed (cache hit, no
HTTP); (3) a dead server after the breaker opened. The anchor is a real small model on a consumer GPU:
2–3 s per answer warm (research/llm-enhance.md §1.4), 30–60 s cold.

    python benchmarks/enhance.py [--prompts 300]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib_orchestrator.enhance import AnswerCache, EnhanceOptions, Enhancer  # noqa: E402
from tests.enhance.fake_servers import FakeServer, backend  # noqa: E402

PROMPT = "score_9, 1girl, (red hair:1.2), a lighthouse on a cliff, {k}, storm, [day:night:0.5] <lora:ink:0.8>"
ANCHOR_WARM_S = 2.5


def per_prompt_ms(call, n: int) -> float:
    times = []
    for k in range(n):
        start = time.perf_counter()
        call(k)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=300)
    args = parser.parse_args()
    server = FakeServer(backend("lmstudio", think=True, chatter=True))
    with tempfile.TemporaryDirectory() as scratch:
        enhancer = Enhancer(EnhanceOptions(url=server.url, model="small-model"),
                            AnswerCache(str(Path(scratch) / "answers.jsonl")))
        first = per_prompt_ms(lambda k: enhancer(PROMPT.format(k=k), k, "sdxl", "Pony"), args.prompts)
        again = per_prompt_ms(lambda k: enhancer(PROMPT.format(k=k), k, "sdxl", "Pony"), args.prompts)
        restarted = Enhancer(EnhanceOptions(url=server.url, model="small-model"),
                             AnswerCache(str(Path(scratch) / "answers.jsonl")))
        start = time.perf_counter()
        restarted(PROMPT.format(k=0), 0, "sdxl", "Pony")
        reload_ms = (time.perf_counter() - start) * 1000
    server.close()
    dead = Enhancer(EnhanceOptions(url="http://127.0.0.1:9/v1", model="m"))
    for k in range(3):
        dead(PROMPT.format(k=k), k, "sdxl")  # opens the breaker
    skipped = per_prompt_ms(lambda k: dead(PROMPT.format(k=k), k, "sdxl"), args.prompts)
    print(f"{args.prompts} prompts, medians per prompt:")
    print(f"  first call (fake server answering at once): {first:8.3f} ms   "
          f"vs a warm small model ~{ANCHOR_WARM_S * 1000:,.0f} ms: {first / (ANCHOR_WARM_S * 10):.2f}% added")
    print(f"  same image seed again (cache hit):          {again:8.3f} ms   "
          f"{ANCHOR_WARM_S * 1000 / again:,.0f}x faster than asking")
    print(f"  after a restart, {args.prompts} answers re-read: {reload_ms:8.3f} ms for the first prompt")
    print(f"  dead server, breaker open:                  {skipped:8.3f} ms")


if __name__ == "__main__":
    main()
