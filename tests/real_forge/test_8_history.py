"""Step 8, History: an image made over REST with saving on is in the index as soon as Forge wrote it (the
image-saved hook) and a search for its prompt's word finds it; selected and rated by keyboard (4 stars, then
favourite); sent to img2img (image and prompt) and to txt2img with Forge's paste; the swatch of step 3 gives a
blind pair in Compare (no LoRA name shown before judging), judged with →; the LoRA leaderboard lists the
swatch's LoRAs; no red error."""
from __future__ import annotations

import re
import time

from . import driver
from .test_3_swatches import LORAS

SCREEN = "orchestrator_history"
WORD = time.strftime("zebrafinch%Y%m%d%H%M%S")  # a word no earlier run's prompt has: this run's image is first

THUMBS = "#orchestrator_history_gallery button.thumbnail-item"


def test_history_indexes_what_forge_saves_rates_by_keyboard_and_compares_blind(step):
    page, checks = step.page, step.checks
    body = {"prompt": f"a {WORD} on a branch", "seed": 11, "steps": 1, "width": 64, "height": 64, "n_iter": 1,
            "save_images": True, "alwayson_scripts": {"orchestrator": {"args": [True]}}}
    step.host.api("sdapi/v1/txt2img", body, timeout=driver.GENERATION / 1000)

    driver.open_sub_tab(page, SCREEN)
    status = driver.wait_for_text(page, "#orchestrator_history_status", "images indexed", timeout=driver.UI,
                                  what="the history's status line")
    step.note("status", status)
    count = int(re.sub(r"[^\d]", "", status.split("images indexed")[0]) or 0)
    checks.check(count >= 6, f"History: expected at least the swatch's 5 cells and the REST image indexed; the status "
                             f"says {status!r}")

    driver.fill(page, "orchestrator_history_query", WORD)
    driver.click(page, "orchestrator_history_search")
    # The sub-tab opened on its first page of every image: wait for the search's own answer. The word is this
    # run's alone; by meaning, earlier runs' "a zebrafinch… on a branch" may follow it, but never come first.
    summary = driver.wait_for_text(page, "#orchestrator_history_summary", "^[1-9][0-9,]* images? ·", timeout=driver.UI,
                                   what=f"History: a search for {WORD!r} should find the image made over REST")
    step.note("search", summary)

    page.locator(THUMBS).first.click()
    driver.wait_for_text(page, "#orchestrator_history_rating", "not rated", timeout=driver.UI, what="the rating")
    infotext = driver.value_of(page, "orchestrator_history_infotext")
    step.note("infotext", infotext)
    checks.check(WORD in infotext and "Seed: 11" in infotext and "Orchestrator" in infotext,
                 f"Details: expected the REST image's parameters (its word, seed 11, the Orchestrator keys); "
                 f"{infotext!r}")
    page.locator("#orchestrator_history_rating").click()  # the focus off the search box: keys are ratings now
    page.keyboard.press("4")
    rating = driver.wait_for_text(page, "#orchestrator_history_rating", "4 stars", timeout=driver.UI, what="4 stars")
    page.keyboard.press("f")
    rating = driver.wait_for_text(page, "#orchestrator_history_rating", "favourite", timeout=driver.UI,
                                  what="the favourite")
    step.note("rating", rating)
    driver.click(page, "orchestrator_history_search")  # searched again: the caption shows what the index holds now
    checks.check(driver.wait_until(page, f"() => (document.querySelector('{THUMBS} .caption-label')?.innerText || '')"
                                         ".includes('★4')", timeout=driver.UI),
                 "History: after 4 stars by keyboard, the gallery's caption of the image should show ★4")
    step.shot("history-browse")

    # Forge's own paste: the parameters into img2img (with the image) and into txt2img, switching to that tab
    for target in ("img2img", "txt2img"):
        driver.click(page, f"orchestrator_history_send_{target}")
        pasted = driver.wait_until(page, "([id, w]) => (document.querySelector(`#${id} textarea`)?.value || '')"
                                         ".includes(w)", [f"{target}_prompt", WORD], timeout=driver.UI)
        step.note(f"sent to {target}", driver.value_of(page, f"{target}_prompt"))
        checks.check(pasted, f"Send to {target}: expected its prompt box to hold the image's prompt with {WORD!r}; "
                             f"it holds {driver.value_of(page, f'{target}_prompt')!r}")
        if target == "img2img":
            checks.check(driver.wait_until(page, "() => !!document.querySelector('#img2img_image img')",
                                           timeout=driver.UI), "Send to img2img: the image did not arrive")
        driver.open_sub_tab(page, SCREEN)

    page.locator("#orchestrator_history_compare-button").click()
    shown = all(driver.wait_until(page, f"() => document.querySelector('#orchestrator_compare_{side}_image img')"
                                        "?.complete", timeout=driver.UI) for side in ("left", "right"))
    blind = driver.text_of(page, "#orchestrator_history_compare")
    step.note("compare", blind)
    assert shown, f"Compare: expected two images of the swatch's cells side by side; the panel says {blind!r}"
    checks.check(not any(name in blind for name in LORAS),
                 f"Compare: a LoRA's name is shown before judging: {blind!r}")
    page.locator("#orchestrator_compare_counter").click()
    page.keyboard.press("ArrowRight")
    reveal = driver.wait_for_text(page, "#orchestrator_compare_reveal", "right won", timeout=driver.UI,
                                  what="the judgement's reveal")
    step.note("reveal", reveal)
    step.shot("history-compare")

    page.locator("#orchestrator_history_leaderboard_tab-button").click()
    board = driver.wait_for_text(page, "#orchestrator_leaderboard", LORAS[0], timeout=driver.UI, what="the leaderboard")
    step.note("leaderboard", driver.short(board))
    checks.check(all(name in board for name in LORAS), f"Leaderboard: expected {LORAS}; it shows {board!r}")
    checks.check(not driver.error_badges(page, f"#{SCREEN}"), "History: a red error badge is shown")
    checks.done()
