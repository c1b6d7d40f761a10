"""Step 9, Run on all servers: Settings › Servers names the second host (ORCH_FORGE_SECOND_URL, when set) and this
Forge takes part through its own API (it was started with --api); a 4-image batch (1 step, 64×64) planned in the
tab is made by *Run on all servers*: the status ends "finished: 4/4 done" with a line per server, each image is
made once (4 tiles, 4 ✔), the second host made at least one, no "Error" badge."""
from __future__ import annotations

import os
import re

from . import driver
from .test_4_batches import TABLE, TEMPLATE

SCREEN = "orchestrator_batches"
SECOND = os.environ.get("ORCH_FORGE_SECOND_URL", "").strip().rstrip("/")


def test_run_on_all_servers_makes_each_image_once_across_the_hosts(step):
    page, checks = step.page, step.checks
    step.host.api("sdapi/v1/options", {"orchestrator_servers": SECOND, "orchestrator_dispatch_here": True})
    name = driver.unique("e2e dispatch")
    file = f"{name}.json"
    step.note("batch", file)
    step.note("second server", SECOND or "(none: this Forge alone)")
    driver.open_sub_tab(page, SCREEN)
    driver.fill_batch_form(page, TEMPLATE, 4, name)
    driver.click(page, "orchestrator_batch_save")
    saved = driver.wait_for_text(page, "#orchestrator_batch_status", r"saved|error", what="Plan and save")
    assert "saved 4 images" in saved, f"Plan and save: expected 'saved 4 images'; the status says {saved!r}"
    driver.pick_dropdown(page, "orchestrator_batch_files", file)
    driver.wait_for_text(page, "#orchestrator_batch_status", r"0/4 images done", what="the picked batch's status")

    driver.click(page, "orchestrator_batch_run_all")
    ended = driver.wait_for_text(page, "#orchestrator_batch_status", r"^\s*(error|finished|stopped)",
                                 timeout=4 * driver.GENERATION, what="Run on all servers")
    step.note("status", ended)
    assert ended.startswith("finished: 4/4 done"), f"Run on all servers: expected 'finished: 4/4 done'; the status " \
                                                   f"says {ended!r}"
    servers = re.findall(r"(http://\S+) \[(\w+)\][^\n]*· (\d+) done", ended)
    step.note("servers", servers)
    checks.check(len(servers) == (2 if SECOND else 1),
                 f"Run on all servers: expected a line per server in the status; it says {ended!r}")
    if SECOND:
        made_there = sum(int(done) for url, _, done in servers if url.rstrip("/").endswith(SECOND.split("//")[1]))
        checks.check(made_there >= 1, f"Run on all servers: the second host {SECOND} made no image: {ended!r}")

    driver.wait_gallery(page, "orchestrator_batch_gallery", 4, timeout=driver.SHORT)
    shown = driver.gallery(page, "orchestrator_batch_gallery")
    checks.check(shown["count"] == 4, f"Run on all servers: expected the batch's 4 images in the gallery; it shows "
                                      f"{shown['count']}")
    marks = [r[0] if r else "" for r in page.evaluate(TABLE)]
    checks.check(marks == ["✔"] * 4, f"Batch table: expected 4 images marked done; the done column shows {marks}")
    errors = driver.error_badges(page, "#orchestrator_batches")
    checks.check(not errors, f"Batches: expected no 'Error' badge; the page shows {errors}")
    step.shot("dispatch")
    checks.done()
