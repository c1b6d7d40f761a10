"""The cost of the AlwaysOn script's process() for a 100-image job against a 10k-LoRA library.

The real scripts/orchestrator.py is loaded into the Forge stand-in (tests/forge_stub) and its process()
is called on a processing object as Forge hands it over (all_prompts, all_seeds, hires prompts filled),
with the library already indexed, as it is in a running Forge (the index is built in the background).

    python benchmarks/forge_process.py [--images 100] [--loras 10000] [--jobs 20]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib_orchestrator.library import scan_library  # noqa: E402
from lib_orchestrator.selection import LoraIndex  # noqa: E402
from tests.library_fixtures import generate  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "forge_stub"))

TEMPLATE = "__templates/*__, {1girl|1boy|landscape}, {frieren|watercolor|pixel art|add detail|}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--loras", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    scratch = tempfile.mkdtemp()
    generate(scratch, size=args.loras, seed=4)
    scratch_loras = os.path.join(scratch, "Lora")
    index = LoraIndex(scan_library(scratch_loras).records)
    import stub_control

    from tests.forge import fake_gradio

    stub_control.reset(lora_dir=scratch_loras)
    sys.modules.setdefault("gradio", fake_gradio)
    import networks
    from modules import processing, scripts, sd_models, shared

    shared.sd_model = sd_models.make_model("illustriousXL.safetensors", "cd" * 32, family="sdxl")
    module = scripts.load_script_file(str(ROOT / "scripts" / "orchestrator.py"))
    module.LIBRARY._index = index  # what the background scan leaves behind
    networks.available_network_aliases.update({r.name: None for r in index.records})  # Forge's list
    module.state.last_known = set(networks.available_network_aliases) | set(networks.available_networks)
    script = module.OrchestratorScript()

    per_image = []
    for job in range(args.jobs):
        p = processing.StableDiffusionProcessingTxt2Img(prompt=TEMPLATE, negative_prompt="lowres",
                                                         batch_size=1, n_iter=args.images, enable_hr=True)
        p.all_prompts = [TEMPLATE] * args.images
        p.all_negative_prompts = ["lowres"] * args.images
        p.all_hr_prompts = [TEMPLATE] * args.images
        p.all_hr_negative_prompts = ["lowres"] * args.images
        p.all_seeds = list(range(job * args.images, (job + 1) * args.images))
        with contextlib.redirect_stderr(io.StringIO()):  # the script's per-image warnings
            start = time.perf_counter()
            script.process(p, True)
            per_image.append((time.perf_counter() - start) / args.images * 1000)
        assert len(p.all_prompts) == args.images and "<lora:" in " ".join(p.all_prompts)
    print(f"{args.jobs} jobs of {args.images} images (hires on) against {len(index.records):,} LoRAs")
    print(f"process() per image: median {statistics.median(per_image):.3f} ms, worst job {max(per_image):.3f} ms "
          f"(goal ≤ 2 ms)")
    shutil.rmtree(scratch, ignore_errors=True)

if __name__ == "__main__":
    main()
