"""The real-host suite's fixtures and its report.

Opt-in: every test here is skipped unless ORCH_FORGE_URL names a running Forge or Forge Neo with this
extension installed, and also when Playwright or Debian's Chromium is missing (CI has neither host).

- `forge` (session): one Chromium and one page on the host for the whole run, so state carries from a step to
  the next (the steps are the files test_1_… to test_6_…, run in name order); which host it is ("forge" or
  "neo") comes from the footer's version, else the case of the txt2img tab's name.
- `step`: what a test drives the page with: `.page`, `.host`, `.checks` (soft assertions), `.shot(name)`,
  `.note(key, value)`. After the test it screenshots the page as it was if the test failed
  (`<step>-failure.png`), then the step's sub-tab (`<step>.png`), and stops a generation left running.
- The report, test-artifacts/real_forge/<host>/report.json: every step's outcome, seconds, failure message,
  screenshots and observations, rewritten after each test phase (so it exists whatever fails).
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from . import driver

HERE = Path(__file__).resolve().parent
URL = os.environ.get("ORCH_FORGE_URL", "").strip()


def _skip_reason() -> str:
    if not URL:
        return "ORCH_FORGE_URL is not set: the real-Forge suite is opt-in"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not os.path.exists(driver.CHROMIUM):
        return f"no Chromium at {driver.CHROMIUM} (set ORCH_CHROMIUM)"
    return ""


def _ours(item: Any) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(config: Any, items: List[Any]) -> None:
    reason = _skip_reason()
    if reason:
        for item in items:
            if _ours(item):
                item.add_marker(pytest.mark.skip(reason=reason))


def step_name(item: Any) -> str:
    """`test_3_swatches.py` -> `swatches`."""
    stem = Path(str(item.path)).stem
    return stem.split("_", 2)[-1] if stem.startswith("test_") else stem


# -- the report ------------------------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.host = driver.Host(URL)
        self.started = datetime.datetime.now().isoformat(timespec="seconds")
        self.steps: Dict[str, Dict[str, Any]] = {}
        try:
            self.commit = subprocess.run(["git", "-C", str(driver.REPO), "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            self.commit = ""

    def step(self, item: Any) -> Dict[str, Any]:
        return self.steps.setdefault(item.nodeid, {
            "step": step_name(item), "test": item.name, "outcome": "not run", "seconds": 0.0,
            "call_seconds": None, "message": "", "screenshots": [], "observed": {}, "page_errors": []})

    def write(self) -> None:
        if _skip_reason():
            return
        folder = self.host.artifacts
        folder.mkdir(parents=True, exist_ok=True)
        data = {"host": self.host.name, "url": self.host.url, "version": self.host.version,
                "fresh_host_at_start": self.host.fresh, "suite_commit": self.commit, "started": self.started,
                "steps": list(self.steps.values())}
        tmp = folder / "report.json.tmp"
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, folder / "report.json")


REPORT = Report()
PAGE_ERRORS: List[str] = []
FAILED = pytest.StashKey[bool]()  # on the test item: its call (or setup) failed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any):
    outcome = yield
    rep = outcome.get_result()
    if not _ours(item) or _skip_reason():
        return
    entry = REPORT.step(item)
    entry["seconds"] = round(entry["seconds"] + rep.duration, 1)
    message = ""
    if call.excinfo is not None and not rep.skipped:
        message = f"{call.excinfo.typename}: {call.excinfo.value}"
    if rep.when == "call":
        entry["call_seconds"] = round(rep.duration, 1)
        entry["outcome"] = rep.outcome
        entry["message"] = message
        item.stash[FAILED] = rep.failed
    elif rep.skipped:
        entry["outcome"] = "skipped"
        entry["message"] = str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
    elif rep.failed:
        entry["outcome"] = "error" if rep.when == "setup" or entry["outcome"] == "passed" else entry["outcome"]
        entry["message"] = (entry["message"] + f"\n[{rep.when}] " if entry["message"] else f"[{rep.when}] ") + message
        item.stash[FAILED] = True
    REPORT.write()


# -- the browser -----------------------------------------------------------------------------------------------

class Session:
    def __init__(self, page: Any, host: driver.Host) -> None:
        self.page = page
        self.host = host


@pytest.fixture(scope="session")
def forge():
    """One Chromium page on ORCH_FORGE_URL for the whole run, the host detected."""
    from playwright.sync_api import sync_playwright

    host = REPORT.host
    try:  # before the page loads anything: had this host generated anything since it started?
        host.fresh = str(host.api("sdapi/v1/progress")["state"].get("job_timestamp")) == "0"
    except Exception as exc:  # noqa: BLE001 - the message says why the whole run cannot go on
        pytest.fail(f"the host at {host.url} does not answer /sdapi/v1/progress ({exc}); start it first")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=driver.CHROMIUM, args=driver.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(driver.UI)
            page.on("pageerror", lambda error: PAGE_ERRORS.append(str(error)[:500]))
            page.goto(host.url, timeout=driver.UI * 2)
            page.locator("#tab_orchestrator-button").wait_for(timeout=driver.UI * 2)
            # onUiLoaded has run: inputAccordion.js has put its checkbox into the Hires fix accordion
            assert driver.wait_until(page, "() => !!document.querySelector('.input-accordion-checkbox')",
                                     timeout=driver.UI), "the page never finished loading (onUiLoaded did not run)"
            footer = driver.text_of(page, "#footer")
            version = next((part.split(":", 1)[1].strip() for part in footer.replace("\n", "•").split("•")
                            if part.strip().startswith("version:")), "")
            host.version = version
            tab = driver.text_of(page, "#tab_txt2img-button")
            host.name = "neo" if version.lower().startswith("neo") or tab == "txt2img" else "forge"
            for old in host.artifacts.glob("*.png"):  # pictures of an earlier run would pass for this one's
                old.unlink()
            REPORT.write()
            assert driver.wait_idle(page), f"{host.url} is still generating something else: wait for it to finish"
            yield Session(page, host)
        finally:
            browser.close()


class Step:
    """What a test drives: the page, the host, soft checks, screenshots and notes for the report."""

    def __init__(self, session: Session, entry: Dict[str, Any], name: str) -> None:
        self.page = session.page
        self.host = session.host
        self.entry = entry
        self.name = name
        self.checks = driver.Checks()

    def shot(self, name: Optional[str] = None) -> Path:
        path = driver.screenshot(self.page, self.host, name or self.name)
        relative = str(path.relative_to(driver.REPO))
        if relative not in self.entry["screenshots"]:
            self.entry["screenshots"].append(relative)
        return path

    def note(self, key: str, value: Any) -> None:
        self.entry["observed"][key] = value


@pytest.fixture
def step(request: Any, forge: Session):
    entry = REPORT.step(request.node)
    errors_before = len(PAGE_ERRORS)
    current = Step(forge, entry, step_name(request.node))
    yield current
    page = forge.page
    entry["page_errors"] = PAGE_ERRORS[errors_before:]
    if request.node.stash.get(FAILED, False):
        _try(entry, lambda: current.shot(f"{current.name}-failure"))  # the page as the failure left it
    screen = getattr(request.module, "SCREEN", "")  # the step's sub-tab, for the picture of it after the step
    if screen.startswith("orchestrator_"):
        _try(entry, lambda: driver.open_sub_tab(page, screen))
    elif screen:
        _try(entry, lambda: driver.open_top_tab(page, screen))
    _try(entry, lambda: current.shot())
    if not driver.wait_idle(page, timeout=3_000):  # a failed step left a generation running: stop it
        entry["observed"]["left_running"] = True
        _try(entry, lambda: forge.host.api("sdapi/v1/interrupt", body={}))
        driver.wait_idle(page, timeout=driver.GENERATION)
    REPORT.write()


def _try(entry: Dict[str, Any], action: Any) -> None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - after the step: record, never hide the step's own failure
        entry.setdefault("teardown_problems", []).append(f"{type(exc).__name__}: {str(exc)[:300]}")


def pytest_report_header(config: Any) -> str:
    reason = _skip_reason()
    return f"real Forge suite: {'skipped: ' + reason if reason else 'driving ' + URL}"

