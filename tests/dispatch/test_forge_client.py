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
    options = dict(poll_s=0.02, connect_timeout_s=10.0)  # polls are quick; a poll may stall seconds on a loaded box
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
    # seconds, not tenths: ours runs in no time once started, but a loaded box may stall a poll for a while, and a
    # stall longer than the timeout would count against ours
    timeout_s = 3.0
    sent = time.monotonic()
    polls = []

    def on_poll(progress: float) -> None:
        polls.append(progress)
        if time.monotonic() - sent > 2 * timeout_s and fake.hang:  # we have waited in line past our timeout
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


def test_a_whole_image_is_not_interrupted(fake):
    assert client(fake.url).txt2img(BODY, "whole", 60).interrupted is False


@pytest.mark.parametrize("skip", [False, True], ids=["interrupt", "skip"])
def test_an_image_interrupted_in_forges_ui_while_ours_runs_is_told(fake, skip):
    """Interrupt or Skip pressed in that Forge's own UI: Forge answers 200 with the partial image."""
    fake.seconds_per_image = 3600.0  # ours would run for an hour: only the interrupt ends it
    c = client(fake.url)
    c.inventory()
    polls = threading.Event()
    pressed = threading.Thread(target=lambda: fake.wait_until(lambda f: f.current_task == "ours")
                               and polls.wait(60) and fake.interrupt_running(skip=skip))
    pressed.start()
    got = c.txt2img(BODY, "ours", timeout_s=3600, on_poll=lambda progress: polls.set())
    pressed.join()
    assert got.image.startswith(b"\x89PNG") and got.interrupted is True
    assert fake.interrupts == 0  # nobody called the API's /interrupt


def test_an_interrupt_between_the_last_poll_and_the_answer_is_read_from_the_flags_left_behind(fake):
    """No poll runs while ours does (poll_s is an hour): the flags Forge leaves set after the job tell."""
    fake.seconds_per_image = 3600.0
    c = client(fake.url, poll_s=3600.0)
    c.inventory()
    pressed = threading.Thread(target=lambda: fake.wait_until(lambda f: f.current_task == "ours")
                               and fake.interrupt_running())
    pressed.start()
    got = c.txt2img(BODY, "ours", timeout_s=3600)
    pressed.join()
    assert got.interrupted is True
    fake.seconds_per_image = 0.0
    assert c.txt2img(BODY, "next", 60).interrupted is False  # the next job began with the flags cleared


def test_an_interrupt_seen_while_ours_ran_holds_even_when_the_next_job_clears_the_flags(fake):
    """A job queued behind ours begins at once and clears the flags before our last look: the poll that saw them
    while ours ran still counts."""
    c = client(fake.url)
    c.inventory()
    fake.hang = True
    seen = threading.Event()
    theirs = threading.Thread(target=lambda: requests.post(fake.url + "/sdapi/v1/txt2img",
                                                           json=dict(BODY, force_task_id="ui-job"), timeout=60))

    def on_poll(progress: float) -> None:
        if fake.state["interrupted"] and not seen.is_set():  # a poll after the press has returned
            seen.set()

    def press_then_queue_theirs() -> None:
        fake.wait_until(lambda f: f.current_task == "ours")
        fake.interrupt_running()  # the hung job ignores it, as Forge's does until its next step
        seen.wait(60)
        theirs.start()
        fake.wait_until(lambda f: "ui-job" in f.pending_tasks)
        fake.hang = False

    helper = threading.Thread(target=press_then_queue_theirs)
    helper.start()
    got = c.txt2img(BODY, "ours", timeout_s=3600, on_poll=on_poll)
    helper.join()
    theirs.join()
    assert got.interrupted is True


@pytest.mark.parametrize("status", [408, 429])
def test_a_proxy_timeout_or_rate_limit_is_the_servers_trouble_not_the_jobs(status):
    with _Canned(status, b'{"detail": "slow down"}', "application/json") as url:
        with pytest.raises(ServerDown) as down:
            client(url).txt2img(BODY, "t", 60)
        assert str(status) in down.value.message
        with pytest.raises(ServerDown):
            client(url).inventory()


@pytest.mark.parametrize("status", [200, 500, 502])
def test_an_html_page_instead_of_forge_is_the_servers_trouble_and_says_what_answered(status):
    page = b"<html><head><title>Welcome to nginx!</title></head><body>nginx</body></html>"
    with _Canned(status, page, "text/html; charset=utf-8") as url:
        for call in (lambda c: c.txt2img(BODY, "t", 60), lambda c: c.inventory()):
            with pytest.raises(ServerDown) as down:
                call(client(url))
            assert "text/html, 'Welcome to nginx!'" in down.value.message and str(status) in down.value.message


class _Canned:
    """A server answering every request with one status and body (a proxy in front of a Forge that is gone)."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        import http.server

        canned = (status, body, content_type)

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(canned[0])
                self.send_header("Content-Type", canned[2])
                self.send_header("Content-Length", str(len(canned[1])))
                self.end_headers()
                self.wfile.write(canned[1])

            do_GET = do_POST = _answer

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
