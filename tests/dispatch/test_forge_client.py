"""The Forge client against the fake Forge on real HTTP: one image, Forge's own errors, and every way a server
fails (credentials refused, hung, frozen, closing the socket, stopped and started again).

No timing asserts: waits are on the fake's state or on what the client's poll callback saw."""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from lib_orchestrator.batches.model import BatchImage, Settings
from lib_orchestrator.dispatch.forge_client import (
    ForgeClient,
    JobRejected,
    ServerDown,
    _StartWatch,
    payload,
    split_credentials,
)
from lib_orchestrator.dispatch.inventory import checkpoint_title

from .fake_forge import OOM, FakeForge

BASE = "sd_xl_base_1.0.safetensors [31e35c80fc]"
PONY = "pony/ponyDiffusionV6XL.safetensors [67ab2fd8ec]"
BODY = {"prompt": "a fox", "negative_prompt": "", "seed": 7, "steps": 20, "width": 64, "height": 64,
        "save_images": False, "send_images": True}


@pytest.fixture(params=["webui", "nowebui"])
def fake(request):
    """Forge with its web UI (our task seen by /internal/progress) and with --nowebui (seen by /sdapi/v1/progress)."""
    with FakeForge(checkpoints=[BASE, PONY], loras=["add-detail-xl"], nowebui=request.param == "nowebui") as f:
        yield f
        f.hang = f.freeze = False


def client(url: str, **kwargs) -> ForgeClient:
    options = dict(poll_s=0.02, connect_timeout_s=2.0)
    options.update(kwargs)
    return ForgeClient(url, **options)


def test_payload_sends_the_batch_image_exactly_and_keeps_the_checkpoint_loaded():
    image = BatchImage(3, 1234, "a fox <lora:add-detail-xl:0.8>", "blurry", (("add-detail-xl", 0.8, "pick"),))
    body = payload(image, Settings(steps=28, sampler_name="DPM++ 2M", scheduler="Karras", width=832, height=1216),
                   BASE, orchestrator_off=True)
    assert body["prompt"] == "a fox <lora:add-detail-xl:0.8>" and body["negative_prompt"] == "blurry"
    assert (body["seed"], body["subseed"], body["batch_size"], body["n_iter"]) == (1234, -1, 1, 1)
    assert (body["steps"], body["sampler_name"], body["scheduler"], body["width"], body["height"]) == \
        (28, "DPM++ 2M", "Karras", 832, 1216)
    assert body["override_settings"] == {"sd_model_checkpoint": BASE}
    assert body["override_settings_restore_afterwards"] is False
    assert body["save_images"] is False and body["send_images"] is True
    assert body["alwayson_scripts"] == {"Orchestrator": {"args": [False]}}
    assert "enable_hr" in body and "hr_upscaler" not in body  # Settings.forge_fields decides the processing fields
    json.dumps(body)  # it is JSON


def test_payload_without_our_script_or_checkpoint_sends_neither():
    body = payload(BatchImage(0, 1, "x"), Settings(), None, orchestrator_off=False)
    assert "alwayson_scripts" not in body
    assert body["override_settings"] == {}


def test_credentials_leave_the_url():
    assert split_credentials("http://me:s%3Acret@gpu1:7860/") == ("http://gpu1:7860", ("me", "s:cret"))
    assert split_credentials("gpu2:7861") == ("http://gpu2:7861", None)
    assert split_credentials("https://host/forge/") == ("https://host/forge", None)
    c = ForgeClient("http://me:pw@127.0.0.1:1")
    assert c.url == "http://127.0.0.1:1" and c.auth == ("me", "pw") and "pw" not in repr(c)


def test_one_image_comes_back_with_its_infotext(fake):
    c = client(fake.url)
    inv = c.inventory()
    body = payload(BatchImage(0, 42, "a fox <lora:add-detail-xl:0.8>", "blurry"), Settings(width=64, height=64),
                   checkpoint_title("ponyDiffusionV6XL", inv), inv.has_orchestrator)
    got = c.txt2img(body, "job-1", timeout_s=60)
    assert got.image.startswith(b"\x89PNG\r\n\x1a\n")
    assert got.infotext.startswith("a fox <lora:add-detail-xl:0.8>\nNegative prompt: blurry\nSteps: 20,")
    assert "Seed: 42," in got.infotext and "Model: ponyDiffusionV6XL," in got.infotext
    assert got.seconds >= 0
    assert fake.received[-1]["force_task_id"] == "job-1"
    assert fake.loaded == PONY and fake.options["sd_model_checkpoint"] == PONY  # stays loaded for the next job


def test_the_same_image_twice_is_the_same_bytes(fake):
    c = client(fake.url)
    assert c.txt2img(BODY, "a", 60).image == c.txt2img(BODY, "b", 60).image


def test_credentials_in_the_url_are_sent_and_a_refusal_says_how_to_pass_them():
    with FakeForge(auth=("me", "pw")) as f:
        port = f.port
        good = client(f"http://me:pw@127.0.0.1:{port}")
        assert good.inventory().checkpoints and good.probe()
        assert good.txt2img(BODY, "t", 60).image
        with pytest.raises(ServerDown) as none:
            client(f.url).inventory()
        assert "asks for credentials" in none.value.message and "USER:PASS@" in none.value.hint
        wrong = client(f"http://me:nope@127.0.0.1:{port}")
        with pytest.raises(ServerDown) as refused:
            wrong.txt2img(BODY, "t2", 60)
        assert "refused the credentials for user 'me'" in refused.value.message
        assert "--api-auth" in refused.value.hint
        assert not wrong.probe()


def test_forge_out_of_memory_rejects_the_job_and_the_server_goes_on(fake):
    c = client(fake.url)
    fake.reject_with = OOM
    with pytest.raises(JobRejected) as rejected:
        c.txt2img(BODY, "oom", 60)
    assert rejected.value.status == 500 and rejected.value.error == "OutOfMemoryError"
    assert "CUDA out of memory" in rejected.value.message
    fake.reject_with = None
    assert c.txt2img(BODY, "after", 60).image


def test_an_unknown_sampler_is_no_error_in_forge_it_falls_back(fake):
    got = client(fake.url).txt2img(dict(BODY, sampler_name="Euler Typo"), "s", 60)
    assert "Sampler: DPM++ 2M," in got.infotext


def test_an_unknown_hires_sampler_rejects_the_job(fake):
    with pytest.raises(JobRejected) as rejected:
        client(fake.url).txt2img(dict(BODY, enable_hr=True, hr_sampler_name="Nope"), "hr", 60)
    assert "AssertionError" in rejected.value.message and "bad sampler name: Nope" in rejected.value.message


def test_a_missing_always_on_script_rejects_the_job():
    with FakeForge(has_orchestrator=False) as f:
        with pytest.raises(JobRejected) as rejected:
            client(f.url).txt2img(dict(BODY, alwayson_scripts={"Orchestrator": {"args": [False]}}), "x", 60)
    assert rejected.value.status == 422 and "Script 'Orchestrator' not found" in rejected.value.message


def test_a_hung_generation_is_interrupted_after_the_timeout(fake):
    c = client(fake.url)
    c.inventory()
    fake.hang = True
    with pytest.raises(ServerDown) as down:
        c.txt2img(BODY, "hung", timeout_s=0.2)
    assert "made no image after" in down.value.message
    assert fake.wait_until(lambda f: f.interrupts == 1)


def test_the_timeout_starts_when_forge_starts_our_task_not_while_it_waits_in_line(fake):
    """Someone else's generation holds Forge's queue for longer than our timeout; ours still finishes."""
    c = client(fake.url)
    c.inventory()
    fake.hang = True
    theirs = threading.Thread(target=lambda: requests.post(fake.url + "/sdapi/v1/txt2img",
                                                           json=dict(BODY, force_task_id="ui-job"), timeout=60))
    theirs.start()
    assert fake.wait_until(lambda f: f.current_task == "ui-job")
    timeout_s = 0.2
    sent = time.monotonic()
    polls = []

    def on_poll(progress: float) -> None:
        polls.append(progress)
        if time.monotonic() - sent > 3 * timeout_s and fake.hang:  # we have waited in line past our timeout
            fake.hang = False

    got = c.txt2img(BODY, "ours", timeout_s=timeout_s, on_poll=on_poll)
    theirs.join()
    assert got.image and fake.interrupts == 0
    assert polls and all(0.0 <= p <= 1.0 for p in polls)


def test_a_server_whose_progress_stops_answering_is_down_without_waiting_for_the_timeout(fake):
    c = client(fake.url, connect_timeout_s=0.5, poll_timeout_s=0.1, max_failed_polls=3)
    c.inventory()
    fake.freeze = True
    with pytest.raises(ServerDown) as down:
        c.txt2img(BODY, "frozen", timeout_s=3600)
    assert "stopped answering: 3 progress polls in a row failed" in down.value.message


def test_a_socket_closed_mid_request_is_a_server_failure_and_the_next_request_works(fake):
    c = client(fake.url)
    c.inventory()
    fake.die_mid_request = 1
    with pytest.raises(ServerDown) as down:
        c.txt2img(BODY, "dies", 60)
    assert "failed during the image" in down.value.message
    assert c.txt2img(BODY, "again", 60).image


def test_a_server_stopped_mid_request_then_started_on_its_port_is_used_again(fake):
    c = client(fake.url, max_failed_polls=2)
    c.inventory()
    fake.hang = True
    errors = []

    def send() -> None:
        try:
            c.txt2img(BODY, "running", 60)
        except ServerDown as e:
            errors.append(e)

    worker = threading.Thread(target=send)
    worker.start()
    assert fake.wait_until(lambda f: f.current_task == "running")
    port = fake.port
    fake.stop()
    worker.join(60)
    assert len(errors) == 1
    assert not c.probe()
    with pytest.raises(ServerDown):
        c.inventory()
    fake.hang = False
    fake.start()
    assert fake.port == port and c.probe()
    assert c.inventory().checkpoints
    assert c.txt2img(BODY, "back", 60).image


def test_a_server_that_is_not_there_is_down():
    with FakeForge() as f:
        url = f.url
    c = client(url)
    assert not c.probe()
    with pytest.raises(ServerDown):
        c.inventory()
    with pytest.raises(ServerDown) as down:
        c.txt2img(BODY, "x", 60)
    assert url in down.value.message


def test_interrupt_reaches_forge_and_never_raises(fake):
    c = client(fake.url)
    c.interrupt()
    assert fake.interrupts == 1
    fake.stop()
    c.interrupt()


def test_a_forge_started_without_api_says_so():
    with FakeForge(api=False) as f:
        with pytest.raises(ServerDown) as down:
            client(f.url).inventory()
    assert "has no API route" in down.value.message and "--api" in down.value.hint


def test_errors_read_as_one_line_with_what_to_do():
    error = ServerDown("Forge at http://h:1 asks for credentials", hint="give them in the URL")
    assert str(error) == "Forge at http://h:1 asks for credentials (give them in the URL)"
    assert str(JobRejected("Forge refused the image (500): OutOfMemoryError: CUDA out of memory", 500)) == \
        "Forge refused the image (500): OutOfMemoryError: CUDA out of memory"


def forge_progress(job_count: int, stamp: str, progress: float) -> dict:
    """A /sdapi/v1/progress answer as Forge writes it (api.py:617-643, shared_state.py:103-116)."""
    return {"progress": progress, "eta_relative": 3.0, "current_image": None, "textinfo": None,
            "state": {"skipped": False, "interrupted": False, "stopping_generation": False,
                      "job": "scripts_txt2img" if job_count else "", "job_count": job_count,
                      "job_timestamp": stamp, "job_no": 0, "sampling_step": 4, "sampling_steps": 20}}


def test_without_the_web_ui_our_task_starts_when_the_job_before_it_ends():
    assert _StartWatch(forge_progress(0, "20250101120000", 0.0)).see(forge_progress(1, "20250101120000", 0.3))
    assert _StartWatch(None).started  # nothing known: count from sending
    for later in (forge_progress(0, "20250101120000", 0.0),  # idle between the two
                  forge_progress(1, "20250101120005", 0.9),  # a job begun later
                  forge_progress(1, "20250101120000", 0.2)):  # progress went back: a new job, same second
        watch = _StartWatch(forge_progress(1, "20250101120000", 0.5))
        assert not watch.see(forge_progress(1, "20250101120000", 0.6))  # still theirs
        assert watch.see(later) and watch.see(forge_progress(1, "20250101120000", 0.7))
