"""Batches: the three formats round-trip, broken files give clear errors, runs resume exactly."""
from __future__ import annotations

import io
import json
import re

import pytest

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.batches import BatchFileError, RunState, Settings, load_batch, plan_batch, save_batch
from lib_orchestrator.batches.model import Batch, BatchImage
from lib_orchestrator.batches.run import run_batch
from lib_orchestrator.cli import main
from lib_orchestrator.library import scan_library
from lib_orchestrator.selection import LoraIndex, Rules
from lib_orchestrator.wildcards import PromptEngine

from .conftest import BUNDLED

ENGINE = PromptEngine([str(BUNDLED)])
INDEX = LoraIndex(scan_library(SAMPLE_LORAS).records)


def planned(count=20, seed=100, settings=None):
    return plan_batch("night", "__templates/noir__, watercolor wash", count, seed, ENGINE, INDEX, Rules(), "sdxl",
                      "SDXL 1.0", settings=settings, negative="lowres")


def test_json_round_trips_completely(tmp_path):
    batch = planned(settings=Settings(checkpoint="juggernautXL", enable_hr=True, steps=30))
    save_batch(batch, str(tmp_path / "b.json"))
    assert load_batch(str(tmp_path / "b.json")) == batch
    assert any(im.loras for im in batch.images) and all(im.negative_prompt == "lowres" for im in batch.images)


def test_txt_and_csv_round_trip_what_they_hold(tmp_path):
    batch = planned(count=5)
    save_batch(batch, str(tmp_path / "b.txt"))
    as_txt = load_batch(str(tmp_path / "b.txt"), seed=100)
    assert [im.prompt for im in as_txt.images] == [im.prompt for im in batch.images]
    assert [im.seed for im in as_txt.images] == [im.seed for im in batch.images]
    save_batch(batch, str(tmp_path / "b.csv"))
    as_csv = load_batch(str(tmp_path / "b.csv"))
    assert [(im.index, im.seed, im.prompt, im.negative_prompt, im.loras) for im in as_csv.images] == \
        [(im.index, im.seed, im.prompt, im.negative_prompt, im.loras) for im in batch.images]
    assert as_csv.settings.steps == batch.settings.steps


def test_a_plain_txt_of_prompts_imports_as_a_batch(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# my prompts\na cat\n\na dog <lora:x:0.5>\n", encoding="utf-8")
    batch = load_batch(str(path), seed=7)
    assert [(im.index, im.seed, im.prompt) for im in batch.images] == [(0, 7, "a cat"), (1, 8, "a dog <lora:x:0.5>")]


@pytest.mark.parametrize("edit, fragment", [
    (lambda t: t.replace('"seed": 100,', '"seed": 100', 1), "invalid JSON"),
    (lambda t: t.replace('"orchestrator-batch"', '"something-else"'), "not an Orchestrator batch"),
    (lambda t: t.replace('"version": 1', '"version": 9'), "not supported"),
    (lambda t: t.replace('"steps": 20', '"steps": "twenty"'), "settings.steps must be a whole number"),
    (lambda t: t.replace('"sampler_name"', '"sampler"'), "unknown setting 'sampler'"),
    (lambda t: t.replace('"seed": 101', '"seed": 1.5'), "images[1].seed must be a whole number"),
    (lambda t: t.replace('"index": 1,', '"index": 0,'), "images[1] has the index 0 of another image"),
])
def test_a_corrupt_or_hand_edited_json_gives_a_clear_error(tmp_path, edit, fragment):
    path = tmp_path / "b.json"
    save_batch(planned(count=3), str(path))
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(BatchFileError, match=re.escape(fragment)) as info:
        load_batch(str(path))
    assert info.value.location.source == str(path) and info.value.location.line > 0


@pytest.mark.parametrize("old, new, fragment", [
    ('"seed": 101', '"seed": "101"', "images[1].seed must be a whole number, not '101'"),
    ('"seed": 101', '"seed": 99999999999', "images[1].seed must be from 0 to 4294967295"),
    ('"loras": [', '"loras": "sharp", "was": [', "images[1].loras must be a list"),
    ('"width": 1024', '"width": -512', "settings.width must be from 64 to 4096, not -512"),
    ('"cfg_scale": 7.0', '"cfg_scale": NaN', "settings.cfg_scale must be a number, not nan"),
    ('"steps": 20', '"steps": 100000', "settings.steps must be from 1 to 150"),
])
def test_a_hand_edit_is_reported_at_the_line_and_column_of_the_value_it_broke(tmp_path, old, new, fragment):
    path = tmp_path / "b.json"
    save_batch(planned(count=3), str(path))
    text = path.read_text(encoding="utf-8")
    at = text.index(old, text.index('"index": 1')) if old.startswith(('"seed"', '"loras"')) else text.index(old)
    edited = text[:at] + new + text[at + len(old):]
    path.write_text(edited, encoding="utf-8")
    with pytest.raises(BatchFileError) as info:
        load_batch(str(path))
    value_at = at + new.index(":") + 2  # where the value starts, counted in the text written here
    line = edited.count("\n", 0, value_at) + 1
    column = value_at - edited.rfind("\n", 0, value_at)
    assert fragment in info.value.message
    assert (info.value.location.line, info.value.location.column) == (line, column)


def test_a_batch_nested_past_reason_is_refused_not_a_crash(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000, encoding="utf-8")
    with pytest.raises(BatchFileError, match="nested 200,000 deep") as info:
        load_batch(str(path))
    assert (info.value.location.line, info.value.location.column) == (1, 65)  # the 65th bracket: one too deep
    path.write_text('{"schema": "orchestrator-batch", "version": 1, "images": ' + "[" * 100_000 + "]" * 100_000 + "}",
                    encoding="utf-8")
    with pytest.raises(BatchFileError, match="nested 100,001 deep"):
        load_batch(str(path))


def test_a_broken_csv_names_the_row(tmp_path):
    path = tmp_path / "b.csv"
    save_batch(planned(count=3), str(path))
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace(",101,", ",one-oh-one,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(BatchFileError) as info:
        load_batch(str(path))
    assert info.value.location.line == 3


def test_interrupted_at_image_7_and_resumed_makes_exactly_20_images(tmp_path):
    batch = planned()
    path = str(tmp_path / "b.json")
    save_batch(batch, path)
    made = {}

    def generate(image):
        made.setdefault(image.index, []).append((image.prompt, image.seed))
        return f"img-{image.index}.png"

    stop_after = [7]
    first = run_batch(batch, RunState(path), generate, should_stop=lambda: len(made) >= stop_after[0])
    assert len(first) == 7
    second = run_batch(load_batch(path), RunState(path), generate)
    assert len(second) == 13
    assert sorted(made) == list(range(20)) and all(len(v) == 1 for v in made.values())
    assert all(made[im.index] == [(im.prompt, im.seed)] for im in batch.images)
    assert RunState(path).summary(batch) == "20/20 images done, finished"


def test_a_big_batchs_progress_reads_with_thousands_separators(tmp_path):
    images = tuple(BatchImage(k, k, f"p{k}") for k in range(1500))
    batch = Batch("big", "", 0, Settings(), images)
    assert RunState(str(tmp_path / "big.json")).summary(batch) == "0/1,500 images done"


def test_a_crash_mid_image_loses_nothing_and_duplicates_nothing(tmp_path):
    batch = planned(count=5)
    path = str(tmp_path / "b.json")
    state = RunState(path)
    state.record(0, "started")
    state.record(0, "done", "img-0.png")
    state.record(1, "started")  # the process died while making image 1…
    with open(state.path, "a", encoding="utf-8") as fh:
        fh.write('{"index": 2, "stat')  # …in the middle of writing a line
    redone = []
    run_batch(batch, state, lambda im: redone.append(im.index) or f"img-{im.index}.png")
    assert redone == [1, 2, 3, 4]
    assert sorted(state.done()) == [0, 1, 2, 3, 4]


def test_checkpoint_grouping_and_progress_text(tmp_path):
    images = tuple(BatchImage(k, k, f"p{k}", checkpoint=("b" if k % 2 else None)) for k in range(6))
    batch = Batch("g", "", 0, Settings(checkpoint="a"), images)
    assert [im.index for im in batch.run_order()] == [0, 2, 4, 1, 3, 5]
    texts = []
    ticks = iter(range(100))
    run_batch(batch, RunState(str(tmp_path / "g.json")), lambda im: "f", on_progress=lambda p: texts.append(p.text()),
              clock=lambda: next(ticks))
    assert texts[0].startswith("image 1/6 · seed 0 · LoRAs no LoRAs") and "ETA" in texts[1]
    assert texts[-1] == "6/6 images done"


def test_forge_fields_avoid_the_api_traps():
    off = Settings().forge_fields()
    assert "hr_cfg" not in off and "hr_additional_modules" not in off
    on = Settings(enable_hr=True, cfg_scale=6.5).forge_fields()
    assert on["hr_cfg"] == 6.5 and on["hr_additional_modules"] == ["Use same choices"]


def test_cli_plan_and_show(tmp_path):
    out = tmp_path / "night.json"
    assert main(["batch", "plan", "__templates/cozy__", "--count", "4", "--seed", "9", "--loras", SAMPLE_LORAS,
                 "--out", str(out)], io.StringIO(), io.StringIO()) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert len(data["images"]) == 4 and data["images"][0]["seed"] == 9
    RunState(str(out)).record(0, "done", "x.png")
    buffer = io.StringIO()
    assert main(["batch", "show", str(out)], buffer, io.StringIO()) == 0
    shown = buffer.getvalue()
    assert "1/4 images done" in shown and shown.count("[done]") == 1 and shown.count("[todo]") == 3


@pytest.mark.parametrize("name, foreign", [("notes.txt", "buy milk\n"), ("data.json", '{"mine": true}\n'),
                                          ("sheet.csv", "a,b\n1,2\n")])
def test_a_file_that_is_not_a_batch_is_never_written_over(tmp_path, name, foreign):
    path = tmp_path / name
    path.write_text(foreign, encoding="utf-8")
    with pytest.raises(BatchFileError, match="not an Orchestrator batch"):
        save_batch(planned(count=2), str(path))
    assert path.read_text(encoding="utf-8") == foreign
    ours = tmp_path / f"ours{path.suffix}"
    save_batch(planned(count=2), str(ours))
    save_batch(planned(count=3), str(ours))  # our own batch of that name: replaced
    assert len(load_batch(str(ours)).images) == 3


def test_the_command_line_refuses_to_write_a_batch_over_a_users_file(tmp_path):
    from lib_orchestrator.cli import main

    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n", encoding="utf-8")
    err = io.StringIO()
    assert main(["batch", "plan", "a cat", "--count", "2", "--out", str(notes)], io.StringIO(), err) == 2
    assert "not an Orchestrator batch" in err.getvalue() and notes.read_text(encoding="utf-8") == "my notes\n"


@pytest.mark.parametrize("rules, setting", [(Rules(variables="batch"), ""), (Rules(), "batch")])
def test_variables_per_batch_share_the_first_seeds_value(rules, setting):
    template = "${who=!{ann|bea|cid|dot|eve|fay}} ${who}, __setting__"
    batch = plan_batch("vars", template, 6, 40, ENGINE, None, rules, "sdxl", "SDXL 1.0", loras=False,
                       variables=setting)
    names = {image.prompt.split(",")[0].strip() for image in batch.images}
    first_alone = ENGINE.prompt(template, 40).split(",")[0].strip()  # the first image is the same in both modes
    assert names == {first_alone}
    assert len({image.prompt for image in batch.images}) > 1  # the rest still varies per image


def test_variables_per_image_by_default():
    template = "${who=!{ann|bea|cid|dot|eve|fay}} ${who}"
    batch = plan_batch("vars", template, 12, 40, ENGINE, None, Rules(), "sdxl", "SDXL 1.0", loras=False)
    assert len({image.prompt for image in batch.images}) > 1
