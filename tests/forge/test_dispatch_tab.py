"""*Run on all servers* from the tab, through the stand-in, against fake Forge servers on real HTTP: the Settings'
servers (and this Forge when it has --api) make the saved batch, the tab streams it like *Run*, its images land in
Forge's txt2img folder and the history, and what is wrong in Settings is said in the status line."""
from __future__ import annotations

import os
import shutil

import pytest

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.batches import RunState, save_batch

from ..dispatch.helpers import ALPHA, BETA, make_batch

pytest.importorskip("gradio")


@pytest.fixture
def tab_module(lora_dir, forge_app, tmp_path):
    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    module = forge_app()["orchestrator_tab.py"]
    assert module is not None
    module.MODEL.batches_dir = str(tmp_path / "batches")
    return module


def test_the_settings_servers_make_the_batch_and_the_tab_follows_it(tab_module, fakes, tmp_path):
    from modules import shared

    one, two = fakes(loaded=ALPHA), fakes(loaded=BETA)
    shared.opts.data.update(orchestrator_servers=f"{one.url}, {two.url}", orchestrator_dispatch_here=True,
                            outdir_txt2img_samples=str(tmp_path / "outputs"))
    shared.cmd_opts.api = False  # this Forge has no API: it makes none of them
    batch = make_batch(6)
    path = tmp_path / "batches" / "cats.json"
    save_batch(batch, str(path))
    views = list(tab_module._dispatch_batch("cats.json"))
    assert views[0][1] == "starting on 2 servers…"
    gallery, status, table = views[-1]
    assert status.startswith("finished: 6/6 done"), status
    assert f"- {one.url} [up]" in status and f"- {two.url} [up]" in status  # each server's own line
    assert len(gallery) == 6 and table.count("✔") == 6
    made = sorted(os.listdir(tmp_path / "outputs" / "cats"))
    assert len(made) == 6 and all(name.startswith("cats-") and name.endswith(".png") for name in made)
    assert set(RunState(str(path)).done()) == set(range(6))
    assert one.txt2img_requests + two.txt2img_requests == 6
    tab_module.state.HISTORY.wait(30)
    history = tab_module.state.HISTORY.store()
    for name in made:  # in the history with their batch, as the tab's own Run's images are
        row = history.image(str(tmp_path / "outputs" / "cats" / name))
        assert row is not None and row.batch.startswith("cats #"), name

    # again: nothing to make, nothing sent
    assert list(tab_module._dispatch_batch("cats.json"))[-1][1].startswith("finished: 6/6 done")
    assert one.txt2img_requests + two.txt2img_requests == 6


def test_this_forge_takes_part_through_its_own_api_with_its_api_auth(tab_module):
    from modules import shared

    shared.opts.data.update(orchestrator_servers="http://gpu2:7861", orchestrator_dispatch_here=True)
    shared.cmd_opts.api, shared.cmd_opts.port, shared.cmd_opts.api_auth = True, 7870, "me:pw"
    assert tab_module.state.dispatch_servers() == ["http://me:pw@127.0.0.1:7870", "http://gpu2:7861"]
    shared.opts.data["orchestrator_dispatch_here"] = False
    assert tab_module.state.dispatch_servers() == ["http://gpu2:7861"]


@pytest.mark.parametrize("listed, here, said", [
    ("http://me:secret@gpu2:7861", False, "error: Settings › Orchestrator › Servers, line 1: no user or password"),
    ("", False, "error: no server to run on: list them in Settings"),
    ("", True, "error: no server to run on"),  # this Forge without --api cannot take part
])
def test_what_is_wrong_in_settings_is_said_before_any_image(tab_module, tmp_path, listed, here, said):
    from modules import shared

    shared.opts.data.update(orchestrator_servers=listed, orchestrator_dispatch_here=here)
    shared.cmd_opts.api = False
    save_batch(make_batch(2), str(tmp_path / "batches" / "cats.json"))
    views = list(tab_module._dispatch_batch("cats.json"))
    assert len(views) == 1 and views[0][1].startswith(said), views[0][1]
    assert not RunState(str(tmp_path / "batches" / "cats.json")).done()
