"""The history index at 100k images: a cold scan, a warm stat-only rescan, search latency and peak memory, each
beside an anchor measured in the same run on the same files.

- Images: PNGs written byte by byte (an 8x8 image with a `parameters` tEXt chunk, as Pillow writes Forge's) with
  realistic infotexts (Forge's key order, LoRA tags and `Lora hashes`, some with the Orchestrator's keys, swatch
  groups), 1% JPEG and 1% WebP written by Forge's own way (Pillow + piexif EXIF UserComment, via
  tests/history/forge_images.py), 1,000 to a dated folder as Forge's outputs are. `--dir` keeps them between
  runs (generated once per count); the index is always new.
- Cold scan: a fresh process scans all of them into a new index (so its peak RSS is the scan's own: VmHWM).
  The files were just written or listed, so the OS's file cache is warm: this is the index's cold start, not a
  disk's. Anchor: Pillow's `Image.open(p).info` (what most galleries read metadata with) over a sample, and our
  own reader + infotext parser over the same sample, in files per second.
- Warm rescan: nothing changed, so every file costs a stat (goal <= 2 s). Anchor: a bare os.walk + os.stat of
  the same tree, the floor any incremental scan in Python stands on.
- Search: history/search.py's search() over realistic queries (words, phrases, prefixes, NOT, OR, a LoRA, a
  filter, sorts), each run --repeat times; p50/p95 (goal p95 <= 50 ms). Anchor: what Infinite Image Browsing does,
  `parameters LIKE '%word%'` for each word over the same table, a page of 48 and the count of matches.

    python benchmarks/history.py [--count 100000] [--quick] [--dir DIR] [--repeat 3] [--sample 2000]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib_orchestrator.history.imagefile import read_image_info  # noqa: E402
from lib_orchestrator.history.infotext import parse_infotext  # noqa: E402
from lib_orchestrator.history.store import HistoryStore  # noqa: E402

PER_FOLDER = 1000
GENERATOR_VERSION = 1  # part of the marker: a change to what is generated makes --dir generate again
GOAL_WARM_S = 2.0
GOAL_SEARCH_P95_MS = 50.0

# -- realistic infotexts ---------------------------------------------------------------------------------------

SUBJECTS = ("1girl", "1boy", "a woman", "an old man", "a knight in armor", "a cat", "a dog", "a dragon", "a robot",
            "a witch", "a samurai", "an astronaut", "a fox", "two girls", "a wizard", "a mermaid", "a vampire",
            "a detective", "a barista", "a dancer", "an elf archer", "a cyborg", "a pirate captain", "a nun")
DETAILS = ("red hair", "long silver hair", "blue eyes", "freckles", "smiling", "looking at viewer", "red coat",
           "school uniform", "kimono", "leather jacket", "hooded cloak", "glasses", "holding a sword",
           "holding an umbrella", "sitting", "from behind", "full body", "upper body", "close-up", "wind",
           "floating hair", "tattoos", "white dress", "armor", "cat ears", "headphones", "scarf")
SETTINGS = ("city street at night", "neon city in the rain", "on a beach at sunset", "forest clearing", "castle",
            "cozy cafe", "mountain top", "snowy village", "by a lake at dawn", "old library", "cherry blossoms",
            "desert ruins", "rooftop", "classroom", "summer festival", "spaceship interior", "underwater",
            "harbour in fog", "flower field", "cyberpunk alley", "gothic cathedral", "misty swamp", "train station")
STYLES = ("masterpiece, best quality", "highly detailed", "soft lighting", "dramatic lighting", "cinematic",
          "watercolor", "oil painting", "anime screencap", "photorealistic", "film grain", "score_9, score_8_up",
          "sharp focus", "depth of field", "volumetric light", "pastel colors", "monochrome", "ukiyo-e")
NEGATIVES = ("lowres, bad anatomy, bad hands, text, error, missing fingers, worst quality, jpeg artifacts",
             "blurry, lowres, watermark", "score_4, score_5, score_6, ugly, deformed", "nsfw, extra limbs",
             "cartoon, 3d, sketch", "")
CHECKPOINTS = (("ponyDiffusionV6XL", "67ab2fd8ec"), ("illustriousXL_v01", "8a9bc0d1e2"),
               ("v1-5-pruned-emaonly", "6ce0161689"), ("animagineXL_v31", "e3c47aedb0"),
               ("juggernautXL_v9", "c9e3e68f89"), ("flux1-dev-fp8", "b3d1e2a4c5"))
SAMPLERS = (("Euler a", "Automatic"), ("DPM++ 2M", "Karras"), ("DPM++ SDE", "Karras"), ("Euler", "Automatic"),
            ("DPM++ 2M SDE", "Exponential"))
SIZES = ("832x1216", "1024x1024", "1216x832", "512x768", "768x512", "896x1152")
LORA_WORDS = ("detail", "neon", "noir", "ink", "watercolor", "pixel", "retro", "anime", "realistic", "style",
              "lighting", "armor", "hair", "eyes", "cyber", "gothic", "pastel", "sketch", "film", "glow")
LORAS = tuple(f"{LORA_WORDS[i % 20]}_{LORA_WORDS[(i * 7 + 3) % 20]}_v{i % 5 + 1}" for i in range(300))
REASONS = ("match", "match", "semantic", "trigger", "user", "pinned", "detailer")
QUERIES = ("castle", "red coat", '"city street"', "neon*", "samurai -night", "cat OR dog", "masterpiece best quality",
           "lora:detail_noir_v1", "watercolor", "forest fog", "cyberpunk alley rain", "1girl smiling", "dragon",
           "kimono cherry blossoms", "astronaut underwater", "old library", "glasses", "model:ponyDiffusionV6XL knight",
           "score_9", "witch castle", "harbour", "pirate", "white dress flower field", "portrait", "zzzunknownword")


def infotext(rng: random.Random, n: int) -> str:
    """A Forge infotext for image `n`: 40% made with the Orchestrator on (its template and LoRAs keys)."""
    prompt, negative, params = _base(rng)
    loras = [(rng.choice(LORAS), rng.choice((0.3, 0.5, 0.6, 0.7, 0.8, 0.8, 1.0, 1.0, 1.2)))
             for _ in range(rng.choice((0, 1, 1, 2, 2, 3)))]
    loras = list(dict(loras).items())
    if rng.random() < 0.4:
        params.append(("Orchestrator template", f"__templates/{rng.choice(('noir', 'portrait', 'fantasy'))}__"))
        params.append(("Orchestrator LoRAs", '"' + ("; ".join(f"{name}:{weight:g}:{rng.choice(REASONS)}"
                                                              for name, weight in loras) or "none") + '"'))
        if rng.random() < 0.3:
            params.append(("Orchestrator batch", f"set {n % 17} #{n % 50}"))
    return _join(prompt + "".join(f" <lora:{name}:{weight:g}>" for name, weight in loras), negative, params, loras)


def swatch_texts(rng: random.Random, n: int, cells: int) -> List[str]:
    """A swatch: one prompt and seed, a baseline and cells of one LoRA each, sharing an `Orchestrator group`."""
    prompt, negative, params = _base(rng)
    group = ("Orchestrator group", f"{n:016x}")
    texts = [_join(prompt, negative, params + [("Orchestrator swatch", "baseline"), group], [])]
    for name in rng.sample(LORAS, cells - 1):
        weight = rng.choice((0.5, 0.8, 1.0))
        texts.append(_join(f"{prompt} <lora:{name}:{weight:g}>", negative,
                           params + [("Orchestrator swatch", f'"{name}:{weight:g}"'), group], [(name, weight)]))
    return texts


def _base(rng: random.Random) -> Tuple[str, str, List[Tuple[str, str]]]:
    subject = rng.choice(SUBJECTS)
    details = ", ".join(rng.sample(DETAILS, rng.randint(1, 4)))
    prompt = f"{rng.choice(STYLES)}, {subject}, {details}, {rng.choice(SETTINGS)}, {rng.choice(STYLES)}"
    checkpoint, model_hash = rng.choice(CHECKPOINTS)
    sampler, schedule = rng.choice(SAMPLERS)
    params = [("Steps", str(rng.choice((20, 25, 28, 30)))), ("Sampler", sampler), ("Schedule type", schedule),
              ("CFG scale", str(rng.choice((5, 6, 6.5, 7)))), ("Seed", str(rng.randrange(2 ** 32))),
              ("Size", rng.choice(SIZES)), ("Model hash", model_hash), ("Model", checkpoint)]
    if rng.random() < 0.2:
        params += [("Denoising strength", "0.4"), ("Hires upscale", "1.5"), ("Hires upscaler", "R-ESRGAN 4x+")]
    return prompt, rng.choice(NEGATIVES), params


def _join(prompt: str, negative: str, params: List[Tuple[str, str]], loras: Sequence[Tuple[str, float]]) -> str:
    if loras:
        params = params + [("Lora hashes", '"' + ", ".join(f"{name}: {hashlib.sha256(name.encode()).hexdigest()[:12]}"
                                                           for name, _ in loras) + '"')]
    line = ", ".join(f"{k}: {v}" for k, v in params + [("Version", "f2.0.1v1.10.1-1.10.1")])
    return prompt + (f"\nNegative prompt: {negative}" if negative else "") + f"\n{line}"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


_IHDR = _chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
_IDAT = _chunk(b"IDAT", zlib.compress(b"".join(b"\0" + bytes(24) for _ in range(8))))
_IEND = _chunk(b"IEND", b"")


def png_bytes(text: str) -> bytes:
    """An 8x8 RGB PNG with `text` as its `parameters` tEXt chunk, before the pixels (where Pillow puts it)."""
    return b"\x89PNG\r\n\x1a\n" + _IHDR + _chunk(b"tEXt", b"parameters\0" + text.encode("latin-1")) + _IDAT + _IEND


def generate(root: str, count: int) -> float:
    """`count` images under `root` (kept: generated once per count and version). Seconds it took (0 if kept)."""
    marker = os.path.join(root, f".generated-{count}-v{GENERATOR_VERSION}")
    if os.path.exists(marker):
        return 0.0
    from tests.history.forge_images import write_jpeg, write_webp

    start = time.perf_counter()
    rng = random.Random(18)
    base = time.time() - 365 * 86400
    pending: List[str] = []  # the rest of a swatch under way
    for n in range(count):
        folder = os.path.join(root, "txt2img-images", f"day-{n // PER_FOLDER:04}")
        if n % PER_FOLDER == 0:
            os.makedirs(folder, exist_ok=True)
        if not pending and n % 200 == 0:  # 4% of the images are swatch cells, in swatches of 8
            pending = swatch_texts(rng, n, 8)
        text = pending.pop(0) if pending else infotext(rng, n)
        kind = n % 100
        path = os.path.join(folder, f"{n:06}-{n * 7919 % 10 ** 9}")
        if kind == 50:
            path += ".jpg"
            write_jpeg(path, text, color=n)
        elif kind == 51:
            path += ".webp"
            write_webp(path, text, color=n)
        else:
            path += ".png"
            with open(path, "wb") as fh:
                fh.write(png_bytes(text))
        at = base + n * (365 * 86400 / count)
        os.utime(path, (at, at))
    open(marker, "w").close()
    return time.perf_counter() - start


# -- measures ----------------------------------------------------------------------------------------------------

# A fresh interpreter scans into a new index: its time, what it found, its peak RSS (VmHWM, not ru_maxrss: Linux
# carries ru_maxrss across fork+exec, so a child of this process would report ours).
SCAN_PROBE = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from lib_orchestrator.history.store import HistoryStore
start = time.perf_counter()
store = HistoryStore(sys.argv[1])
stats = store.scan([sys.argv[2]])
wall = time.perf_counter() - start
store.close()
cpu = resource.getrusage(resource.RUSAGE_SELF)
try:
    with open("/proc/self/status") as fh:
        peak_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
except OSError:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": stats.seconds, "wall": wall, "cpu": cpu.ru_utime + cpu.ru_stime, "seen": stats.seen,
                  "added": stats.added, "problems": stats.problems, "peak_mb": peak_kb / 1024}))
"""


def scan_probe(db: str, root: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SCAN_PROBE, db, root, str(ROOT)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def walk_and_stat(root: str) -> Tuple[float, int]:
    """The floor: every file of the tree listed and stat'ed, nothing else."""
    start = time.perf_counter()
    n = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            os.stat(os.path.join(folder, name))
            n += 1
    return time.perf_counter() - start, n


def sample_files(root: str, size: int) -> List[str]:
    paths = [os.path.join(f, n) for f, _d, names in os.walk(root) for n in names if not n.startswith(".")]
    return random.Random(1).sample(paths, min(size, len(paths)))


def per_second(paths: Sequence[str], read: Callable[[str], object]) -> float:
    start = time.perf_counter()
    for p in paths:
        read(p)
    return len(paths) / (time.perf_counter() - start)


def pillow_info(path: str) -> object:
    from PIL import Image

    with Image.open(path) as image:
        return image.info


def ours(path: str) -> object:
    info = read_image_info(path)
    return parse_infotext(info.text) if info.text else None


def percentiles(ms: List[float]) -> Tuple[float, float]:
    ordered = sorted(ms)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


def search_latencies(store: HistoryStore, repeat: int) -> Tuple[List[float], List[str]]:
    """ms per search() over QUERIES (each as typed, then newest first, then with a filter), repeat times."""
    try:
        from lib_orchestrator.history.search import SearchQuery, search
    except ImportError:  # TODO(lead): history/search.py is helper Q's; without it there is no search to time
        return [], ["history/search.py is missing: search not measured"]
    queries = ([SearchQuery(text=q) for q in QUERIES] + [SearchQuery(text=q, sort="newest") for q in QUERIES[:8]]
               + [SearchQuery(text=q, min_stars=3) for q in QUERIES[:4]] + [SearchQuery(lora=LORAS[7])]
               + [SearchQuery(checkpoint="ponyDiffusionV6XL", sort="stars")] + [SearchQuery()])
    for q in queries:  # once untimed: the first use of each plan, not what a user waits for after the first search
        search(store, q)
    ms: List[float] = []
    for _ in range(repeat):
        for q in queries:
            start = time.perf_counter()
            search(store, q)
            ms.append((time.perf_counter() - start) * 1000)
    return ms, []


def like_latencies(store: HistoryStore, repeat: int) -> List[float]:
    """The anchor: each word of each query as `parameters LIKE '%word%'` (what IIB does over its exif text), a
    page of 48 newest and the count, over the same table."""
    ms: List[float] = []
    word_lists = [[w.strip('"*').lstrip("-") for w in q.replace(" OR ", " ").split() if ":" not in w] or [q]
                  for q in QUERIES]
    for _ in range(repeat):
        for words in word_lists:
            where = " AND ".join("parameters LIKE ?" for _ in words)
            args = [f"%{w}%" for w in words]
            start = time.perf_counter()
            store.db.execute(f"SELECT id FROM images WHERE present = 1 AND {where} ORDER BY created DESC LIMIT 48",
                             args).fetchall()
            store.db.execute(f"SELECT count(*) FROM images WHERE present = 1 AND {where}", args).fetchone()
            ms.append((time.perf_counter() - start) * 1000)
    return ms


def rate_some(store: HistoryStore, share: float = 0.01) -> List[float]:
    """Ratings on 1% of the images, so filters and sorts by stars have something to find: ms per rate()."""
    rng = random.Random(5)
    ids = [i for (i,) in store.db.execute("SELECT id FROM images")]
    ms = []
    for image_id in rng.sample(ids, int(len(ids) * share)):
        start = time.perf_counter()
        store.rate(image_id, stars=rng.randint(1, 5), favourite=rng.random() < 0.1)
        ms.append((time.perf_counter() - start) * 1000)
    return ms


def pair_latencies(store: HistoryStore, times: int = 20) -> Tuple[List[float], int]:
    """ms per next_pair() (the Compare mode's next pair), each judged so the next call sees one more comparison."""
    rng = random.Random(9)
    ms = []
    for _ in range(times):
        start = time.perf_counter()
        pair = store.next_pair(rng)
        ms.append((time.perf_counter() - start) * 1000)
        if pair is None:
            return ms, 0
        store.compare(pair[0].id, pair[1].id, rng.choice(("left", "right", "tie")))
    groups = store.db.execute("SELECT count(DISTINCT group_key) FROM images WHERE present = 1 AND group_key != '' "
                              "AND group_key IN (SELECT group_key FROM images WHERE present = 1 AND group_key != '' "
                              "GROUP BY group_key HAVING count(*) > 1)").fetchone()[0]
    return ms, int(groups)


def row(label: str, value: str, note: str = "") -> None:
    print(f"{label:<52} {value:>24}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 images")
    parser.add_argument("--dir", default="", help="where the images are kept between runs (default: a temp folder)")
    parser.add_argument("--repeat", type=int, default=3, help="warm rescans and rounds of searches")
    parser.add_argument("--sample", type=int, default=2000, help="files read by the cold-read anchors")
    args = parser.parse_args()
    count = 10_000 if args.quick else args.count
    with tempfile.TemporaryDirectory() as scratch:
        images = os.path.join(args.dir or scratch, f"images-{count}")  # one tree per count: --quick beside 100k
        made = generate(images, count)
        print(f"{count:,} images in {images}: " + (f"generated in {made:.1f} s" if made else "kept from a run before"))
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        db = os.path.join(scratch, "history.sqlite")

        cold = scan_probe(db, images)
        assert cold["seen"] == count and cold["added"] == count, cold
        with HistoryStore(db) as store:
            warm = [store.scan([images]) for _ in range(args.repeat)]
            assert all(w.unchanged == count and w.added == w.updated == 0 for w in warm), warm
            walks = [walk_and_stat(images) for _ in range(args.repeat)]
            sample = sample_files(images, args.sample)
            pillow_rate = per_second(sample, pillow_info)
            read_rate = per_second(sample, read_image_info)
            our_rate = per_second(sample, ours)
            rate_ms = rate_some(store)
            pair_ms, groups = pair_latencies(store)
            search_ms, search_notes = search_latencies(store, args.repeat)
            like_ms = like_latencies(store, args.repeat)
            size_mb = sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s)) / 2 ** 20
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"\nload average {load_before:.1f} before, {load_after:.1f} after; {os.cpu_count()} CPUs; "
          f"Python {sys.version.split()[0]}. Warm figures: min / median of {args.repeat} runs.\n")
    row("measure", "value", "anchor or goal")
    row(f"cold scan of {count:,} images (new index, fresh process)",
        f"{cold['seconds']:.1f} s, {count / cold['seconds']:,.0f} files/s",
        f"(CPU {cold['cpu']:.1f} s; {cold['problems']} problems)")
    row(f"  read_image_info alone, {len(sample):,}-file sample", f"{read_rate:,.0f} files/s",
        f"Pillow Image.open().info: {pillow_rate:,.0f} files/s")
    row("  read_image_info + parse_infotext, same sample", f"{our_rate:,.0f} files/s")
    warm_s = sorted(w.seconds for w in warm)
    walk_s = sorted(w[0] for w in walks)
    row("warm rescan, nothing changed (stat only)",
        f"{warm_s[0]:.2f} / {statistics.median(warm_s):.2f} s", f"goal <= {GOAL_WARM_S:.0f} s")
    row("  anchor: bare os.walk + os.stat of the same tree",
        f"{walk_s[0]:.2f} / {statistics.median(walk_s):.2f} s", f"(the scan is x{warm_s[0] / walk_s[0]:.1f})")
    if search_ms:
        p50, p95 = percentiles(search_ms)
        row(f"search() p50 / p95, {len(search_ms)} searches", f"{p50:.1f} / {p95:.1f} ms",
            f"goal p95 <= {GOAL_SEARCH_P95_MS:.0f} ms; max {max(search_ms):.1f} ms")
    else:
        row("search()", "not measured", "; ".join(search_notes))
    l50, l95 = percentiles(like_ms)
    row("  anchor: LIKE '%word%' per word (IIB), page + count", f"{l50:.1f} / {l95:.1f} ms",
        f"({len(like_ms)} queries)")
    r50, r95 = percentiles(rate_ms)
    row(f"rate() p50 / p95, {len(rate_ms):,} ratings", f"{r50:.2f} / {r95:.2f} ms", "(one write transaction each)")
    n50, n95 = percentiles(pair_ms)
    row(f"next_pair() p50 / p95, {len(pair_ms)} pairs", f"{n50:.1f} / {n95:.1f} ms",
        f"({groups:,} groups of two or more images)")
    row("peak RSS, cold scan process", f"{cold['peak_mb']:.0f} MB")
    row("peak RSS, this process (warm scans, searches)", f"{peak_mb:.0f} MB")
    row("index file", f"{size_mb:.0f} MB", f"({size_mb * 2 ** 20 / count / 1024:.1f} KB an image)")


if __name__ == "__main__":
    main()
