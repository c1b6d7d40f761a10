"""Step 4, Batches: plan and save a 2-image batch (1 step, 64×64, no hires), run it, interrupt it once the first
image is done, run it again: it resumes and ends 2/2 without making an image twice; the table marks both
done; no "Error" badge and no progress bar ("Waiting...", "In queue") is left behind."""
from __future__ import annotations

import re

from . import driver

SCREEN = "orchestrator_batches"
TEMPLATE = "a lighthouse keeper at dusk, {watercolor wash|misty pine forest}"

FIRST_DONE = """() => {
    const status = document.querySelector('#orchestrator_batch_status')?.innerText ?? '';
    const tiles = document.querySelectorAll('#orchestrator_batch_gallery button.thumbnail-item').length;
    // the status before the run reads "<name>: 0/2 images done"; during it "image k/2 · …"
    return tiles >= 1 || /image 2\\/2|^\\s*([12]\\/2 images done|error)/i.test(status);
}"""
FINISHED = r"^\s*(error|\d+/2 images done)"  # the run's last line (while running it reads "image k/2 · …")

TABLE = """() => [...document.querySelectorAll('#orchestrator_batch_table table tr')]
    .filter(tr => tr.querySelector('td'))
    .map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()))"""


def test_a_batch_interrupted_after_one_image_resumes_and_ends_two_of_two(step):
    page, checks = step.page, step.checks
    name = driver.unique("e2e batch")
    file = f"{name}.json"
    step.note("batch", file)
    driver.open_sub_tab(page, SCREEN)
    driver.fill_batch_form(page, TEMPLATE, 2, name)

    # The form's upscaler must be one this host has (Neo has no latent modes: "Latent" fails there with hires)
    known = [u["name"] for u in step.host.api("sdapi/v1/upscalers")] + \
        [u["name"] for u in step.host.api("sdapi/v1/latent-upscale-modes")]
    upscaler = driver.value_of(page, "orchestrator_batch_upscaler")
    step.note("upscaler", {"form": upscaler, "host": known})
    checks.check(upscaler in known, f"Batches: expected the Upscaler field to hold an upscaler this host has "
                                    f"{known}; it holds {upscaler!r}")

    driver.click(page, "orchestrator_batch_save")
    saved = driver.wait_for_text(page, "#orchestrator_batch_status", r"saved|error", what="Plan and save")
    assert "saved 2 images" in saved, f"Plan and save: expected 'saved 2 images'; the status says {saved!r}"

    driver.pick_dropdown(page, "orchestrator_batch_files", file)
    driver.wait_for_text(page, "#orchestrator_batch_status", r"0/2 images done", what="the picked batch's status")
    rows = page.evaluate(TABLE)
    assert len(rows) == 2, f"Batches: expected the batch table to list 2 images; it lists {len(rows)}: {rows}"

    # Run, and interrupt as soon as the first image is done (the second one is then under way)
    driver.click(page, "orchestrator_batch_run")
    first = driver.wait_until(page, FIRST_DONE, timeout=driver.GENERATION, polling=200)
    at_interrupt = driver.text_of(page, "#orchestrator_batch_status")
    assert first, (f"Batches: the first image was not done within {driver.GENERATION // 1000} s; status "
                   f"{at_interrupt!r}")
    driver.click(page, "orchestrator_batch_interrupt")
    stopped = driver.wait_for_text(page, "#orchestrator_batch_status", FINISHED, timeout=driver.GENERATION,
                                   what="the run after Interrupt")
    driver.wait_idle(page)
    step.note("status_at_interrupt", at_interrupt)
    step.note("status_after_interrupt", stopped)
    done = re.search(r"(\d+)/2 images done", stopped)
    checks.check(done is not None and done.group(1) == "1",
                 f"Interrupt after the first image: expected the run to stop at 1/2 images done; the status says "
                 f"{stopped!r} (at the interrupt it said {at_interrupt!r})")
    tiles_after_interrupt = driver.gallery(page, "orchestrator_batch_gallery")["count"]
    step.note("gallery_after_interrupt", tiles_after_interrupt)

    # Run again: it resumes with the second image only
    driver.click(page, "orchestrator_batch_run")
    driver.wait_for_text(page, "#orchestrator_batch_status", r"^\s*(error|2/2 images done)",
                         timeout=driver.GENERATION, what="the resumed run")
    driver.wait_idle(page)
    ended = driver.text_of(page, "#orchestrator_batch_status")
    step.note("status_after_resume", ended)
    checks.check(ended.startswith("2/2 images done") and "finished" in ended,
                 f"Resume: expected '2/2 images done, finished'; the status says {ended!r}")

    driver.wait_gallery(page, "orchestrator_batch_gallery", 2, timeout=driver.SHORT)
    shown = driver.gallery(page, "orchestrator_batch_gallery")
    sources = page.evaluate(
        "() => [...document.querySelectorAll('#orchestrator_batch_gallery button.thumbnail-item img')]"
        ".map(i => decodeURIComponent(i.getAttribute('src') || '').split('/').pop())")
    step.note("gallery_after_resume", sources)
    checks.check(shown["count"] == 2, f"Resume: expected exactly the 2 images of the batch in the gallery (no "
                                      f"duplicate); it shows {shown['count']}: {sources}")
    checks.check(len(set(sources)) == len(sources), f"Resume: the gallery shows an image twice: {sources}")

    rows = page.evaluate(TABLE)
    marks = [r[0] if r else "" for r in rows]
    step.note("table_done_column", marks)
    checks.check(len(rows) == 2 and all(m == "✔" for m in marks),
                 f"Batch table: expected both images marked done (✔) after the run; the done column shows {marks} "
                 f"({len(rows)} rows)")

    errors = driver.error_badges(page, "#orchestrator_batches")
    checks.check(not errors, f"Batches: expected no 'Error' badge; the page shows {errors}")
    # progressbar.js puts its bar into the gallery container's parent, just above it: the sub-tab
    gone = driver.wait_until(page, "() => !document.querySelector('#orchestrator_batches .progressDiv')",
                             timeout=10_000)
    left = driver.progress_bars(page, "#orchestrator_batches")
    checks.check(gone, f"Batches: expected no progress bar left after the run; 10 s after it ended one still shows "
                       f"{left}")
    checks.done()
