"""embed_texts: only what the cache lacks goes to the embedder, each distinct text once, in chunks; the
cache never makes it fail."""
from __future__ import annotations

import hashlib
import sqlite3
import struct
import threading
from contextlib import closing

import pytest

np = pytest.importorskip("numpy")

from lib_orchestrator.embeddings import library as embedding_library  # noqa: E402
from lib_orchestrator.embeddings.library import EmbedStats, embed_texts  # noqa: E402
from lib_orchestrator.library.cache import CacheError, VectorCache  # noqa: E402


def expected_vector(text, dim):
    """What the fake embedder returns for `text`: worked out here from the text alone, a unit vector."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


class FakeEmbedder:
    """Counts what it is asked; `fail_at`: the call (1-based) that raises EmbedError."""

    def __init__(self, kind="builtin", model="fake-model@1", dim=8, fail_at=None):
        self.kind, self.model, self.dim, self.fail_at = kind, model, dim, fail_at
        self.calls = []

    def embed(self, texts):
        from lib_orchestrator.embeddings.base import EmbedError

        self.calls.append(list(texts))
        if self.fail_at == len(self.calls):
            raise EmbedError("the fake server went away")
        return np.stack([expected_vector(t, self.dim) for t in texts]) if texts else np.zeros((0, self.dim))

    @property
    def texts_embedded(self):
        return [t for call in self.calls for t in call]


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).digest()


def texts(n, prefix="lora"):
    return [f"{prefix} {i} watercolor portrait" for i in range(n)]


@pytest.fixture
def cache(tmp_path):
    opened = VectorCache(str(tmp_path / "library.sqlite"))
    yield opened
    opened.close()


def test_first_call_embeds_everything_and_a_second_nothing(tmp_path):
    path, words = str(tmp_path / "library.sqlite"), texts(30)
    first_embedder, second_embedder = FakeEmbedder(), FakeEmbedder()
    with closing(VectorCache(path)) as cache:
        cold, cold_stats = embed_texts(words, first_embedder, cache)
    with closing(VectorCache(path)) as cache:  # another process, later
        warm, warm_stats = embed_texts(words, second_embedder, cache)
    assert sorted(first_embedder.texts_embedded) == sorted(words) and second_embedder.calls == []
    assert (cold_stats.total, cold_stats.from_cache, cold_stats.embedded) == (30, 0, 30)
    assert (warm_stats.total, warm_stats.from_cache, warm_stats.embedded) == (30, 30, 0)
    assert cold.dtype == warm.dtype == np.float32 and cold.shape == (30, 8)
    np.testing.assert_array_equal(cold, np.stack([expected_vector(t, 8) for t in words]))
    assert warm.tobytes() == cold.tobytes()  # bit for bit: a warm start scores exactly as a cold one
    assert cold_stats.seconds >= 0 and isinstance(warm_stats, EmbedStats)


def test_changing_one_text_embeds_only_that_one(cache):
    words = texts(20)
    embed_texts(words, FakeEmbedder(), cache)
    words[7] = "lora 7 oil painting, thick brush strokes"
    again = FakeEmbedder()
    rows, stats = embed_texts(words, again, cache)
    assert again.calls == [["lora 7 oil painting, thick brush strokes"]]
    assert (stats.from_cache, stats.embedded) == (19, 1)
    np.testing.assert_array_equal(rows[7], expected_vector(words[7], 8))


def test_equal_texts_are_embedded_once_and_every_row_gets_the_vector(cache):
    words = ["red dress", "sunbeams", "red dress", "", "sunbeams", "red dress"]
    embedder = FakeEmbedder()
    rows, stats = embed_texts(words, embedder, cache)
    assert embedder.calls == [["red dress", "sunbeams", ""]]
    assert (stats.total, stats.embedded) == (3, 3) and rows.shape == (6, 8)
    for row, text in zip(rows, words):
        np.testing.assert_array_equal(row, expected_vector(text, 8))


def test_misses_go_to_the_embedder_in_chunks(cache):
    words = texts(1200)
    embedder = FakeEmbedder()
    embed_texts(words, embedder, cache)
    assert [len(call) for call in embedder.calls] == [512, 512, 176]
    words += texts(600, prefix="new")
    more = FakeEmbedder()
    rows, stats = embed_texts(words, more, cache)
    assert [len(call) for call in more.calls] == [512, 88] and stats.from_cache == 1200
    np.testing.assert_array_equal(rows[1500], expected_vector("new 300 watercolor portrait", 8))


def test_another_model_or_kind_has_vectors_of_its_own(cache):
    words = texts(5)
    embed_texts(words, FakeEmbedder(model="a", dim=8), cache)
    other_model, other_kind = FakeEmbedder(model="b", dim=4), FakeEmbedder(kind="url", model="a", dim=6)
    rows_b, _ = embed_texts(words, other_model, cache)
    rows_url, _ = embed_texts(words, other_kind, cache)
    assert len(other_model.texts_embedded) == len(other_kind.texts_embedded) == 5
    assert rows_b.shape == (5, 4) and rows_url.shape == (5, 6)
    for embedder in (FakeEmbedder(model="a"), FakeEmbedder(model="b"), FakeEmbedder(kind="url", model="a")):
        embed_texts(words, embedder, cache)
        assert embedder.calls == []


def test_without_a_cache_everything_is_embedded_every_time():
    embedder = FakeEmbedder()
    for _ in range(2):
        rows, stats = embed_texts(texts(3), embedder, None)
        assert (stats.from_cache, stats.embedded) == (0, 3)
    assert len(embedder.calls) == 2


def test_no_texts_no_call():
    embedder = FakeEmbedder()
    rows, stats = embed_texts([], embedder, None)
    assert rows.shape[0] == 0 and stats.total == 0 and embedder.calls == []


def _corrupt(path, model="fake-model@1"):
    """Four rows damaged four ways; returns the texts whose vectors were damaged."""
    damaged = {"lora 0 watercolor portrait": ("vector", b"\x00\x01\x02"),          # not a whole vector
               "lora 1 watercolor portrait": ("dim", 7),                          # dim and length disagree
               "lora 2 watercolor portrait": ("vector", struct.pack("<8f", *([float("nan")] + [0.0] * 7))),
               "lora 3 watercolor portrait": ("vector", "some text")}             # not a BLOB at all
    with closing(sqlite3.connect(path)) as db:
        for text, (column, value) in damaged.items():
            db.execute(f"UPDATE embeddings SET {column} = ? WHERE model = ? AND text_hash = ?",
                       (value, model, sha(text)))
        db.commit()
    return list(damaged)


def test_damaged_vector_rows_are_embedded_again_and_replaced(tmp_path):
    path, words = str(tmp_path / "library.sqlite"), texts(10)
    with closing(VectorCache(path)) as cache:
        good, _ = embed_texts(words, FakeEmbedder(), cache)
    damaged = _corrupt(path)
    with closing(VectorCache(path)) as cache:
        embedder = FakeEmbedder()
        rows, stats = embed_texts(words, embedder, cache)
        assert sorted(embedder.texts_embedded) == sorted(damaged) and stats.from_cache == 6
        np.testing.assert_array_equal(rows, good)
        healed = FakeEmbedder()
        embed_texts(words, healed, cache)
        assert healed.calls == []


def test_a_file_that_is_not_our_cache_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "photos.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE photos (id INTEGER, title TEXT)")
        db.commit()
    before = path.read_bytes()
    with pytest.raises(CacheError) as caught:
        VectorCache(str(path))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["photos.db"]
    assert "not a LoRA library cache" in caught.value.one_line()


def _hold_write_lock(path):
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("DELETE FROM records")  # a scan saving its rows, say
    return holder


def test_a_cache_another_connection_is_writing_still_serves_and_never_fails(tmp_path):
    path, words = str(tmp_path / "library.sqlite"), texts(10)
    with closing(VectorCache(path)) as cache:
        embed_texts(words[:6], FakeEmbedder(), cache)
    holder = _hold_write_lock(path)
    try:
        with closing(VectorCache(path, timeout=0.2)) as cache:
            embedder = FakeEmbedder()
            rows, stats = embed_texts(words, embedder, cache)  # reads what is there; its writes wait, then give up
        assert (stats.from_cache, stats.embedded) == (6, 4)
        np.testing.assert_array_equal(rows, np.stack([expected_vector(t, 8) for t in words]))
    finally:
        holder.rollback()
        holder.close()
    with closing(VectorCache(path)) as cache:  # the four were not kept: embedded again, now kept
        later = FakeEmbedder()
        embed_texts(words, later, cache)
        assert sorted(later.texts_embedded) == sorted(words[6:])


def test_a_cache_locked_against_readers_too_only_costs_speed(tmp_path):
    path, words = str(tmp_path / "library.sqlite"), texts(4)
    with closing(VectorCache(path)) as cache:
        embed_texts(words, FakeEmbedder(), cache)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with closing(VectorCache(path, timeout=0.2)) as cache:
            embedder = FakeEmbedder()
            rows, stats = embed_texts(words, embedder, cache)
        assert stats.embedded == 4 and rows.shape == (4, 8)
    finally:
        holder.rollback()
        holder.close()


def test_a_cache_in_a_place_that_cannot_hold_one_only_costs_speed(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with closing(VectorCache(str(blocker / "library.sqlite"))) as cache:
        embedder = FakeEmbedder()
        rows, stats = embed_texts(texts(3), embedder, cache)
        embed_texts(texts(3), embedder, cache)
    assert stats.embedded == 3 and len(embedder.calls) == 2


def test_an_embed_error_propagates_and_the_chunks_before_it_are_kept(cache):
    from lib_orchestrator.embeddings.base import EmbedError

    words = texts(1100)
    with pytest.raises(EmbedError):
        embed_texts(words, FakeEmbedder(fail_at=2), cache)
    resumed = FakeEmbedder()
    _, stats = embed_texts(words, resumed, cache)
    assert (stats.from_cache, stats.embedded) == (512, 588)


@pytest.mark.parametrize("answer", ["too_few_rows", "one_dimensional", "not_numbers"])
def test_an_answer_of_the_wrong_shape_is_an_embed_error(cache, answer):
    from lib_orchestrator.embeddings.base import EmbedError

    class Broken(FakeEmbedder):
        def embed(self, texts):
            return {"too_few_rows": np.zeros((len(texts) - 1, 8), np.float32),
                    "one_dimensional": np.zeros(len(texts), np.float32),
                    "not_numbers": [["a"] * 8] * len(texts)}[answer]

    with pytest.raises(EmbedError):
        embed_texts(texts(3), Broken(), cache)


def test_vectors_that_are_not_finite_become_zero_rows_and_are_not_kept(cache):
    class NaNForTwo(FakeEmbedder):
        def embed(self, texts):
            out = super().embed(texts)
            out[[i for i, t in enumerate(texts) if t.startswith("lora 2")]] = np.nan
            return out

    rows, _ = embed_texts(texts(4), NaNForTwo(), cache)
    assert np.isfinite(rows).all() and not rows[2].any() and rows[1].any()
    again = FakeEmbedder()
    embed_texts(texts(4), again, cache)
    assert again.calls == [["lora 2 watercolor portrait"]]


def test_a_model_that_changed_size_under_its_name_is_embedded_again_whole(cache):
    words = texts(6)
    embed_texts(words[:4], FakeEmbedder(model="server-model", dim=8), cache)
    swapped = FakeEmbedder(model="server-model", dim=12)  # the server loaded another model under that name
    rows, stats = embed_texts(words, swapped, cache)
    assert rows.shape == (6, 12) and stats.embedded == 6 and sorted(swapped.texts_embedded) == sorted(words)
    np.testing.assert_array_equal(rows, np.stack([expected_vector(t, 12) for t in words]))
    settled = FakeEmbedder(model="server-model", dim=12)
    embed_texts(words, settled, cache)
    assert settled.calls == []


def test_an_embedder_that_changes_size_within_one_call_is_an_embed_error(cache):
    from lib_orchestrator.embeddings.base import EmbedError

    class Wobbly(FakeEmbedder):
        def embed(self, texts):
            self.dim = 8 if len(self.calls) % 2 == 0 else 9
            return super().embed(texts)

    with pytest.raises(EmbedError):
        embed_texts(texts(600), Wobbly(), cache)


class Lazy(FakeEmbedder):
    """A remote embedder that asks the server for its model on its first request."""

    def embed(self, texts):
        self.model = "picked-by-server"
        return super().embed(texts)


def test_a_model_not_known_yet_is_learnt_from_one_text_then_looked_up(cache):
    words = texts(20)
    first = Lazy(model="")
    embed_texts(words, first, cache)
    assert [len(c) for c in first.calls] == [1, 19]
    known = FakeEmbedder(model="picked-by-server")
    embed_texts(words, known, cache)
    assert known.calls == []
    later = Lazy(model="")  # the next start: one text to learn the model, the rest from the cache
    rows, stats = embed_texts(words, later, cache)
    assert later.calls == [[words[0]]] and (stats.from_cache, stats.embedded) == (19, 1)
    np.testing.assert_array_equal(rows, np.stack([expected_vector(t, 8) for t in words]))


def test_a_model_never_named_is_not_cached(cache):
    class Nameless(FakeEmbedder):
        pass

    embed_texts(texts(3), Nameless(model=""), cache)
    again = Nameless(model="")
    _, stats = embed_texts(texts(3), again, cache)
    assert stats.embedded == 3


def test_prune_forgets_texts_gone_from_the_library_for_this_model_only(tmp_path):
    path = str(tmp_path / "library.sqlite")
    with closing(VectorCache(path)) as cache:
        embed_texts(texts(10), FakeEmbedder(), cache)
        embed_texts(texts(10), FakeEmbedder(model="other"), cache)
        embed_texts(texts(4), FakeEmbedder(), cache, prune=True)
    with closing(sqlite3.connect(path)) as db:
        counts = dict(db.execute("SELECT model, count(*) FROM embeddings GROUP BY model"))
    assert counts == {"fake-model@1": 4, "other": 10}


def test_a_cache_made_in_one_thread_serves_another(tmp_path):
    """Forge opens the cache where it starts, and embeds in its background thread."""
    path = str(tmp_path / "library.sqlite")
    with closing(VectorCache(path)) as cache:
        embed_texts(texts(5), FakeEmbedder(), cache)
        results = []
        worker = threading.Thread(target=lambda: results.append(embed_texts(texts(5), FakeEmbedder(), cache)[1]))
        worker.start()
        worker.join()
    assert results[0].from_cache == 5


def test_the_chunk_size_is_what_a_server_is_sent_at_most(monkeypatch, cache):
    monkeypatch.setattr(embedding_library, "CHUNK", 3)
    embedder = FakeEmbedder()
    embed_texts(texts(7), embedder, cache)
    assert [len(c) for c in embedder.calls] == [3, 3, 1]
