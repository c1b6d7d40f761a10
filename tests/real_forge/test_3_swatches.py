"""Step 3, Swatches: a 2×2 swatch (two LoRAs by name, weights 0.5 and 1, 1 step, 64×64) makes the grid and
5 cells (2 LoRAs × 2 weights + the baseline); the status says all were made; no red error. In a fresh host
this is the first generation, so it waits for the model to load."""
from __future__ import annotations

from . import driver

SCREEN = "orchestrator_swatches"
LORAS = ("watercolor_wash_sd15", "lighthouse_keeper_sd15")

ENDED = """() => {
    const status = document.querySelector('#orchestrator_swatch_status')?.innerText ?? '';
    return /cells made|error/i.test(status) || !!document.querySelector('#orchestrator_swatch_log .error')
        || !!document.querySelector('.toast-body.error');
}"""


def test_a_2x2_swatch_makes_the_grid_and_five_cells(step):
    page, checks = step.page, step.checks
    driver.open_sub_tab(page, SCREEN)
    driver.fill(page, "orchestrator_swatch_names", ", ".join(LORAS))
    driver.fill(page, "orchestrator_swatch_template", "a lighthouse at dusk")
    driver.fill(page, "orchestrator_swatch_weights", "0.5, 1")
    for elem_id, value in (("orchestrator_swatch_steps", 1), ("orchestrator_swatch_width", 64),
                           ("orchestrator_swatch_height", 64)):
        driver.fill(page, elem_id, value)
    form = {k: driver.value_of(page, f"orchestrator_swatch_{k}") for k in ("steps", "width", "height")}
    assert form == {"steps": "1", "width": "64", "height": "64"}, f"Swatches: the form did not take the values: {form}"

    driver.click(page, "orchestrator_swatch_run")
    ended = driver.wait_until(page, ENDED, timeout=driver.GENERATION, polling=500)
    status = driver.text_of(page, "#orchestrator_swatch_status")
    log = driver.text_of(page, "#orchestrator_swatch_log")
    errors = driver.error_badges(page, "#orchestrator_swatches")
    step.note("status", status)
    step.note("log", driver.short(log, 800))
    assert ended, (f"Swatches: the run did not end within {driver.GENERATION // 1000} s; status {status!r}, "
                   f"log {driver.short(log)!r}")
    checks.check(not errors, f"Swatches: expected no red error; the page shows {errors}")
    checks.check("5/5 cells made" in status, f"Swatches: expected the status to say '5/5 cells made'; it says "
                                             f"{status!r}"
                                             + (f" (log: {driver.short(log)!r})" if log else ""))
    checks.check("2 LoRAs × 2 weights + baseline = 5 images" in status,
                 f"Swatches: expected the plan '2 LoRAs × 2 weights + baseline = 5 images' in the status; "
                 f"it says {status!r}")

    driver.wait_gallery(page, "orchestrator_swatch_gallery", 6, timeout=driver.SHORT)
    shown = driver.gallery(page, "orchestrator_swatch_gallery")
    step.note("gallery", shown["captions"])
    checks.check(shown["count"] == 6, f"Swatches: expected the grid and 5 cells (6 images) in the gallery; it shows "
                                      f"{shown['count']}: {shown['captions']}")
    checks.check(any(c.startswith("grid") for c in shown["captions"]),
                 f"Swatches: expected a 'grid' image in the gallery; captions {shown['captions']}")
    for lora in LORAS:
        for weight in ("0.5", "1"):
            checks.check(any(c.startswith(lora) and c.endswith(f"@ {weight}") for c in shown["captions"]),
                         f"Swatches: expected the cell '{lora} @ {weight}'; captions {shown['captions']}")
    checks.check(any(c.startswith("no LoRA") for c in shown["captions"]),
                 f"Swatches: expected the baseline cell 'no LoRA'; captions {shown['captions']}")
    # Forge's bar (progressbar.js puts it in the sub-tab, above the gallery) goes at its next poll after the end
    gone = driver.wait_until(page, "() => !document.querySelector('#orchestrator_swatches .progressDiv')",
                             timeout=10_000)
    left = driver.progress_bars(page, "#orchestrator_swatches")
    step.note("progress_bars_left", left)
    checks.check(gone, f"Swatches: expected no progress bar left after the run; 10 s after it ended one still shows "
                       f"{left}")
    checks.done()
