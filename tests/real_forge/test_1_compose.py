"""Step 1, Compose: in a host that has not generated yet, preview a template naming LoRAs' trigger words; the
table shows prompts and the LoRAs picked for them; "Send first to txt2img" puts the first prompt into
txt2img's prompt box."""
from __future__ import annotations

import warnings

from . import driver

SCREEN = "orchestrator_compose"
TEMPLATE = "a lighthouse keeper at dusk, watercolor wash, misty pine forest"

ROWS = """() => {
    const table = document.querySelector('#orchestrator_preview_table table');
    if (!table) return null;
    const heads = [...table.querySelectorAll('tr:first-child th')].map(th => th.innerText.trim().toLowerCase());
    const found = heads.findIndex(h => h.includes('lora'));
    const col = found > 0 ? found : 2;
    return [...table.querySelectorAll('tr')].filter(tr => tr.querySelector('td')).map(tr => {
        const cells = tr.querySelectorAll('td');
        const promptCell = tr.querySelector('td.orch-prompt') || cells[1];
        const loraCell = cells[col];
        return {
            seed: cells[0]?.innerText.trim() ?? '',
            prompt: (promptCell?.firstChild?.textContent ?? '').trim(),
            loras: [...(loraCell?.querySelectorAll('li') ?? [])]
                .map(li => (li.querySelector('b') || li).innerText.trim()),
            lora_text: (loraCell?.innerText ?? '').trim(),
        };
    });
}"""


def test_compose_preview_shows_prompts_and_loras_then_sends_the_first_to_txt2img(step):
    page, checks = step.page, step.checks
    step.note("fresh_host", step.host.fresh)
    if step.host.fresh is False:
        warnings.warn(f"{step.host.url} had generated before this run: restart it to test the preview before "
                      "the first generation", stacklevel=1)

    driver.open_sub_tab(page, SCREEN)
    driver.fill(page, "orchestrator_template", TEMPLATE)
    driver.click(page, "orchestrator_preview")
    shown = driver.wait_until(page, "() => !!document.querySelector('#orchestrator_preview_table table')",
                              timeout=driver.UI)
    assert shown, (f"Preview: expected a table of prompts in #orchestrator_preview_table within {driver.UI // 1000} s; "
                   f"it showed {driver.short(driver.text_of(page, '#orchestrator_preview_table'))!r}, lint "
                   f"{driver.value_of(page, 'orchestrator_lint')!r}, "
                   f"errors {driver.error_badges(page, '#orchestrator_compose')}")
    rows = page.evaluate(ROWS)
    step.note("preview_rows", rows)
    count = driver.value_of(page, "orchestrator_count")
    assert rows, "Preview: the table has no prompt rows"
    checks.check(str(len(rows)) == count,
                 f"Preview: expected {count} rows (the Prompts slider), the table has {len(rows)}")
    bad = [r["prompt"] for r in rows if "lighthouse keeper" not in r["prompt"]]
    checks.check(not bad, f"Preview: every prompt should come from the template ('lighthouse keeper'); these do not: "
                          f"{bad}")

    names = sorted({n for r in rows for n in r["loras"]})
    checks.check(bool(names),
                 f"Preview: expected the LoRAs column to name the SD1.5 LoRAs the trigger words call for "
                 f"({', '.join(driver.TRIGGERED)}); it is empty in all {len(rows)} rows "
                 f"(first row's LoRAs cell: {rows[0]['lora_text']!r})")
    if names:
        strangers = [n for n in names if n not in driver.SD15_LORAS]
        checks.check(not strangers, f"Preview: LoRAs that are not in the host's LoRA folder: {strangers}")
        checks.check(any(n in driver.TRIGGERED for n in names),
                     f"Preview: expected at least one of {driver.TRIGGERED} (their trigger words are in the "
                     f"template) among the picks; the column named {names}")

    # The preview's .then() puts the first prompt, as infotext, into the hidden #orchestrator_sent
    got_sent = driver.wait_until(page, "() => !!document.querySelector('#orchestrator_sent textarea')?.value",
                                 timeout=driver.SHORT)
    sent = driver.value_of(page, "orchestrator_sent")
    assert got_sent, "Send: the first prompt never reached the hidden #orchestrator_sent box after Preview"
    expected = driver.normalise(sent.split("\nNegative prompt:")[0])
    checks.check(expected == driver.normalise(rows[0]["prompt"]),
                 f"Send: the prompt to send {expected!r} is not the first previewed prompt {rows[0]['prompt']!r}")

    boxes = driver.undrawable_glyphs(page, "#tab_orchestrator")
    step.note("undrawable_glyphs", boxes)
    labels = {b: driver.text_of(page, f"#{b}") for b in boxes}
    checks.check(not boxes, "Orchestrator buttons: expected labels this browser can draw; these show characters "
                            "no installed font has (drawn as an empty box): "
                            + "; ".join(f"#{b} {labels[b]!r}: {chars}" for b, chars in boxes.items()))

    driver.click(page, "orchestrator_send")
    arrived = driver.wait_until(
        page, "w => (document.querySelector('#txt2img_prompt textarea')?.value ?? '')"
              ".replace(/\\s+/g, ' ').trim() === w",
        expected, timeout=driver.SHORT)
    in_box = driver.value_of(page, "txt2img_prompt")
    step.note("txt2img_prompt", in_box)
    checks.check(arrived, f"Send first to txt2img: expected txt2img's prompt box to hold {expected!r}; "
                          f"it holds {in_box!r}")
    checks.check(page.locator("#tab_txt2img").is_visible(),
                 "Send first to txt2img: expected the txt2img tab to be shown after sending")
    step.shot(f"{step.name}-txt2img")
    checks.done()
