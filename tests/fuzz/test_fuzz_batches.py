"""Batch files as users and crashes leave them: random bytes, broken JSON, hand edits of every value into
every kind of wrong, huge and deep documents, CSV and TXT noise. Loading one either gives a batch or one
of our typed errors, within a time budget, and never changes the file."""
from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib_orchestrator.batches import Batch, BatchImage, Settings, load_batch, save_batch
from lib_orchestrator.errors import OrchestratorError

from .conftest import budget, record

CASES = 150
BUDGET = 10.0  # seconds per case: far above the normal milliseconds, so only a hang or a blow-up trips it
SETTINGS = settings(max_examples=CASES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

GOOD = Batch("night", "a {cat|dog}", 10, Settings(steps=4, enable_hr=True), tuple(
    BatchImage(k, 10 + k, f"a cat {k}", "lowres", (("watercolor_xl", 0.8, "match"),)) for k in range(3)))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _paths(node, path=()):
    """Every place in a JSON document, for replacing one value."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for k, value in enumerate(node):
            yield from _paths(value, path + (k,))


def _replaced(node, path, value):
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = _replaced(node[path[0]], path[1:], value)
    return copy


def _load_unchanged(path):
    before = path.read_bytes()
    try:
        budget(BUDGET, load_batch, str(path))
    except OrchestratorError:
        pass  # typed, with a place: the contract for a bad file
    assert path.read_bytes() == before


def test_any_hand_edit_of_any_value_loads_or_says_where_it_is_wrong(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edits")
    good = GOOD.to_dict()
    places = list(_paths(good))
    started, count = time.perf_counter(), [0]

    @SETTINGS
    @given(st.sampled_from(places), json_values)
    def case(place, value):
        count[0] += 1
        path = folder / "b.json"
        path.write_text(json.dumps(_replaced(good, place, value)), encoding="utf-8")
        _load_unchanged(path)

    case()
    record("batches: a value edited", count[0], time.perf_counter() - started)


def test_random_bytes_and_truncations_in_every_format(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bytes")
    for ext in (".json", ".csv"):
        save_batch(GOOD, str(folder / f"good{ext}"))
    texts = {ext: (folder / f"good{ext}").read_bytes() for ext in (".json", ".csv")}
    started, count = time.perf_counter(), [0]

    @SETTINGS
    @given(st.sampled_from([".json", ".csv", ".txt"]), st.one_of(
        st.binary(max_size=400),
        st.tuples(st.sampled_from([".json", ".csv"]), st.floats(0, 1)).map(
            lambda t: texts[t[0]][:int(len(texts[t[0]]) * t[1])]),
        st.integers(1, 200_000).map(lambda n: b"[" * n),
        st.integers(1, 50_000).map(lambda n: b'{"a":' * n)))
    def case(ext, data):
        count[0] += 1
        path = folder / f"case{ext}"
        path.write_bytes(data)
        _load_unchanged(path)

    case()
    record("batches: bytes and truncations", count[0], time.perf_counter() - started)


def test_a_huge_batch_file_is_refused_with_a_limit_not_loaded_into_memory_without_end(tmp_path):
    path = tmp_path / "huge.json"
    doc = GOOD.to_dict()
    doc["images"] = [doc["images"][0] | {"index": k} for k in range(100_001)]
    path.write_text(json.dumps(doc), encoding="utf-8")
    started = time.perf_counter()
    try:
        budget(60, load_batch, str(path))
        raise AssertionError("a batch past the limit loaded")
    except OrchestratorError as exc:
        assert "at most 100,000" in exc.message
    record("batches: one 100,001-image file", 1, time.perf_counter() - started)
