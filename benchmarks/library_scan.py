"""LoRA library scan: cold and warm scans of generated libraries, peak memory, and the anchor.

The anchor is a naive scan that hashes every file the way Civitai Helper does (full SHA-256 of each
model), timed on the same files. Generated LoRAs are a few KB, while real ones are 10-300 MB, so the
anchor is also extrapolated from measured hashing throughput to a realistic library.

    python benchmarks/library_scan.py [--count 10000] [--rss-count 30000] [--lora-mb 144]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib_orchestrator.library import scan_library  # noqa: E402
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
print(len(result.records), peak_kb)
"""


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rss-count", type=int, default=30_000)
    parser.add_argument("--lora-mb", type=float, default=144.0, help="typical LoRA size for the extrapolation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        lib = os.path.join(scratch, "lib")
        start = time.perf_counter()
        generate(lib, size=args.count, seed=1)
        print(f"generated {args.count:,} LoRAs in {time.perf_counter() - start:.1f} s")
        root, cache = os.path.join(lib, "Lora"), os.path.join(scratch, "cache.sqlite")

        cold = scan_library(root, cache)
        warm = scan_library(root, cache)
        loras = sum(r.is_lora for r in cold.records)
        naive = naive_scan(root)
        rate = hashing_throughput(scratch)
        extrapolated = loras * args.lora_mb * (1 << 20) / rate

        big = os.path.join(scratch, "big")
        generate(big, size=args.rss_count, seed=2)
        probe = subprocess.run([sys.executable, "-c", RSS_PROBE, os.path.join(big, "Lora"),
                                os.path.join(scratch, "big.sqlite")], cwd=ROOT, capture_output=True, text=True,
                               check=True)
        count, rss_kb = probe.stdout.split()

    print(f"\n{'measure':<48} {'value':>12} {'goal':>10}")
    print(f"{'cold scan, ' + format(loras, ',') + ' LoRAs':<48} {cold.seconds:>10.2f} s {'≤ 10 s':>10}")
    print(f"{'warm rescan (cache, nothing changed)':<48} {warm.seconds:>10.2f} s {'≤ 0.5 s':>10}")
    print(f"{'peak RSS, cold scan of ' + format(int(count), ',') + ' files':<48} {int(rss_kb) / 1024:>9.0f} MB "
          f"{'≤ 200 MB':>10}")
    print(f"{'naive full-hash scan, same generated files':<48} {naive:>10.2f} s   (×{naive / cold.seconds:.1f})")
    label = f"naive scan at {args.lora_mb:.0f} MB a LoRA (hashing {rate / 2**20:.0f} MB/s)"
    print(f"{label:<48} {extrapolated:>10.0f} s   (×{extrapolated / cold.seconds:,.0f} the cold scan)")


if __name__ == "__main__":
    main()
