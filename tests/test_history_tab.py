"""The History sub-tab's handlers (lib_orchestrator/history_tab.py) on a real index of images written the way
Forge writes them, without Gradio; and the LoRA library browser's effectiveness line, sort and filter."""
from __future__ import annotations

import json
import os
import random
from types import SimpleNamespace

import pytest

from lib_orchestrator.history.service import HistoryService
from lib_orchestrator.history_tab import HistoryModel, score_line, score_text, signed

PIL = pytest.importorskip("PIL.Image")
from PIL.PngImagePlugin import PngInfo  # noqa: E402


def quote(value: str) -> str:
    """Forge's infotext quoting: a value with a comma, colon or newline is written as a JSON string."""
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ",:\n") else value


def forge_png(path, prompt, seed, loras=(), colour=(120, 90, 60), negative="blurry", reasons=True):
    """A PNG as Forge saves it: the infotext in the `parameters` text chunk; the LoRAs as <lora:> tags in the
    prompt, in `Lora hashes`, and (made by the Orchestrator) in `Orchestrator LoRAs` with their reasons."""
    tags = "".join(f" <lora:{name}:{weight:g}>" for name, weight, _ in loras)
    params = [("Steps", "20"), ("Sampler", "Euler a"), ("Schedule type", "Automatic"), ("CFG scale", "7"),
              ("Seed", str(seed)), ("Size", "64x64"), ("Model hash", "3c6190d76a"), ("Model", "random-sd15")]
    if loras:
        params.append(("Lora hashes", ", ".join(f"{name}: {n:012x}" for n, (name, _, _) in enumerate(loras, 1))))
        if reasons:
            params.append(("Orchestrator LoRAs", "; ".join(f"{n}:{w:g}:{r}" for n, w, r in loras)))
    params.append(("Version", "f2.0.1v1.10.1-1.10.1"))
    text = f"{prompt}{tags}\nNegative prompt: {negative}\n" + ", ".join(f"{k}: {quote(v)}" for k, v in params)
    info = PngInfo()
    info.add_text("parameters", text)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.new("RGB", (64, 64), colour).save(path, pnginfo=info)
    return text


LIGHTHOUSE = [  # one prompt and seed, three LoRA sets: the pairs to compare
    ("00001-77.png", [("watercolor_wash", 0.8, "match")], (30, 90, 200)),
    ("00002-77.png", [("ink_sketch", 0.8, "match")], (200, 60, 30)),
    ("00003-77.png", [], (90, 90, 90)),
]


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "outputs"
    texts = {}
    for name, loras, colour in LIGHTHOUSE:
        texts[name] = forge_png(str(folder / name), "a lighthouse at dusk, storm clouds", 77, loras, colour)
    texts["00004-5.png"] = forge_png(str(folder / "00004-5.png"), "a red fox in deep snow", 5,
                                     [("fox_style", 1.0, "user")], (220, 120, 20))
    (folder / "00005-9.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # indexed with its problem, never shown
    return folder, texts


@pytest.fixture
def service(images, tmp_path):
    folder, _ = images
    svc = HistoryService(lambda: str(tmp_path / "history.sqlite"), lambda: [(str(folder), "user")])
    svc.refresh()
    svc.wait()
    yield svc
    svc.close()


@pytest.fixture
def model(service, tmp_path):
    return HistoryModel(service, str(tmp_path / "thumbs"), seed=3)


def ids_by_name(model):
    store = model.service.store()
    return {os.path.basename(row.path): row.id for row in store.images(range(1, 100))}


# -- browse ------------------------------------------------------------------------------------------------------

def test_search_fills_the_gallery_with_thumbnails_captions_and_ids(model, images):
    items, summary, ids = model.search('"lighthouse at dusk"')
    assert summary.startswith("3 images · page 1 of 1")
    names = ids_by_name(model)
    assert sorted(ids) == sorted(names[n] for n, _, _ in LIGHTHOUSE)
    assert all(os.path.exists(thumb) and thumb.startswith(model.thumbs_dir) for thumb, _ in items)
    captions = dict(zip(ids, (c for _, c in items)))
    assert captions[names["00001-77.png"]] == "watercolor_wash:0.8"
    assert captions[names["00003-77.png"]] == "seed 77"  # no LoRA: the seed says which


def test_search_filters_by_lora_and_stars_and_pages(model):
    _, _, ids = model.search("", lora="fox_style")
    assert [os.path.basename(model.service.store().image(i).path) for i in ids] == ["00004-5.png"]
    names = ids_by_name(model)
    model.rate("4", names["00002-77.png"])
    _, summary, ids = model.search("", min_stars=3)
    assert ids == [names["00002-77.png"]] and summary.startswith("1 image · page 1 of 1")
    paged = HistoryModel(model.service, model.thumbs_dir, per_page=2)
    _, summary, first = paged.search("")
    assert summary.startswith("5 images · page 1 of 3") and len(first) == 2
    items, summary, last = paged.search("", page=9)  # past the end: the last page
    assert summary.startswith("5 images · page 3 of 3") and len(last) == 1 and not set(first) & set(last)


def test_a_file_that_cannot_be_shown_is_a_card_saying_so(model):
    names = ids_by_name(model)
    items, _, ids = model.search("")
    thumb, caption = items[ids.index(names["00005-9.png"])]
    assert caption == "00005-9.png" and os.path.exists(thumb)
    assert os.path.dirname(os.path.dirname(thumb)) == os.path.join(model.thumbs_dir, "cards")
    items, summary, ids = model.search("zebra")
    assert (items, ids) == ([], []) and summary.startswith("no image matches")


def test_details_show_the_image_its_parameters_and_loras_with_reasons(model, images):
    _, texts = images
    names = ids_by_name(model)
    image, html, infotext, rating = model.details(names["00001-77.png"])
    assert image.endswith("00001-77.png") and os.path.exists(image)
    assert infotext == texts["00001-77.png"]  # what Send to txt2img / img2img pastes
    assert "watercolor_wash" in html and "<td>0.8</td>" in html and "<td>match</td>" in html
    assert "random-sd15" in html and "77" in html
    assert rating.startswith("not rated")
    assert model.details(None) == (None, "", "", "select an image (click it, or ←/→)")


def test_rating_keys_set_stars_reject_favourite_and_clear(model):
    names = ids_by_name(model)
    chosen = names["00002-77.png"]
    store = model.service.store()
    line, items, html = model.rate("4", chosen, [chosen, names["00001-77.png"]])
    assert store.image(chosen).stars == 4 and line.startswith("★★★★☆ 4 stars")
    assert "+" in html.split("ink_sketch")[1] and "1 rated" in html  # its LoRA's score moved
    assert items[0][1] == "★4 · ink_sketch:0.8"  # the page again, with the new caption, in the same order
    model.rate("x", chosen)
    row = store.image(chosen)
    assert row.rejected and row.stars == 4
    model.rate("x", chosen)
    assert not store.image(chosen).rejected  # x again takes the reject back
    model.rate("x", chosen)
    model.rate("5", chosen)
    assert store.image(chosen).stars == 5 and not store.image(chosen).rejected  # stars say it is worth keeping
    model.rate("F", chosen)
    assert store.image(chosen).favourite
    line, _, _ = model.rate("0", chosen)
    row = store.image(chosen)
    assert (row.stars, row.rejected, row.favourite) == (None, False, False) and line.startswith("not rated")


def test_a_key_rates_the_image_at_the_galleries_selected_index(model):
    names = ids_by_name(model)
    ids = [names["00001-77.png"], names["00002-77.png"]]
    line, items, _ = model.rate_at("2", "1", ids)
    assert model.service.store().image(ids[1]).stars == 2 and items[1][1].startswith("★2")
    for nowhere in ("-1", "2", "", None, "first"):  # nothing selected, or an index the page does not have
        assert model.rate_at("2", nowhere, ids)[0] == "select an image first (click it, or ←/→)"


def test_a_key_without_a_selection_or_an_unknown_key_changes_nothing(model):
    assert model.rate("4", None) == ("select an image first (click it, or ←/→)", None, None)
    names = ids_by_name(model)
    line, items, html = model.rate("9", names["00001-77.png"])
    assert line.startswith("unknown key '9'") and items is None and html is None
    assert model.service.store().image(names["00001-77.png"]).stars is None


def test_rescan_and_add_folder_say_what_they_did(model, tmp_path):
    assert model.rescan().startswith("rescanning")
    assert model.add_folder("") == "error: write the folder's path first"
    assert model.add_folder(str(tmp_path / "nowhere")).startswith("error: ")
    more = tmp_path / "more"
    forge_png(str(more / "00010-1.png"), "a castle on a hill", 1)
    assert str(more) in model.add_folder(str(more))
    model.service.wait()
    assert model.search("castle")[2]
    assert "images indexed" in model.status()


# -- compare -----------------------------------------------------------------------------------------------------

def test_a_pair_is_shown_blind_and_judged_for_the_image_on_that_side(model):
    names = ids_by_name(model)
    by_id = {v: k for k, v in names.items()}
    left, right, pair, note = model.next_pair()
    assert len(pair) == 2 and {by_id[i] for i in pair} <= {n for n, _, _ in LIGHTHOUSE}
    for shown in (left, right, note):  # nothing says what the images are before the judgement
        for word in ("watercolor", "ink_sketch", "0000"):
            assert word not in shown
    assert os.path.exists(left) and os.path.exists(right)
    winner = model.service.store().image(pair[1]).loras  # the image shown on the right
    left2, right2, pair2, note2, reveal, made = model.judge("right", pair, "", 0)
    assert made == 1 and pair2 and set(pair2) != set(pair)  # the next pair, never the one just judged
    judged = model.service.store().comparisons()
    assert len(judged) == 1 and judged[0].winner == tuple((u.name, u.weight) for u in winner) and not judged[0].tie
    # after the judgement: what each one was
    assert "right <b>won</b>" in reveal and "left <b>won" not in reveal
    assert by_id[pair[0]] in reveal and by_id[pair[1]] in reveal
    assert model.counter(made) == "1 judged in this session · 1 comparison in all"


def test_the_left_right_order_is_drawn_at_random_and_recorded_as_shown(service, tmp_path):
    seen = set()
    for seed in range(12):
        model = HistoryModel(service, str(tmp_path / "thumbs"), seed=seed)
        _, _, pair, _ = model.next_pair("watercolor_wash")
        seen.add(tuple(pair))
    assert len(seen) >= 2  # both sides seen: which image is left tells nothing
    model = HistoryModel(service, str(tmp_path / "thumbs"), seed=1)
    _, _, pair, _ = model.next_pair("watercolor_wash")
    shown_left = service.store().image(pair[0])
    model.judge("left", pair, "watercolor_wash", 0)
    judged = service.store().comparisons()[-1]
    assert judged.winner == tuple((u.name, u.weight) for u in shown_left.loras)


def test_tie_and_skip_and_no_pair_left(model):
    _, _, pair, _ = model.next_pair()
    *_, reveal, made = model.judge("tie", pair, "", 4)
    assert made == 5 and "a tie" in reveal and model.service.store().comparisons()[-1].tie
    _, _, pair, _ = model.next_pair()
    *_, reveal, _ = model.judge("skip", pair, "", 0)
    assert "skipped" in reveal and len(model.service.store().comparisons()) == 1  # a skip has no result
    left, right, pair, note = model.next_pair("fox_style")  # alone in its group: nothing to compare it with
    assert (left, right, pair) == (None, None, None) and note.startswith("no pair to compare with fox_style")
    _, _, kept, note, _, made = model.judge("sideways", [1, 2], "", 2)
    assert kept == [1, 2] and note == "unknown judgement 'sideways'" and made == 2


# -- leaderboard -------------------------------------------------------------------------------------------------

def score(name, value=0.0, low=0.0, high=0.0, images=0, rated=0, compared=0, bucket=""):
    return SimpleNamespace(name=name, bucket=bucket, images=images, rated=rated, compared=compared, score=value,
                           low=low, high=high)


class Scores:
    def __init__(self, scores):
        self.all = scores

    def scores(self, by_weight=False):
        return [s for s in self.all if bool(s.bucket) == by_weight]


def test_scores_are_written_with_sign_star_and_interval():
    assert score_text(score("a", 0.8, -0.1, 1.7)) == "+0.8 ★ (−0.1…+1.7)"
    assert signed(-0.04) == "+0.0" and signed(-1.25) == "−1.2"
    assert score_line(None) == "not rated yet" and score_line(None, 3) == "not rated yet (3 images)"
    assert score_line(score("a", images=4)) == "not rated yet (4 images, 0 rated, 0 compared)"
    assert score_line(score("a", 1.0, 0.2, 1.8, 12, 5, 3)) == "+1.0 ★ (+0.2…+1.8) · 12 images, 5 rated, 3 compared"


def test_the_leaderboard_sorts_filters_and_escapes_names(tmp_path):
    board = Scores([score("<b>bold</b>", 0.4, 0.1, 0.7, 10, 4), score("steady", 1.2, 0.5, 1.9, 3, 3, 2),
                    score("unjudged", 0.0, -0.5, 0.5, 40), score("worse", -0.6, -1.0, -0.2, 8, 2),
                    score("steady", 1.5, 0.4, 2.0, 2, 2, bucket="0.5-0.8")])
    model = HistoryModel(board, str(tmp_path))
    html = model.leaderboard()
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold" not in html
    order = [n for n in ("steady", "&lt;b&gt;bold", "worse", "unjudged") if n in html]
    assert sorted(order, key=html.index) == ["steady", "&lt;b&gt;bold", "worse", "unjudged"]
    assert "+1.2 ★ (+0.5…+1.9)" in html and "not rated yet" in html
    by_images = model.leaderboard("images")
    assert by_images.index("unjudged") < by_images.index("&lt;b&gt;bold") < by_images.index("worse")
    assert "unjudged" not in model.leaderboard(rated_only=True)
    by_weight = model.leaderboard(by_weight=True)
    assert "0.5-0.8" in by_weight and "+1.5 ★" in by_weight and "worse" not in by_weight
    assert "no LoRA" in HistoryModel(Scores([]), str(tmp_path)).leaderboard()


# -- the LoRA library browser ------------------------------------------------------------------------------------

@pytest.fixture
def library(tmp_path):
    from lib_orchestrator.library import scan_library
    from lib_orchestrator.library.overrides import OverrideStore
    from lib_orchestrator.selection import LoraIndex
    from lib_orchestrator.tab import TabModel
    from lib_orchestrator.wildcards import PromptEngine

    from .conftest import BUNDLED
    from .library_fixtures import generate

    generate(tmp_path, "tiny", seed=31)
    records = scan_library(str(tmp_path / "Lora")).records
    index = LoraIndex(records)
    engine = PromptEngine([str(BUNDLED)])
    loras = [r for r in records if r.is_lora]
    rng = random.Random(4)
    picked = rng.sample(loras, 3)
    scores = {picked[0].name.lower(): score(picked[0].name, -0.5, -1.0, 0.0, 6, 3),
              picked[1].name.lower(): score(picked[1].name, 0.9, 0.2, 1.6, 9, 4, 2),
              picked[2].name.lower(): score(picked[2].name, 0.0, -0.5, 0.5, 5)}  # used, never judged
    model = TabModel(engine=lambda: engine, index=lambda: index, records=lambda: records,
                     checkpoint=lambda: ("sdxl", "Illustrious"), overrides=OverrideStore(str(tmp_path / "o.json")),
                     library_roots=lambda: [str(tmp_path / "Lora")], saved_dir=str(tmp_path / "saved"),
                     thumbs_dir=str(tmp_path / "thumbs"), lora_scores=lambda: scores)
    return model, picked, len(loras)


def test_the_library_sorts_by_effectiveness_and_filters_to_judged_loras(library):
    model, (worse, better, unjudged), total = library
    _, summary, paths = model.search("", "", "", False, False, 0, sort="effectiveness", page_size=1000)
    assert len(paths) == total and paths[:2] == [better.path, worse.path]
    _, summary, paths = model.search("", "", "", False, False, 0, rated_only=True)
    assert paths == sorted(paths, key=[r.path for r in model.records()].index) and set(paths) == {worse.path,
                                                                                               better.path}
    assert summary.startswith("2 LoRAs")
    _, _, plain = model.search("", "", "", False, False, 0, page_size=1000)
    assert len(plain) == total  # without the new fields: the library's own order, as before


def test_a_loras_details_say_how_effective_it_is(library):
    model, (worse, better, unjudged), _ = library
    assert "+0.9 ★ (+0.2…+1.6) · 9 images, 4 rated, 2 compared" in model.details_html(better.path)
    assert "not rated yet (5 images, 0 rated, 0 compared)" in model.details_html(unjudged.path)
    others = [r for r in model.records() if r.is_lora and r not in (worse, better, unjudged)]
    assert "<th>effectiveness</th><td>not rated yet</td>" in model.details_html(others[0].path)


def test_the_leaderboard_of_a_large_library_shows_its_first_rows_and_says_how_many_more():
    from lib_orchestrator.history.effect import LoraScore
    from lib_orchestrator.history_tab import HistoryModel

    class Many:
        def scores(self, by_weight=False):
            return [LoraScore(f"lora_{k}", "", 3, 1, 0, 1.0 - k / 1000, 0.0, 2.0) for k in range(1000)]

    board = HistoryModel(Many(), "/nonexistent").leaderboard()
    assert board.count("<tr>") == 301 and "and 700 more" in board and "lora_0<" in board and "lora_300<" not in board
