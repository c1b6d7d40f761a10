"""The offline embedder: WordLlama's bundled weights read without importing wordllama, checked by hash,
unit vectors that put related texts closer than unrelated ones; and a clear reason when it cannot work.

Tests that need the real files skip where wordllama is not installed (CI installs it with --no-deps)."""
from __future__ import annotations

import importlib.metadata
import shutil
import sys
import threading

import pytest

np = pytest.importorskip("numpy")

from lib_orchestrator.embeddings import builtin  # noqa: E402
from lib_orchestrator.embeddings.base import EmbedError  # noqa: E402


def _installed() -> bool:
    try:
        importlib.metadata.distribution("wordllama")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_wordllama = pytest.mark.skipif(
    not _installed(), reason="wordllama is not installed: pip install --no-deps wordllama==0.4.0.post1")
INSTALL = "pip install --no-deps wordllama==0.4.0.post1"  # what the user is told, written out here


@pytest.fixture
def fresh_cache(monkeypatch):
    """builtin_embedder() as in a new process: nothing loaded, no failure remembered."""
    monkeypatch.setattr(builtin, "_loaded", None)
    monkeypatch.setattr(builtin, "_failure", None)


@needs_wordllama
def test_unit_vectors_of_256_dimensions_the_same_every_time():
    pytest.importorskip("tokenizers")
    embedder = builtin.builtin_embedder()
    assert (embedder.kind, embedder.model) == ("builtin", "wordllama-l2_supercat-256@64b47a2d")
    texts = ["god rays through clouds", "a red fox in the snow", "", "god rays through clouds"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (4, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[[0, 1, 3]], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()  # no tokens: a zero row, which matches nothing
    assert np.array_equal(vectors[0], vectors[3])
    # A text's vector does not depend on its neighbours: what the cache keeps per text is what a batch gives.
    alone = embedder.embed(["a red fox in the snow"])
    assert np.allclose(alone[0], vectors[1], atol=1e-6)
    assert embedder.embed([]).shape == (0, 256)


@needs_wordllama
@pytest.mark.parametrize("text, related, unrelated", [
    ("a red fox in the snow", "a small orange fox on a snowy field", "an old steam locomotive in a station"),
    ("god rays through clouds", "sunbeams shining through the clouds", "a girl in a school uniform"),
    ("watercolor painting", "soft watercolour washes on wet paper", "a knight in metal plate armor"),
    ("lying on back on a bed", "a woman lying on her back looking up", "a hamburger on a plate"),
    ("a woman in a qipao", "a chinese silk dress with a high collar", "a cyberpunk city street at night"),
])
def test_related_texts_are_closer_than_unrelated_ones(text, related, unrelated):
    pytest.importorskip("tokenizers")
    a, b, c = builtin.builtin_embedder().embed([text, related, unrelated])
    assert float(a @ b) > float(a @ c) + 0.1


@needs_wordllama
def test_many_texts_in_one_call_match_one_at_a_time():
    pytest.importorskip("tokenizers")
    embedder = builtin.builtin_embedder()
    texts = [f"lora number {i} " + "word " * (i % 40) for i in range(600)]  # several gather groups
    together = embedder.embed(texts)
    apart = np.stack([embedder.embed([t])[0] for t in texts[::37]])
    assert np.allclose(together[::37], apart, atol=1e-6)


@needs_wordllama
def test_a_name_that_was_not_utf8_on_disk_is_embedded_not_refused():
    pytest.importorskip("tokenizers")
    vectors = builtin.builtin_embedder().embed(["qipao\udcff dress"])
    assert np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)


@needs_wordllama
def test_wordllama_itself_is_never_imported(fresh_cache):
    pytest.importorskip("tokenizers")
    builtin.builtin_embedder().embed(["a fox"])
    assert "wordllama" not in sys.modules


@needs_wordllama
def test_one_embedder_per_process_whatever_the_threads(fresh_cache):
    pytest.importorskip("tokenizers")
    got, errors = [], []

    def load():
        try:
            embedder = builtin.builtin_embedder()
            got.append((embedder, embedder.embed(["god rays", "a fox", "kilt"])))
        except Exception as exc:  # noqa: BLE001 (any failure in a thread is the test's failure)
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({id(e) for e, _ in got}) == 1
    assert all(np.array_equal(v, got[0][1]) for _, v in got)


@needs_wordllama
def test_weights_that_differ_from_the_pinned_file_are_refused(tmp_path):
    weights, tokenizer = builtin.distribution_files()
    tampered = tmp_path / "l2_supercat_256.safetensors"
    shutil.copyfile(weights, tampered)
    with open(tampered, "r+b") as fh:
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 1]))
    with pytest.raises(EmbedError) as caught:
        builtin.load_builtin(weights_path=str(tampered), tokenizer_path=tokenizer)
    assert "weights file differs" in caught.value.message and INSTALL in caught.value.hint


# Read with safetensors 0.8.0's own reader (safetensors.numpy.load_file), once, outside this project: rows
# 0, 263, 10714 and 31999 at columns 0, 1, 128 and 255, and the sum of the whole matrix.
SAFETENSORS_SAYS = {
    0: [-0.327880859375, 0.17724609375, -1.1513671875, -0.200927734375],
    263: [0.017974853515625, 0.0228424072265625, -0.13134765625, -0.043182373046875],
    10714: [0.454833984375, -0.6005859375, 0.5625, -0.35986328125],
    31999: [1.646484375, 1.8779296875, -1.0537109375, 0.71142578125],
}
SAFETENSORS_SUM = -14212.973213851452


@needs_wordllama
def test_our_reader_gives_what_safetensors_gives():
    weights, _ = builtin.distribution_files()
    ours = builtin.read_weights(weights)
    assert ours.dtype == np.float16 and ours.shape == (32000, 256)
    for row, values in SAFETENSORS_SAYS.items():
        assert [float(x) for x in ours[row, [0, 1, 128, 255]]] == values
    assert float(ours.astype(np.float64).sum()) == pytest.approx(SAFETENSORS_SUM, abs=1e-6)
    assert not ours.flags.writeable  # shared by threads: nobody may change it


@needs_wordllama
def test_a_tokenizer_of_another_model_is_refused(tmp_path):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    other = Tokenizer(models.WordLevel({"a": 0, "qipao": 1, "dress": 2, "[UNK]": 3}, unk_token="[UNK]"))
    other.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    other.save(str(path))
    weights, _ = builtin.distribution_files()
    with pytest.raises(EmbedError, match="tokenizer is not the one"):
        builtin.load_builtin(weights_path=weights, tokenizer_path=str(path))


def test_missing_package_says_how_to_install_it_and_is_remembered(monkeypatch, fresh_cache):
    monkeypatch.setattr(builtin, "DISTRIBUTION", "wordllama-absent-for-this-test")
    with pytest.raises(EmbedError) as caught:
        builtin.builtin_embedder()
    assert caught.value.message == "the built-in embedder is not installed" and caught.value.hint == INSTALL
    assert builtin.builtin_status() == f"the built-in embedder is not installed ({INSTALL})"
    looked = []
    monkeypatch.setattr(builtin, "load_builtin", lambda: looked.append(1))
    assert builtin.builtin_status() is not None and looked == []  # one look per process, not one per call


def test_missing_weights_or_tokenizers_say_what_to_do(monkeypatch, tmp_path):
    with pytest.raises(EmbedError) as caught:
        builtin.load_builtin(weights_path=str(tmp_path / "absent.safetensors"), tokenizer_path="x")
    assert "cannot be read" in caught.value.message and INSTALL in caught.value.hint
    if _installed():
        monkeypatch.setitem(sys.modules, "tokenizers", None)  # import fails as when it is not installed
        with pytest.raises(EmbedError) as caught:
            builtin.load_builtin()
        assert "tokenizers" in caught.value.message and caught.value.hint == 'pip install "tokenizers>=0.13"'


@needs_wordllama
def test_status_is_none_when_usable(fresh_cache):
    pytest.importorskip("tokenizers")
    assert builtin.builtin_status() is None
