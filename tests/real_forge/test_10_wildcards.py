"""Step 10, issue 20's wildcards in the real host, over REST (txt2img, 1 step, 64×64) with a wildcard folder this
step writes and names in Settings › Extra wildcard folders:
- weighted entries: `.txt` lines `W::entry` and a YAML entry → weight map (a weight-0 entry never drawn, no
  `::` left in a prompt);
- a LoRA-carrying entry `<lora:NAME>` gets the library's weight (the tag ends `:W>` and Forge's `Lora hashes`
  says it was applied); an entry naming a LoRA the host lacks is never drawn;
- Settings › Immediate variables = batch: a batch of 3 shares `${who=!…}`, and back to image it need not;
- the tab lists the wildcard folders in search order, ours among them, the bundled first; an extension's
  `wildcards/` folder listed there serves a prompt;
- ADetailer, when installed: each image's ADetailer prompt (the infotext's `Orchestrator ADetailer`) names the
  character of that image's own prompt.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from typing import Any, Dict, List

from . import driver

SCREEN = "orchestrator_compose"
WHO = ["ann", "bea", "cid", "dot", "eve", "fay", "gus", "hal"]
# A LoRA the harness's library has (an SD 1.5 one, as the checkpoint): ORCH_FORGE_LORA names another.
LORA = os.environ.get("ORCH_FORGE_LORA", "watercolor_wash_sd15")


def _pack() -> str:
    root = tempfile.mkdtemp(prefix="orch-step10-")
    files = {
        "s10_color.txt": "3::crimson\n0.5 :: teal\n0::never-drawn\nochre\n",
        "s10_who.yaml": "s10_who:\n" + "".join(f"  {w}: 1\n" for w in WHO) + "  nobody: 0\n",
        "s10_look.txt": f"<lora:{LORA}> soft look\n<lora:s10_no_such_lora> missing look\n",
    }
    for name, text in files.items():
        with open(os.path.join(root, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    return root


def _txt2img(host: Any, prompt: str, batch: int = 1, scripts: Dict[str, Any] = None, seed: int = 1234) -> List[str]:
    body = {"prompt": prompt, "negative_prompt": "", "steps": 1, "width": 64, "height": 64, "seed": seed,
            "batch_size": batch, "n_iter": 1, "sampler_name": "Euler",
            "alwayson_scripts": {"Orchestrator": {"args": [True, True]}, **(scripts or {})}}
    answer = host.api("sdapi/v1/txt2img", body, timeout=600)
    return json.loads(answer["info"])["infotexts"]


def _prompt(infotext: str) -> str:
    return infotext.split("\nNegative prompt:")[0].split("\nSteps:")[0]


def test_weighted_lora_carrying_and_batch_variables_and_folders_in_the_real_host(step):
    page, checks, host = step.page, step.checks, step.host
    before = host.api("sdapi/v1/options")
    pack = _pack()
    step.note("pack", pack)
    host.api("sdapi/v1/options", {"orchestrator_wildcard_dirs": pack, "orchestrator_variables": "image"})
    try:
        # Weighted entries, and the LoRA-carrying one (the missing LoRA's entry is never drawn).
        infos = _txt2img(host, "__s10_color__ __s10_who__, __s10_look__", batch=4)
        prompts = [_prompt(i) for i in infos]
        step.note("weighted prompts", prompts)
        for prompt in prompts:
            color, who = prompt.split(" ")[:2]
            checks.check(color in ("crimson", "teal", "ochre"), f"weighted .txt: unexpected colour in {prompt!r}")
            checks.check(who.rstrip(",") in WHO, f"weight map: unexpected name in {prompt!r}")
            checks.check("::" not in prompt and "never-drawn" not in prompt and "nobody" not in prompt,
                         f"weights: a weight or a weight-0 entry reached the prompt {prompt!r}")
            checks.check("missing look" not in prompt and "s10_no_such_lora" not in prompt,
                         f"LoRA entries: the entry whose LoRA the host lacks was drawn: {prompt!r}")
            checks.check(re.search(rf"<lora:{re.escape(LORA)}:\d+(\.\d+)?>", prompt) is not None,
                         f"LoRA entries: expected <lora:{LORA}:W> with the library's weight in {prompt!r}")
        checks.check(all("Lora hashes" in i for i in infos), f"LoRA entries: Forge applied no LoRA: {infos[:1]}")

        # Variables per batch (Settings), then per image again.
        template = "${who=!__s10_who__} ${who} and ${who}, __s10_color__"
        host.api("sdapi/v1/options", {"orchestrator_variables": "batch"})
        shared_names = {_prompt(i).split(" ")[0] for i in _txt2img(host, template, batch=3, seed=77)}
        step.note("per batch", sorted(shared_names))
        checks.check(len(shared_names) == 1, f"variables per batch: expected one name for the batch, got "
                                             f"{sorted(shared_names)}")
        host.api("sdapi/v1/options", {"orchestrator_variables": "image"})
        per_image = {_prompt(i).split(" ")[0] for i in _txt2img(host, template, batch=6, seed=77)}
        step.note("per image", sorted(per_image))
        checks.check(len(per_image) > 1, f"variables per image: 6 images all drew {sorted(per_image)}")

        # The search order, as the tab shows it.
        driver.open_sub_tab(page, SCREEN)
        driver.click(page, "orchestrator_refresh_wildcards")
        shown = driver.wait_until(page, "w => (document.querySelector('#orchestrator_wildcard_order textarea')?.value "
                                        "?? '').includes(w)", os.path.basename(pack), timeout=driver.SHORT)
        order = driver.value_of(page, "orchestrator_wildcard_order")
        assert shown, f"the wildcard folders in search order: expected our folder {pack} listed; it shows {order!r}"
        step.note("search order", order)
        listed = [m.groups() for m in re.finditer(r"^\d+\. (.*) \((.*)\)$", order, re.M)]
        checks.check(bool(listed) and listed[0][1] == "bundled", f"search order: the bundled folder first; {order!r}")
        ours = ("bundled", "saved templates", "Settings")
        extension_folders = [path for path, origin in listed if origin not in ours]
        step.note("extension folders", extension_folders)
        for folder in extension_folders[:1]:
            names = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".txt")) if os.path.isdir(folder) else []
            if names:
                infos = _txt2img(host, f"__{names[0]}__")
                checks.check("__" not in _prompt(infos[0]), f"an extension's wildcard __{names[0]}__ was not "
                                                            f"expanded: {_prompt(infos[0])!r}")

        # ADetailer, when the host has it.
        scripts = host.api("sdapi/v1/scripts")
        if "adetailer" in [s.lower() for s in scripts.get("txt2img", [])]:
            unit = {"ad_model": "mediapipe_face_full", "ad_prompt": "close-up of __s10_who__'s face"}
            infos = _txt2img(host, "a portrait of __s10_who__, __s10_color__", batch=3,
                             scripts={"ADetailer": {"args": [True, False, unit]}}, seed=99)
            step.note("adetailer infotexts", infos)
            for info in infos:
                who = _prompt(info).split(" ")[3].rstrip(",")
                got = info.split("Orchestrator ADetailer: ", 1)[1][:400] if "Orchestrator ADetailer: " in info else ""
                checks.check(f"close-up of {who}'s face" in got,
                             f"ADetailer: expected this image's name {who!r} in its ADetailer prompt; {info!r}")
        else:
            step.note("adetailer", "not installed: skipped")
    finally:
        # GET lists only the options set so far: the others go back to their defaults
        defaults = {"orchestrator_wildcard_dirs": "", "orchestrator_variables": "image"}
        host.api("sdapi/v1/options", {k: before.get(k, default) for k, default in defaults.items()})
    checks.done()
