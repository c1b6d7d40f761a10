"""The history index as a file (made, recognised, refused, migrated) and the ratings, comparisons and pairs kept
in it. Images are PNGs written the way Forge writes them (Pillow, a `parameters` text chunk); what each test
expects comes from the infotext it wrote."""
from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import pytest
from PIL import Image, PngImagePlugin

from lib_orchestrator.history import store as store_module
from lib_orchestrator.history.effect import Comparison, RatedImage
from lib_orchestrator.history.store import HistoryError, HistoryStore

Loras = Sequence[Tuple[str, float]]


def forge_png(path: Path, prompt: str, seed: int = 1, loras: Loras = (), negative: str = "lowres",
              group: str = "") -> Path:
    """A PNG as Forge saves it: the infotext in a `parameters` tEXt chunk. LoRAs as <lora:> tags."""
    tags = "".join(f" <lora:{name}:{weight:g}>" for name, weight in loras)
    text = (f"{prompt}{tags}\nNegative prompt: {negative}\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: {seed}, "
            f"Size: 8x8, Model hash: abc123, Model: dream")
    if group:
        text += f", Orchestrator group: {group}"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (seed % 256, 0, 0)).save(path, pnginfo=info)
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite"


@pytest.fixture
def store(db_path: Path):
    s = HistoryStore(str(db_path))
    yield s
    s.close()


def indexed(store: HistoryStore, *paths: Path) -> Dict[str, int]:
    """file name -> id, each added now."""
    out = {}
    for p in paths:
        image_id = store.add_file(str(p))
        assert image_id is not None, p
        out[p.name] = image_id
    return out


# -- the file ------------------------------------------------------------------------------------------------------

def test_a_new_index_is_made_with_its_folder_in_wal_mode_and_marked_as_ours(db_path: Path) -> None:
    with HistoryStore(str(db_path)) as s:
        assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert int(s.db.execute("PRAGMA busy_timeout").fetchone()[0]) > 0
        meta = dict(s.db.execute("SELECT key, value FROM meta"))
    assert meta["app"] == "orchestrator-history" and meta["schema"] == "1"
    raw = sqlite3.connect(str(db_path))
    tables = {n for (n,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    raw.close()
    assert {"meta", "folders", "images", "image_loras", "images_fts", "ratings", "comparisons",
            "prompt_vectors"} <= tables


def test_reopening_keeps_images_ratings_and_comparisons(tmp_path: Path, db_path: Path) -> None:
    a = forge_png(tmp_path / "out" / "a.png", "a cat", loras=[("x", 1)], group="g")
    b = forge_png(tmp_path / "out" / "b.png", "a cat", group="g")
    with HistoryStore(str(db_path)) as s:
        ids = indexed(s, a, b)
        s.rate(ids["a.png"], stars=4)
        s.compare(ids["a.png"], ids["b.png"], "left")
        version = s.version()
    with HistoryStore(str(db_path)) as s:
        assert s.image(ids["a.png"]).stars == 4
        assert s.comparisons() == [Comparison(winner=(("x", 1.0),), loser=())]
        assert s.version() == version


def test_a_file_that_is_not_sqlite_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my notes, not an index\n" * 10)
    with pytest.raises(HistoryError) as err:
        HistoryStore(str(path))
    assert "not an SQLite database" in str(err.value) and "left as it is" in str(err.value)
    assert "new file name" in err.value.hint
    assert path.read_bytes() == b"my notes, not an index\n" * 10


def test_an_sqlite_database_of_something_else_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    other = sqlite3.connect(str(path))
    other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    other.execute("INSERT INTO invoices VALUES (1, 9.5)")
    other.commit()
    other.close()
    before = path.read_bytes()
    with pytest.raises(HistoryError) as err:
        HistoryStore(str(path))
    assert "something else" in str(err.value) and "invoices" in str(err.value)
    assert path.read_bytes() == before


def test_an_index_of_a_newer_schema_is_refused_with_what_to_do(db_path: Path) -> None:
    HistoryStore(str(db_path)).close()
    raw = sqlite3.connect(str(db_path))
    raw.execute("UPDATE meta SET value = '7' WHERE key = 'schema'")
    raw.commit()
    raw.close()
    before = db_path.read_bytes()
    with pytest.raises(HistoryError) as err:
        HistoryStore(str(db_path))
    assert "newer Orchestrator" in str(err.value) and "schema 7" in str(err.value)
    assert "update the Orchestrator" in err.value.hint
    assert db_path.read_bytes() == before


def test_a_damaged_index_is_refused_with_what_to_do_and_left_as_it_was(tmp_path: Path, db_path: Path) -> None:
    with HistoryStore(str(db_path)) as s:
        for n in range(40):
            s.add_file(str(forge_png(tmp_path / "out" / f"{n}.png", "a cat " * 200, seed=n)))
    cut = db_path.read_bytes()[:db_path.stat().st_size // 2]  # a copy cut short, a disk that failed
    db_path.write_bytes(cut)
    with pytest.raises(HistoryError) as err:
        HistoryStore(str(db_path))
    assert "malformed" in str(err.value) and "damaged" in err.value.hint and ".recover" in err.value.hint
    assert db_path.read_bytes() == cut  # never rebuilt: it holds the ratings


def test_an_index_locked_too_long_by_another_program_says_so(tmp_path: Path, db_path: Path) -> None:
    a = forge_png(tmp_path / "a.png", "a cat")
    with HistoryStore(str(db_path), timeout=0.2) as s:
        image_id = indexed(s, a)["a.png"]
        other = sqlite3.connect(str(db_path), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(HistoryError) as err:
                s.rate(image_id, stars=3)
            assert "another program" in err.value.hint
            assert s.image(image_id).stars is None  # reading goes on beside a writer (WAL)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert s.rate(image_id, stars=3).stars == 3


def test_an_empty_file_becomes_an_index(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    path.write_bytes(b"")
    with HistoryStore(str(path)) as s:
        assert s.count() == 0


def test_a_folder_is_refused_as_the_index_file(tmp_path: Path) -> None:
    with pytest.raises(HistoryError) as err:
        HistoryStore(str(tmp_path))
    assert "a folder" in str(err.value) and "history.sqlite" in err.value.hint


def test_an_index_whose_folder_cannot_be_made_says_so(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(HistoryError) as err:
        HistoryStore(str(blocker / "data" / "history.sqlite"))
    assert "cannot make the folder" in str(err.value) and str(blocker / "data") in str(err.value)
    assert "folder you can write to" in err.value.hint


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="permissions do not bind root (or Windows)")
def test_an_index_in_a_folder_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(HistoryError) as err:
            HistoryStore(str(locked / "history.sqlite"))
        assert str(locked / "history.sqlite") in str(err.value)
        assert "permissions" in err.value.hint
    finally:
        locked.chmod(0o700)


def test_a_migration_that_would_lose_a_rating_is_undone(tmp_path: Path, db_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """There is only schema 1; the mechanism a later migration will use is checked with a made-up schema 2."""
    a = forge_png(tmp_path / "out" / "a.png", "a cat")
    with HistoryStore(str(db_path)) as s:
        s.rate(indexed(s, a)["a.png"], stars=5)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(store_module, "_MIGRATIONS", {1: lambda db: db.execute("DELETE FROM ratings")})
    with pytest.raises(HistoryError) as err:
        HistoryStore(str(db_path))
    assert "lose ratings" in str(err.value)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    with HistoryStore(str(db_path)) as s:  # as it was: schema 1, the rating kept
        assert s.rated() == [RatedImage(loras=(), value=5.0)]

    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(store_module, "_MIGRATIONS", {1: lambda db: db.execute("ALTER TABLE images ADD note TEXT")})
    with HistoryStore(str(db_path)) as s:
        assert s.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == "2"
        assert s.rated() == [RatedImage(loras=(), value=5.0)]


def test_a_missing_migration_step_is_refused(tmp_path: Path, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    HistoryStore(str(db_path)).close()
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(store_module, "_MIGRATIONS", {1: lambda db: None})
    with pytest.raises(HistoryError) as err:
        HistoryStore(str(db_path))
    assert "schema 2" in str(err.value)


# -- images by reference --------------------------------------------------------------------------------------------

def test_an_image_is_found_by_id_by_path_and_by_a_path_through_a_link(tmp_path: Path, store: HistoryStore) -> None:
    real = forge_png(tmp_path / "real" / "a.png", "a cat")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    image_id = indexed(store, tmp_path / "link" / "a.png")["a.png"]
    assert store.image(image_id).path == str(real.resolve())
    assert store.image(str(real)).id == image_id
    assert store.image(str(tmp_path / "link" / "a.png")).id == image_id
    assert store.image(image_id + 1) is None and store.image(str(tmp_path / "nope.png")) is None
    with pytest.raises(HistoryError):
        store.image(True)


def test_images_come_in_the_order_asked(tmp_path: Path, store: HistoryStore) -> None:
    ids = indexed(store, *(forge_png(tmp_path / f"{i}.png", f"prompt {i}", seed=i) for i in range(5)))
    order = [ids["3.png"], ids["0.png"], 999, ids["4.png"]]
    assert [r.id for r in store.images(order)] == [ids["3.png"], ids["0.png"], ids["4.png"]]


def test_add_file_skips_what_is_not_an_image_there(tmp_path: Path, store: HistoryStore) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert store.add_file(str(tmp_path / "notes.txt")) is None
    assert store.add_file(str(tmp_path / "missing.png")) is None
    assert store.count() == 0


def test_add_file_twice_is_one_row(tmp_path: Path, store: HistoryStore) -> None:
    a = forge_png(tmp_path / "a.png", "a cat")
    assert store.add_file(str(a)) == store.add_file(str(a))
    assert store.count() == 1


def test_add_file_takes_the_added_folder_it_is_in(tmp_path: Path, store: HistoryStore) -> None:
    store.add_folder(str(tmp_path / "out"))
    a = forge_png(tmp_path / "out" / "day1" / "a.png", "a cat")
    image_id = indexed(store, a)["a.png"]
    folder = store.db.execute("SELECT folder FROM images WHERE id = ?", (image_id,)).fetchone()[0]
    assert folder == str((tmp_path / "out").resolve())


# -- ratings --------------------------------------------------------------------------------------------------------

@pytest.fixture
def two(tmp_path: Path, store: HistoryStore) -> Dict[str, int]:
    return indexed(store, forge_png(tmp_path / "a.png", "a cat", loras=[("Ink", 0.8)]),
                   forge_png(tmp_path / "b.png", "a dog", loras=[("Neon", 1.0)]))


def test_rate_sets_stars_reject_and_favourite_and_returns_the_row(store: HistoryStore, two: Dict[str, int]) -> None:
    row = store.rate(two["a.png"], stars=3)
    assert (row.stars, row.rejected, row.favourite) == (3, False, False)
    row = store.rate(two["a.png"], favourite=True)
    assert (row.stars, row.rejected, row.favourite) == (3, False, True)
    row = store.rate(two["a.png"], stars=5)
    assert (row.stars, row.rejected, row.favourite) == (5, False, True)
    row = store.rate(two["a.png"], rejected=True, favourite=False)
    assert (row.stars, row.rejected, row.favourite) == (5, True, False)
    assert store.image(two["a.png"]) == row


def test_clear_forgets_the_rating_and_then_applies_what_is_given(store: HistoryStore, two: Dict[str, int]) -> None:
    store.rate(two["a.png"], stars=4, favourite=True)
    row = store.rate(two["a.png"], clear=True, rejected=True)
    assert (row.stars, row.rejected, row.favourite) == (None, True, False)
    row = store.rate(two["a.png"], clear=True)
    assert (row.stars, row.rejected, row.favourite) == (None, False, False)
    assert store.db.execute("SELECT count(*) FROM ratings").fetchone()[0] == 0
    assert store.rated() == []


@pytest.mark.parametrize("stars", [0, 6, -1, 2.5, True, "3"])
def test_stars_other_than_1_to_5_are_refused(store: HistoryStore, two: Dict[str, int], stars: object) -> None:
    with pytest.raises(HistoryError) as err:
        store.rate(two["a.png"], stars=stars)  # type: ignore[arg-type]
    assert "1 to 5" in str(err.value)
    assert store.image(two["a.png"]).stars is None


def test_rating_an_image_not_in_the_index_is_refused(store: HistoryStore, two: Dict[str, int]) -> None:
    with pytest.raises(HistoryError) as err:
        store.rate(12345, stars=3)
    assert "no image 12345" in str(err.value) and "scan" in err.value.hint
    with pytest.raises(HistoryError):
        store.rate("/no/such/image.png", stars=3)


def test_every_rating_and_comparison_changes_the_version(store: HistoryStore, two: Dict[str, int]) -> None:
    versions = [store.version()]
    store.rate(two["a.png"], stars=3)
    versions.append(store.version())
    store.rate(two["b.png"], rejected=True)
    versions.append(store.version())
    store.compare(two["a.png"], two["b.png"], "right")
    versions.append(store.version())
    store.rate(two["a.png"], clear=True)
    versions.append(store.version())
    assert len(set(versions)) == len(versions)


def test_new_images_leave_the_version_as_it_is(tmp_path: Path, store: HistoryStore, two: Dict[str, int]) -> None:
    """The version keys the LoRA scores' cache: an image added (the host saves one every few seconds) changes no
    rating, so the scores are not made again for it."""
    version = store.version()
    indexed(store, forge_png(tmp_path / "c.png", "a bird", loras=[("Ink", 0.8)]))
    store.scan([str(tmp_path)])
    assert store.version() == version


def test_scan_refuses_what_is_no_folder(tmp_path: Path, store: HistoryStore) -> None:
    image = forge_png(tmp_path / "a.png", "a cat")
    for given, said in ((tmp_path / "missing", "no such folder"), (image, "not a folder")):
        with pytest.raises(HistoryError) as err:
            store.scan([str(given)])
        assert said in str(err.value) and str(given) in str(err.value)
    assert store.folders() == []


def test_rated_values_stars_reject_zero_and_favourite_five(tmp_path: Path, store: HistoryStore) -> None:
    ids = indexed(store, *(forge_png(tmp_path / f"{n}.png", f"p {n}", seed=n, loras=[(f"L{n}", 1.0)])
                           for n in range(5)))
    store.rate(ids["0.png"], stars=2)
    store.rate(ids["1.png"], stars=4, rejected=True)  # a reject counts 0 whatever its stars
    store.rate(ids["2.png"], favourite=True)  # a favourite without stars counts 5
    store.rate(ids["3.png"], favourite=True, stars=3)  # with stars: its stars
    got = sorted((r.loras, r.value) for r in store.rated())
    assert got == [((("L0", 1.0),), 2.0), ((("L1", 1.0),), 0.0), ((("L2", 1.0),), 5.0), ((("L3", 1.0),), 3.0)]


def test_ratings_of_a_gone_image_still_count(tmp_path: Path, store: HistoryStore) -> None:
    a = forge_png(tmp_path / "out" / "a.png", "a cat", loras=[("Ink", 0.5)])
    store.scan([str(tmp_path / "out")])
    store.rate(str(a), stars=5)
    a.unlink()
    assert store.scan().gone == 1
    assert store.image(str(a)).present is False
    assert store.rated() == [RatedImage(loras=(("Ink", 0.5),), value=5.0)]


# -- comparisons ----------------------------------------------------------------------------------------------------

def test_compare_records_winner_loser_and_tie_and_keeps_skips_out(store: HistoryStore, two: Dict[str, int]) -> None:
    a, b = two["a.png"], two["b.png"]
    store.compare(a, b, "left")
    store.compare(a, b, "right")
    store.compare(b, a, "tie")
    store.compare(a, b, "skip")
    ink, neon = (("Ink", 0.8),), (("Neon", 1.0),)
    assert store.comparisons() == [Comparison(ink, neon), Comparison(neon, ink), Comparison(neon, ink, tie=True)]
    assert store.db.execute("SELECT count(*) FROM comparisons WHERE outcome = 'skip'").fetchone()[0] == 1
    assert store.count_comparisons() == 3  # the skip has no result


@pytest.mark.parametrize("outcome", ["LEFT", "win", "", "draw"])
def test_an_unknown_outcome_is_refused(store: HistoryStore, two: Dict[str, int], outcome: str) -> None:
    with pytest.raises(HistoryError) as err:
        store.compare(two["a.png"], two["b.png"], outcome)
    assert "left, right, tie, skip" in str(err.value)


def test_an_image_is_not_compared_with_itself_nor_with_one_not_indexed(store: HistoryStore,
                                                                       two: Dict[str, int]) -> None:
    with pytest.raises(HistoryError) as err:
        store.compare(two["a.png"], two["a.png"], "left")
    assert "itself" in str(err.value)
    with pytest.raises(HistoryError):
        store.compare(two["a.png"], 999, "left")
    assert store.db.execute("SELECT count(*) FROM comparisons").fetchone()[0] == 0


def test_comparisons_of_gone_images_still_count(tmp_path: Path, store: HistoryStore) -> None:
    a = forge_png(tmp_path / "out" / "a.png", "a cat", loras=[("Ink", 1.0)], group="g")
    b = forge_png(tmp_path / "out" / "b.png", "a cat", group="g")
    store.scan([str(tmp_path / "out")])
    store.compare(str(a), str(b), "left")
    a.unlink()
    store.scan()
    assert store.comparisons() == [Comparison((("Ink", 1.0),), ())]


def test_lora_usage_counts_images_per_name_case_insensitively(tmp_path: Path, store: HistoryStore) -> None:
    indexed(store, forge_png(tmp_path / "a.png", "a", seed=1, loras=[("Ink", 1.0), ("Neon", 0.5)]),
            forge_png(tmp_path / "b.png", "b", seed=2, loras=[("ink", 0.7)]),
            forge_png(tmp_path / "c.png", "c", seed=3))
    usage = {k.lower(): v for k, v in store.lora_usage().items()}
    assert usage == {"ink": 2, "neon": 1}


# -- pairs to compare -----------------------------------------------------------------------------------------------

@pytest.fixture
def swatch(tmp_path: Path, store: HistoryStore) -> Dict[str, int]:
    """One prompt and seed at three LoRA settings (a pair each way), a duplicate of one of them (no pair with
    it), and an image of another prompt (in no pair)."""
    out = tmp_path / "out"
    return indexed(store,
                   forge_png(out / "base.png", "a castle", seed=7),
                   forge_png(out / "ink05.png", "a castle", seed=7, loras=[("Ink", 0.5)]),
                   forge_png(out / "ink10.png", "a castle", seed=7, loras=[("Ink", 1.0)]),
                   forge_png(out / "ink10-again.png", "a castle", seed=7, loras=[("ink", 1.0)]),
                   forge_png(out / "other.png", "a forest", seed=7, loras=[("Neon", 1.0)]))


def pair_names(store: HistoryStore, pair: Optional[tuple], ids: Dict[str, int]) -> Tuple[str, str]:
    assert pair is not None
    names = {v: k for k, v in ids.items()}
    return names[pair[0].id], names[pair[1].id]


def test_next_pair_is_two_images_of_one_prompt_and_seed_whose_loras_differ(store: HistoryStore,
                                                                           swatch: Dict[str, int]) -> None:
    seen = set()
    for seed in range(60):
        left, right = pair_names(store, store.next_pair(random.Random(seed)), swatch)
        assert "other.png" not in (left, right)
        assert {left, right} != {"ink10.png", "ink10-again.png"}  # the same LoRAs: nothing to compare
        seen.add(frozenset((left, right)))
    assert len(seen) == 5  # base-ink05, base-ink10, base-again, ink05-ink10, ink05-again


def test_next_pair_draws_left_and_right_blind(store: HistoryStore, swatch: Dict[str, int]) -> None:
    orders = {pair_names(store, store.next_pair(random.Random(seed)), swatch) for seed in range(60)}
    assert ("base.png", "ink05.png") in orders and ("ink05.png", "base.png") in orders


def test_next_pair_offers_the_least_compared_pair_first_and_skipped_ones_last(store: HistoryStore,
                                                                              swatch: Dict[str, int]) -> None:
    s = swatch
    everything = [("base.png", "ink05.png"), ("base.png", "ink10.png"), ("base.png", "ink10-again.png"),
                  ("ink05.png", "ink10.png"), ("ink05.png", "ink10-again.png")]
    for a, b in everything[:4]:
        store.compare(s[a], s[b], "left")
    store.compare(s["ink05.png"], s["ink10-again.png"], "skip")
    # Four compared once, one skipped: a compared one comes before the skipped one.
    for seed in range(20):
        assert set(pair_names(store, store.next_pair(random.Random(seed)), s)) != {"ink05.png", "ink10-again.png"}
    store.compare(s["base.png"], s["ink05.png"], "tie")  # twice now: the other three come first
    for seed in range(20):
        got = set(pair_names(store, store.next_pair(random.Random(seed)), s))
        assert got in ({"base.png", "ink10.png"}, {"base.png", "ink10-again.png"}, {"ink05.png", "ink10.png"})


def test_next_pair_for_one_lora_differs_in_that_lora(tmp_path: Path, store: HistoryStore) -> None:
    out = tmp_path / "out"
    ids = indexed(store,
                  forge_png(out / "ink.png", "a castle", seed=7, loras=[("Ink", 1.0), ("Neon", 1.0)]),
                  forge_png(out / "no-ink.png", "a castle", seed=7, loras=[("Neon", 1.0)]),
                  forge_png(out / "no-neon.png", "a castle", seed=7, loras=[("Ink", 1.0)]))
    for seed in range(30):
        got = set(pair_names(store, store.next_pair(random.Random(seed), lora="NEON"), ids))
        assert "no-neon.png" in got  # Neon at 1.0 on both others: only the image without it differs in it
    assert store.next_pair(random.Random(0), lora="nothing-like-this") is None


def test_next_pair_leaves_out_images_that_are_gone(tmp_path: Path, store: HistoryStore) -> None:
    out = tmp_path / "out"
    forge_png(out / "a.png", "a castle", seed=7)
    b = forge_png(out / "b.png", "a castle", seed=7, loras=[("Ink", 1.0)])
    store.scan([str(out)])
    assert store.next_pair(random.Random(0)) is not None
    b.unlink()
    store.scan()
    assert store.next_pair(random.Random(0)) is None


def test_next_pair_is_none_without_pairs(store: HistoryStore, two: Dict[str, int]) -> None:
    assert store.next_pair(random.Random(0)) is None


def test_next_pair_is_the_same_for_the_same_rng(store: HistoryStore, swatch: Dict[str, int]) -> None:
    first = store.next_pair(random.Random(42))
    assert all(store.next_pair(random.Random(42)) == first for _ in range(5))
