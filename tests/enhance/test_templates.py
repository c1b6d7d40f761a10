"""Enhancement templates: the shipped ones load, the user's replace them, a broken one says where, and
each family's answer is joined the way that family reads prompts."""
from __future__ import annotations

import json

import pytest

from lib_orchestrator.enhance.templates import TEMPLATE_NAMES, genre_card, load_genres, load_template, template_for
from lib_orchestrator.errors import OrchestratorError


def test_every_shipped_template_loads_versioned_and_asks_with_the_idea():
    for name in TEMPLATE_NAMES:
        template = load_template(name)
        assert template.ident == f"{name}@1"
        messages = template.messages("a ⟦0⟧ fox, snow ⟦1⟧", "noir card")
        assert [m["role"] for m in messages] == ["system", "user"]
        assert "IDEA: a ⟦0⟧ fox, snow ⟦1⟧" in messages[1]["content"]
        assert "LOCKED: ⟦0⟧, ⟦1⟧" in messages[1]["content"]
        assert "GENRE CARD: noir card" in messages[1]["content"]
        assert "{" not in messages[1]["content"]


def test_the_checkpoint_decides_the_template():
    assert template_for("sd1") == template_for("sd2") == "sd1"
    assert template_for("sdxl") == template_for("sd3") == "sdxl"
    assert template_for("sdxl", "Pony") == "pony"
    assert template_for("sdxl", "Illustrious") == template_for("sdxl", "NoobAI") == "illustrious"
    assert template_for("flux") == "flux"


def test_answers_are_joined_per_family():
    tags = load_template("sd1").text_of(json.dumps({"tags": ["A Fox", "snow_field", "a fox", "It is cold. Very.",
                                                             "⟦0⟧", "night."]}))
    assert tags == "a fox, snow field, ⟦0⟧, night"
    assert load_template("sd1").text_of('{"tags": "a fox, Snow"}') == "a fox, snow"  # the list as one string
    assert load_template("sdxl").text_of('{"prompt": "A fox in snow."}') == "A fox in snow."
    booru = load_template("pony")
    two = json.dumps({"characters": [["1girl", "red hair"], ["1boy", "blue coat"]], "scene": ["snow"]})
    assert booru.text_of(two) == "1girl, red hair BREAK 1boy, blue coat, snow"
    one = json.dumps({"characters": [["1girl"]], "scene": ["snow"]})
    assert booru.text_of(one) == "1girl, snow"
    assert booru.text_of("1girl, snow, plain text") == "1girl, snow, plain text"  # schema ignored


def test_a_users_template_and_genres_replace_the_shipped_ones(tmp_path):
    (tmp_path / "sd1.yaml").write_text(
        "version: 7\nform: tags\nbudget: 150\nprefix: masterpiece\nsystem: be brief\nuser: 'IDEA: {idea}'\n")
    (tmp_path / "genres.yaml").write_text("genres:\n  noir: only shadows\n  vaporwave: pink and teal\n")
    template = load_template("sd1", str(tmp_path))
    assert (template.ident, template.budget, template.prefix) == ("sd1@7", 150, ("masterpiece",))
    assert load_template("sdxl", str(tmp_path)).ident == "sdxl@1"
    genres = load_genres(str(tmp_path))
    assert genres["noir"] == "only shadows" and genres["vaporwave"] == "pink and teal" and "cozy" in genres
    assert genre_card("Noir", str(tmp_path)) == "only shadows"
    assert genre_card("misty moors, grey light") == "misty moors, grey light"  # a card of one's own
    assert genre_card("") == ""


@pytest.mark.parametrize("text, where, says", [
    ("version: 1\nform: tags\nbudget: 75\nsystem: x\nuser: |\n  IDEA: {idea}\n bad: indent\n", ":7:", "YAML"),
    ("version: 1\nform: poem\nbudget: 75\nsystem: x\nuser: '{idea}'\n", ":1:", "form 'poem'"),
    ("version: 1\nform: tags\nbudget: 75\nsystem: x\nuser: no idea here\n", ":1:", "{idea}"),
    ("version: one\nform: tags\nbudget: 75\nsystem: x\nuser: '{idea}'\n", ":1:", "whole numbers"),
    ("version: 1\nform: tags\nbudget: .inf\nsystem: x\nuser: '{idea}'\n", ":1:", "wrong type"),
    ("version: 1\nform: tags\nbudget: 0\nsystem: x\nuser: '{idea}'\n", ":1:", "out of range"),
    ("form: tags\nbudget: 75\nsystem: x\nuser: '{idea}'\n", ":1:", "no 'version'"),
    ("version: 1\nform: tags\nbudget: 75\nsystem: 2001-13-45\nuser: '{idea}'\n", ":1:", "cannot be read"),
    ("version: !!int one\n", ":1:", "cannot be read"),
])
def test_a_broken_template_says_file_line_and_what_to_do(tmp_path, text, where, says):
    (tmp_path / "mine.yaml").write_text(text)
    with pytest.raises(OrchestratorError) as info:
        load_template("mine", str(tmp_path))
    line = info.value.one_line()
    assert "mine.yaml" + where in line and says in line


def test_an_unknown_template_names_the_known_ones():
    with pytest.raises(OrchestratorError, match="sd1, sdxl, flux, pony, illustrious"):
        load_template("sd15")
