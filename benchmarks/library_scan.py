"""LoRA library scan: cold and warm scans of a generated 10k library, in-process and as the whole CLI
process, peak memory at 30k, and the anchor, in one run.

The anchor is a naive scan that hashes every file the way Civitai Helper does (full SHA-256 of each
model), timed on the same files. Generated LoRAs are a few KB, while real ones are 10-300 MB, so the
anchor is also extrapolated from measured hashing throughput to a realistic library.

"Whole process" is `python -m lib_orchestrator library scan DIR --cache FILE` with its table sent to
/dev/null, as a user's shell runs it (interpreter start-up, imports, scan, output). Each warm figure is
the min and median of --repeat runs: on a shared machine the min says what the code costs, the median what
a user waits. Beside each wall time, in brackets, the CPU time (user + system) it took, which other work on
the machine disturbs far less; the load average is printed with them.

    python benchmarks/library_scan.py [--count 10000] [--rss-count 30000] [--repeat 5] [--lora-mb 144]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib_orchestrator.library import ScanResult, scan_library  # noqa: E402
from tests.library_fixtures import generate  # noqa: E402

# Peak RSS of a fresh process. VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a
# child of this (large) process would report our peak, not its own.
RSS_PROBE = """
import resource, sys
from lib_orchestrator.library import scan_library
result = scan_library(sys.argv[1], sys.argv[2])
try:
    with open("/proc/self/status") as fh:
        peak_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
except OSError:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(result.records), peak_kb, int(result.snapshot))
"""

# As a user's shell runs it: bytecode cached (some sandboxes set PYTHONDONTWRITEBYTECODE).
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def naive_scan(root: str) -> float:
    """What Civitai Helper does for every model file it has not seen: read all of it."""
    start = time.perf_counter()
    for folder, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            if name.lower().endswith((".safetensors", ".pt", ".ckpt")):
                digest = hashlib.sha256()
                with open(os.path.join(folder, name), "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
    return time.perf_counter() - start


def hashing_throughput(scratch: str, megabytes: int = 256) -> float:
    """Bytes per second of SHA-256 over a real (not sparse) file."""
    path = os.path.join(scratch, "big.bin")
    with open(path, "wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(megabytes):
            fh.write(block)
    start = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    seconds = time.perf_counter() - start
    os.remove(path)
    return megabytes * (1 << 20) / seconds


def cli_scan(root: str, cache: str) -> Tuple[float, float]:
    """Wall and CPU seconds of one whole `library scan` process, its table to /dev/null."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lib_orchestrator", "library", "scan", root, "--cache", cache],
                   cwd=ROOT, env=CLI_ENV, stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def in_process(root: str, cache: str) -> Tuple[ScanResult, float]:
    """A scan and the CPU seconds it took."""
    start = time.process_time()
    result = scan_library(root, cache)
    return result, time.process_time() - start


def rss_probe(root: str, cache: str) -> Tuple[int, float, bool]:
    probe = subprocess.run([sys.executable, "-c", RSS_PROBE, root, cache], cwd=ROOT, env=CLI_ENV,
                           capture_output=True, text=True, check=True)
    count, kb, snapshot = probe.stdout.split()
    return int(count), int(kb) / 1024, snapshot == "1"


def spread(runs: List[Tuple[float, float]]) -> str:
    """min / median of the wall times, each with its CPU time."""
    ordered = sorted(runs)
    low, mid = ordered[0], ordered[(len(ordered) - 1) // 2]
    return f"{low[0]:.2f} ({low[1]:.2f}) / {mid[0]:.2f} ({mid[1]:.2f}) s"


def row(label: str, value: str, goal: str = "") -> None:
    print(f"{label:<48} {value:>27}  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rss-count", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each warm measure (min and median)")
    parser.add_argument("--lora-mb", type=float, default=144.0, help="typical LoRA size for the extrapolation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        lib = os.path.join(scratch, "lib")
        start = time.perf_counter()
        generate(lib, size=args.count, seed=1)
        print(f"generated {args.count:,} LoRAs in {time.perf_counter() - start:.1f} s")
        root = os.path.join(lib, "Lora")
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

        cold_process = cli_scan(root, os.path.join(scratch, "process.sqlite"))
        warm_process = [cli_scan(root, os.path.join(scratch, "process.sqlite")) for _ in range(args.repeat)]
        cache = os.path.join(scratch, "cache.sqlite")
        cold, cold_cpu = in_process(root, cache)
        warm = [in_process(root, cache) for _ in range(args.repeat)]
        assert all(w.snapshot and w.records == cold.records for w, _ in warm), "the warm scan must agree with the cold"
        loras = sum(r.is_lora for r in cold.records)
        naive = naive_scan(root)
        rate = hashing_throughput(scratch)
        extrapolated = loras * args.lora_mb * (1 << 20) / rate

        big = os.path.join(scratch, "big")
        generate(big, size=args.rss_count, seed=2)
        big_cache = os.path.join(scratch, "big.sqlite")
        count, rss_cold, _ = rss_probe(os.path.join(big, "Lora"), big_cache)
        _, rss_warm, hit = rss_probe(os.path.join(big, "Lora"), big_cache)
        load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"\nload average {load_before:.1f} before, {load_after:.1f} after; {os.cpu_count()} CPUs. "
          f"Wall time (CPU time); warm figures: min / median of {args.repeat} runs.\n")
    row("measure", "value", "goal")
    row(f"cold scan, {loras:,} LoRAs: scan alone", f"{cold.seconds:.2f} ({cold_cpu:.2f}) s", "≤ 10 s")
    row("cold scan: whole process (library scan)", f"{cold_process[0]:.2f} ({cold_process[1]:.2f}) s")
    row("warm rescan, nothing changed: scan alone", spread([(w.seconds, cpu) for w, cpu in warm]), "≤ 0.5 s")
    row("warm rescan: whole process (library scan)", spread(warm_process), "≤ 1.0 s")
    row(f"peak RSS, cold scan of {count:,} files", f"{rss_cold:.0f} MB", "≤ 200 MB")
    row(f"peak RSS, warm scan of {count:,} files" + ("" if hit else " (no snapshot!)"), f"{rss_warm:.0f} MB",
        "≤ 200 MB")
    row("naive full-hash scan, same generated files", f"{naive:.2f} s", f"(×{naive / cold.seconds:.1f} the cold scan)")
    row(f"naive scan at {args.lora_mb:.0f} MB a LoRA (hashing {rate / 2**20:.0f} MB/s)", f"{extrapolated:,.0f} s",
        f"(×{extrapolated / cold.seconds:,.0f} the cold scan)")


if __name__ == "__main__":
    main()
