"""The background library in a long-running host: its status says what happened (a silent stop is
impossible), and no rescan request is ever lost, however the requests and the worker interleave."""
from __future__ import annotations

import sys
import threading

from lib_orchestrator.library import service as service_module
from lib_orchestrator.library.service import LibraryService, LibraryStatus

from .test_cache import safetensors

WAIT = 30  # seconds; only reached when a test is about to fail


def small_library(tmp_path, loras=3):
    root = tmp_path / "Lora"
    for i in range(loras):
        safetensors(root / f"l{i}.safetensors", {"ss_base_model_version": "sd_v1"})
    (root / "half.safetensors.part").write_bytes(b"x")  # reported, not a LoRA: skipped
    (root / "other.gguf").write_bytes(b"x")
    (root / "l0.json").write_text("{not json", encoding="utf-8")  # a LoRA with a warning
    return root


def test_status_before_during_and_after_a_scan(tmp_path):
    root = small_library(tmp_path)
    gate, entered = threading.Event(), threading.Event()

    def roots():
        entered.set()
        assert gate.wait(WAIT)
        return [str(root)]

    service = LibraryService(roots, lambda: str(tmp_path / "c.sqlite"))
    idle = service.status()
    assert idle == LibraryStatus() and idle.text() == "The LoRA library is not indexed yet"
    service.refresh()
    assert entered.wait(WAIT)
    busy = service.status()
    assert busy.scanning and not busy.ready and busy.text() == "Indexing the LoRA library…"
    gate.set()
    service.wait(WAIT)
    done = service.status()
    assert (done.ready, done.scanning, done.failed, done.last_error) == (True, False, False, None)
    assert (done.records, done.loras, done.skipped, done.with_problems) == (5, 3, 2, 3)
    assert done.seconds > 0
    assert done.text() == ("3 LoRAs · 2 files skipped · 1 with warnings (see Problems) · "
                           f"scanned in {done.seconds:.1f} s")


def test_a_failed_scan_says_why_in_one_line_and_keeps_the_previous_index(tmp_path):
    root = small_library(tmp_path)
    fail = []

    def roots():
        if fail:
            raise OSError("the settings file is unreadable\nsecond line of detail")
        return [str(root)]

    service = LibraryService(roots, lambda: None)
    service.refresh()
    first = service.wait(WAIT)
    fail.append(True)
    service.refresh()
    assert service.wait(WAIT) is first  # the previous index is kept
    status = service.status()
    assert status.ready and status.failed and status.loras == 3
    assert status.last_error == "OSError: the settings file is unreadable"
    assert status.text() == ("LoRA library scan failed: OSError: the settings file is unreadable; "
                             "the previous index is kept")
    fail.clear()
    service.refresh()
    service.wait(WAIT)
    assert not service.status().failed and service.status().last_error is None


def test_a_first_scan_that_fails_says_nothing_is_indexed(tmp_path):
    def roots():
        raise RuntimeError("boom")

    service = LibraryService(roots, lambda: None)
    service.refresh()
    assert service.wait(WAIT) is None
    assert service.status().text() == "LoRA library scan failed: RuntimeError: boom; no LoRAs are indexed yet"


def test_a_cache_setting_naming_someone_elses_file_costs_the_cache_not_the_library(tmp_path):
    root = small_library(tmp_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("precious", encoding="utf-8")
    service = LibraryService(lambda: [str(root)], lambda: str(notes))
    service.refresh()
    assert service.wait(WAIT) is not None
    status = service.status()
    assert status.ready and not status.failed and status.loras == 3
    assert status.last_error.startswith(f"cache not used: {notes}: error: not a LoRA library cache")
    assert status.last_error in status.text() and "\n" not in status.text()
    assert notes.read_text(encoding="utf-8") == "precious"


def test_a_bad_file_in_the_folder_is_a_skipped_file_not_a_failed_scan(tmp_path):
    root = small_library(tmp_path)
    raw = b"[" * 100_000 + b"]" * 100_000  # used to raise RecursionError out of the background thread
    (root / "deep.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw)
    service = LibraryService(lambda: [str(root)], lambda: str(tmp_path / "c.sqlite"))
    service.refresh()
    assert service.wait(WAIT) is not None
    status = service.status()
    assert not status.failed and status.loras == 4 and status.with_problems == 4


class _SlowToExit(threading.Thread):
    """A worker that has finished its loop but is not dead yet, as the OS may leave it for a while:
    the window in which a request used to be lost."""

    finished = threading.Event()
    release = threading.Event()

    def run(self):
        super().run()
        type(self).finished.set()
        type(self).release.wait(WAIT)


def test_a_request_arriving_as_the_worker_exits_is_served(tmp_path, monkeypatch):
    scans = []
    served = threading.Event()

    def roots():
        scans.append(len(scans) + 1)
        if len(scans) == 2:
            served.set()
        return []

    monkeypatch.setattr(service_module.threading, "Thread", _SlowToExit)
    _SlowToExit.finished.clear()
    _SlowToExit.release.clear()
    service = LibraryService(roots, lambda: None)
    try:
        service.refresh()
        assert _SlowToExit.finished.wait(WAIT)  # scan 1 done, worker still alive
        service.refresh()
        assert served.wait(5), "the request made as the worker exited was lost"
    finally:
        _SlowToExit.release.set()
    service.wait(WAIT)
    assert scans == [1, 2]


def test_requests_during_a_scan_are_served_by_one_scan_that_starts_after_them(tmp_path):
    gate, entered = threading.Event(), threading.Event()
    starts = []

    def roots():
        starts.append(list(requests))
        entered.set()
        assert gate.wait(WAIT)
        return []

    requests = []
    service = LibraryService(roots, lambda: None)
    requests.append(1)
    service.refresh()
    assert entered.wait(WAIT)
    for n in (2, 3, 4):
        requests.append(n)
        service.refresh()
    gate.set()
    service.wait(WAIT)
    assert starts == [[1], [1, 2, 3, 4]]  # one more scan, and it saw the last request


def test_stress_the_last_request_is_always_served():
    """300 rounds: a scan starts, then 8 threads pile 3 refreshes each onto it while the interpreter
    switches threads every microsecond (so requests land at every point of the worker's tail). After each
    round the last scan must have started after the last request: `roots` records what it could see."""
    lock = threading.Lock()
    issued, seen = [0], [0]
    started = threading.Event()

    def roots():
        with lock:
            seen[0] = issued[0]
        started.set()
        return []

    service = LibraryService(roots, lambda: None)

    def request(barrier):
        barrier.wait()
        started.wait(WAIT)
        for _ in range(3):
            with lock:
                issued[0] += 1
            service.refresh()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(300):
            started.clear()
            barrier = threading.Barrier(9)
            workers = [threading.Thread(target=request, args=(barrier,)) for _ in range(8)]
            for w in workers:
                w.start()
            barrier.wait()
            with lock:
                issued[0] += 1
            service.refresh()
            for w in workers:
                w.join(WAIT)
            service.wait(WAIT)
            assert not service.status().scanning
            assert seen[0] == issued[0], f"the last of {issued[0]} requests was lost (the last scan saw {seen[0]})"
    finally:
        sys.setswitchinterval(interval)


# -- vectors: made after the scan, in the background; keywords serve meanwhile and on any failure ----------
class FakeEmbedder:
    """Vectors from the text's characters (no meaning needed here), and a gate to hold embedding."""

    kind, model = "fake", "chars-8"

    def __init__(self, gate=None, fail=None):
        self.gate, self.fail, self.calls = gate, fail, 0

    def embed(self, texts):
        import numpy as np

        self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        if self.fail is not None:
            raise self.fail
        out = np.zeros((len(texts), 8), np.float32)
        for k, text in enumerate(texts):
            for ch in text:
                out[k, ord(ch) % 8] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


def test_keywords_serve_while_the_library_is_embedded_then_the_index_has_vectors(tmp_path):
    root = small_library(tmp_path)
    gate = threading.Event()
    embedder = FakeEmbedder(gate)
    service = LibraryService(lambda: [str(root)], lambda: str(tmp_path / "c.sqlite"), embedder=lambda: embedder)
    service.refresh()
    for _ in range(WAIT * 100):  # the keyword index is published before the vectors are made
        if service.current() is not None:
            break
        threading.Event().wait(0.01)
    first = service.current()
    assert first is not None and first.semantic is None and "embedding" in first.semantic_note
    assert "embedding" in service.status().text()
    gate.set()
    done = service.wait(WAIT)
    assert done is not None and done.semantic is not None
    assert done.semantic.vectors.shape == (len(done.records), 8)
    assert "3 LoRAs embedded by fake chars-8 (3 new" in service.status().text()
    service.refresh()  # a rescan finds every vector in the cache: nothing is embedded again
    service.wait(WAIT)
    assert "3 LoRAs embedded by fake chars-8 ·" in service.status().text() + " ·"


def test_an_embedder_that_fails_leaves_keywords_and_says_why(tmp_path):
    from lib_orchestrator.embeddings.base import EmbedError

    root = small_library(tmp_path)
    embedder = FakeEmbedder(fail=EmbedError("the embeddings server is off: start it"))
    service = LibraryService(lambda: [str(root)], lambda: None, embedder=lambda: embedder)
    service.refresh()
    index = service.wait(WAIT)
    assert index is not None and index.semantic is None and len(index.records) == 3
    status = service.status()
    assert not status.failed and status.semantic == "keywords only: the embeddings server is off: start it"


def test_an_embedder_that_cannot_be_made_costs_vectors_not_the_scan(tmp_path):
    def not_installed():
        raise ModuleNotFoundError("No module named 'tokenizers'")

    service = LibraryService(lambda: [str(small_library(tmp_path))], lambda: None, embedder=not_installed)
    service.refresh()
    assert service.wait(WAIT) is not None
    assert service.status().semantic == "keywords only: ModuleNotFoundError: No module named 'tokenizers'"
