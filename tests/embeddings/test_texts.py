"""The texts an embedder sees: a LoRA's words without file-name noise, HTML or boilerplate; a prompt's words
without A1111 syntax; the hash that keys the cache. Expected values are written out by hand."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib_orchestrator.embeddings.texts import (
    DESCRIPTION_CHARS,
    lora_fields,
    lora_text,
    name_words,
    prompt_text,
    text_hash,
)
from lib_orchestrator.library.record import LoraRecord


@pytest.mark.parametrize("name, words", [
    ("qipao_dress_ponyXL-000012", "qipao dress"),
    ("godRays_IL_v2", "god rays"),
    ("NAI-XL_ukiyoe-style_e10", "ukiyoe style"),
    ("fluxDev_sunbeams_r32", "sunbeams"),
    ("add_detail", "add detail"),
    ("kilt-sdxl-lora-step00002000", "kilt"),
    ("Chun-Li (Street Fighter) v3", "chun li street fighter"),
    ("v2", "v2"),  # nothing but noise: the name is all there is, kept
])
def test_name_words_drop_base_model_version_and_epoch(name, words):
    assert name_words(name) == words


def record(**fields):
    base = {"path": "x.safetensors", "name": "x"}
    base.update(fields)
    return LoraRecord(**base)


def test_a_lora_text_holds_name_triggers_tags_category_description_and_notes_once_each():
    r = record(name="qipao_dress_ponyXL-000012", alias="qipao_dress", category="clothing",
               trigger_words=("qipao", "China_Dress", "score_9"), tags=("clothing", "qipao", "cheongsam"),
               description="<p>A <b>tight</b> silk dress &amp; slits.</p>")
    assert lora_text(r, notes="Shanghai  1930s") == \
        "qipao dress. qipao, china dress. clothing, cheongsam. a tight silk dress & slits. shanghai 1930s"


def test_no_boilerplate_every_text_would_share():
    text = lora_text(record(name="bokeh_v1", trigger_words=("bokeh", "masterpiece", "1girl", "(depth of field:1.2)"),
                            category="concept"))
    assert text == "bokeh. depth of field. concept"
    for word in ("triggers", "masterpiece", "1girl", "|", ":1.2", "v1"):
        assert word not in text


def test_an_unknown_category_says_nothing_and_the_five_commonest_training_tags_join_the_tags():
    # Training tags say what the LoRA shows (the realistic library's qipao LoRAs have `china dress` there and
    # only `sexy, base model` as Civitai tags): they count beside the tags, the five most frequent of them.
    bare = record(name="glowing_moths", category="other", suggested_tags=("1girl", "moth", "glowing", "night", "forest",
                                                                          "solo", "trees"))
    assert lora_text(bare) == "glowing moths. moth, glowing, night, forest"
    tagged = record(name="glowing_moths", tags=("insects",), suggested_tags=("moth",))
    assert lora_text(tagged) == "glowing moths. insects, moth"


def test_tags_most_of_the_library_carries_are_left_out_of_the_fields():
    r = record(name="qipao_dress", category="clothing", tags=("sexy", "Base Model", "clothing", "cheongsam"),
               suggested_tags=("china dress", "1girl"))
    assert lora_fields(r, common=frozenset({"sexy", "base model", "clothing"})) == \
        ("qipao dress", "cheongsam, china dress", "clothing")  # the category stays: it is its own field


def test_description_html_is_plain_text_without_scripts_links_or_a_flood():
    html = ('<h2>Ukiyo&#8209;e</h2><script>steal()</script><style>p{}</style><p>Woodblock prints. '
            'See <a href="https://civitai.com/x">https://civitai.com/models/1</a></p>' + "<p>word </p>" * 500)
    text = lora_text(record(name="ukiyoe", description=html))
    description = text.split(". ", 1)[1]
    assert description.startswith("ukiyo\u2011e woodblock prints. see word word")
    assert "steal" not in text and "p{}" not in text and "http" not in text and "<" not in text
    assert len(description) <= DESCRIPTION_CHARS and description.endswith("word")


def test_broken_html_keeps_what_a_browser_would_show():
    text = lora_text(record(name="rays", description="God rays <b>through clouds <i>at dawn</p>, 5 < 6"))
    assert text == "rays. god rays through clouds at dawn, 5 < 6"


@pytest.mark.parametrize("prompt, text", [
    ("score_9, score_8_up, 1girl, (qipao:1.2), <lora:foo:0.8>, masterpiece, best quality", "qipao"),
    ("[red|blue] dress, BREAK\nsunbeams_piercing clouds AND god rays",
     "red blue dress, sunbeams piercing clouds, god rays"),
    ("[cat:dog:0.5], \\(artist\\), ((sharp focus)), {a|b}", "cat dog, artist, sharp focus, a b"),
    ("A young woman in a silk dress from Shanghai", "a young woman in a silk dress from shanghai"),
    ("ink, Ink, (ink:0.9)", "ink"),
    ("masterpiece, absurdres, 2girls, solo", ""),
])
def test_prompt_text_is_words_without_syntax_or_boilerplate(prompt, text):
    assert prompt_text(prompt) == text


@given(st.text())
def test_prompt_text_never_fails_and_holds_no_weights_brackets_or_underscores(prompt):
    text = prompt_text(prompt)
    assert not set(text) & set("()[]{}|:_")


def test_text_hash_is_the_sha256_of_the_utf8_even_with_lone_surrogates():
    assert text_hash("qipao") == hashlib.sha256(b"qipao").digest()
    assert text_hash("bad\udcff") == hashlib.sha256(b"bad\xed\xb3\xbf").digest()
    assert text_hash("a") != text_hash("a ")


def test_a_trigger_that_is_the_file_name_again_is_left_to_the_name_field():
    r = record(name="god_rays_sd15", category="concept", trigger_words=("god_rays_sd15", "volumetric light"))
    assert lora_fields(r) == ("god rays", "volumetric light", "concept")
