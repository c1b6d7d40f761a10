"""Step 6, txt2img with the Orchestrator accordion on: 1 step, 64×64, a prompt with two LoRAs' trigger words;
the infotext under the image has the Orchestrator keys and Forge's `Lora hashes` (the picked LoRAs applied)."""
from __future__ import annotations

import re

from . import driver

SCREEN = "txt2img"
PROMPT = "a lighthouse keeper, watercolor wash"
ACCORDION = "script_txt2img_orchestrator_enabled"

ENDED = """before => {
    const info = document.querySelector('#html_info_txt2img')?.innerText ?? '';
    return (info !== before && /Steps: /.test(info)) || !!document.querySelector('#html_log_txt2img .error')
        || !!document.querySelector('.toast-body.error');
}"""


def test_txt2img_with_the_accordion_on_writes_orchestrator_keys_and_lora_hashes(step):
    page, checks = step.page, step.checks
    driver.open_top_tab(page, "txt2img")
    before = driver.text_of(page, "#html_info_txt2img")

    page.locator(f"#{ACCORDION}-visible-checkbox").check()
    enabled = driver.wait_until(page, f"() => document.querySelector('#{ACCORDION}-checkbox input')?.checked === true",
                                timeout=driver.SHORT)
    assert enabled, f"the Orchestrator accordion's checkbox (#{ACCORDION}-checkbox) did not turn on"
    driver.fill(page, "txt2img_prompt", PROMPT)
    for elem_id, value in (("txt2img_steps", 1), ("txt2img_width", 64), ("txt2img_height", 64)):
        driver.fill(page, elem_id, value)
    form = {k: driver.value_of(page, f"txt2img_{k}") for k in ("steps", "width", "height")}
    assert form == {"steps": "1", "width": "64", "height": "64"}, f"txt2img: the form did not take the values: {form}"

    driver.click(page, "txt2img_generate")
    ended = driver.wait_until(page, ENDED, before, timeout=driver.GENERATION, polling=500)
    info = driver.text_of(page, "#html_info_txt2img")
    log = driver.text_of(page, "#html_log_txt2img")
    step.note("infotext", info)
    assert ended, f"txt2img: no image within {driver.GENERATION // 1000} s; infotext {info!r}, log {log!r}"
    errors = driver.error_badges(page, "#tab_txt2img")
    checks.check(not errors, f"txt2img: expected no red error; the page shows {errors}")
    keys = sorted(set(re.findall(r"(?:^|, |\n)(Orchestrator[\w ]*?): ", info)))
    step.note("orchestrator_keys", keys)
    checks.check(bool(keys), f"txt2img infotext: expected Orchestrator keys (e.g. 'Orchestrator: …'); the infotext "
                             f"under the image is {info!r}")
    checks.check("Lora hashes" in info, f"txt2img infotext: expected 'Lora hashes' (the picked LoRAs applied); the "
                                        f"infotext under the image is {info!r}")
    checks.check("Steps: 1," in info and "Size: 64x64" in info,
                 f"txt2img infotext: expected 'Steps: 1' and 'Size: 64x64' (the form's values); it is {info!r}")
    checks.done()
