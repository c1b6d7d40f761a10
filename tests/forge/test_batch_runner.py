"""Running a batch inside the Forge stand-in: 20 images, interrupted at 7, resumed: exactly 20 images
with the right prompts and seeds, saved with Forge's infotext."""
from __future__ import annotations

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.batches import RunState, Settings, load_batch, plan_batch, save_batch
from lib_orchestrator.library import scan_library
from lib_orchestrator.selection import LoraIndex, Rules
from lib_orchestrator.wildcards import PromptEngine

from ..conftest import BUNDLED


def test_interrupted_at_7_and_resumed_gives_exactly_20_images(runner, tmp_path):
    from modules import infotext_utils, shared

    index = LoraIndex(scan_library(SAMPLE_LORAS).records)
    batch = plan_batch("night", "__templates/noir__, watercolor wash", 20, 500, PromptEngine([str(BUNDLED)]),
                       index, Rules(), "sdxl", "SDXL 1.0", settings=Settings(steps=2, width=64, height=64))
    path = str(tmp_path / "night.json")
    save_batch(batch, path)
    texts = []

    def stop_at_7(progress):
        texts.append(progress.text())
        if progress.done == 7 and progress.image is not None:
            shared.state.interrupt()

    first = runner.run_in_forge(load_batch(path), path, stop_at_7)
    assert len(first) == 7 and "image 1/20 · seed 500" in texts[0]
    shared.state.interrupted = False
    second = runner.run_in_forge(load_batch(path), path)
    assert len(second) == 13
    done = RunState(path).done()
    assert sorted(done) == list(range(20)) and len(set(done.values())) == 20
    for image in batch.images:
        from PIL import Image

        with Image.open(done[image.index]) as saved:
            params = infotext_utils.parse_generation_parameters(saved.info["parameters"])
        assert params["Prompt"] == image.prompt and params["Seed"] == str(image.seed), saved.info["parameters"]
        if image.loras:
            assert params.get("Lora hashes")  # Forge loaded the batch's LoRAs for this image


def test_a_skipped_image_is_recorded_and_made_on_resume(runner, tmp_path, monkeypatch):
    from modules import processing, shared

    index = LoraIndex(scan_library(SAMPLE_LORAS).records)
    batch = plan_batch("skip", "a lighthouse, __templates/noir__", 5, 40, PromptEngine([str(BUNDLED)]),
                       index, Rules(), "sdxl", "SDXL 1.0", settings=Settings(steps=2, width=64, height=64))
    path = str(tmp_path / "skip.json")
    save_batch(batch, path)
    make_image = processing._make_image

    def skip_during_image_2(width, height, seed):  # the user presses Skip while image #2 samples
        if seed == 42:
            shared.state.skip()
        return make_image(width, height, seed)

    monkeypatch.setattr(processing, "_make_image", skip_during_image_2)
    first = runner.run_in_forge(load_batch(path), path)
    assert len(first) == 4 and not shared.state.skipped
    assert 2 not in RunState(path).done()
    monkeypatch.setattr(processing, "_make_image", make_image)
    second = runner.run_in_forge(load_batch(path), path)
    assert len(second) == 1 and sorted(RunState(path).done()) == list(range(5))
