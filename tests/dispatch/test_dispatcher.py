"""The dispatcher against fake Forge servers on real HTTP, on SQLite and PostgreSQL: every image made and written
exactly once whatever the servers do (slow, refusing, hanging, dying, down and back), checkpoint affinity, jobs no
server can make failing loudly, errors inside a worker, a clean stop, two dispatchers on one queue."""
from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time

import pytest

from lib_orchestrator.batches import Batch, BatchImage, Settings
from lib_orchestrator.dispatch import dispatcher as dispatcher_module
from lib_orchestrator.dispatch.dispatcher import Dispatcher
from lib_orchestrator.dispatch.jobs import batch_id, batch_jobs
from lib_orchestrator.dispatch.queue import JobQueue

from .fake_forge import OOM
from .helpers import (
    ALPHA,
    BETA,
    FAST,
    check_exactly_once,
    clients,
    make_batch,
    prompt,
    reference_digests,
    rows,
    run,
    wait_for,
)


def test_a_batch_is_made_once_across_servers_and_a_rerun_adds_nothing(queue_url, fakes, tmp_path):
    batch = make_batch(30)
    servers = [fakes(loaded=ALPHA), fakes(loaded=BETA), fakes(loaded=ALPHA, seconds_per_image=0.02)]
    out = str(tmp_path / "out")
    seen = []
    result, _ = run(queue_url, batch, servers, out, on_done=lambda job, path: seen.append((job.image_index, path)))
    assert (result.total, result.done, result.failed, result.pending, result.running) == (30, 30, 0, 0, 0)
    assert result.problems == ()
    digests = check_exactly_once(queue_url, batch, out)
    assert sorted(index for index, _ in seen) == list(range(30))
    assert sum(s.images for s in servers) == 30  # nothing generated twice
    assert digests == reference_digests(str(tmp_path), batch)  # the same bytes an undisturbed single server makes
    for server in servers:  # exactly the batch's prompt and checkpoint, nothing saved on the server
        for body in server.received:
            assert body["save_images"] is False and body["override_settings_restore_afterwards"] is False
            assert body["alwayson_scripts"] == {"Orchestrator": {"args": [False]}}
    requests = sum(s.txt2img_requests for s in servers)
    again, _ = run(queue_url, batch, servers, out)
    assert again.done == 30 and sum(s.txt2img_requests for s in servers) == requests  # nothing sent again
    assert check_exactly_once(queue_url, batch, out) == digests


def test_images_made_some_other_way_are_skipped_even_when_already_queued(queue_url, fakes, tmp_path):
    batch = make_batch(8)
    queue = JobQueue(queue_url)
    queue.enqueue(batch_jobs(batch))  # an earlier dispatch queued every image; then the tab's Run made 0, 3 and 5
    queue.close()
    server = fakes()
    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [server], out, skip={0, 3, 5})
    assert result.done == 8 and server.images == 5
    assert all(f"number {i} <" not in body["prompt"] for body in server.received for i in (0, 3, 5))
    made = sorted(j.image_index for j in rows(queue_url, batch) if j.file)
    assert made == [1, 2, 4, 6, 7] and len(os.listdir(out)) == 5


def _switches(queue_url, tmp_path, fakes, order, affinity, servers_loaded, count=100):
    batch = make_batch(count, name=f"aff-{order}-{affinity}-{len(servers_loaded)}")
    if order == "interleaved":  # run order alternating checkpoints (alpha, beta, alpha, …): affinity's worst case
        queue = JobQueue(queue_url)
        queue.enqueue([dataclasses.replace(job, seq=job.image_index) for job in batch_jobs(batch)])
        queue.close()
    servers = [fakes(loaded=loaded) for loaded in servers_loaded]
    out = str(tmp_path / batch.name)
    run(queue_url, batch, servers, out, dataclasses.replace(FAST, affinity=affinity))
    check_exactly_once(queue_url, batch, out)
    return sum(s.switches for s in servers)


def test_affinity_keeps_checkpoint_switches_few(queue_url, fakes, tmp_path, capsys):
    # One server, alternating run order: without affinity every image switches; with it the server stays on its
    # checkpoint until a passed-over job reaches max_bypass (24), so about one switch per 24 images.
    on = _switches(queue_url, tmp_path, fakes, "interleaved", True, [ALPHA])
    off = _switches(queue_url, tmp_path, fakes, "interleaved", False, [ALPHA])
    assert off == 99
    assert on <= 100 // FAST.max_bypass + 3
    # Two servers, each starting on another checkpoint: the batch's own run order (grouped by checkpoint), and the
    # alternating one.
    # (Without affinity two instant servers may alternate their claims perfectly or not at all: no bound there.)
    grouped = _switches(queue_url, tmp_path, fakes, "grouped", True, [ALPHA, BETA])
    alternating = _switches(queue_url, tmp_path, fakes, "interleaved", True, [ALPHA, BETA])
    with capsys.disabled():
        print(f"\n[dispatch {queue_url.split(':')[0]}] checkpoint switches per 100 images: one server, alternating "
              f"order: {on} with affinity, {off} without; two servers with affinity: {grouped} in the batch's "
              f"order, {alternating} in alternating order")
    assert grouped <= 6
    assert alternating <= 12


def test_images_no_server_can_make_fail_loudly_with_what_each_lacks(queue_url, fakes, tmp_path):
    plan = [("alpha.safetensors", ("fluffy",)), ("beta.safetensors", ("fluffy",)), ("beta.safetensors", ("rare",)),
            ("gamma.safetensors", ()), ("alpha.safetensors", ("rare",))]
    images = tuple(BatchImage(i, 1000 + i, prompt(i, loras), "", tuple((n, 0.8, "match") for n in loras), ckpt)
                   for i, (ckpt, loras) in enumerate(plan * 4))
    batch = Batch("needs", "", 1000, Settings(steps=4, width=64, height=64), images)
    both = fakes(checkpoints=(ALPHA, BETA), loras=("fluffy",))  # lacks LoRA rare
    alpha_only = fakes(checkpoints=(ALPHA,), loras=("fluffy", "rare"))  # lacks checkpoint beta
    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [both, alpha_only], out)
    unmakeable = {i for i, (ckpt, loras) in enumerate(plan * 4) if ckpt == "gamma.safetensors"
                  or (ckpt, loras) == ("beta.safetensors", ("rare",))}
    assert result.failed == len(unmakeable) == 8 and result.done == 12
    check_exactly_once(queue_url, batch, out, failed=sorted(unmakeable))
    by_index = {job.image_index: job for job in rows(queue_url, batch)}
    rare_beta = by_index[2].error
    assert f"{both.url} lacks LoRA 'rare'" in rare_beta and f"{alpha_only.url} lacks checkpoint 'beta.safetensors'" \
        in rare_beta
    assert "checkpoint 'gamma.safetensors'" in by_index[3].error
    assert len(result.problems) == 2 and any("4 images" in p and "LoRA 'rare'" in p for p in result.problems)
    # each job went only where its checkpoint and LoRAs are: beta images to `both`, rare ones to `alpha_only`
    assert {by_index[i].server for i in range(20) if plan[i % 5] == ("beta.safetensors", ("fluffy",))} == {both.url}
    assert {by_index[i].server for i in range(20) if plan[i % 5] == ("alpha.safetensors", ("rare",))} == \
        {alpha_only.url}
    assert all("<lora:rare" not in body["prompt"] and "rare" not in str(body) for body in both.received)


def test_a_server_back_without_a_lora_fails_what_only_it_had_instead_of_waiting_forever(queue_url, fakes, tmp_path):
    batch = make_batch(10, loras=(("rare",), ("fluffy",), ("fluffy",), ("fluffy",), ("fluffy",)))
    changing, other = fakes(loras=("fluffy", "rare")), fakes(loaded=BETA, loras=("fluffy",))
    changing.die_mid_request = True

    def restart_without_rare():  # as if its owner restarted it with another LoRA folder
        assert changing.wait_until(lambda f: f.txt2img_requests >= 1, 60)
        changing.loras = [lora for lora in changing.loras if lora.name != "rare"]
        changing.die_mid_request = False

    threading.Thread(target=restart_without_rare, daemon=True).start()
    out = str(tmp_path / "out")
    # probe_s: the test's thread changes the server well within the dispatcher's wait before it asks again
    result, _ = run(queue_url, batch, [changing, other], out, dataclasses.replace(FAST, probe_s=2.0))
    assert (result.done, result.failed) == (8, 2)
    check_exactly_once(queue_url, batch, out, failed=[0, 5])
    errors = {j.image_index: j.error for j in rows(queue_url, batch) if j.status == "failed"}
    assert all(f"{changing.url} lacks LoRA 'rare'" in e and f"{other.url} lacks LoRA 'rare'" in e
               for e in errors.values()), errors


def test_forge_refusing_a_job_fails_it_and_keeps_the_server(queue_url, fakes, tmp_path):
    batch = make_batch(20)
    refusing, healthy = fakes(), fakes(loaded=BETA, seconds_per_image=0.01)
    refusing.reject_with = OOM
    out = str(tmp_path / "out")
    patient = dataclasses.replace(FAST, max_refusals=1000)  # never taken for broken, however many it refuses
    result, _ = run(queue_url, batch, [refusing, healthy], out, patient)
    jobs = rows(queue_url, batch)
    failed = sorted(j.image_index for j in jobs if j.status == "failed")
    assert failed and result.failed == len(failed) and result.done == 20 - len(failed)
    for job in jobs:
        if job.status == "failed":
            assert job.server == refusing.url and "OutOfMemoryError" in job.error and job.attempts == 1
    check_exactly_once(queue_url, batch, out, failed=failed)
    assert {line.url: line.status for line in result.servers}[refusing.url] == "up"  # the job failed, not the server
    refusing.reject_with = None
    again, _ = run(queue_url, batch, [refusing, healthy], out, patient)  # a rerun tries the failed ones again
    assert again.done == 20
    check_exactly_once(queue_url, batch, out)


def test_a_server_refusing_image_after_image_counts_as_broken_and_its_images_go_elsewhere(queue_url, fakes, tmp_path,
                                                                                          caplog):
    # a lost CUDA context, a checkpoint that will not load: every image would fail in milliseconds there while
    # the healthy server is busy, if refusals only ever counted against the images
    batch = make_batch(20)
    broken, healthy = fakes(), fakes(loaded=BETA, seconds_per_image=0.05)
    broken.reject_with = OOM
    out = str(tmp_path / "out")
    with caplog.at_level("WARNING", logger="lib_orchestrator.dispatch"):
        result, _ = run(queue_url, batch, [broken, healthy], out, dataclasses.replace(FAST, probe_s=2.0))
    jobs = rows(queue_url, batch)
    failed = [j for j in jobs if j.status == "failed"]
    assert result.done + result.failed == 20 and result.done > 0
    assert all("OutOfMemoryError" in j.error for j in failed)
    assert "refused 3 images in a row" in caplog.text  # then down: probed every 2 s while the healthy one works
    assert len(failed) < 20 - len(failed)  # most were made, by the healthy server
    check_exactly_once(queue_url, batch, out, failed=[j.image_index for j in failed])


def test_a_shared_queue_leaves_to_another_dispatcher_what_only_its_servers_can_make(queue_url, fakes, tmp_path):
    batch = make_batch(12)  # alpha and beta images
    both, alpha_only = fakes(loaded=BETA, seconds_per_image=0.05), fakes(checkpoints=(ALPHA,))
    out = str(tmp_path / "out")
    results, errors = [], []

    def one(servers, delay):
        try:
            if delay:
                wait_for(lambda: both.txt2img_requests > 0, 60, "the first dispatcher at work")
            results.append(run(queue_url, batch, servers, out)[0])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=one, args=([both], False)),
               threading.Thread(target=one, args=([alpha_only], True))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert [r.failed for r in results] == [0, 0]  # the second never failed the beta images the first could make
    check_exactly_once(queue_url, batch, out)


def test_a_killed_dispatchers_images_do_not_count_the_attempt(queue_url, fakes, tmp_path):
    from lib_orchestrator.dispatch.jobs import batch_id, batch_jobs
    from lib_orchestrator.dispatch.queue import JobQueue

    batch = make_batch(2, checkpoints=("alpha.safetensors",))
    dead = f"{socket.gethostname()}:999999999:deadbeef/0"  # a process of this host that is gone
    queue = JobQueue(queue_url, max_attempts=1)
    try:
        queue.enqueue(batch_jobs(batch))
        job = queue.claim(dead, "http://gone", [j.needs_key for j in batch_jobs(batch)], "", 600.0, batch_id(batch))
    finally:
        queue.close()
    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [fakes()], out, dataclasses.replace(FAST, max_attempts=1))
    assert (result.done, result.failed) == (2, 0)  # with one attempt allowed, the killed claim did not use it
    assert next(j for j in rows(queue_url, batch) if j.id == job.id).attempts == 1


def test_an_image_interrupted_in_forges_ui_is_made_again_not_kept_half_made(queue_url, fakes, tmp_path):
    batch = make_batch(3, checkpoints=("alpha.safetensors",))
    server = fakes(seconds_per_image=1.0)

    def press_interrupt():
        wait_for(lambda: server.current_task is not None, 60, "a generation under way")
        server.interrupt_running()  # someone at that Forge pressed Interrupt: 200 with a partial image

    threading.Thread(target=press_interrupt, daemon=True).start()
    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [server], out)
    assert (result.done, result.failed) == (3, 0)
    assert server.txt2img_requests == 4  # the interrupted one was made again
    assert check_exactly_once(queue_url, batch, out) == reference_digests(str(tmp_path), batch)  # whole images


def test_stopping_a_run_while_forge_works_keeps_no_partial_image(queue_url, fakes, tmp_path):
    # the tab's Interrupt: the run is told to stop first, then Forge is interrupted and answers with a partial image
    batch = make_batch(2, checkpoints=("alpha.safetensors",))
    server = fakes(seconds_per_image=5.0)
    stop = threading.Event()

    def interrupt():
        wait_for(lambda: server.current_task is not None, 60, "a generation under way")
        stop.set()
        server.interrupt_running()

    threading.Thread(target=interrupt, daemon=True).start()
    queue = JobQueue(queue_url)
    try:
        result = Dispatcher(queue, batch, batch_id(batch), clients([server]), str(tmp_path / "out"), FAST).run(stop)
    finally:
        queue.close()
    assert (result.done, result.pending) == (0, 2)
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")
    assert {j.attempts for j in rows(queue_url, batch)} == {0}  # handed back, not counted


def test_a_server_without_the_batchs_sampler_makes_none_of_its_images(queue_url, fakes, tmp_path):
    # Forge would quietly make them with its first sampler instead
    plain = make_batch(2, checkpoints=("alpha.safetensors",))
    batch = dataclasses.replace(plain, settings=dataclasses.replace(plain.settings, sampler_name="Heun"))
    server = fakes(samplers=("Euler a", "DPM++ 2M"))
    result, _ = run(queue_url, batch, [server], str(tmp_path / "out"))
    assert (result.done, result.failed) == (0, 2) and server.txt2img_requests == 0
    assert result.problems == (f"2 images no server can make: {server.url} lacks sampler 'Heun'",)


def _gate(server_of_interest, until, what):
    """An on_done that holds the other servers' workers until `until()` holds, so the server of interest gets
    work after it comes back however fast the others are."""
    def on_done(job, path):
        if job.server != server_of_interest.url:
            wait_for(until, 60, what)
    return on_done


def test_a_hung_server_times_out_its_job_goes_elsewhere_and_it_is_used_again(queue_url, fakes, tmp_path):
    batch = make_batch(12)
    hung, healthy = fakes(), fakes(loaded=BETA)
    hung.hang = True
    options = dataclasses.replace(FAST, timeout_floor_s=0.5, first_timeout_s=0.5)

    def release_hang():  # the test frees the server once the dispatcher gave up on it
        wait_for(lambda: hung.interrupts >= 1 or _down(queue_url, hung.url), 60, "the hung server's timeout")
        hung.hang = False

    threading.Thread(target=release_hang, daemon=True).start()
    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [hung, healthy], out,
                    options, on_done=_gate(hung, lambda: hung.images >= 2, "the hung server's return"))
    assert result.done == 12
    check_exactly_once(queue_url, batch, out)
    jobs = rows(queue_url, batch)
    # the hung job, made again (exact counts are not asserted: on a stalled machine a 0.5 s timeout may fire twice)
    assert max(j.attempts for j in jobs) >= 2
    assert any(j.server == hung.url for j in jobs)  # used again after its timeout


def _down(queue_url, url):
    queue = JobQueue(queue_url)
    try:
        return any(row.url == url and row.status == "down" for row in queue.servers())
    finally:
        queue.close()


def test_a_server_dying_mid_request_hands_its_job_on(queue_url, fakes, tmp_path):
    batch = make_batch(12)
    dying, healthy = fakes(), fakes(loaded=BETA)
    dying.die_mid_request = 1
    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [dying, healthy], out,
                    on_done=_gate(dying, lambda: dying.images >= 1, "the dying server's return"))
    assert result.done == 12
    check_exactly_once(queue_url, batch, out)
    jobs = rows(queue_url, batch)
    assert [j.attempts for j in jobs].count(2) == 1 and sum(j.attempts for j in jobs) == 13
    assert dying.txt2img_requests - dying.images == 1 and dying.images >= 1


def test_a_server_down_at_the_start_is_probed_and_used_when_back(queue_url, fakes, tmp_path):
    batch = make_batch(12)
    late, healthy = fakes(), fakes(loaded=BETA)
    late.stop()  # its port refuses connections
    started = threading.Event()

    def on_done(job, path):
        if not started.is_set():
            started.set()
            late.start()  # back on the same port, nothing loaded
        if job.server != late.url:
            wait_for(lambda: late.images >= 1, 60, "the late server's first image")

    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [late, healthy], out, on_done=on_done)
    assert result.done == 12 and result.problems == ()
    check_exactly_once(queue_url, batch, out)
    assert late.images >= 1 and {line.url: line.status for line in result.servers}[late.url] == "up"


def test_with_no_server_answering_nothing_fails_until_one_answers(queue_url, fakes, tmp_path):
    batch = make_batch(6)  # alpha and beta images
    alpha_only = fakes(checkpoints=(ALPHA,))
    alpha_only.stop()
    checked = []

    def start_when_probing():
        wait_for(lambda: _down(queue_url, alpha_only.url), 60, "the server marked down")
        checked.append(sum(j.status == "failed" for j in rows(queue_url, batch)))
        alpha_only.start()

    threading.Thread(target=start_when_probing, daemon=True).start()
    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [alpha_only], out)
    assert checked == [0]  # while nothing answered, nothing was failed for want of a server
    assert (result.done, result.failed) == (3, 3)
    check_exactly_once(queue_url, batch, out, failed=[1, 3, 5])
    assert result.problems == (f"3 images no server can make: {alpha_only.url} lacks checkpoint 'beta.safetensors'",)


def test_a_server_unreachable_at_the_start_is_named_in_what_cannot_be_made(queue_url, fakes, tmp_path):
    batch = make_batch(4)
    alpha_only, gone = fakes(checkpoints=(ALPHA,)), fakes()
    gone.stop()
    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [alpha_only, gone], out)
    assert (result.done, result.failed) == (2, 2)
    check_exactly_once(queue_url, batch, out, failed=[1, 3])
    (problem,) = result.problems
    assert problem.startswith(f"2 images no server can make: {alpha_only.url} lacks checkpoint 'beta.safetensors'; "
                              f"{gone.url} unreachable: ")


class _Crash(BaseException):
    """Not an Exception: ends the worker's thread, as a bug in a C extension or a stray SystemExit would."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the dying thread's own report
@pytest.mark.parametrize("fault", [OSError(28, "No space left on device"), _Crash("worker thread dies")])
def test_an_error_inside_a_worker_releases_its_job_and_work_goes_on(queue_url, fakes, tmp_path, monkeypatch, fault):
    batch = make_batch(12)
    real = dispatcher_module.write_image
    faults = [fault]

    def write_image(*args):
        if faults:
            raise faults.pop()
        return real(*args)

    monkeypatch.setattr(dispatcher_module, "write_image", write_image)
    server = fakes()
    out = str(tmp_path / "out")
    result, _ = run(queue_url, batch, [server], out)
    assert result.done == 12 and not faults
    check_exactly_once(queue_url, batch, out)
    jobs = rows(queue_url, batch)
    assert [j.attempts for j in jobs].count(2) == 1  # the job of the failed write, made again


def test_stop_hands_the_leases_back_without_counting_them(queue_url, fakes, tmp_path):
    batch = make_batch(4)
    slow = fakes(seconds_per_image=60.0)
    queue = JobQueue(queue_url)
    dispatcher = Dispatcher(queue, batch, batch_id(batch), clients([slow]), str(tmp_path / "out"), FAST)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", dispatcher.run()), daemon=True)
    thread.start()
    assert slow.wait_until(lambda f: f.current_task is not None, 60)
    dispatcher.stop()
    thread.join(30)
    assert not thread.is_alive()
    queue.close()
    jobs = rows(queue_url, batch)
    assert [(j.status, j.attempts) for j in jobs] == [("pending", 0)] * 4
    assert not os.path.exists(tmp_path / "out") or os.listdir(tmp_path / "out") == []


def test_two_dispatchers_on_one_queue_make_each_image_once(queue_url, fakes, tmp_path):
    batch = make_batch(40)
    groups = [[fakes(loaded=ALPHA), fakes(loaded=BETA)], [fakes(loaded=BETA), fakes(loaded=ALPHA)]]
    out = str(tmp_path / "out")
    results, errors = [], []

    def one(servers):
        try:
            results.append(run(queue_url, batch, servers, out)[0])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=one, args=(group,)) for group in groups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert [r.done for r in results] == [40, 40]
    check_exactly_once(queue_url, batch, out)
    assert sum(s.images for group in groups for s in group) == 40  # no image generated twice


def test_orchestration_overhead_per_image(queue_url, fakes, tmp_path, capsys):
    batch = make_batch(200, name="overhead", checkpoints=("alpha.safetensors",))
    server = fakes()
    start = time.perf_counter()
    result, _ = run(queue_url, batch, [server], str(tmp_path / "out"))
    seconds = time.perf_counter() - start
    assert result.done == 200
    with capsys.disabled():
        print(f"\n[dispatch {queue_url.split(':')[0]}] orchestration per image with an instant server: "
              f"{seconds / 200 * 1000:.1f} ms (goal <= 20 ms)")
