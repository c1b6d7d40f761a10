"""The fake Forge answers as Forge does (shapes written here from Forge's code, not from the fake), and runs as a
process that kill tests can SIGKILL."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import zlib

import pytest
import requests

from .fake_forge import OOM, FakeForge

BASE = "sd_xl_base_1.0.safetensors [31e35c80fc]"
PONY = "pony/ponyDiffusionV6XL.safetensors [67ab2fd8ec]"
FRESH = "flux1-dev-bnb-nf4-v2.safetensors"
FAKE = os.path.join(os.path.dirname(__file__), "fake_forge.py")


@pytest.fixture
def fake():
    with FakeForge(checkpoints=[BASE, PONY, FRESH], loras=["add-detail-xl", ("frieren_v2", "frieren")]) as f:
        yield f
        f.hang = f.freeze = False


def png_chunks(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, out = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        out.append((kind, body))
        at += 12 + length
    return out


def txt2img(url: str, **body):
    return requests.post(url + "/sdapi/v1/txt2img", json=body, timeout=30)


def test_models_and_loras_have_forges_fields(fake):
    models = requests.get(fake.url + "/sdapi/v1/sd-models", timeout=10).json()
    assert [set(m) for m in models] == [{"title", "model_name", "hash", "sha256", "filename", "config"}] * 3
    assert models[1]["title"] == PONY and models[1]["model_name"] == "pony_ponyDiffusionV6XL"
    assert models[1]["hash"] == "67ab2fd8ec" and models[1]["sha256"].startswith("67ab2fd8ec")
    assert len(models[1]["sha256"]) == 64
    assert models[2]["hash"] is None and models[2]["sha256"] is None and models[2]["title"] == FRESH
    loras = requests.get(fake.url + "/sdapi/v1/loras", timeout=10).json()
    assert [(x["name"], x["alias"]) for x in loras] == [("add-detail-xl", "add-detail-xl"), ("frieren_v2", "frieren")]
    assert all(set(x) == {"name", "alias", "path", "metadata"} for x in loras)


def test_progress_does_not_say_which_task_runs_but_internal_progress_does(fake):
    fake.hang = True
    worker = threading.Thread(target=txt2img, args=(fake.url,), kwargs={"prompt": "x", "force_task_id": "mine"})
    worker.start()
    assert fake.wait_until(lambda f: f.current_task == "mine")
    progress = requests.get(fake.url + "/sdapi/v1/progress", timeout=10).json()
    assert set(progress) == {"progress", "eta_relative", "state", "current_image", "textinfo"}
    assert set(progress["state"]) == {"skipped", "interrupted", "stopping_generation", "job", "job_count",
                                      "job_timestamp", "job_no", "sampling_step", "sampling_steps"}
    assert progress["state"]["job"] == "scripts_txt2img" and progress["state"]["job_count"] != 0
    mine = requests.post(fake.url + "/internal/progress", json={"id_task": "mine"}, timeout=10).json()
    assert mine["active"] is True and mine["queued"] is False and mine["completed"] is False
    other = requests.post(fake.url + "/internal/progress", json={"id_task": "other"}, timeout=10).json()
    assert (other["active"], other["queued"], other["textinfo"]) == (False, False, "Waiting...")
    fake.hang = False
    worker.join()
    done = requests.post(fake.url + "/internal/progress", json={"id_task": "mine"}, timeout=10).json()
    assert done["completed"] is True and done["active"] is False
    idle = requests.get(fake.url + "/sdapi/v1/progress", timeout=10).json()
    assert (idle["progress"], idle["eta_relative"], idle["state"]["job_count"]) == (0, 0, 0)


def test_without_the_web_ui_there_is_no_internal_route():
    with FakeForge(nowebui=True) as f:
        answer = requests.post(f.url + "/internal/progress", json={"id_task": "x"}, timeout=10)
    assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})


def test_api_auth_guards_the_api_routes_but_not_loras_or_internal():
    with FakeForge(auth=("me", "pw")) as f:
        bare = requests.get(f.url + "/sdapi/v1/sd-models", timeout=10)
        assert (bare.status_code, bare.json()) == (401, {"detail": "Not authenticated"})
        assert bare.headers["WWW-Authenticate"] == "Basic"
        wrong = requests.get(f.url + "/sdapi/v1/sd-models", auth=("me", "no"), timeout=10)
        assert (wrong.status_code, wrong.json()) == (401, {"detail": "Incorrect username or password"})
        assert requests.get(f.url + "/sdapi/v1/sd-models", auth=("me", "pw"), timeout=10).status_code == 200
        assert requests.get(f.url + "/sdapi/v1/loras", timeout=10).status_code == 200
        assert requests.post(f.url + "/internal/progress", json={"id_task": "x"}, timeout=10).status_code == 200


def test_the_image_is_a_png_carrying_the_infotext_and_follows_from_its_inputs(fake):
    answer = txt2img(fake.url, prompt="a fox, (red:1.2)", negative_prompt="blurry", seed=5, steps=20, width=832,
                     height=1216, sampler_name="Euler a", cfg_scale=6.0, force_task_id="t1").json()
    assert set(answer) == {"images", "parameters", "info"}
    info = json.loads(answer["info"])  # a JSON string
    infotext = info["infotexts"][0]
    assert infotext == ("a fox, (red:1.2)\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, Schedule type: "
                        "Automatic, CFG scale: 6.0, Seed: 5, Size: 832x1216, Model hash: 31e35c80fc, "
                        "Model: sd_xl_base_1.0, Version: f2.0.1v1.10.1-previous-669-gdfdcbab6")
    assert (info["seed"], info["all_seeds"], info["index_of_first_image"]) == (5, [5], 0)
    image = base64.b64decode(answer["images"][0])
    texts = [body for kind, body in png_chunks(image) if kind == b"tEXt"]
    assert texts == [b"parameters\x00" + infotext.encode("latin-1")]
    again = txt2img(fake.url, prompt="a fox, (red:1.2)", negative_prompt="blurry", seed=5, steps=20, width=832,
                    height=1216, sampler_name="Euler a", cfg_scale=6.0).json()
    other = txt2img(fake.url, prompt="a fox, (red:1.2)", negative_prompt="blurry", seed=6, steps=20, width=832,
                    height=1216, sampler_name="Euler a", cfg_scale=6.0).json()
    assert again["images"] == answer["images"] and other["images"] != answer["images"]


def test_a_prompt_outside_latin1_goes_into_an_itxt_chunk(fake):
    answer = txt2img(fake.url, prompt="狐", seed=1).json()
    kinds = [kind for kind, _ in png_chunks(base64.b64decode(answer["images"][0]))]
    assert b"iTXt" in kinds and b"tEXt" not in kinds


def test_lora_hashes_only_when_every_lora_is_found_by_name_or_alias(fake):
    found = json.loads(txt2img(fake.url, prompt="<lora:frieren:1> <lora:add-detail-xl:0.5>", seed=1).json()["info"])
    assert found["extra_generation_params"]["Lora hashes"].startswith("frieren: ")
    assert 'Lora hashes: "frieren: ' in found["infotexts"][0]
    lost = json.loads(txt2img(fake.url, prompt="<lora:frieren:1> <lora:gone:1>", seed=1).json()["info"])
    assert "Lora hashes" not in lost["extra_generation_params"]  # Forge applies none, and says nothing


def test_checkpoint_overrides_load_lazily_and_restore_by_default():
    with FakeForge(checkpoints=[BASE, PONY], switch_s=0.0) as f:
        assert f.loaded == BASE and f.switches == 0
        txt2img(f.url, prompt="x", override_settings={"sd_model_checkpoint": "ponyDiffusionV6XL"})
        assert f.switches == 1 and f.loaded == PONY
        assert f.options["sd_model_checkpoint"] == BASE  # restored after the job: the next job loads BASE again
        txt2img(f.url, prompt="x")
        assert f.switches == 2 and f.loaded == BASE and dict(f.loads) == {PONY: 1, BASE: 1}
        txt2img(f.url, prompt="x", override_settings={"sd_model_checkpoint": PONY},
                override_settings_restore_afterwards=False)
        txt2img(f.url, prompt="x")
        assert f.switches == 3 and f.loaded == PONY and f.options["sd_model_checkpoint"] == PONY
        # a name Forge does not know is dropped silently: the loaded model makes the image
        answer = txt2img(f.url, prompt="x", override_settings={"sd_model_checkpoint": "gone"}).json()
        assert f.switches == 3 and "Model: ponyDiffusionV6XL" in json.loads(answer["info"])["infotexts"][0]


def test_options_post_records_a_known_model_and_refuses_others(fake):
    assert requests.post(fake.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "ponyDiffusionV6XL"},
                         timeout=10).json() is None
    assert fake.options["sd_model_checkpoint"] == "ponyDiffusionV6XL" and fake.loaded == BASE  # lazy
    bad = requests.post(fake.url + "/sdapi/v1/options", json={"sd_model_checkpoint": "gone"}, timeout=10)
    assert (bad.status_code, bad.json()) == (500, {"error": "RuntimeError", "detail": "", "body": "",
                                                   "message": "model 'gone' not found"})
    unknown = requests.post(fake.url + "/sdapi/v1/options", json={"no_such_option": 1}, timeout=10)
    assert unknown.status_code == 500 and unknown.json()["error"] == "KeyError"


def test_forge_errors_have_forges_bodies(fake):
    fake.reject_with = OOM
    oom = txt2img(fake.url, prompt="x")
    assert oom.status_code == 500 and set(oom.json()) == {"error", "detail", "body", "message"}
    assert oom.json()["error"] == "OutOfMemoryError"
    fake.reject_with = None
    script = txt2img(fake.url, prompt="x", alwayson_scripts={"No Such Script": {"args": []}})
    assert (script.status_code, script.json()) == (422, {"detail": "Script 'No Such Script' not found"})
    assert requests.get(fake.url + "/sdapi/v1/nothing", timeout=10).status_code == 404
    assert requests.get(fake.url + "/sdapi/v1/txt2img", timeout=10).status_code == 405


def test_generations_run_one_at_a_time_in_arrival_order(fake):
    fake.hang = True
    def send(name: str) -> None:
        txt2img(fake.url, prompt=name, force_task_id=name)

    first = threading.Thread(target=send, args=("first",))
    first.start()
    assert fake.wait_until(lambda f: f.current_task == "first")
    second = threading.Thread(target=send, args=("second",))
    second.start()
    assert fake.wait_until(lambda f: "second" in f.pending_tasks)
    queued = requests.post(fake.url + "/internal/progress", json={"id_task": "second"}, timeout=10).json()
    assert queued["queued"] is True and queued["textinfo"] == "In queue: 1/1"
    fake.hang = False
    first.join()
    second.join()
    assert fake.finished_tasks == ["first", "second"] and fake.concurrent_max == 2 and fake.images == 2


def test_a_frozen_server_accepts_connections_and_answers_nothing(fake):
    fake.freeze = True
    with pytest.raises(requests.Timeout):
        requests.get(fake.url + "/sdapi/v1/progress", timeout=(2, 0.2))
    fake.freeze = False
    assert requests.get(fake.url + "/sdapi/v1/progress", timeout=10).status_code == 200


def test_die_mid_request_closes_the_socket_unanswered(fake):
    fake.die_mid_request = 1
    with pytest.raises(requests.ConnectionError):
        txt2img(fake.url, prompt="x")
    assert txt2img(fake.url, prompt="x").status_code == 200 and fake.txt2img_requests == 2


def test_stop_refuses_connections_and_start_listens_on_the_same_port(fake):
    port = fake.port
    fake.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(fake.url + "/sdapi/v1/options", timeout=5)
    fake.start()
    assert fake.port == port
    assert requests.get(fake.url + "/sdapi/v1/options", timeout=5).status_code == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_process_mode_serves_until_killed():
    port = free_port()
    proc = subprocess.Popen([sys.executable, FAKE, "--port", str(port), "--checkpoint", PONY, "--lora", "a=b",
                             "--seconds-per-image", "0"], stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(2)]
        assert lines == [f"listening http://127.0.0.1:{port}", "ready"]
        url = f"http://127.0.0.1:{port}"
        assert [m["title"] for m in requests.get(url + "/sdapi/v1/sd-models", timeout=10).json()] == [PONY]
        assert requests.get(url + "/sdapi/v1/loras", timeout=10).json()[0]["alias"] == "b"
        assert txt2img(url, prompt="x").status_code == 200
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/sdapi/v1/options", timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        proc.stdout.close()


def test_the_settings_routes_answer_in_forges_shapes():
    with FakeForge(samplers=["Euler", "DPM++ 2M"], schedulers=[("automatic", "Automatic", None),
                                                               ("sgm_uniform", "SGM Uniform", ["SGMUniform"])],
                   upscalers=["None", "R-ESRGAN 4x+"], latent_upscale_modes=["Latent"]) as f:
        samplers = requests.get(f.url + "/sdapi/v1/samplers", timeout=10).json()
        assert samplers == [{"name": "Euler", "aliases": ["k_euler"], "options": {}},
                            {"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {}}]
        schedulers = requests.get(f.url + "/sdapi/v1/schedulers", timeout=10).json()
        assert [(s["name"], s["label"], s["aliases"]) for s in schedulers] == [
            ("automatic", "Automatic", None), ("sgm_uniform", "SGM Uniform", ["SGMUniform"])]
        assert set(schedulers[0]) == {"name", "label", "aliases", "default_rho", "need_inner_model"}
        upscalers = requests.get(f.url + "/sdapi/v1/upscalers", timeout=10).json()
        assert [u["name"] for u in upscalers] == ["None", "R-ESRGAN 4x+"]
        assert set(upscalers[0]) == {"name", "model_name", "model_path", "model_url", "scale"}
        assert requests.get(f.url + "/sdapi/v1/latent-upscale-modes", timeout=10).json() == [{"name": "Latent"}]
    with FakeForge(schedulers=None) as old:  # before A1111 1.9
        assert requests.get(old.url + "/sdapi/v1/schedulers", timeout=10).status_code == 404


def test_unknown_samplers_and_schedulers_fall_back_silently_and_old_combined_names_are_split(fake):
    def params(**body):
        return json.loads(txt2img(fake.url, prompt="x", **body).json()["info"])["infotexts"][0]

    assert "Sampler: DPM++ 2M, Schedule type: Automatic," in params(sampler_name="Nope", scheduler="Nope")
    assert "Sampler: DPM++ 2M, Schedule type: Karras," in params(sampler_name="DPM++ 2M Karras")
    assert "Sampler: Euler, Schedule type: SGM Uniform," in params(sampler_name="Euler", scheduler="sgm_uniform")
    assert "Sampler: DPM++ 2M," in params(sampler_name="k_euler")  # an alias is not a name to the API


def test_an_unknown_hires_upscaler_fails_the_job(fake):
    answer = txt2img(fake.url, prompt="x", enable_hr=True, hr_upscaler="4x-Nope")
    assert (answer.status_code, answer.json()) == (500, {"error": "Exception", "detail": "", "body": "",
                                                         "message": "could not find upscaler named 4x-Nope"})
    assert txt2img(fake.url, prompt="x", enable_hr=True, hr_upscaler="Latent (nearest-exact)").status_code == 200


@pytest.mark.parametrize("how", ["ui-interrupt", "ui-skip", "api-skip"])
def test_an_interrupted_generation_answers_200_with_a_partial_image_and_the_flag_stays_until_the_next_job(fake, how):
    whole = txt2img(fake.url, prompt="x", seed=5).json()["images"][0]
    fake.seconds_per_image = 3600.0
    answers = []
    running = threading.Thread(target=lambda: answers.append(txt2img(fake.url, prompt="x", seed=5)))
    running.start()
    assert fake.wait_until(lambda f: f.current_task is not None)
    if how == "api-skip":
        assert requests.post(fake.url + "/sdapi/v1/skip", timeout=10).json() is None
    else:
        fake.interrupt_running(skip=how == "ui-skip")
    running.join(60)
    assert answers[0].status_code == 200 and answers[0].json()["images"][0] != whole
    flag = "interrupted" if how == "ui-interrupt" else "skipped"
    state = requests.get(fake.url + "/sdapi/v1/progress", timeout=10).json()["state"]
    assert state[flag] is True and state["job_count"] == 0 and fake.interrupts == 0
    fake.seconds_per_image = 0.0
    assert txt2img(fake.url, prompt="x", seed=5).json()["images"][0] == whole
    assert requests.get(fake.url + "/sdapi/v1/progress", timeout=10).json()["state"][flag] is False
