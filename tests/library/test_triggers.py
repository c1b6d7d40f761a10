"""Trigger words one by one, activation text verbatim (docs/lora-library.md §5)."""
from __future__ import annotations

import pytest

from lib_orchestrator.library.header import Header
from lib_orchestrator.library.record import LoraRecord
from lib_orchestrator.library.resolve import resolve, split_triggers
from lib_orchestrator.library.sidecars import CivitaiFacts, MatrixFacts, Sidecars, UserFacts


@pytest.mark.parametrize("alternatives, triggers", [
    (["hand on hip, looking back"], ("hand on hip", "looking back")),
    (["(gotoh_hitori_(bocchi_the_rock):1.2), solo"], ("(gotoh_hitori_(bocchi_the_rock):1.2)", "solo")),
    (["[frieren, fern], elf"], ("[frieren, fern]", "elf")),
    (["{red|blue} hair, smile"], ("{red|blue} hair", "smile")),
    (["<lora:x:1>, smile"], ("<lora:x:1>", "smile")),
    ([r"hitori \(bocchi, rock\), solo"], (r"hitori \(bocchi", r"rock\)", "solo")),  # escaped: text, not brackets
    (["(frieren, elf"], ("(frieren", "elf")),  # brackets that never close: every comma
    (["a, , b ,", " "], ("a", "b")),
    (["Frieren, elf", "frieren, white hair"], ("Frieren", "elf", "white hair")),  # duplicates ignore case
    ([], ()),
])
def test_split_triggers(alternatives, triggers):
    assert split_triggers(alternatives) == triggers


def _resolve(side=None, meta=None):
    side = side if side is not None else Sidecars()
    return resolve("x.safetensors", "x", 10, Header(dict(meta or {}), ()), side, (), None, [])


def test_user_activation_text_alternatives_and_triggers():
    r = _resolve(Sidecars(user=UserFacts(activation_text="hand on hip, looking back || from above,  sitting ||")))
    assert r.activation_text == ("hand on hip, looking back", "from above,  sitting")
    assert r.trigger_words == ("hand on hip", "looking back", "from above", "sitting")
    assert r.trigger_source == "user_json"


def test_civitai_trained_words_each_an_alternative():
    side = Sidecars(civitai=CivitaiFacts(trained_words=("frieren", "elf, pointy ears, white hair, twintails",
                                                        "Frieren", "white capelet, black pantyhose")))
    r = _resolve(side)
    assert r.activation_text == ("frieren", "elf, pointy ears, white hair, twintails", "white capelet, black pantyhose")
    assert r.trigger_words == ("frieren", "elf", "pointy ears", "white hair", "twintails", "white capelet",
                               "black pantyhose")
    assert r.trigger_source == "civitai"


def test_stability_matrix_words_when_civitai_has_none():
    r = _resolve(Sidecars(civitai=CivitaiFacts(trained_words=()), matrix=MatrixFacts(trained_words=("a, b",))))
    assert (r.activation_text, r.trigger_words, r.trigger_source) == (("a, b",), ("a", "b"), "civitai")


def test_modelspec_trigger_phrase_is_one_alternative_of_several_triggers():
    r = _resolve(meta={"modelspec.trigger_phrase": " hand on hip, looking back "})
    assert r.activation_text == ("hand on hip, looking back",)
    assert r.trigger_words == ("hand on hip", "looking back") and r.trigger_source == "modelspec"


def test_dataset_folders_are_alternatives():
    r = _resolve(meta={"ss_tag_frequency": '{"10_frieren": {"a": 1}, "5_Frieren": {"b": 1}, "3_fern": {}}'})
    assert (r.activation_text, r.trigger_words, r.trigger_source) == (("frieren", "fern"), ("frieren", "fern"),
                                                                      "dataset")


def test_no_source_no_triggers():
    r = _resolve()
    assert (r.activation_text, r.trigger_words, r.trigger_source) == ((), (), None)


def test_activation_text_round_trips_and_old_records_inject_their_trigger_words():
    r = _resolve(Sidecars(user=UserFacts(activation_text="a, b || c")))
    again = LoraRecord.from_dict(r.to_dict())
    assert again == r and again.activations == ("a, b", "c")
    assert r.to_dict()["activation_text"] == ["a, b", "c"]
    assert LoraRecord("y.safetensors", "y", trigger_words=("wcstyle",)).activations == ("wcstyle",)
