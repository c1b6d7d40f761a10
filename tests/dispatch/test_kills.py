"""Kills, on SQLite and PostgreSQL: a dispatcher process SIGKILLed at random moments and run again, a Forge server
process SIGKILLed in the middle of a request, several dispatcher processes sharing one queue. After each, every
image exists exactly once (one file, one done row) with the bytes an undisturbed run makes. (A worker thread
dying inside a dispatcher: test_dispatcher.py, test_an_error_inside_a_worker_….)"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import List

import pytest

from lib_orchestrator.batches import save_batch
from lib_orchestrator.dispatch.jobs import batch_id
from lib_orchestrator.dispatch.queue import JobQueue

from ..conftest import REPO
from .helpers import ALPHA, BETA, check_exactly_once, fake, make_batch, reference_digests, rows, run, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

HERE = Path(__file__).resolve().parent
FAKE = HERE / "fake_forge.py"


def dispatcher_process(batch_file: str, queue_url: str, out: str, urls: List[str]) -> subprocess.Popen:
    """The user's command, `python -m lib_orchestrator batch dispatch`, as its own process."""
    command = [sys.executable, "-m", "lib_orchestrator", "batch", "dispatch", batch_file, "--queue", queue_url,
               "--out", out]
    for url in urls:
        command += ["--forge", url]
    return subprocess.Popen(command, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = 120.0) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"the dispatcher process did not finish within {timeout} s:\n{output}") from None
    assert process.returncode == 0, output
    return output


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(30)


@pytest.fixture
def saved_batch(tmp_path):
    batch = make_batch(40, name="killed")
    path = str(tmp_path / "killed.json")
    save_batch(batch, path)
    return batch, path


def test_a_dispatcher_killed_at_random_moments_then_run_again_makes_every_image_once(queue_url, tmp_path,
                                                                                    saved_batch):
    batch, path = saved_batch
    servers = [fake(loaded=ALPHA, seconds_per_image=0.01).start(), fake(loaded=BETA, seconds_per_image=0.01).start()]
    out = str(tmp_path / "out")
    rng = random.Random(19)
    try:
        for round_ in range(4):
            process = dispatcher_process(path, queue_url, out, [s.url for s in servers])
            if round_ == 0:  # while it starts: enqueueing, reading inventories, first claims
                wait_for(lambda process=process: servers[0].requests > 0 or process.poll() is not None, 120,
                         "the dispatcher process reading the servers")
                threading.Event().wait(rng.uniform(0.0, 0.1))  # the random moment itself, not a synchronisation
            else:  # with requests in flight: after a random number more of them were sent
                target = sum(s.txt2img_requests for s in servers) + rng.randint(1, 8)
                wait_for(lambda target=target, process=process: sum(s.txt2img_requests for s in servers) >= target
                         or process.poll() is not None, 120, "requests of the dispatcher process")
            kill(process)
        output = finish(dispatcher_process(path, queue_url, out, [s.url for s in servers]))
        assert "40/40 images done" in output, output
    finally:
        for server in servers:
            server.stop()
    digests = check_exactly_once(queue_url, batch, out)  # no half file, no temporary left, one row each
    assert digests == reference_digests(str(tmp_path), batch)


class _Url:
    """A server known by its address only (a fake Forge in another process): what helpers.run needs of it."""

    def __init__(self, url: str) -> None:
        self.url = url


def _fake_process(port: int = 0) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, str(FAKE), "--port", str(port), "--seconds-per-image", "0.2", "--checkpoint", ALPHA,
         "--checkpoint", BETA, "--lora", "fluffy"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process


def _url_of(process: subprocess.Popen) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("listening "):
            url = line.split()[1]
            assert process.stdout.readline().strip() == "ready"
            return url
    raise AssertionError(f"the fake Forge process ended: {process.wait()}")


def test_a_server_process_killed_mid_request_hands_its_job_to_another(queue_url, tmp_path):
    batch = make_batch(16, name="serverkill")
    doomed, other = _fake_process(), _fake_process()
    try:
        doomed_url, other_url = _url_of(doomed), _url_of(other)

        def kill_mid_request():
            queue = JobQueue(queue_url)
            try:  # a lease of the doomed server renewed at least once: its request is in Forge's hands
                wait_for(lambda: any(j.status == "leased" and j.server == doomed_url and j.heartbeat_at is not None
                                     and j.started_at is not None and j.heartbeat_at > j.started_at
                                     for j in queue.jobs(batch_id(batch))), 120, "a request on the doomed server")
            finally:
                queue.close()
            kill(doomed)

        killer = threading.Thread(target=kill_mid_request, daemon=True)
        killer.start()
        out = str(tmp_path / "out")
        result, _ = run(queue_url, batch, [_Url(doomed_url), _Url(other_url)], out)
        killer.join(30)
        assert doomed.poll() == -signal.SIGKILL
        assert result.done == 16
        check_exactly_once(queue_url, batch, out)
        jobs = rows(queue_url, batch)
        assert [j.attempts for j in jobs].count(2) >= 1  # the killed request's job, made again elsewhere
        assert all(j.server == other_url for j in jobs if j.attempts == 2)
    finally:
        for process in (doomed, other):
            if process.poll() is None:
                kill(process)


def test_several_dispatcher_processes_share_one_queue(queue_url, tmp_path, saved_batch):
    batch, path = saved_batch
    paths = []
    for machine in ("one", "two"):  # each its own copy of the batch file (and run state), as on two machines
        os.makedirs(tmp_path / machine)
        paths.append(str(tmp_path / machine / "killed.json"))
        shutil.copy(path, paths[-1])
    groups = [[fake(loaded=ALPHA, seconds_per_image=0.01).start(), fake(loaded=BETA, seconds_per_image=0.01).start()]
              for _ in range(2)]
    out = str(tmp_path / "out")
    try:
        processes = [dispatcher_process(copy, queue_url, out, [s.url for s in group])
                     for copy, group in zip(paths, groups)]
        outputs = [finish(process) for process in processes]
    finally:
        for group in groups:
            for server in group:
                server.stop()
    assert all("40/40 images done" in output for output in outputs), outputs
    check_exactly_once(queue_url, batch, out)
    assert sum(s.images for group in groups for s in group) == 40  # no image generated twice
