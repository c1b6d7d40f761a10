"""Helpers that drive a real Forge / Forge Neo page with Playwright: find the Orchestrator tab and its
sub-tabs by elem_id (labels change, ids stay), fill Gradio inputs, wait for a condition (never a sleep), and
fail with a message that says what was expected and what the page showed.

Nothing here imports Playwright at module level: the suite must collect (and skip) without it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "real_forge"
CHROMIUM = os.environ.get("ORCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]

# Timeouts in ms. The first generation of a freshly started host loads the model (+20-30 s on this CPU);
# a 64x64 1-step image takes ~6 s there. The numbers are generous on purpose: a slow host is not a failure.
SHORT = 20_000
UI = 60_000
GENERATION = 600_000

# The SD1.5 LoRAs of the hosts' LoRA folder (/work/hosts/make_loras.py), and their trigger words.
SD15_LORAS = ("watercolor_wash_sd15", "ukiyoe_print_sd15", "misty_forest_sd15", "lighthouse_keeper_sd15",
              "god_rays_sd15", "test_lora")
TRIGGERED = ("lighthouse_keeper_sd15", "watercolor_wash_sd15", "misty_forest_sd15")


class Host:
    """The host under test: its URL, "forge" or "neo", where its artifacts go."""

    def __init__(self, url: str, name: str = "unknown", version: str = "", fresh: Optional[bool] = None):
        self.url = url.rstrip("/") + "/"
        self.name = name
        self.version = version
        self.fresh = fresh  # no generation had run since it started (job_timestamp "0")

    @property
    def artifacts(self) -> Path:
        return ARTIFACTS / self.name

    def api(self, path: str, body: Optional[dict] = None, timeout: float = 30) -> Any:
        """GET (or POST `body` as JSON to) `path` on the host; the answer's JSON."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read().decode("utf-8") or "null")


class Checks:
    """Soft assertions: a step checks everything it can, then fails once with every message. A missing
    element the rest depends on is still a hard `assert`."""

    def __init__(self) -> None:
        self.failures: List[str] = []

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.failures.append(message)
        return ok

    def done(self) -> None:
        if self.failures:
            raise AssertionError("\n".join(f"- {m}" for m in self.failures))


# -- reading the page ------------------------------------------------------------------------------------------

def text_of(page: Any, selector: str) -> str:
    """The element's visible text ("" when absent)."""
    return page.evaluate("s => document.querySelector(s)?.innerText ?? ''", selector).strip()


def value_of(page: Any, elem_id: str) -> str:
    """The value of a Gradio Textbox / Number / Dropdown input (hidden ones too)."""
    return page.evaluate(
        "id => document.querySelector(`#${id} textarea, #${id} input`)?.value ?? ''", elem_id)


def short(text: str, limit: int = 400) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    return text if len(text) <= limit else text[:limit] + " …"


def wait_until(page: Any, script: str, arg: Any = None, timeout: int = SHORT, polling: Any = "raf") -> bool:
    """Wait for a JS predicate `(arg) => bool` (may be async); False on timeout, never raises for it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(script, arg=arg, timeout=timeout, polling=polling)
        return True
    except PlaywrightTimeout:
        return False


def wait_for_text(page: Any, selector: str, wanted: str, timeout: int = SHORT, what: str = "") -> str:
    """Wait until the element's text matches the regular expression `wanted`; return the text, or fail
    saying what was expected and what the element showed."""
    ok = wait_until(page, "([s, w]) => new RegExp(w).test(document.querySelector(s)?.innerText ?? '')",
                    [selector, wanted], timeout)
    shown = text_of(page, selector)
    assert ok, (f"{what or selector}: expected text matching /{wanted}/ within {timeout // 1000} s; "
                f"it showed {short(shown)!r}")
    return shown


def gallery(page: Any, elem_id: str) -> Dict[str, Any]:
    """A Gradio 4 gallery's items: in grid view the large thumbnails, in preview the strip of small ones."""
    return page.evaluate("""id => {
        const root = document.querySelector('#' + id);
        if (!root) return {present: false, count: 0, captions: [], preview: false};
        let items = [...root.querySelectorAll('button.thumbnail-lg')];
        const preview = items.length === 0 && !!root.querySelector('button.thumbnail-small');
        if (preview) items = [...root.querySelectorAll('button.thumbnail-small')];
        const captions = items.map(b => (b.querySelector('.caption-label')?.innerText
            || b.querySelector('img')?.getAttribute('title') || b.querySelector('img')?.alt || '').trim());
        return {present: true, count: items.length, captions, preview};
    }""", elem_id)


def wait_gallery(page: Any, elem_id: str, at_least: int, timeout: int = SHORT) -> bool:
    return wait_until(page, """([id, n]) => {
        const root = document.querySelector('#' + id);
        if (!root) return false;
        const big = root.querySelectorAll('button.thumbnail-lg').length;
        return (big || root.querySelectorAll('button.thumbnail-small').length) >= n;
    }""", [elem_id, at_least], timeout)


def error_badges(page: Any, scope: str) -> List[str]:
    """Visible red errors: Gradio's "Error" badges and error toasts, and Forge's `<div class='error'>`
    (what wrap_gradio_call shows when a handler raised), inside `scope` (toasts anywhere)."""
    return page.evaluate("""scope => {
        const seen = el => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
        const found = [...document.querySelectorAll(`${scope} .error, .toast-body.error`)].filter(seen);
        return found.map(e => (e.innerText || 'Error').trim().slice(0, 300));
    }""", scope)


def progress_bars(page: Any, scope: str) -> List[str]:
    """Forge progress bars (progressbar.js's div.progressDiv) still shown inside `scope`, with their text.
    requestProgress() inserts the bar into the *parent* of the container it is given, before it: for the
    Orchestrator's runs that is the sub-tab, not `#orchestrator_*_gallery_container`."""
    return page.evaluate("""scope => [...document.querySelectorAll(`${scope} .progressDiv`)]
        .map(d => (d.innerText || '(empty bar)').trim())""", scope)


def undrawable_glyphs(page: Any, scope: str) -> Dict[str, List[str]]:
    """Characters in the labels of the buttons inside `scope` that this browser can only draw as an empty
    box (no installed font has them, e.g. an emoji on a machine without an emoji font): each is drawn on a
    canvas in the button's font and compared with a code point no font has (U+10FFFD). {button id: chars}"""
    return page.evaluate("""scope => {
        const out = {};
        for (const button of document.querySelectorAll(`${scope} button`)) {
            const chars = [...new Set([...(button.textContent || '')].filter(ch => ch.codePointAt(0) > 0x7e))];
            if (!chars.length) continue;
            const font = `32px ${getComputedStyle(button).fontFamily}`;
            const draw = ch => {
                const canvas = document.createElement('canvas');
                canvas.width = canvas.height = 48;
                const g = canvas.getContext('2d');
                g.font = font; g.textBaseline = 'top'; g.fillText(ch, 4, 4);
                return Array.from(g.getImageData(0, 0, 48, 48).data).join(',');
            };
            const box = draw('\\u{10FFFD}');
            const bad = chars.filter(ch => ch.trim() && draw(ch) === box);
            if (bad.length) out[button.id || button.textContent.trim()] = bad;
        }
        return out;
    }""", scope)


# -- acting on the page ----------------------------------------------------------------------------------------

def box(page: Any, elem_id: str) -> Any:
    """The text field of a Gradio Textbox / Number / Dropdown by elem_id."""
    return page.locator(f"#{elem_id} textarea, #{elem_id} input:not([type=checkbox]):not([type=range])").first


def fill(page: Any, elem_id: str, value: Any) -> None:
    """Type into a Textbox, Number or a Slider's number box, then leave it, as a user does (Gradio clamps
    Sliders on blur). Blur, not Tab: Tab would focus the next field, and a focused Dropdown opens its list
    over the buttons below it."""
    field = box(page, elem_id)
    field.fill(str(value))
    field.evaluate("e => e.blur()")


def set_checkbox(page: Any, elem_id: str, checked: bool) -> None:
    page.locator(f"#{elem_id} input[type=checkbox]").first.set_checked(checked)


def click(page: Any, elem_id: str) -> None:
    page.locator(f"#{elem_id}").first.click()


def open_top_tab(page: Any, tab: str) -> None:
    """A top-level tab of Forge by its id (`txt2img`, `orchestrator`): button `#tab_<id>-button`."""
    page.locator(f"#tab_{tab}-button").click()
    page.locator(f"#tab_{tab}").wait_for(state="visible", timeout=SHORT)


def open_sub_tab(page: Any, elem_id: str) -> None:
    """An Orchestrator sub-tab by its elem_id (`orchestrator_compose`, …): button `#<elem_id>-button`."""
    open_top_tab(page, "orchestrator")
    page.locator(f"#{elem_id}-button").click()
    page.locator(f"#{elem_id}").wait_for(state="visible", timeout=SHORT)


def dropdown_choices(page: Any, elem_id: str, keep_open: bool = False) -> List[str]:
    """Open a Gradio 4 Dropdown and read its options; closes it again unless `keep_open` (for a picture
    of the list: then press Escape after it)."""
    field = page.locator(f"#{elem_id} input").first
    field.click()
    options = page.locator(f"#{elem_id} ul.options li")
    wait_until(page, "id => document.querySelector(`#${id} ul.options`) !== null", elem_id, timeout=5_000)
    names = [t.strip() for t in options.all_inner_texts()]
    if not keep_open:
        field.press("Escape")
    return [n.lstrip("✓").strip() for n in names]


def pick_dropdown(page: Any, elem_id: str, choice: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.locator(f"#{elem_id} ul.options li", has_text=choice).first.click()


def wait_idle(page: Any, timeout: int = GENERATION) -> bool:
    """Wait until the host runs no job (`/sdapi/v1/progress`: state.job empty), polled from the page."""
    return wait_until(page, """async () => {
        try {
            const r = await fetch('./sdapi/v1/progress?skip_current_image=true');
            const j = await r.json();
            return !j.state.job;
        } catch (e) { return false; }
    }""", None, timeout, polling=1000)


def screenshot(page: Any, host: Host, name: str) -> Path:
    """A full-page PNG in test-artifacts/real_forge/<host>/<name>.png; for the Forge host also copied to
    $ORCH_SCREENSHOTS (the project's docs/ pictures), except the pictures of failures."""
    host.artifacts.mkdir(parents=True, exist_ok=True)
    path = host.artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("ORCH_SCREENSHOTS", "").strip()
    if target and host.name == "forge" and not name.endswith("-failure"):
        os.makedirs(target, exist_ok=True)
        shutil.copyfile(path, os.path.join(target, path.name))
    return path


def unique(stem: str) -> str:
    """A batch name no earlier run used: saved batches persist in the extension's data folder, and one that
    is under way cannot be overwritten."""
    import time

    return f"{stem} {time.strftime('%Y%m%d-%H%M%S')}"


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def fill_batch_form(page: Any, template: str, count: int, name: str) -> None:
    """The Batches form for a small batch: `count` images of 1 step at 64×64, hires off, saved as `name`.json."""
    fill(page, "orchestrator_batch_template", template)
    for elem_id, value in (("orchestrator_batch_count", count), ("orchestrator_batch_steps", 1),
                           ("orchestrator_batch_width", 64), ("orchestrator_batch_height", 64)):
        fill(page, elem_id, value)
    set_checkbox(page, "orchestrator_batch_hires", False)
    fill(page, "orchestrator_batch_name", name)
    if value_of(page, "orchestrator_batch_format") != "json":
        pick_dropdown(page, "orchestrator_batch_format", "json")
