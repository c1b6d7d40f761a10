"""Step 7, matching by meaning: the LoRA library's status line says the LoRAs were embedded; a Compose preview of
a prompt that names no LoRA word (sunbeams for god rays) picks god_rays_sd15 with reason `semantic` and its
similarity; a prompt about nothing in the folder gets no character; Settings has the matching options; the
REST arg 10 (`keyword`) turns meaning off for a request and is recorded in the infotext."""
from __future__ import annotations

import json
import re

from . import driver
from .test_1_compose import ROWS

DESCRIBED = "sunbeams piercing through the clouds over a quiet valley"
UNRELATED = "a bowl of fruit on a wooden table"
CHARACTER = "lighthouse_keeper_sd15"  # the one character of the host's folder (/work/hosts/make_loras.py)


def test_matching_by_meaning_in_the_tab_settings_and_rest(step):
    page, checks = step.page, step.checks

    driver.open_sub_tab(page, "orchestrator_library")
    status = driver.wait_for_text(page, "#orchestrator_summary", "embedded by builtin", timeout=driver.UI,
                                  what="the library's status line")
    step.note("library_status", status)
    checks.check("embedded by builtin" in status,
                 f"Library: expected the status line to say the LoRAs were embedded by the builtin embedder; it says "
                 f"{status!r}")

    driver.open_sub_tab(page, "orchestrator_compose")
    for template, wanted in ((DESCRIBED, "god_rays_sd15"), (UNRELATED, None)):
        driver.fill(page, "orchestrator_template", template)
        driver.fill(page, "orchestrator_count", 3)
        driver.click(page, "orchestrator_preview")
        shown = driver.wait_until(page, "(t) => [...document.querySelectorAll('#orchestrator_preview_table td')]"
                                        ".some(td => td.innerText.includes(t))", template.split(",")[0],
                                  timeout=driver.UI)
        rows = page.evaluate(ROWS) or []
        step.note(f"preview {template}", rows)
        assert shown and rows, f"Preview of {template!r}: no table; lint {driver.value_of(page, 'orchestrator_lint')!r}"
        texts = " | ".join(r["lora_text"] for r in rows)
        if wanted:
            checks.check(all(wanted in r["loras"] for r in rows) and re.search(r"semantic, score 0\.\d+", texts),
                         f"Preview of {template!r}: expected {wanted} picked as `semantic` with its similarity as the "
                         f"score in every row; the LoRAs column says {texts!r}")
        checks.check(not any(CHARACTER in r["loras"] for r in rows),
                     f"Preview of {template!r}: the character {CHARACTER} was picked, which names nothing of it: "
                     f"{texts!r}")
    step.shot("compose-semantic")

    driver.open_top_tab(page, "settings")
    section = page.locator("button", has_text=re.compile(r"Orchestrator \d+\.\d+")).first
    section.click()
    labels = ("LoRA matching", "What gives LoRAs and prompts their meaning", "Embedding model on that server")
    found = {label: driver.wait_until(page, "(t) => document.body.innerText.includes(t)", label, timeout=driver.SHORT)
             for label in labels}
    step.note("settings_labels", found)
    checks.check(all(found.values()), f"Settings: expected the matching options {labels}; found {found}")
    step.shot("settings-matching")

    def generate(args):
        body = {"prompt": DESCRIBED, "seed": 7, "steps": 1, "width": 64, "height": 64, "n_iter": 1,
                "save_images": False, "alwayson_scripts": {"orchestrator": {"args": args}}}
        info = json.loads(step.host.api("sdapi/v1/txt2img", body, timeout=driver.GENERATION / 1000)["info"])
        return info["infotexts"][0]

    plain = [True, True, 1, 1, 0.0, "", False, "", False, ""]
    hybrid, keyword = generate(plain), generate(plain + ["keyword"])
    step.note("rest_infotexts", {"hybrid": hybrid, "keyword": keyword})
    checks.check("god_rays_sd15:0.7:semantic" in hybrid,
                 f"REST (10 args, hybrid by default): expected 'god_rays_sd15:0.7:semantic' in the infotext; it is "
                 f"{hybrid!r}")
    checks.check('\\"match\\":\\"keyword\\"' in keyword and ":semantic" not in keyword,
                 f"REST arg 10 = keyword: expected the Orchestrator value to record match keyword and no semantic "
                 f"pick; the infotext is {keyword!r}")
    checks.done()
