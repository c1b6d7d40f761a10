"""The tab's handlers on the fixture library, without Gradio."""
from __future__ import annotations

import os

import pytest

from lib_orchestrator.library import scan_library
from lib_orchestrator.library.overrides import OverrideStore
from lib_orchestrator.selection import LoraIndex
from lib_orchestrator.tab import TabModel, parse_locks
from lib_orchestrator.wildcards import PromptEngine

from .conftest import BUNDLED
from .library_fixtures import generate


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tab")
    generate(root, "tiny", seed=31)
    records = scan_library(str(root / "Lora")).records
    index = LoraIndex(records)
    engine = PromptEngine([str(BUNDLED), str(root / "saved")])
    return TabModel(engine=lambda: engine, index=lambda: index, records=lambda: records,
                    checkpoint=lambda: ("sdxl", "Illustrious"), overrides=OverrideStore(str(root / "o.json")),
                    library_roots=lambda: [str(root / "Lora")], saved_dir=str(root / "saved"),
                    thumbs_dir=str(root / "thumbs"))


def test_compose_preview_table_and_lint(model):
    table, messages = model.compose_preview("__templates/fantasy__, frieren", 5, 3, "", "")
    assert table.count("<tr>") == 4 and "frieren" in table and not messages
    table, messages = model.compose_preview("a {cat", 5, 3, "", "")
    assert table == "" and "never closed" in messages


def test_reroll_lock_and_send_to_txt2img(model):
    a = model.compose_preview("__style__ cat", 1, 3, "", "")[0]
    b = model.compose_preview("__style__ cat", 2, 3, "", "")[0]
    assert a != b
    locked = model.compose_preview("__style__ cat", 1, 3, "style = oil painting", "")[0]
    assert locked.count("oil painting cat") == 3
    prompt, _negative = model.first_prompt("__style__ cat", 1, "style = oil painting", "")
    assert prompt.startswith("oil painting cat")
    assert parse_locks("__style__ = a; mood=b;bad") == {"style": "a", "mood": "b"}


def test_save_template_for_the_alwayson_script(model):
    assert model.save_template("my noir", "__templates/noir__, rain").startswith("saved")
    assert model.engine().prompt("__user_templates/my noir__", 1).endswith("rain")
    assert model.save_template("../escape", "x").startswith("error")
    assert model.save_template("ok", "  ").startswith("error")


def test_search_gallery_and_details(model):
    items, summary, paths = model.search("frieren", "", "", False, False, 0)
    assert items and len(items) == len(paths) and "LoRAs" in summary
    assert all(thumb is None or os.path.exists(thumb) for thumb, _ in items)
    html = model.details_html(paths[0])
    assert "<h3>" in html and "trigger words" in html and "<script" not in html
    items, _, _ = model.search("", "", "", True, False, 0)  # only what loads on Illustrious
    assert items


def test_overrides_from_the_details_panel(model):
    _, _, paths = model.search("", "", "", False, False, 0)
    assert model.save_override(paths[0], "style", 0.5, False, True, "great").startswith("saved")
    assert model.overrides.get(paths[0]).notes == "great"
    assert "great" in model.details_html(paths[0])
    assert model.save_override(paths[0], "nonsense", None, False, False, "").startswith("error")
    assert model.save_override("", "style", None, False, False, "").startswith("error")
    assert model.save_override(paths[0], "", "heavy", False, False, "") == \
        "error: 'heavy' is not a weight; write a number such as 0.8, or nothing for the LoRA's own"
    changed = []
    from dataclasses import replace

    told = replace(model, overrides_changed=lambda: changed.append(True))
    assert told.save_override(paths[0], "", " 0.65 ", False, False, "") == "saved; the next picks use it"
    assert told.overrides.get(paths[0]).weight == 0.65 and changed == [True]  # the library re-indexes with it


def test_batches_plan_save_list_and_show(model, tmp_path):
    model.batches_dir = str(tmp_path / "batches")
    status, table = model.save_batch_file("night", "json", "__templates/noir__", "lowres", 4, 10, {"steps": 2})
    assert status.startswith("saved 4 images") and table.count("<tr>") == 5
    assert model.save_batch_file("../x", "json", "a", "", 1, 1, {})[0].startswith("error")
    assert model.save_batch_file("bad", "json", "a {b", "", 1, 1, {})[0].startswith("error")
    assert model.save_batch_file("bad", "json", "a", "", 1, 1, {"nonsense": 1})[0].startswith("error")
    assert model.batch_files() == ["night.json"]
    summary, table = model.show_batch("night.json")
    assert summary == "night: 0/4 images done" and "✔" not in table


def test_a_saved_batch_loads_into_the_form_and_is_saved_again_only_while_nothing_is_done(model, tmp_path):
    from lib_orchestrator.batches import RunState, load_batch

    model.batches_dir = str(tmp_path / "batches")
    settings = {"steps": 9, "enable_hr": True, "hr_upscaler": "Latent (bicubic)", "hr_cfg": 4.5}
    model.save_batch_file("night", "json", "__templates/noir__", "lowres", 4, 10, settings)
    status, form = model.batch_form("night.json")
    assert status == "loaded night.json into the form"
    assert (form["name"], form["format"], form["template"], form["negative"], form["count"], form["seed"]) == \
        ("night", "json", "__templates/noir__", "lowres", 4, 10)
    assert (form["steps"], form["enable_hr"], form["hr_upscaler"], form["hr_cfg"]) == (9, True, "Latent (bicubic)", 4.5)

    model.save_batch_file("cfg", "json", "a cat", "", 1, 1, {"enable_hr": True, "cfg_scale": 6.0, "hr_cfg": 0.0})
    assert model.batch_form("cfg.json")[1]["hr_cfg"] == 0  # shown as "same"
    assert load_batch(str(tmp_path / "batches" / "cfg.json")).settings.forge_fields()["hr_cfg"] == 6.0

    path = str(tmp_path / "batches" / "night.json")
    RunState(path).record(0, "started")  # a run that crashed before its first image was saved
    assert model.save_batch_file("night", "json", "__templates/noir__", "", 6, 10, {})[0].startswith("saved 6")
    assert not RunState(path).events()  # the old plan's lines are gone with it
    RunState(path).record(0, "done", "a.png")
    status, _ = model.save_batch_file("night", "json", "__templates/noir__", "", 3, 10, {})
    assert status.startswith("error: night.json is under way (1 done)") and "night.json.state.jsonl" in status
    assert model.show_batch("night.json")[0] == "night: 1/6 images done"  # the file was left alone
    model.running.add(str(tmp_path / "batches" / "dawn.json"))  # a run whose first image is not done yet
    assert model.save_batch_file("dawn", "json", "a cat", "", 1, 1, {})[0] == \
        "error: dawn.json is running; save the edited batch under another name"
    model.running.clear()

    with open(tmp_path / "batches" / "list.txt", "w", encoding="utf-8") as fh:
        fh.write("a cat\na dog\n")
    assert model.batch_form("list.txt")[0].endswith("edit the file itself")
    assert model.batch_form("")[1] == {}


def test_swatch_plans_by_name_or_by_filter_and_explains_what_it_left_out(model):
    records = model.records()
    fits = [r for r in records if r.family == "sdxl" and r.base_model in ("Illustrious", "SDXL 1.0")][:2]
    other = next(r for r in records if r.family == "sd1")
    status, swatch = model.plan_swatch(f"{fits[0].name}, {fits[1].name}\n{other.name}", "", "", "0.5, 1", "a cat", 3)
    assert swatch is not None and swatch.loras == (fits[0].name, fits[1].name)
    assert status.startswith("2 LoRAs × 2 weights + baseline = 5 images") and other.name in status
    assert model.plan_swatch("no_such_lora", "", "", "1", "a cat", 3) == (
        "error: no LoRA named no_such_lora in the library", None)
    assert model.plan_swatch("", "", "", "1, x", "a cat", 3)[0].startswith("weights:1:4: error: 'x' is not a weight")
    assert "'{' is never closed" in model.plan_swatch("", "", "", "1", "a {cat", 3)[0]

    status, swatch = model.plan_swatch("", "", "style", "1", "__style__ cat", 3, limit=4)
    assert swatch is not None and 0 < len(swatch.loras) <= 4 and not swatch.notes
    assert "{" not in swatch.prompt and "__" not in swatch.prompt  # expanded once, the same in every cell
    assert all(c.prompt.startswith(swatch.prompt) for c in swatch.cells)


def test_a_swatch_cell_becomes_the_lora_thumbnail_without_touching_the_users_files(model, tmp_path):
    from PIL import Image

    record = model.records()[0]
    before = {p: os.path.getmtime(os.path.join(dp, p)) for dp, _, files in os.walk(model.library_roots()[0])
              for p in files}
    cell = tmp_path / "cell.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(cell)
    assert model.use_as_thumbnail(record.name, str(cell)) == f"{record.name}: this cell is now its thumbnail"
    assert model.swatch_thumbnail_path(record).startswith(model.thumbs_dir)
    items, _, paths = model.search(record.name, "", "", False, False, 0)
    thumb = items[paths.index(record.path)][0]
    with Image.open(thumb) as im:
        assert im.convert("RGB").getpixel((5, 5))[0] > 180  # the chosen cell, not the preview
    after = {p: os.path.getmtime(os.path.join(dp, p)) for dp, _, files in os.walk(model.library_roots()[0])
             for p in files}
    assert after == before
    assert "a swatch cell you chose" in model.details_html(record.path)
    assert model.use_as_thumbnail("nope", str(cell)).startswith("error")


def test_batch_by_lora_is_saved_as_a_batch_to_run_like_any_other(model, tmp_path):
    model.batches_dir = str(tmp_path / "batches")
    fits = [r for r in model.records() if r.family == "sdxl" and r.base_model in ("Illustrious", "SDXL 1.0")][:2]
    status, table = model.save_batch_by_lora("by lora", f"{fits[0].name}, {fits[1].name}", "", "", "a {cat|dog}",
                                             "", 3, 7, 0.8, {"steps": 2})
    assert status.startswith("saved 6 images (2 LoRAs × 3 prompts)") and table.count("<tr>") == 7
    assert model.show_batch("by lora.json")[0] == "by lora: 0/6 images done"
    # planned again from the form it would lose the LoRA per image and repeat no seed: refused, with where to go
    assert model.batch_form("by lora.json") == ("by lora.json is a batch by LoRA: plan it again in the Swatches tab",
                                                {})
    assert model.save_batch_by_lora("x", "nope", "", "", "a", "", 1, 1, 1.0, {})[0].startswith("error: no LoRA")


def test_a_second_axis_makes_one_grid_per_prompt_or_checkpoint(model):
    name = next(r.name for r in model.records() if r.family == "sdxl" and r.base_model == "Illustrious")
    status, grids = model.plan_swatches(name, "", "", "1", "a cat", 3)
    assert len(grids) == 1 and grids[0][1] is None
    status, grids = model.plan_swatches(name, "", "", "0.5, 1", "", 3, axis="prompts", values="a cat\n\na {dog}")
    assert status.startswith("2 grids, one per prompt") and [g.prompt for g, _ in grids] == ["a cat", "a dog"]
    status, grids = model.plan_swatches(name, "", "", "1", "a cat", 3, axis="checkpoints",
                                        values="juggernautXL_v9\nponyDiffusionV6XL")
    assert [c for _, c in grids] == ["juggernautXL_v9", "ponyDiffusionV6XL"] and grids[0][0] is grids[1][0]
    assert model.plan_swatches(name, "", "", "1", "a", 3, axis="prompts", values="a {b")[0].endswith(
        "(add '}' or write a literal brace as \\{)")
    assert model.plan_swatches(name, "", "", "1", "a", 3, axis="seeds", values="1")[0].startswith("error")


def test_compose_preview_shows_what_the_llm_made_of_each_prompt(model, serve):
    from lib_orchestrator.enhance import EnhanceOptions, Enhancer

    from .enhance.fake_servers import backend

    server = serve(backend("lmstudio"))
    model.enhancer = lambda genre: Enhancer(EnhanceOptions(url=server.url, genre=genre))
    table, messages = model.compose_preview("a {cat|dog} in the rain", 5, 2, "", "", True, "noir")
    assert table.count("LLM enhanced") == 2 and "was: a " in table and "LLM" not in messages
    # booru tags: the checkpoint is Illustrious, so the shipped template adds its quality prefix
    prompt, _ = model.first_prompt("a {cat|dog} in the rain", 5, "", "", True, "noir")
    assert prompt.startswith("masterpiece, best quality, a ")
    assert model.check_llm().startswith(f"ready: {server.url} offers small-model")
    server.close()
    table, messages = model.compose_preview("a {cat|dog} in the rain", 5, 2, "", "", True, "noir")
    assert "LLM fallback" in table and any(line.startswith("LLM: cannot connect") for line in messages.splitlines())
    assert model.check_llm().startswith("not ready: cannot connect")


def test_a_story_previews_and_saves_as_a_batch(model, tmp_path):
    from lib_orchestrator.batches import load_batch

    from .test_story import SAMPLE

    model.batches_dir = str(tmp_path)
    text = SAMPLE.read_text(encoding="utf-8")
    status, table = model.plan_story(text, 5, 40, False)
    assert status == "planned from the outline (no LLM)" and table.count("<tr>") == 6
    status, _ = model.save_story("keeper", text, 5, 40, False, "lowres")
    assert status.startswith("saved 5 scenes")
    batch = load_batch(str(tmp_path / "keeper.json"))
    assert [im.seed for im in batch.images] == [40, 41, 42, 43, 44] and batch.images[0].negative_prompt == "lowres"
    # its "template" is the story's title: planned again from the form, every image would be that literal text
    assert model.batch_form("keeper.json") == ("keeper.json holds a story's scenes: plan them again in the Story tab",
                                               {})
    assert model.plan_story("characters:\n  - id: x\n", 3, 0, False)[0].startswith("error: story bible:2:5:")
    assert model.save_story("no/slash", text, 3, 0, False)[0].startswith("error: a batch name")


# -- what a real Forge needs from the tab -------------------------------------------------------------------------

def forge_like(model, tmp_path, **kw):
    """The tab's model as the Forge adapter builds it: checkpoint names looked up, upscalers listed."""
    from dataclasses import replace

    known = {"dreamshaper_8": ("dreamshaper_8.safetensors", "sd1", "SD 1.5"),
             "juggernautXL_v9": ("sdxl/juggernautXL_v9.safetensors", "sdxl", "SDXL 1.0")}
    kw.setdefault("checkpoints", lambda name: known.get(name.replace(".safetensors", "").split("/")[-1]))
    kw.setdefault("upscalers", lambda: ["None", "ESRGAN"])  # Forge Neo's: no latent modes
    kw.setdefault("running", set())
    return replace(model, batches_dir=str(tmp_path / "batches"), **kw)


def test_generation_settings_fit_the_checkpoint_they_run_on(model, tmp_path):
    m = forge_like(model, tmp_path)
    settings, family, base = m.generation_settings({"width": 0, "height": 0, "hr_cfg": 0})
    assert (settings["width"], settings["height"], settings["hr_cfg"], family) == (1024, 1024, None, "sdxl")
    settings, family, base = m.generation_settings({"checkpoint": "dreamshaper_8", "width": 0, "height": 640})
    assert (settings["checkpoint"], settings["width"], settings["height"]) == ("dreamshaper_8.safetensors", 512, 640)
    assert (family, base) == ("sd1", "SD 1.5")  # picks are made for the batch's own checkpoint
    assert m.generation_settings({"checkpoint": "nope_v2"}) == \
        "error: Forge has no checkpoint named 'nope_v2' (see its checkpoint list)"
    assert m.generation_settings({"enable_hr": True, "hr_upscaler": "Latent"}) == \
        "error: this Forge has no hires upscaler 'Latent' (it has None, ESRGAN)"
    assert isinstance(m.generation_settings({"enable_hr": True, "hr_upscaler": "ESRGAN"}), tuple)


def test_a_batch_format_outside_the_list_writes_nothing(model, tmp_path):
    m = forge_like(model, tmp_path)
    assert m.save_batch_file("x", "/../../x.json", "a cat", "", 1, 1, {})[0] == \
        "error: a batch is saved as json, txt, csv, not '/../../x.json'"
    assert not (tmp_path / "batches").exists() and not (tmp_path / "x.json").exists()


def test_a_batch_run_streams_its_images_and_fills_the_done_column(model, tmp_path):
    from lib_orchestrator.batches.run import run_batch

    m = forge_like(model, tmp_path)
    assert m.save_batch_file("night", "json", "a lighthouse, {rain|fog}", "", 3, 5, {"steps": 1})[0].startswith("saved")
    made = []

    def host(batch, path, on_progress):  # what Forge's runner does, with files instead of images
        from lib_orchestrator.batches import RunState

        def generate(image):
            file = tmp_path / f"{image.index}.png"
            file.write_bytes(b"png")
            made.append(image.index)
            return str(file)

        run_batch(batch, RunState(path), generate, on_progress=on_progress)

    views = list(m.run_batch("night.json", host))
    files, status, table = views[-1]
    assert status == "3/3 images done, finished" and len(files) == 3 and table.count("✔") == 3
    assert any(s.startswith("image 2/3 · seed 6") for _, s, _ in views)
    assert list(m.run_batch("night.json", host))[-1][1] == "3/3 images done, finished" and made == [0, 1, 2]


def test_a_batch_that_cannot_run_here_is_refused_before_any_image(model, tmp_path):
    m = forge_like(model, tmp_path, upscalers=lambda: ["Latent", "None"])
    m.save_batch_file("hires", "json", "a cat", "", 2, 5, {"enable_hr": True, "hr_upscaler": "Latent"})
    neo = forge_like(model, tmp_path)  # the same batch file, opened in Forge Neo

    def host(*_):
        raise AssertionError("nothing may be generated")

    (files, status, table), = list(neo.run_batch("hires.json", host))
    assert status.startswith("error: this Forge has no hires upscaler 'Latent' (it has None, ESRGAN)")
    assert table.count("<tr>") == 3 and not files
    neo.running.add(os.path.abspath(str(tmp_path / "batches" / "hires.json")))
    assert list(forge_like(model, tmp_path, running=neo.running, upscalers=lambda: ["Latent"]).run_batch(
        "hires.json", host))[0][1].startswith("error: hires.json is running already")
    assert list(neo.run_batch("", host)) == [([], "pick a saved batch first", "")]


def test_a_failing_run_says_why_and_lets_the_batch_run_again(model, tmp_path):
    m = forge_like(model, tmp_path)
    m.save_batch_file("oom", "json", "a cat", "", 1, 5, {})

    def host(*_):
        raise RuntimeError("CUDA out of memory")

    *_, (files, status, _) = m.run_batch("oom.json", host)
    assert status == "error: RuntimeError: CUDA out of memory · 0/1 images done" and not m.running


def test_swatch_grids_are_made_by_the_host_and_a_rerun_makes_only_missing_cells(model, tmp_path):
    from lib_orchestrator.swatches.run import CellResult

    m = forge_like(model, tmp_path)
    name = next(r.name for r in model.records() if r.family == "sdxl" and r.base_model == "Illustrious")
    calls, fail = [], [True]

    def make_grid(swatch, settings, checkpoint, only, previous):
        results = dict(previous or {})
        for cell in swatch.cells:
            key = (cell.row, cell.column)
            if only is not None and key not in only:
                continue
            calls.append((key, settings.width, checkpoint))
            broken = fail[0] and cell.lora and cell.weight == 1.0
            results[key] = CellResult(cell, error="RuntimeError: boom") if broken else \
                CellResult(cell, file=str(tmp_path / f"{key}.png"))
        return results, str(tmp_path / "grid.png"), str(tmp_path / "grid.swatch.json")

    gallery, status, kept = m.run_swatches(make_grid, name, "", "", "a cat", "", "0.5, 1", 3, 1, 0, 0, 7, "none", "",
                                           None)
    assert len(calls) == 3 and {w for _, w, _ in calls} == {1024}  # width 0: the checkpoint's own size
    assert "2/3 cells made; 1 missing: re-run them alone (RuntimeError: boom)" in status
    assert gallery[0] == (str(tmp_path / "grid.png"), "grid") and len(gallery) == 3
    calls.clear()
    fail[0] = False
    gallery, status, kept = m.run_swatches(make_grid, "", "", "", "", "", "", 0, 0, 0, 0, 0, "none", "", kept,
                                           rerun=True)
    assert [key for key, _, _ in calls] == [(1, 1)] and "3/3 cells made" in status
    status = m.run_swatches(make_grid, name, "", "", "a cat", "", "1", 3, 1, 0, 0, 7, "checkpoints",
                            "dreamshaper_8", None)[1]
    assert status == ("error: dreamshaper_8 is a SD 1.5 checkpoint; the swatch's LoRAs are for Illustrious: "
                      "name checkpoints of the selected one's family")
    calls.clear()
    m.run_swatches(make_grid, name, "", "", "a cat", "", "1", 3, 1, 0, 0, 7, "checkpoints", "juggernautXL_v9", None)
    assert {c for _, _, c in calls} == {"sdxl/juggernautXL_v9.safetensors"}  # Forge's exact name, nothing else


def test_the_preview_says_why_it_picked_no_loras(model):
    from dataclasses import replace

    indexing = replace(model, index=lambda: None)
    assert "still being indexed" in indexing.compose_preview("a cat", 1, 2, "", "")[1]
    unknown = replace(model, checkpoint=lambda: ("unknown", "Unknown"))
    assert "model family is unknown" in unknown.compose_preview("a cat", 1, 2, "", "")[1]


def test_the_library_page_names_every_lora_and_says_when_it_is_still_indexing(model, tmp_path):
    from dataclasses import replace

    from PIL import Image

    fresh = replace(model, thumbs_dir=str(tmp_path / "thumbs"))
    items, _, paths = fresh.search("", "", "", False, False, 0)
    assert items and all(thumb and os.path.exists(thumb) for thumb, _ in items)  # a name card without a preview
    with Image.open(items[0][0]) as card:
        assert card.size == (256, 256) and card.convert("RGB").getpixel((3, 3))[0] > 200  # light, not a dark tile
    empty = replace(model, index=lambda: None, records=lambda: [])
    assert empty.search("", "", "", False, False, 0)[1].startswith("indexing your LoRA library")


def test_a_failed_or_partial_library_scan_is_said_where_the_user_looks(model):
    from dataclasses import replace

    from lib_orchestrator.library.service import LibraryStatus

    failed = LibraryStatus(failed=True, last_error="PermissionError: [Errno 13] Lora")
    broken = replace(model, index=lambda: None, records=lambda: [], library_status=lambda: failed)
    assert broken.search("", "", "", False, False, 0)[1].startswith("LoRA library scan failed: PermissionError")
    assert "LoRA library scan failed" in broken.compose_preview("a cat", 1, 1, "", "")[1]
    partial = replace(model, library_status=lambda: LibraryStatus(ready=True, loras=40, records=43, skipped=3,
                                                                  with_problems=3))
    summary = partial.search("", "", "", False, False, 0)[1]
    assert "3 files skipped" in summary  # next to the page count, not only in a log
    for said in ("412 LoRAs embedded by builtin wordllama", "keywords only: the built-in embedder is not installed"):
        status = LibraryStatus(ready=True, loras=40, records=40, semantic=said)
        clean = replace(model, library_status=lambda status=status: status)
        assert clean.search("", "", "", False, False, 0)[1].endswith(f" · {said}")  # what matching has to work with
