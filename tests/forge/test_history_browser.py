"""The History sub-tab in a real browser (Debian's Chromium through Playwright), mounted in a plain Gradio app
(Forge's pins) with the Forge stand-in behind it, over an index of images saved the way Forge saves them: an
image is rated by keyboard, sent to img2img with its parameters, and a blind pair is judged with the arrow key.

With ORCH_SCREENSHOTS=1 the History sub-tab's picture in docs/history-tab.png is taken again (the README shows
it); otherwise it goes to test-artifacts/ only."""
from __future__ import annotations

import os
import shutil
import time

import pytest

from lib_orchestrator import SAMPLE_LORAS

from ..conftest import REPO
from ..history.forge_images import forge_infotext
from .test_tab_browser import ARGS, CHROMIUM, free_port, open_tab, text_box, wait_for_text

gr = pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")
ARTIFACTS = REPO / "test-artifacts"
DOCS = REPO / "docs"
assert ARGS  # the launch arguments of test_tab_browser's open_tab

# Three images of one prompt and seed that differ only in their LoRA: a pair to compare. Each has its own sky,
# so the test can tell which one the browser shows on which side without asking the app.
PAIR = {"watercolor_wash": (70, 130, 210), "ink_sketch": (150, 150, 160), "": (230, 140, 60)}
OTHERS = [  # (prompt, seed, loras, sky, ground)
    ("a red fox in deep snow, soft light", 5, [("fox_style", 1.0, "user")], (200, 215, 235), (245, 245, 250)),
    ("a harbour at night, lanterns on the water", 11, [("night_glow", 0.7, "match")], (20, 30, 70), (40, 50, 90)),
    ("a castle on a hill at dawn", 23, [("painterly", 0.6, "match"), ("add_detail", 0.4, "trigger")], (250, 190, 150),
     (90, 120, 70)),
    ("portrait of a knight in silver armour", 31, [("knight_armor", 0.9, "user")], (120, 110, 100), (60, 55, 50)),
    ("a cherry blossom street in spring", 47, [("painterly", 0.8, "semantic")], (245, 215, 225), (170, 140, 130)),
    ("a desert caravan under a huge moon", 59, [], (40, 30, 80), (200, 160, 100)),
    ("a misty forest path, volumetric light", 61, [("god_rays", 0.5, "semantic")], (150, 180, 160), (50, 80, 50)),
    ("a cozy library with a fireplace", 73, [("add_detail", 0.6, "trigger")], (110, 70, 40), (70, 40, 25)),
    ("a lighthouse keeper reading by lamplight", 83, [("lighthouse_keeper", 0.8, "match")], (60, 50, 40),
     (90, 70, 50)),
]


def paint(path, text, sky, ground, size=(320, 256)):
    """A small landscape (sky, sun, ground) saved as Forge saves a PNG: the infotext in `parameters`."""
    from PIL import Image, ImageDraw
    from PIL.PngImagePlugin import PngInfo

    w, h = size
    image = Image.new("RGB", size, sky)
    draw = ImageDraw.Draw(image)
    for y in range(h // 2, h):  # the sky fades towards the horizon; the top-left corner keeps the sky's colour
        shade = (y - h // 2) / (h / 2)
        draw.line([(0, y), (w, y)], fill=tuple(int(s * (1 - shade) + g * shade) for s, g in zip(sky, ground)))
    draw.rectangle([0, int(h * 0.7), w, h], fill=ground)
    draw.ellipse([int(w * 0.62), int(h * 0.18), int(w * 0.8), int(h * 0.18) + int(w * 0.18)], fill=(255, 236, 170))
    info = PngInfo()
    info.add_text("parameters", text)
    image.save(path, format="PNG", pnginfo=info)


def infotext(prompt, seed, loras, size=(320, 256)):
    tags = "".join(f" <lora:{n}:{w:g}>" for n, w, _ in loras)
    params = [("Steps", 20), ("Sampler", "Euler a"), ("Schedule type", "Automatic"), ("CFG scale", 7), ("Seed", seed),
              ("Size", f"{size[0]}x{size[1]}"), ("Model hash", "3c6190d76a"), ("Model", "random-sd15")]
    if loras:
        params += [("Lora hashes", ", ".join(f"{n}: {k:012x}" for k, (n, _, _) in enumerate(loras, 1))),
                   ("Orchestrator LoRAs", "; ".join(f"{n}:{w:g}:{r}" for n, w, r in loras))]
    params.append(("Version", "f2.0.1v1.10.1-1.10.1"))
    return forge_infotext(prompt + tags, "lowres, blurry", params)


def write_outputs(folder):
    """Forge's outputs: NNNNN-seed.png, the pair first (oldest), then each other prompt at two seeds, one file a
    second apart as Forge makes them. Returns the pair's files by LoRA and every file, oldest first."""
    folder.mkdir(parents=True)
    pair, written = {}, []
    for lora, sky in PAIR.items():
        loras = [(lora, 0.8, "match")] if lora else []
        path = folder / f"{len(written):05d}-77.png"
        paint(str(path), infotext("a lighthouse at dusk, storm clouds", 77, loras), sky, (60, 70, 80))
        pair[lora or "baseline"] = str(path)
        written.append(str(path))
    for shift in (0, 1):
        for prompt, seed, loras, sky, ground in OTHERS:
            seed += 100 * shift
            sky = tuple(min(255, c + 25 * shift) for c in sky)
            path = folder / f"{len(written):05d}-{seed}.png"
            paint(str(path), infotext(prompt, seed, loras), sky, ground)
            written.append(str(path))
    made = time.time() - 1000
    for k, path in enumerate(written):
        os.utime(path, (made + k, made + k))
    return pair, written


@pytest.fixture
def app(lora_dir, tmp_path, forge_app, monkeypatch):
    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    from modules import infotext_utils, script_callbacks, sd_models, shared

    shared.sd_model = sd_models.make_model("juggernautXL_v9.safetensors", "ab" * 32, family="sdxl")
    module = forge_app(tabs=False)["orchestrator_tab.py"]
    module.state.OVERRIDES.path = str(tmp_path / "overrides.json")
    module.HISTORY.thumbs_dir = str(tmp_path / "thumbs")
    module.state.LIBRARY.wait(60)
    files, written = write_outputs(tmp_path / "outputs")
    history = module.state.HISTORY
    assert "added" in history.add_folder(str(tmp_path / "outputs"))
    history.wait()
    tab = script_callbacks.ui_tabs_callback()[0][0]
    script = (REPO / "javascript" / "orchestrator.js").read_text(encoding="utf-8")
    # Forge's page has these; here they say which tab a Send button switched to
    switch = "function switch_to_txt2img() { window.switched = 'txt2img'; }\n" \
             "function switch_to_img2img() { window.switched = 'img2img'; }\n"
    css = (REPO / "style.css").read_text(encoding="utf-8")
    with gr.Blocks(head=f"<script>{script}\n{switch}</script>", css=css) as page:
        with gr.Column(elem_id="tab_orchestrator"):  # Forge's id for the extension's tab
            tab.render()
        with gr.Tabs():  # what Forge's own tabs offer a paste binding
            with gr.Tab("txt2img"):
                # Forge's prompt boxes start at "" (a paste converts to the type of the field's value)
                t_prompt = gr.Textbox(value="", label="Prompt", elem_id="txt2img_prompt")
                t_seed = gr.Number(value=-1, label="Seed", elem_id="txt2img_seed")
            with gr.Tab("img2img"):
                i_prompt = gr.Textbox(value="", label="Prompt", elem_id="img2img_prompt")
                i_image = gr.Image(type="pil", elem_id="img2img_image")
                i_width = gr.Number(value=512, label="Width", elem_id="img2img_width")
                i_height = gr.Number(value=512, label="Height", elem_id="img2img_height")
        infotext_utils.add_paste_fields("txt2img", None, [(t_prompt, "Prompt"), (t_seed, "Seed")])
        infotext_utils.add_paste_fields("img2img", i_image, [(i_prompt, "Prompt"), (i_width, "Size-1"),
                                                             (i_height, "Size-2")])
        infotext_utils.connect_paste_params_buttons()  # what Forge does once its UI is built
    port = free_port()
    page.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", module, files, written
    page.close()


PASTED = "a cozy library with a fireplace <lora:add_detail:0.6>"  # the prompt of the second newest image


def wait_for_value(page, elem_id, value, timeout=20_000):
    page.wait_for_function(f"() => document.querySelector('#{elem_id} textarea')?.value === {value!r}",
                           timeout=timeout)


def shown_file(page):
    """The file the details panel shows (its first row)."""
    return page.locator("#orchestrator_history_details td").first.inner_text().strip()


def wait_for_change(page, elem_id, old, timeout=20_000):
    page.wait_for_function(
        f"() => (document.querySelector('#{elem_id} td')?.innerText || '').trim() !== {old!r}", timeout=timeout)


SKY = """(id) => {
    const img = document.querySelector(`#${id} img`);
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0);
    return Array.from(context.getImageData(4, 4, 1, 1).data.slice(0, 3));
}"""


def which(colour):
    """The pair's image whose sky is nearest to `colour` (a JPEG's colours are near, not equal)."""
    return min(PAIR, key=lambda lora: sum((a - b) ** 2 for a, b in zip(PAIR[lora], colour)))


def test_rate_by_keyboard_send_to_img2img_and_judge_a_blind_pair(app):
    url, module, files, written = app
    store = module.state.HISTORY.store
    count = len(written)
    with open_tab(url, height=1200) as page:
        page.get_by_role("tab", name="History", exact=True).click()
        page.wait_for_function(
            f"() => document.querySelectorAll('#orchestrator_history_gallery button.thumbnail-item').length == {count}",
            timeout=30_000)
        wait_for_text(page, "orchestrator_history_summary", f"{count} images · page 1 of 1")
        assert f"{count} images indexed" in page.locator("#orchestrator_history_status").inner_text()

        page.locator("#orchestrator_history_gallery button.thumbnail-item").first.click()
        wait_for_text(page, "orchestrator_history_rating", "not rated")
        first = shown_file(page)
        assert first == written[-1]  # newest first
        assert "lighthouse_keeper" in page.locator("#orchestrator_history_details").inner_text()
        page.keyboard.press("4")
        wait_for_text(page, "orchestrator_history_rating", "4 stars")
        assert store().image(first).stars == 4
        page.keyboard.press("x")
        wait_for_text(page, "orchestrator_history_rating", "✕ rejected")
        assert store().image(first).rejected
        page.wait_for_function("() => document.querySelector('#orchestrator_history_gallery button.thumbnail-item"
                               " .caption-label')?.innerText.includes('★4')", timeout=20_000)

        page.keyboard.press("ArrowRight")  # the next image of the gallery
        wait_for_change(page, "orchestrator_history_details", first)
        second = shown_file(page)
        assert second == written[-2]
        page.keyboard.press("f")
        wait_for_text(page, "orchestrator_history_rating", "♥ favourite")
        page.keyboard.press("5")
        wait_for_text(page, "orchestrator_history_rating", "5 stars")
        assert (store().image(second).favourite, store().image(second).stars) == (True, 5)

        text_box(page, "orchestrator_history_query").press("3")  # typing: the key is the text's, not a rating
        assert text_box(page, "orchestrator_history_query").input_value() == "3"
        page.wait_for_timeout(500)
        assert store().image(second).stars == 5
        text_box(page, "orchestrator_history_query").fill("")
        page.locator("#orchestrator_history_rating").click()  # the focus out of the text box

        if os.environ.get("ORCH_SCREENSHOTS") == "1":
            DOCS.mkdir(exist_ok=True)
            page.locator("#tab_orchestrator").screenshot(path=str(DOCS / "history-tab.png"))
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#tab_orchestrator").screenshot(path=str(ARTIFACTS / "history-tab.png"))

        page.locator("#orchestrator_history_send_img2img").click()  # the image and its parameters
        page.wait_for_function("() => window.switched === 'img2img'", timeout=20_000)
        wait_for_value(page, "img2img_prompt", PASTED)
        page.wait_for_selector("#img2img_image img", timeout=20_000, state="attached")
        assert page.locator("#img2img_width input").first.input_value() == "320"
        assert page.locator("#img2img_height input").first.input_value() == "256"
        page.locator("#orchestrator_history_send_txt2img").click()
        page.wait_for_function("() => window.switched === 'txt2img'", timeout=20_000)
        wait_for_value(page, "txt2img_prompt", PASTED)
        assert page.locator("#txt2img_seed input").first.input_value() == "173"

        page.locator("#orchestrator_history_rating").click()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("f")  # keys pressed at once: each reaches its own call, in order, on the image moved to
        page.keyboard.press("3")
        wait_for_text(page, "orchestrator_history_rating", "3 stars · ♥ favourite")
        third = store().image(written[-3])
        assert (third.stars, third.favourite) == (3, True) and shown_file(page) == written[-3]

        page.get_by_role("tab", name="LoRA leaderboard", exact=True).click()
        page.wait_for_selector("#orchestrator_leaderboard table.orch-leaderboard", timeout=20_000)
        board = page.locator("#orchestrator_leaderboard").inner_text()
        assert "add_detail" in board and "lighthouse_keeper" in board and "★" in board

        page.get_by_role("tab", name="Compare", exact=True).click()
        for side in ("left", "right"):
            page.wait_for_function(
                f"() => document.querySelector('#orchestrator_compare_{side}_image img')?.complete", timeout=20_000)
        compare = page.locator("#orchestrator_history_compare").inner_text()
        sources = page.eval_on_selector_all("#orchestrator_history_compare img", "all => all.map(i => i.src)")
        for secret in ("watercolor", "ink_sketch", "00000", "00001", "00002", "lighthouse"):  # blind until judged
            assert secret not in compare and not any(secret in s for s in sources), secret
        left, right = (which(page.evaluate(SKY, f"orchestrator_compare_{side}_image")) for side in ("left", "right"))
        assert left != right

        page.keyboard.press("ArrowRight")  # the right one is better
        wait_for_text(page, "orchestrator_compare_reveal", "right won")
        judged = store().db.execute("SELECT left_id, right_id, outcome FROM comparisons").fetchall()
        ids = {lora: store().image(files[lora or "baseline"]).id for lora in PAIR}
        assert judged == [(ids[left], ids[right], "right")]
        reveal = page.locator("#orchestrator_compare_reveal").inner_text()
        assert (right or "no LoRA") in reveal.split("right won")[1]  # now it says what each one was
        wait_for_text(page, "orchestrator_compare_counter", "1 judged in this session")
        page.locator("#tab_orchestrator").screenshot(path=str(ARTIFACTS / "history-compare.png"))
        page.keyboard.press("s")  # skip the next pair
        wait_for_text(page, "orchestrator_compare_counter", "2 judged in this session")
        assert [o for o, in store().db.execute("SELECT outcome FROM comparisons ORDER BY id")] == ["right", "skip"]
        page.keyboard.press("ArrowLeft")  # twice at once: the second waits for the next pair, it is not judged unseen
        page.keyboard.press("ArrowLeft")
        wait_for_text(page, "orchestrator_compare_counter", "3 judged in this session")
        page.wait_for_timeout(1500)
        assert "3 judged in this session" in page.locator("#orchestrator_compare_counter").inner_text()
        assert [o for o, in store().db.execute("SELECT outcome FROM comparisons ORDER BY id")] == \
            ["right", "skip", "left"]

        page.get_by_role("tab", name="Browse", exact=True).click()
        text_box(page, "orchestrator_history_query").fill("seed:77 -lora:ink_sketch")  # filters only: no meaning
        text_box(page, "orchestrator_history_query").press("Enter")
        wait_for_text(page, "orchestrator_history_summary", "2 images · page 1 of 1")
        captions = page.locator("#orchestrator_history_gallery .caption-label").all_inner_texts()
        assert sorted(captions) == ["seed 77", "watercolor_wash:0.8"]
