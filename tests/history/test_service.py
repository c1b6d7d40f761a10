"""The history inside a host: folders scanned in the background, saved images added without waiting, scores
recomputed when ratings or images change, and a broken index never breaking a pick."""
from __future__ import annotations

import threading
from pathlib import Path

from lib_orchestrator.history.service import HistoryService
from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.selection import LoraIndex

from .forge_images import SAMPLES, write_image, write_samples


def service(tmp_path, folders, enabled=True):
    return HistoryService(lambda: str(tmp_path / "data" / "history.sqlite"), lambda: folders, enabled=lambda: enabled)


def outputs(tmp_path):
    """A folder of Forge's outputs: every sample image, as a PNG."""
    out = tmp_path / "outputs"
    out.mkdir()
    write_samples(str(out), formats=("png",))
    return out


def test_refresh_scans_the_hosts_folders_in_the_background(tmp_path):
    out = outputs(tmp_path)
    h = service(tmp_path, [(str(out), "forge"), (str(tmp_path / "not-there"), "user")])
    h.refresh()
    h.wait()
    assert h.store().count() == len(SAMPLES)
    assert h.store().folders() == [(str(out.resolve()), "forge")]
    assert h.status().startswith(f"{len(SAMPLES)} images indexed")


def test_saved_images_are_added_off_the_callers_thread(tmp_path):
    h = service(tmp_path, [])
    path = write_image(str(tmp_path / "saved.png"), SAMPLES["forge_lora"].text)
    caller = threading.get_ident()
    h.add_file(path)
    h.wait()
    row = h.store().image(path)
    assert row is not None and row.seed == 1000
    assert h._writer is not None and h._writer.ident != caller


def test_scores_follow_new_ratings_and_new_images(tmp_path):
    out = outputs(tmp_path)
    h = service(tmp_path, [(str(out), "forge")])
    h.refresh()
    h.wait()
    assert h.score_of("watercolor").score == 0 and h.effects() == {}
    h.store().rate(str(out / "swatch_cell.png"), stars=5)
    h.store().rate(str(out / "forge_lora.png"), stars=1)
    assert h.score_of("WATERCOLOR").score > 0
    assert h.effects()["watercolor"] > 0 and h.effects()["test_lora"] < 0
    before = h.score_of("watercolor").images
    h.add_file(write_image(str(out / "another.png"), SAMPLES["swatch_cell"].text.replace("Seed: 777", "Seed: 8")))
    h.wait()
    assert h.score_of("watercolor").images == before + 1  # usage is counted again without a new rating


def test_feedback_index_is_made_once_per_change(tmp_path):
    out = outputs(tmp_path)
    h = service(tmp_path, [(str(out), "forge")])
    h.refresh()
    h.wait()
    index = LoraIndex([LoraRecord("watercolor.safetensors", "watercolor", base_model="SD 1.5", family="sd1",
                                  category="style")])
    first = h.with_feedback(index)
    assert first.effect == {} and h.with_feedback(index) is first
    h.store().rate(str(out / "swatch_cell.png"), stars=5)
    h.store().rate(str(out / "forge_lora.png"), stars=1)  # against the user's mean: one rating alone is average
    second = h.with_feedback(index)
    assert second is not first and second.effect[0] > 0


def test_an_index_that_cannot_be_used_leaves_picks_as_they_were(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "history.sqlite").write_bytes(b"something else entirely" * 50)
    h = service(tmp_path, [])
    index = LoraIndex([])
    assert h.with_feedback(index) is index and h.effects() == {}
    assert h.status().startswith("history unavailable:") and "history.sqlite" in h.status()


def test_off_in_settings_means_nothing_is_indexed(tmp_path):
    out = outputs(tmp_path)
    h = service(tmp_path, [(str(out), "forge")], enabled=False)
    h.refresh()
    h.add_file(str(out / "batch.png"))
    h.wait()
    assert not (tmp_path / "data" / "history.sqlite").exists()
    assert "off" in h.status()


def test_a_rating_made_by_another_process_is_seen_beside_a_thread_that_kept_its_connection(tmp_path):
    """Seen in a real Forge: the scan thread's connection lived on after the thread, the main thread's store was
    then opened with a read-only probe beside it, and from then on the main thread read an old snapshot: ratings
    made with the command line never reached the picks."""
    import subprocess
    import sys

    from lib_orchestrator.history.store import HistoryStore

    out = outputs(tmp_path)
    db = str(tmp_path / "h.sqlite")
    kept = []

    def scan():
        store = HistoryStore(db)
        store.scan([str(out)])
        kept.append(store)  # never closed: the thread ends with it open

    worker = threading.Thread(target=scan)
    worker.start()
    worker.join()
    main = HistoryStore(db)
    for stars in (5, 2, 4):
        before = main.version()
        main.rated()  # what the scores read
        subprocess.run([sys.executable, "-c", "import sys\nfrom lib_orchestrator.history.store import HistoryStore\n"
                        f"HistoryStore(sys.argv[1]).rate(sys.argv[2], stars={stars})", db,
                        str(out / "swatch_cell.png")], check=True, cwd=str(Path(__file__).parents[2]))
        assert main.version() == before + 1
        assert main.image(str(out / "swatch_cell.png")).stars == stars
    kept[0].close()


def test_new_images_do_not_make_the_picks_score_everything_again(tmp_path, monkeypatch):
    from lib_orchestrator.history import service as module

    out = outputs(tmp_path)
    h = service(tmp_path, [(str(out), "forge")])
    h.refresh()
    h.wait()
    h.store().rate(str(out / "swatch_cell.png"), stars=5)
    h.store().rate(str(out / "forge_lora.png"), stars=1)
    calls = []
    real = module.HistoryService.scores
    monkeypatch.setattr(module.HistoryService, "scores", lambda self, by_weight=False: calls.append(1) or
                        real(self, by_weight))
    first = h.effects()
    h.add_file(write_image(str(out / "new.png"), SAMPLES["batch"].text.replace("Seed: 42", "Seed: 43")))
    h.wait()
    assert h.effects() == first and len(calls) == 1  # a new image: the same verdicts, not scored again
    h.store().rate(str(out / "batch.png"), stars=2)
    assert h.effects() != first and len(calls) == 2
