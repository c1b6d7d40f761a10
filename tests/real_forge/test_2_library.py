"""Step 2, LoRA library: the sub-tab shows every LoRA as soon as it opens (no Search press, all categories);
a search narrows it; a tile opens its details; "My default weight" is saved."""
from __future__ import annotations

from . import driver

SCREEN = "orchestrator_library"
WEIGHT = "0.7"

NARROWED = """([id, word]) => {
    const root = document.querySelector('#' + id);
    if (!root) return false;
    const items = [...root.querySelectorAll('button.thumbnail-lg, button.thumbnail-small')];
    const captions = items.map(b => (b.querySelector('.caption-label')?.innerText
        || b.querySelector('img')?.getAttribute('title') || '').toLowerCase());
    return items.length > 0 && captions.every(c => c.includes(word));
}"""


def test_library_lists_loras_at_once_searches_shows_details_and_saves_a_weight(step):
    page, checks = step.page, step.checks
    expected = sorted(lora["name"] for lora in step.host.api("sdapi/v1/loras"))
    step.note("host_loras", expected)

    driver.open_sub_tab(page, SCREEN)
    at_once = driver.wait_gallery(page, "orchestrator_gallery", 1, timeout=driver.SHORT)
    if at_once:  # all tiles arrive in one update; give a partial list a moment to complete
        driver.wait_gallery(page, "orchestrator_gallery", len(expected), timeout=5_000)
    initial = driver.gallery(page, "orchestrator_gallery")
    summary = driver.text_of(page, "#orchestrator_summary")
    category = driver.value_of(page, "orchestrator_category")
    step.note("on_open", {"tiles": initial["count"], "captions": initial["captions"], "summary": summary,
                          "category": category})
    checks.check(at_once, f"Library: expected the gallery to show LoRAs as soon as the sub-tab opens (no Search "
                          f"pressed); after {driver.SHORT // 1000} s it showed {initial['count']} tiles, summary "
                          f"{summary!r}")
    checks.check(category == "", f"Library: expected the Category filter to be empty (all categories) when the "
                                 f"sub-tab opens; it is {category!r}")
    if at_once:
        shown = sorted(c.split(" · ")[0].rstrip(" ⚠") for c in initial["captions"])
        checks.check(shown == expected, f"Library: expected every LoRA of the host {expected} on opening; the "
                                        f"gallery showed {shown} (summary {summary!r})")

    driver.fill(page, "orchestrator_search", "watercolor")
    driver.click(page, "orchestrator_search_button")
    narrowed = driver.wait_until(page, NARROWED, ["orchestrator_gallery", "watercolor"], timeout=driver.SHORT)
    found = driver.gallery(page, "orchestrator_gallery")
    step.note("search_watercolor", {"tiles": found["count"], "captions": found["captions"],
                                    "summary": driver.text_of(page, "#orchestrator_summary")})
    assert narrowed, (f"Library search 'watercolor': expected only watercolor LoRAs in the gallery; it showed "
                      f"{found['count']} tiles {found['captions']}, summary "
                      f"{driver.text_of(page, '#orchestrator_summary')!r}")
    checks.check(found["count"] < len(expected), f"Library search 'watercolor': expected fewer tiles than all "
                                                 f"{len(expected)} LoRAs; it showed {found['count']}")
    checks.check(any("watercolor_wash_sd15" in c for c in found["captions"]),
                 f"Library search 'watercolor': expected watercolor_wash_sd15 among {found['captions']}")

    name = found["captions"][0].split(" · ")[0].rstrip(" ⚠")
    page.locator("#orchestrator_gallery button.thumbnail-item").first.click()
    got = driver.wait_until(page, "n => document.querySelector('#orchestrator_details h3')?.innerText.trim() === n",
                            name, timeout=driver.SHORT)
    details = driver.text_of(page, "#orchestrator_details")
    step.note("details", driver.short(details, 600))
    assert got, (f"Library: clicking the tile {name!r} should show its details with that name; "
                 f"#orchestrator_details showed {driver.short(details)!r}")
    checks.check(driver.value_of(page, "orchestrator_selected") != "",
                 "Library: the Selected box stayed empty after clicking a tile")

    driver.fill(page, "orchestrator_override_weight", WEIGHT)
    driver.click(page, "orchestrator_override_save")
    status = driver.wait_for_text(page, "#orchestrator_override_status", r"saved|error", what="Save my settings")
    step.note("save_status", status)
    checks.check("saved" in status and "error" not in status.lower(),
                 f"Save my settings: expected a 'saved' status; it showed {status!r}")
    checks.check(not driver.error_badges(page, "#orchestrator_library"),
                 f"Library: red errors shown: {driver.error_badges(page, '#orchestrator_library')}")
    checks.done()
