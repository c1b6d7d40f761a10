"""Scanning folders into the history index: what each image says lands in its row exactly, a second scan only
stats, changed, gone, returned and moved files, problems that never stop a scan, and the scan's edges (links,
loops, stopping, progress). Images are written by tests/history/forge_images.py the way Forge writes them, and
what each row must hold comes from the sample's hand-written expectations, not from the reader."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from lib_orchestrator.history import scan as scan_module
from lib_orchestrator.history.infotext import LoraUse
from lib_orchestrator.history.store import HistoryStore

from .forge_images import (
    SAMPLES,
    Sample,
    write_corrupt_png,
    write_empty,
    write_image,
    write_not_an_image,
    write_png,
    write_samples,
    write_truncated,
    write_with_sidecar,
)


@pytest.fixture
def store(tmp_path: Path):
    s = HistoryStore(str(tmp_path / "data" / "history.sqlite"))
    yield s
    s.close()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """The files the scan opens, in order."""
    opened: List[str] = []
    real = scan_module.read_image_info

    def counting(path: str):
        opened.append(path)
        return real(path)

    monkeypatch.setattr(scan_module, "read_image_info", counting)
    return opened


def text_of(n: int, word: str = "castle") -> str:
    return (f"a {word} number {n} <lora:Ink:0.{n % 9 + 1}>\nNegative prompt: lowres\nSteps: 20, Sampler: Euler, "
            f"Seed: {n}, Size: 8x8, Model: dream")


def samples(folder: Path) -> Dict[str, Sample]:
    """Every Forge sample as PNG, JPEG and WebP in `folder`: {path: Sample}."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_samples(str(folder))


def fts(store: HistoryStore, query: str) -> List[int]:
    return sorted(r for (r,) in store.db.execute("SELECT rowid FROM images_fts WHERE images_fts MATCH ?", (query,)))


def fts_sound(store: HistoryStore) -> None:
    store.db.execute("INSERT INTO images_fts (images_fts, rank) VALUES ('integrity-check', 1)")


# -- what a row holds ----------------------------------------------------------------------------------------------

def test_every_field_of_forge_images_is_read_back_exactly_into_rows(tmp_path: Path, store: HistoryStore) -> None:
    written = samples(tmp_path / "out")
    stats = store.scan([str(tmp_path / "out")])
    assert (stats.seen, stats.added, stats.problems) == (len(written), len(written), 0)
    for path, sample in written.items():
        row = store.image(path)
        assert row is not None, path
        st = os.stat(path)
        assert row.path == str(Path(path).resolve())
        assert row.present is True
        assert row.format == {".png": "png", ".jpg": "jpeg", ".webp": "webp"}[os.path.splitext(path)[1]]
        assert (row.width, row.height) == (8, 8)  # the file's own size, not the infotext's `Size`
        assert row.created == st.st_mtime
        assert (row.prompt, row.negative, row.seed) == (sample.prompt, sample.negative, sample.seed)
        assert (row.checkpoint, row.checkpoint_hash) == (sample.checkpoint, sample.checkpoint_hash)
        assert (row.template, row.batch, row.swatch) == (sample.template, sample.batch, sample.swatch)
        assert row.parameters == sample.text
        assert row.problem == ""
        assert row.loras == tuple(LoraUse(*use) for use in sample.loras)
        if sample.group is not None:
            assert row.group_key == sample.group
        else:
            assert (row.group_key != "") == (sample.seed is not None)
        assert (row.stars, row.rejected, row.favourite) == (None, False, False)
        size, mtime_ns, lora_names = store.db.execute(
            "SELECT size, mtime_ns, lora_names FROM images WHERE id = ?", (row.id,)).fetchone()
        assert (size, mtime_ns) == (st.st_size, st.st_mtime_ns)
        assert lora_names == " ".join(use[0] for use in sample.loras)
        for keyword in sample.keywords:
            assert row.id in fts(store, f'"{keyword}"'), (path, keyword)
    fts_sound(store)


def test_the_formats_of_one_image_share_its_group_and_its_swatch_cells_pair_up(tmp_path: Path,
                                                                               store: HistoryStore) -> None:
    samples(tmp_path / "out")
    store.scan([str(tmp_path / "out")])
    for seed in range(20):
        pair = store.next_pair(random.Random(seed))
        assert pair is not None
        assert {row.swatch for row in pair} == {"watercolor:0.75", "baseline"}


def test_parameters_from_the_text_file_beside_an_image(tmp_path: Path, store: HistoryStore) -> None:
    sample = SAMPLES["orchestrator"]
    (tmp_path / "out").mkdir()
    path = write_with_sidecar(str(tmp_path / "out" / "a.jpg"), sample.text)
    store.scan([str(tmp_path / "out")])
    row = store.image(path)
    assert (row.prompt, row.seed, row.template) == (sample.prompt, sample.seed, sample.template)
    assert store.count() == 1  # the .txt itself is no image


def test_bad_files_are_indexed_with_their_problem_and_never_stop_the_scan(tmp_path: Path,
                                                                         store: HistoryStore) -> None:
    out = tmp_path / "out"
    out.mkdir()
    text = SAMPLES["orchestrator"].text
    bad = {write_empty(str(out / "a-empty.png")): "empty file",
           write_not_an_image(str(out / "b-html.jpg")): "not an image",
           write_truncated(str(out / "c-cut.png"), text): "truncated file",
           write_corrupt_png(str(out / "d-corrupt.png"), text): "corrupt PNG chunk",
           write_png(str(out / "e-plain.png"), None): "no generation parameters",
           write_image(str(out / "f-plain.webp"), None): "no generation parameters"}
    good = write_image(str(out / "z-good.png"), text)
    stats = store.scan([str(out)])
    assert (stats.seen, stats.added, stats.problems) == (7, 7, 6)
    for path, problem in bad.items():
        row = store.image(path)
        assert row.problem == problem, path
        assert row.prompt == "" and row.loras == () and row.group_key == ""
    assert store.image(good).problem == ""
    assert store.scan().unchanged == 7  # problems are not read again while the files stay as they are


# -- incremental ---------------------------------------------------------------------------------------------------

def test_a_second_scan_only_stats(tmp_path: Path, store: HistoryStore, reads: List[str]) -> None:
    samples(tmp_path / "out")
    first = store.scan([str(tmp_path / "out")])
    assert len(reads) == first.seen == first.added == 27
    reads.clear()
    second = store.scan()
    assert (second.seen, second.unchanged, second.added, second.updated, second.gone) == (27, 27, 0, 0, 0)
    assert reads == []


def test_a_changed_file_is_read_again_and_keeps_its_row_and_rating(tmp_path: Path, store: HistoryStore,
                                                                    reads: List[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    paths = [write_png(str(out / f"{n}.png"), text_of(n)) for n in range(5)]
    store.scan([str(out)])
    image_id = store.image(paths[2]).id
    store.rate(image_id, stars=4)
    version = store.version()
    write_png(paths[2], text_of(2, word="lighthouse"))
    st = os.stat(paths[2])
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a later time, whatever the clock
    reads.clear()
    stats = store.scan()
    assert (stats.updated, stats.unchanged, stats.added) == (1, 4, 0)
    assert reads == [str(Path(paths[2]).resolve())]
    row = store.image(paths[2])
    assert (row.id, row.stars, row.prompt) == (image_id, 4, "a lighthouse number 2 <lora:Ink:0.3>")
    assert fts(store, "lighthouse") == [image_id] and image_id not in fts(store, "castle")
    assert store.version() != version  # what a rated image says changed: the scores are made again
    fts_sound(store)


def test_a_gone_file_is_kept_as_not_present_and_comes_back(tmp_path: Path, store: HistoryStore,
                                                           reads: List[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    paths = [write_png(str(out / f"{n}.png"), text_of(n)) for n in range(3)]
    store.scan([str(out)])
    image_id = store.image(paths[0]).id
    store.rate(image_id, favourite=True)
    os.rename(paths[0], tmp_path / "away.png")
    stats = store.scan()
    assert (stats.gone, stats.seen) == (1, 2)
    assert store.image(image_id).present is False and store.count() == 2 and store.count(present_only=False) == 3
    os.rename(tmp_path / "away.png", paths[0])
    reads.clear()
    stats = store.scan()
    assert (stats.updated, stats.unchanged, stats.gone, stats.added) == (1, 2, 0, 0)
    assert reads == []  # back as it was: present again without reading it
    row = store.image(paths[0])
    assert (row.id, row.present, row.favourite) == (image_id, True, True)


def test_a_moved_file_keeps_its_row_its_rating_and_its_comparisons(tmp_path: Path, store: HistoryStore) -> None:
    out = tmp_path / "out"
    (out / "keep").mkdir(parents=True)
    a = write_png(str(out / "a.png"), text_of(1))
    b = write_png(str(out / "b.png"), text_of(2))
    store.scan([str(out)])
    a_id, b_id = store.image(a).id, store.image(b).id
    store.rate(a_id, stars=5)
    store.compare(a_id, b_id, "left")
    os.rename(a, out / "keep" / "a-best.png")
    stats = store.scan()
    assert (stats.moved, stats.updated, stats.added, stats.gone) == (1, 1, 0, 0)
    row = store.image(str(out / "keep" / "a-best.png"))
    assert (row.id, row.stars, row.present) == (a_id, 5, True)
    assert store.image(a) is None
    assert len(store.comparisons()) == 1
    assert store.count(present_only=False) == 2


def test_a_file_moved_to_another_folder_scanned_later_takes_its_row_over(tmp_path: Path,
                                                                         store: HistoryStore) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a = write_png(str(tmp_path / "one" / "a.png"), text_of(1))
    store.scan([str(tmp_path / "one")])
    image_id = store.image(a).id
    store.rate(image_id, rejected=True)
    shutil.move(a, tmp_path / "two" / "a.png")
    assert store.scan([str(tmp_path / "one")]).gone == 1
    assert store.scan([str(tmp_path / "two")]).moved == 1
    row = store.image(str(tmp_path / "two" / "a.png"))
    assert (row.id, row.rejected, row.present) == (image_id, True, True)


def test_a_copy_is_a_new_image_and_takes_nothing_over(tmp_path: Path, store: HistoryStore) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a = write_png(str(out / "a.png"), text_of(1))
    store.scan([str(out)])
    store.rate(a, stars=2)
    shutil.copy2(a, out / "copy.png")
    stats = store.scan()
    assert (stats.added, stats.moved) == (1, 0)
    assert store.image(a).stars == 2 and store.image(str(out / "copy.png")).stars is None


def test_add_file_of_an_unchanged_file_does_not_read_it_again(tmp_path: Path, store: HistoryStore,
                                                              reads: List[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a = write_png(str(out / "a.png"), text_of(1))
    image_id = store.add_file(a)
    assert store.scan([str(out)]).unchanged == 1
    assert store.add_file(a) == image_id
    assert store.count() == 1


def test_an_image_added_by_the_host_is_seen_by_the_scan_as_unchanged(tmp_path: Path, store: HistoryStore,
                                                                     reads: List[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    paths = [write_png(str(out / f"{n}.png"), text_of(n)) for n in range(3)]
    store.scan([str(out)])
    new = write_png(str(out / "new.png"), text_of(9))
    store.add_file(new)
    reads.clear()
    stats = store.scan()
    assert (stats.unchanged, stats.added) == (4, 0) and reads == []
    assert len(paths) + 1 == store.count()


# -- the walk ------------------------------------------------------------------------------------------------------

def test_subfolders_are_scanned_hidden_ones_and_other_files_are_not(tmp_path: Path, store: HistoryStore) -> None:
    out = tmp_path / "out"
    for sub in ("2024-01-01", "2024-01-02/grids", ".thumbnails"):
        (out / sub).mkdir(parents=True)
    expected = {write_png(str(out / "2024-01-01" / "a.png"), text_of(1)),
                write_image(str(out / "2024-01-02" / "grids" / "b.JPEG"), text_of(2)),
                write_image(str(out / "c.webp"), text_of(3))}
    write_png(str(out / ".thumbnails" / "t.png"), text_of(4))
    write_png(str(out / ".hidden.png"), text_of(5))
    (out / "notes.txt").write_text("x")
    (out / "model.safetensors").write_bytes(b"x")
    stats = store.scan([str(out)])
    assert stats.seen == 3
    got = {p for (p,) in store.db.execute("SELECT path FROM images")}
    assert got == {str(Path(p).resolve()) for p in expected}


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_a_link_loop_is_walked_once_and_a_linked_folder_is_followed(tmp_path: Path, store: HistoryStore) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_png(str(out / "sub" / "a.png"), text_of(1))
    write_png(str(elsewhere / "b.png"), text_of(2))
    (out / "sub" / "loop").symlink_to(out)
    (out / "linked").symlink_to(elsewhere)
    (out / "broken.png").symlink_to(tmp_path / "nothing.png")
    stats = store.scan([str(out)])
    assert stats.seen == 2
    assert store.count() == 2


def test_a_folder_inside_another_is_scanned_once(tmp_path: Path, store: HistoryStore) -> None:
    out = tmp_path / "out"
    (out / "txt2img").mkdir(parents=True)
    write_png(str(out / "txt2img" / "a.png"), text_of(1))
    store.add_folder(str(out / "txt2img"), "forge")
    store.add_folder(str(out))
    stats = store.scan()
    assert (stats.folders, stats.seen, stats.added) == (1, 1, 1)
    assert [s for _, s in store.folders()] == ["forge", "user"]


def test_a_missing_folder_is_reported_and_its_images_are_gone_until_it_is_back(tmp_path: Path,
                                                                               store: HistoryStore) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_png(str(out / "a.png"), text_of(1))
    store.scan([str(out)])
    out.rename(tmp_path / "unplugged")
    stats = store.scan()
    assert stats.unreadable == (str(out.resolve()),) and stats.gone == 1
    (tmp_path / "unplugged").rename(out)
    stats = store.scan()
    assert (stats.updated, stats.gone, store.count()) == (1, 0, 1)


def test_scan_stops_when_asked_keeps_what_it_read_and_marks_nothing_gone(tmp_path: Path, store: HistoryStore,
                                                                         reads: List[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for n in range(10):
        write_png(str(out / f"{n:02}.png"), text_of(n))
    store.scan([str(out)])
    os.remove(out / "00.png")
    for n in range(10, 20):
        write_png(str(out / f"{n:02}.png"), text_of(n))
    reads.clear()
    stats = store.scan(should_stop=lambda: len(reads) >= 4)
    assert stats.stopped and (stats.added, stats.gone) == (4, 0)
    assert store.count() == 14  # 00.png not marked gone by a scan that did not finish
    stats = store.scan()
    assert not stats.stopped and (stats.added, stats.gone, store.count()) == (6, 1, 19)


def test_progress_is_told_while_listing_and_then_against_the_total(tmp_path: Path, store: HistoryStore) -> None:
    out = tmp_path / "out"
    for day in range(3):
        (out / f"day{day}").mkdir(parents=True)
        for n in range(100):
            write_png(str(out / f"day{day}" / f"{n}.png"), text_of(n))
    calls: List[Tuple[int, Optional[int]]] = []
    stats = store.scan([str(out)], on_progress=lambda done, total: calls.append((done, total)))
    listing = [c for c in calls if c[1] is None]
    reading = [c for c in calls if c[1] is not None]
    assert listing and [d for d, _ in listing] == sorted(d for d, _ in listing)
    assert all(total == stats.seen == 300 for _, total in reading)
    assert reading[-1] == (300, 300) and [d for d, _ in reading] == sorted(d for d, _ in reading)


def test_image_loras_and_the_text_index_follow_each_row(tmp_path: Path, store: HistoryStore) -> None:
    out = tmp_path / "out"
    out.mkdir()
    a = write_png(str(out / "a.png"), SAMPLES["orchestrator"].text)
    store.scan([str(out)])
    image_id = store.image(a).id
    rows = store.db.execute("SELECT name, weight, source, reason FROM image_loras WHERE image_id = ? ORDER BY rowid",
                            (image_id,)).fetchall()
    assert rows == [("Neon Noir v2", 0.6, "orchestrator", "match"), ("add_detail", 0.3, "orchestrator", "detailer")]
    assert fts(store, "lora_names:neon") == [image_id] and fts(store, "checkpoint:ponyDiffusionV6XL") == [image_id]
    assert fts(store, "template:noir") == [image_id] and fts(store, "negative:hands") == [image_id]
    write_png(a, SAMPLES["batch"].text)
    st = os.stat(a)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    store.scan()
    rows = store.db.execute("SELECT name FROM image_loras WHERE image_id = ?", (image_id,)).fetchall()
    assert rows == [("film grain",)]
    assert fts(store, "neon") == [] and fts(store, "fisherman") == [image_id]
    fts_sound(store)


def test_a_file_name_that_is_not_utf8_is_skipped_without_stopping(tmp_path: Path, store: HistoryStore) -> None:
    if os.name == "nt" or os.uname().sysname == "Darwin":
        pytest.skip("file names are always Unicode there")
    out = tmp_path / "out"
    out.mkdir()
    write_png(str(out / "a.png"), text_of(1))
    odd = os.path.join(os.fsencode(out), b"caf\xe9.png")
    with open(odd, "wb") as fh, open(out / "a.png", "rb") as src:
        fh.write(src.read())
    stats = store.scan([str(out)])  # SQLite text is UTF-8: such a name cannot be a row's path
    assert (stats.seen, store.count()) == (1, 1)

