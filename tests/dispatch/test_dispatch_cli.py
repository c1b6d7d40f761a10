"""`batch dispatch` and `batch show` on the command line, against fake Forge servers on real HTTP: the command
finishes a batch on several servers, says where the images are, continues instead of repeating, and fails loudly,
with what is missing where, for images no server can make."""
from __future__ import annotations

import io
import os
import re

from lib_orchestrator.batches import RunState, save_batch
from lib_orchestrator.cli import main

from .helpers import ALPHA, BETA, make_batch


def cli(*argv: str):  # type: ignore[no-untyped-def]
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def images_in(folder) -> list:  # type: ignore[no-untyped-def]
    return sorted(name for name in os.listdir(folder) if name.endswith(".png"))


def test_two_servers_make_the_batch_once_and_a_rerun_makes_nothing(tmp_path, fakes, queue_url):
    batch = make_batch(8)
    path = str(tmp_path / "cats.json")
    save_batch(batch, path)
    one, two = fakes(loaded=ALPHA), fakes(loaded=BETA)
    code, out, err = cli("batch", "dispatch", path, "--forge", one.url, "--forge", two.url, "--queue", queue_url)
    assert code == 0, err
    assert out.startswith("8/8 images done in ") and str(tmp_path / "cats") in out
    assert len(images_in(tmp_path / "cats")) == 8
    assert one.txt2img_requests + two.txt2img_requests == 8

    code, out, err = cli("batch", "dispatch", path, "--forge", one.url, "--forge", two.url, "--queue", queue_url)
    assert code == 0 and out.startswith("8/8 images done")
    assert one.txt2img_requests + two.txt2img_requests == 8  # nothing made twice
    assert len(images_in(tmp_path / "cats")) == 8

    code, shown, _ = cli("batch", "show", path, "--queue", queue_url)
    assert code == 0 and "8/8 images done, finished" in shown
    lines = [line for line in shown.splitlines() if line.startswith("[")]
    assert len(lines) == 8 and all(line.startswith("[done]") for line in lines)
    hosts = {re.search(r"· (127\.0\.0\.1:\d+) · 1 attempt:", line).group(1) for line in lines}
    assert hosts <= {one.url.split("//")[1], two.url.split("//")[1]}


def test_the_default_queue_is_a_file_beside_the_batch_and_show_reads_it(tmp_path, fakes):
    batch = make_batch(3, checkpoints=("alpha.safetensors",))
    path = str(tmp_path / "cats.json")
    save_batch(batch, path)
    server = fakes()
    assert cli("batch", "dispatch", path, "--forge", server.url, "--out", str(tmp_path / "pics"))[0] == 0
    assert os.path.isfile(path + ".queue.sqlite") and len(images_in(tmp_path / "pics")) == 3
    code, shown, _ = cli("batch", "show", path)
    assert code == 0 and shown.count("[done]") == 3


def test_images_no_server_can_make_fail_loudly_with_what_is_missing_where(tmp_path, fakes):
    batch = make_batch(4, loras=(("fluffy",), ("rare_style",)))
    path = str(tmp_path / "cats.json")
    save_batch(batch, path)
    server = fakes()  # has fluffy, not rare_style
    code, out, err = cli("batch", "dispatch", path, "--forge", server.url)
    assert code == 1
    assert "2/4 images done" in out and "2 images failed" in out
    assert "rare_style" in err and server.url in err
    assert server.txt2img_requests == 2  # never sent to a server that would make it without the LoRA
    code, shown, _ = cli("batch", "show", path)
    failed = [line for line in shown.splitlines() if line.startswith("[failed]")]
    assert len(failed) == 2 and "error:" in shown and "rare_style" in shown.split("[failed]", 1)[1]


def test_images_the_tab_already_made_in_forge_are_not_made_again(tmp_path, fakes):
    batch = make_batch(4, checkpoints=("alpha.safetensors",))
    path = str(tmp_path / "cats.json")
    save_batch(batch, path)
    RunState(path).record(0, "done", str(tmp_path / "made-in-forge.png"))
    server = fakes()
    code, out, _ = cli("batch", "dispatch", path, "--forge", server.url)
    assert code == 0 and out.startswith("4/4 images done") and "(1 made earlier by Run in Forge)" in out
    assert server.txt2img_requests == 3
    assert set(RunState(path).done()) == {0, 1, 2, 3}  # the tab's Run sees them done too
    code, shown, _ = cli("batch", "show", path)
    assert "4/4 images done, finished" in shown and shown.count("[done]") == 4


def test_a_batch_file_that_is_not_there_says_so(tmp_path):
    code, _, err = cli("batch", "dispatch", str(tmp_path / "nope.json"), "--forge", "http://127.0.0.1:9")
    assert code == 2 and "nope.json" in err


def test_a_server_address_that_is_none_is_refused_before_anything(tmp_path):
    save_batch(make_batch(2), str(tmp_path / "cats.json"))
    code, _, err = cli("batch", "dispatch", str(tmp_path / "cats.json"), "--forge", "ftp://127.0.0.1:21")
    assert code == 2 and "--forge, line 1: 'ftp://127.0.0.1:21' is not a Forge server address" in err
    assert not os.path.exists(tmp_path / "cats.json.queue.sqlite")


def test_when_no_server_answers_at_the_start_it_says_why_each_did_not(tmp_path, fakes):
    save_batch(make_batch(2), str(tmp_path / "cats.json"))
    locked = fakes(auth=("me", "secret"))  # started with --api-auth, given without credentials
    code, _, err = cli("batch", "dispatch", str(tmp_path / "cats.json"), "--forge", "http://127.0.0.1:9",
                       "--forge", locked.url, "--wait", "1")
    assert code == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: no server answered in 1 s: http://127.0.0.1:9: ") and "401" in line
    assert "--api-auth" in line


def test_images_the_queue_made_reach_the_run_state_even_after_a_kill_between_the_two(tmp_path, fakes):
    from lib_orchestrator.dispatch.jobs import batch_id, batch_jobs
    from lib_orchestrator.dispatch.queue import JobQueue

    batch = make_batch(3, checkpoints=("alpha.safetensors",))
    path = str(tmp_path / "cats.json")
    save_batch(batch, path)
    with JobQueue(path + ".queue.sqlite") as queue:  # image 1 was done, then the process died
        queue.enqueue(batch_jobs(batch))
        job = queue.claim("gone", "http://gone", [j.needs_key for j in batch_jobs(batch)], "", 60.0, batch_id(batch))
        queue.complete(job.id, "gone", str(tmp_path / "cats" / "made.png"), "d", 1.0)
    assert job.image_index == 0 and RunState(path).done() == {}
    server = fakes()
    assert cli("batch", "dispatch", path, "--forge", server.url)[0] == 0
    assert server.txt2img_requests == 2
    assert RunState(path).done()[0] == str(tmp_path / "cats" / "made.png")


def test_show_reads_a_queue_without_creating_or_changing_it(tmp_path):
    path = str(tmp_path / "cats.json")
    save_batch(make_batch(2), path)
    code, _, err = cli("batch", "show", path, "--queue", str(tmp_path / "elsewhere.sqlite"))
    assert code == 2 and "there is no job queue at" in err
    assert not os.path.exists(tmp_path / "elsewhere.sqlite")
