"""What the dispatcher's tests share: a batch over two checkpoints and a LoRA, fake servers that have them, a run with
a deadline, and the check that every image exists exactly once (files and rows)."""
from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from lib_orchestrator.batches import Batch, BatchImage, Settings
from lib_orchestrator.dispatch.dispatcher import Dispatcher, Options
from lib_orchestrator.dispatch.forge_client import ForgeClient
from lib_orchestrator.dispatch.jobs import batch_id
from lib_orchestrator.dispatch.queue import JobQueue
from lib_orchestrator.history.imagefile import read_image_info
from lib_orchestrator.history.infotext import parse_infotext

from .fake_forge import FakeForge

ALPHA = "alpha.safetensors [aaaaaaaaaa]"
BETA = "beta.safetensors [bbbbbbbbbb]"
# Short timings: a test waits on outcomes, these only make the waiting short.
FAST = Options(lease_s=30.0, probe_s=0.1, timeout_floor_s=30.0, idle_s=0.05, snapshot_s=0.05)


def make_batch(count: int, name: str = "cats", checkpoints: Sequence[str] = ("alpha.safetensors", "beta.safetensors"),
               loras: Sequence[Tuple[str, ...]] = (("fluffy",),)) -> Batch:
    """`count` images; image i uses checkpoints[i % len] and the LoRAs loras[i % len] (picked and tagged)."""
    images = []
    for i in range(count):
        names = loras[i % len(loras)] if loras else ()
        picks = tuple((n, 0.8, "match") for n in names)
        images.append(BatchImage(i, 1000 + i, prompt(i, names), "blurry", picks,
                                 checkpoints[i % len(checkpoints)] if checkpoints else None))
    return Batch(name, "a cat, number {n}", 1000, Settings(steps=4, width=64, height=64), tuple(images))


def prompt(i: int, loras: Sequence[str]) -> str:
    """A batch prompt as the planner writes it: the text, then a `<lora:NAME:w>` tag per pick (what a server needs)."""
    return f"a cat, number {i}" + "".join(f" <lora:{name}:0.8>" for name in loras)


def fake(loaded: str = ALPHA, checkpoints: Sequence[str] = (ALPHA, BETA), loras: Sequence[str] = ("fluffy",),
         **behaviour) -> FakeForge:
    return FakeForge(list(checkpoints), loras=list(loras), loaded=loaded, **behaviour)


def clients(fakes: Sequence[FakeForge], poll_s: float = 0.05) -> List[ForgeClient]:
    return [ForgeClient(f.url, poll_s=poll_s, connect_timeout_s=2.0) for f in fakes]


def run(queue_url: str, batch: Batch, fakes: Sequence[FakeForge], out: str, options: Options = FAST,
        deadline_s: float = 90.0, **kwargs) -> Tuple[object, Dispatcher]:
    """Dispatch `batch` to `fakes` and wait for the result; a run that does not end by `deadline_s` is stopped and
    the test fails (never a hung test)."""
    queue = JobQueue(queue_url)
    try:
        dispatcher = Dispatcher(queue, batch, batch_id(batch), clients(fakes), out, options, **kwargs)
        box: Dict[str, object] = {}

        def target() -> None:
            try:
                box["result"] = dispatcher.run()
            except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
                box["error"] = error

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        thread.join(deadline_s)
        if thread.is_alive():
            dispatcher.stop()
            thread.join(10)
            raise AssertionError(f"the dispatcher did not finish within {deadline_s} s: {dispatcher.snapshot().text()}")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box["result"], dispatcher
    finally:
        queue.close()


def rows(queue_url: str, batch: Batch):  # type: ignore[no-untyped-def]
    queue = JobQueue(queue_url)
    try:
        return queue.jobs(batch_id(batch))
    finally:
        queue.close()


def sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def check_exactly_once(queue_url: str, batch: Batch, out: str, failed: Sequence[int] = ()) -> Dict[int, str]:
    """Every image but `failed` is done: one row, one file named by its (batch, index), that row's file and
    digest, the image's own seed and our batch key in its infotext; no other file, no temporary left.
    Returns index -> file digest."""
    ident = batch_id(batch)
    jobs = rows(queue_url, batch)
    assert sorted(j.image_index for j in jobs) == [im.index for im in batch.images]  # one row per image
    expected = {f"{ident}-{im.index:05d}.png" for im in batch.images if im.index not in failed}
    assert sorted(os.listdir(out) if os.path.isdir(out) else []) == sorted(expected)
    digests = {}
    for job in jobs:
        if job.image_index in failed:
            assert job.status == "failed", (job.image_index, job.status, job.error)
            continue
        assert job.status == "done", (job.image_index, job.status, job.error)
        path = os.path.join(out, f"{ident}-{job.image_index:05d}.png")
        assert os.path.abspath(job.file) == os.path.abspath(path)
        assert job.digest == sha256(path)
        generation = parse_infotext(read_image_info(path).text or "")
        assert generation.seed == 1000 + job.image_index
        assert generation.batch == f"{batch.name} #{job.image_index}"
        digests[job.image_index] = job.digest
    return digests


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    """Poll `predicate` until it holds (a condition across processes or the database has no event to wait on)."""
    event = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        event.wait(0.02)


def reference_digests(tmp_root: str, batch: Batch, fakes_kw: Optional[dict] = None) -> Dict[int, str]:
    """The files an undisturbed run makes (a fresh generation on a fresh server and queue): what a run after kills
    must have made, byte for byte."""
    out = os.path.join(tmp_root, "reference")
    server = fake(**(fakes_kw or {})).start()
    try:
        run(f"sqlite:///{os.path.join(tmp_root, 'reference.sqlite')}", batch, [server], out)
    finally:
        server.stop()
    return {int(name.rsplit("-", 1)[1].split(".")[0]): sha256(os.path.join(out, name)) for name in os.listdir(out)}


def run_threads(target, count: int, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """target(0) … target(count - 1) in threads at once, all joined; a thread still alive after `timeout` fails the
    test as "<what> hung" instead of hanging it."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), f"{what} hung"
