"""Step 5, Story: without the LLM (the outline plans the beats), plan 3 scenes and save them as a batch: the
status says saved and the batch is in the Batches sub-tab's list of saved batches."""
from __future__ import annotations

from . import driver

SCREEN = "orchestrator_story"


def test_a_three_scene_story_planned_without_the_llm_is_saved_as_a_batch(step):
    page, checks = step.page, step.checks
    name = driver.unique("e2e story")
    file = f"{name}.json"
    step.note("batch", file)
    driver.open_sub_tab(page, SCREEN)
    driver.set_checkbox(page, "orchestrator_story_llm", False)
    driver.fill(page, "orchestrator_story_scenes", 3)
    assert driver.value_of(page, "orchestrator_story_scenes") == "3", "Story: the Scenes slider did not take 3"

    driver.click(page, "orchestrator_story_plan")
    planned = driver.wait_until(page, "() => !!document.querySelector('#orchestrator_story_table table') || /error/i"
                                      ".test(document.querySelector('#orchestrator_story_status')?.innerText ?? '')",
                                timeout=driver.UI)
    status = driver.text_of(page, "#orchestrator_story_status")
    step.note("plan_status", status)
    assert planned, f"Plan scenes: no table within {driver.UI // 1000} s; status {status!r}"
    scenes = page.locator("#orchestrator_story_table table tr:has(td)").count()
    checks.check(scenes == 3, f"Plan scenes: expected 3 scenes in the table; it shows {scenes} (status {status!r})")
    checks.check("error" not in status.lower(), f"Plan scenes: the status shows an error: {status!r}")

    driver.fill(page, "orchestrator_story_name", name)
    driver.click(page, "orchestrator_story_save")
    saved = driver.wait_for_text(page, "#orchestrator_story_status", r"saved|error", timeout=driver.UI,
                                 what="Save as batch")
    step.note("save_status", saved)
    checks.check("saved 3 scenes" in saved, f"Save as batch: expected 'saved 3 scenes'; the status says {saved!r}")
    step.shot()  # the Story sub-tab after saving (the teardown shot is taken again after the Batches check)

    driver.open_sub_tab(page, "orchestrator_batches")
    listed = driver.dropdown_choices(page, "orchestrator_batch_files", keep_open=True)
    step.note("saved_list_on_open", listed)
    step.shot(f"{step.name}-batches")  # the saved list, open, as the sub-tab shows it after saving the story
    page.keyboard.press("Escape")
    if file not in listed:  # a user would press "Refresh list": say whether it is there then
        driver.click(page, "orchestrator_batch_refresh")
        driver.wait_until(page, "() => !document.querySelector('#orchestrator_batch_files .pending')", timeout=5_000)
        after = driver.dropdown_choices(page, "orchestrator_batch_files")
        step.note("saved_list_after_refresh", after)
        checks.check(False, f"Batches: expected {file!r} in the saved list when the sub-tab opens after saving the "
                            f"story; the list shows {listed} ("
                            + ("it appears only after pressing 'Refresh list')" if file in after
                               else f"not even after 'Refresh list': {after})"))
    checks.check(not driver.error_badges(page, "#orchestrator_story"),
                 f"Story: red errors shown: {driver.error_badges(page, '#orchestrator_story')}")
    checks.done()
