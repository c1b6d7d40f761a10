"""scripts/orchestrator.py through the Forge stand-in: hooks, prompts, LoRAs per iteration, hires,
infotext per image and its round trip, REST args, ui() without side effects, variant imports."""
from __future__ import annotations

import json
import os
import re
import sys

import pytest

import lib_orchestrator
from lib_orchestrator.provenance import KEY_LORAS, KEY_SETTINGS, KEY_TEMPLATE, parse_loras_value
from tests.conftest import REPO

from . import fake_gradio

TITLE = "Orchestrator"


@pytest.fixture
def orchestrator(load_orchestrator):
    """The real script file loaded as Forge loads it, with the sample LoRAs in Forge's LoRA folder and an
    SDXL checkpoint loaded; returns (module, script classes)."""
    module, classes = load_orchestrator()
    assert module.LIBRARY.wait(60) is not None  # Forge's app_started started the scan
    return module, classes


def run(run_txt2img, classes, args, **kw):
    kw.setdefault("prompt", "a lighthouse keeper in a misty pine forest, watercolor wash, {rain|fog}")
    kw.setdefault("negative_prompt", "lowres")
    kw.setdefault("seed", 100)
    kw.setdefault("steps", 2)
    kw.setdefault("width", 64)
    kw.setdefault("height", 64)
    return run_txt2img(classes, {TITLE: args}, **kw)


def image_infotexts(processed):
    """The images' infotexts, without the grid's Forge puts first."""
    return processed.infotexts[processed.index_of_first_image:]


def info_dict(infotext):
    from modules import infotext_utils

    return infotext_utils.parse_generation_parameters(infotext)


def lora_hash_names(params):
    text = params.get("Lora hashes", "")
    return sorted(part.split(":")[0].strip() for part in text.split(",") if part.strip())


def test_script_off_leaves_prompts_untouched(orchestrator, run_txt2img):
    _, classes = orchestrator
    processed = run(run_txt2img, classes, [False], prompt="a cat, {x|y}", n_iter=2)
    assert processed.all_prompts == ["a cat, {x|y}", "a cat, {x|y}"]
    assert all(KEY_SETTINGS not in info_dict(t) for t in image_infotexts(processed))


def test_each_image_is_composed_and_its_loras_are_activated_per_iteration(orchestrator, run_txt2img):
    _, classes = orchestrator
    processed = run(run_txt2img, classes, [True], n_iter=3)
    assert len(image_infotexts(processed)) == 3
    assert all("{" not in p for p in processed.all_prompts)
    for k, text in enumerate(image_infotexts(processed)):
        params = info_dict(text)
        picks = [name for name, _, _ in parse_loras_value(params[KEY_LORAS])]
        assert params[KEY_TEMPLATE].startswith("a lighthouse keeper")
        assert picks and all(f"<lora:{name}:" in processed.all_prompts[k] for name in picks)
        assert lora_hash_names(params) == sorted(picks)  # what Forge really loaded for this image
        assert params["Seed"] == str(100 + k)


def test_a_larger_batch_is_split_so_every_image_keeps_its_own_loras(orchestrator, run_txt2img):
    _, classes = orchestrator
    processed = run(run_txt2img, classes, [True], batch_size=2, n_iter=1)
    p = run_txt2img.last_p
    assert (p.batch_size, p.n_iter, len(image_infotexts(processed))) == (1, 2, 2)
    for text in image_infotexts(processed):
        params = info_dict(text)
        assert lora_hash_names(params) == sorted(n for n, _, _ in parse_loras_value(params[KEY_LORAS]))
        assert "split into single images" in params.get("Orchestrator note", "")


def test_without_splitting_a_batch_shares_its_first_images_loras(orchestrator, run_txt2img):
    from modules import shared

    _, classes = orchestrator
    shared.opts.data["orchestrator_split_batches"] = False
    processed = run(run_txt2img, classes, [True], batch_size=2, n_iter=1)
    first, second = (info_dict(t) for t in image_infotexts(processed))
    assert first[KEY_LORAS] == second[KEY_LORAS]
    assert "first image" in second.get("Orchestrator note", "")


def test_hires_prompts_are_kept_in_step_without_a_spurious_hires_prompt(orchestrator, run_txt2img):
    _, classes = orchestrator
    processed = run(run_txt2img, classes, [True], n_iter=2, enable_hr=True, hr_scale=2, denoising_strength=0.5,
                    hr_upscaler="Latent", hr_second_pass_steps=1)
    p = run_txt2img.last_p
    assert p.all_hr_prompts == p.all_prompts
    for text in image_infotexts(processed):
        assert "Hires prompt:" not in text  # (the parser fills in an empty one, so read the raw text)


def test_names_forge_does_not_list_are_never_injected(orchestrator, run_txt2img):
    import networks

    _, classes = orchestrator
    for name in ("watercolor_wash_xl", "misty_forest_xl"):
        networks.available_networks.pop(name, None)
        networks.available_network_aliases.pop(name, None)
    processed = run(run_txt2img, classes, [True, True, 3, 3, 0.0], n_iter=2)
    for k, text in enumerate(image_infotexts(processed)):
        params = info_dict(text)
        assert "watercolor_wash_xl" not in processed.all_prompts[k]
        assert lora_hash_names(params)  # the other LoRAs still loaded: no unknown name broke the batch


def test_lora_carrying_entries_load_with_their_weight_and_the_unloadable_are_never_drawn(
        orchestrator, run_txt2img, tmp_path, capsys):
    from modules import shared

    _, classes = orchestrator
    pack = tmp_path / "pack"
    pack.mkdir()
    # On the fixture's SDXL checkpoint: noir_film_xl loads (no preferred weight: its style category's 0.8 by the
    # default rules), watercolor_sd15 is an SD 1.5 LoRA and does not.
    (pack / "look.txt").write_text("<lora:noir_film_xl> a dark street\n<lora:watercolor_sd15> a soft street\n")
    shared.opts.data["orchestrator_wildcard_dirs"] = str(pack)
    processed = run(run_txt2img, classes, [True, True, 0, 0, 0.0], prompt="__look__", n_iter=4)
    for k, text in enumerate(image_infotexts(processed)):
        assert processed.all_prompts[k].startswith("<lora:noir_film_xl:0.8> a dark street")
        assert lora_hash_names(info_dict(text)) == ["noir_film_xl"]
    run(run_txt2img, classes, [True, True, 0, 0, 0.0], prompt="__look__", n_iter=2)
    err = capsys.readouterr().err
    assert err.count("<lora:watercolor_sd15> does not load on a SDXL 1.0 checkpoint; entry left out of __look__") == 1


def test_rest_args_fill_in_order_and_the_rest_keep_their_defaults(orchestrator, run_txt2img):
    _, classes = orchestrator
    processed = run_txt2img(classes, {"orchestrator": {"args": [True, False]}}, api=True, prompt="a {red|blue} cat",
                            seed=5, n_iter=2, steps=2, width=64, height=64)
    assert processed.all_prompts[0] in ("a red cat", "a blue cat")
    assert all("<lora:" not in p for p in processed.all_prompts)  # arg 1: LoRA picking off
    settings = info_dict(image_infotexts(processed)[0])[KEY_SETTINGS]
    assert '"loras":false' in settings and '"count":[1,6]' in settings


def test_the_match_mode_is_the_last_rest_arg_and_is_recorded_and_pasted_back(orchestrator, run_txt2img):
    _, classes = orchestrator
    args = [True, True, 1, 2, 0.0, "", False, "", False, "", "keyword"]
    processed = run_txt2img(classes, {"orchestrator": {"args": args}}, api=True, prompt="a cat, neon alley", seed=5,
                            n_iter=1, steps=2, width=64, height=64)
    params = info_dict(image_infotexts(processed)[0])
    assert json.loads(params[KEY_SETTINGS])["match"] == "keyword"
    assert all(reason in ("trigger", "match", "fallback", "detailer")
               for _, _, reason in (part.rsplit(":", 2) for part in params["Orchestrator LoRAs"].split("; ")))
    script = [s for s in run_txt2img.last_runner.alwayson_scripts if s.title() == TITLE][0]
    restored = [fn(params) if callable(fn) else params.get(fn) for _, fn in script.infotext_fields]
    assert restored[-1] == "keyword"
    # an unknown mode from a REST caller is the rules' own, never an error
    processed = run_txt2img(classes, {"orchestrator": {"args": [*args[:-1], "vibes"]}}, api=True, prompt="a cat",
                            seed=5, n_iter=1, steps=2, width=64, height=64)
    assert "match" not in json.loads(info_dict(image_infotexts(processed)[0])[KEY_SETTINGS])


def test_llm_matching_asks_the_settings_llm_to_choose_and_records_its_choice(orchestrator, run_txt2img, serve):
    from modules import shared

    from lib_orchestrator.embeddings.builtin import builtin_status

    from ..selection.test_llm_choice import answering

    why = builtin_status()
    if why is not None:
        pytest.skip(f"the builtin embedder is not usable here: {why}")
    seen = []

    def choose(method, path, body):
        seen.append(shared.state.textinfo)  # what Forge shows under the progress bar meanwhile
        return answering(json.dumps({"loras": [{"id": "god_rays_xl", "reason": "light through clouds"}]}))(
            method, path, body)

    server = serve(choose)
    shared.opts.data.update(orchestrator_llm_url=server.url)
    module, classes = orchestrator
    assert module.LIBRARY.current().semantic is not None  # embedded in the background after the scan
    args = [True, True, 1, 1, 0.0, "", False, "", False, "", "llm"]
    processed = run(run_txt2img, classes, args, prompt="sunbeams piercing the clouds over a valley", n_iter=2)
    for text in image_infotexts(processed):
        params = info_dict(text)
        assert params[KEY_LORAS] == "god_rays_xl:0.7:llm" and json.loads(params[KEY_SETTINGS])["match"] == "llm"
        assert server.url not in text
    asked = [body for method, path, body, _ in server.requests if path.endswith("/chat/completions")]
    assert len(asked) == 1  # the second image's same prompt and candidates come from the answer cache
    assert "Orchestrator: choosing LoRAs with the LLM" in seen and shared.state.textinfo is None


def test_pasting_an_images_infotext_restores_the_controls(orchestrator, run_txt2img):
    from modules import scripts

    _, classes = orchestrator
    processed = run(run_txt2img, classes, [True, True, 2, 3, 0.0, "", True, ""], n_iter=1)
    params = info_dict(image_infotexts(processed)[0])
    script = [s for s in run_txt2img.last_runner.alwayson_scripts if s.title() == TITLE][0]
    restored = [fn(params) if callable(fn) else params.get(fn) for _, fn in script.infotext_fields]
    assert restored == [True, True, 2, 3, 0.0, "", True, "", False, "", ""]
    assert isinstance(scripts.AlwaysVisible, object)


def test_ui_can_be_called_again_and_again_without_side_effects(orchestrator):
    from modules import script_callbacks

    _, classes = orchestrator
    script = [c for c in classes if c.__name__ == "OrchestratorScript"][0]()
    before = {k: len(v) for k, v in script_callbacks.callback_map.items()}
    results = [script.ui(False) for _ in range(3)]
    assert len({len(r) for r in results}) == 1 and len(results[0]) == 11
    assert {k: len(v) for k, v in script_callbacks.callback_map.items()} == before


def test_settings_are_registered_in_their_own_section(orchestrator):
    from modules import script_callbacks, shared

    script_callbacks.ui_settings_callback()
    for key in ("orchestrator_wildcard_dirs", "orchestrator_rules_file", "orchestrator_cache_path",
                "orchestrator_split_batches", "orchestrator_match", "orchestrator_embed", "orchestrator_embed_model"):
        assert key in shared.opts.data_labels
        assert shared.opts.data_labels[key].section[0] == "orchestrator"
    # The section's label is what the user reads in Settings: it carries the version (pyproject's, too)
    label = shared.opts.data_labels["orchestrator_cache_path"].section[1]
    version = re.search(r'^__version__ = "([^"]+)"', (REPO / "lib_orchestrator" / "__init__.py").read_text(), re.M)
    assert label == f"Orchestrator {version.group(1)}" == f"Orchestrator {lib_orchestrator.__version__}"


@pytest.mark.parametrize("variant", ["classic", "neo"])
def test_the_script_loads_and_runs_on_other_variants(variant, forge_stub, lora_dir, run_txt2img, monkeypatch,
                                                    forge_app):
    with forge_stub.use_variant(variant):
        try:
            import gradio  # noqa: F401
        except ImportError:
            monkeypatch.setitem(sys.modules, "gradio", fake_gradio)
        from modules import errors, scripts

        module = forge_app(tabs=False)["orchestrator.py"]
        assert module is not None and errors.reported == []
        module.LIBRARY.wait(60)
        processed = run_txt2img([d.script_class for d in scripts.scripts_data], {TITLE: [True]},
                                prompt="a {red|blue} cat", seed=3, n_iter=2, steps=2, width=64, height=64)
        assert len(image_infotexts(processed)) == 2
        # Classic passes no pp.index: the per-image values still land on the right image.
        values = [info_dict(t)[KEY_TEMPLATE] for t in image_infotexts(processed)]
        assert values == ["a {red|blue} cat"] * 2


def test_an_unknown_lora_the_user_wrote_no_longer_disables_every_lora(orchestrator, run_txt2img):
    _, classes = orchestrator
    prompt = "a lighthouse keeper, watercolor wash <lora:not_on_this_machine:0.7>"
    processed = run(run_txt2img, classes, [True], prompt=prompt, n_iter=1)
    params = info_dict(image_infotexts(processed)[0])
    assert "not_on_this_machine" not in processed.all_prompts[0]
    assert lora_hash_names(params)  # Forge loaded the LoRAs; with the unknown tag it would have loaded none
    assert "not_on_this_machine" in params.get("Orchestrator note", "")


def test_our_hooks_run_in_forges_order(orchestrator, run_txt2img):
    module, _ = orchestrator
    calls = []

    class Recording(module.OrchestratorScript):
        def before_process(self, p, *args):
            calls.append(("before_process", len(p.all_prompts or [])))
            super().before_process(p, *args)

        def process(self, p, *args):
            calls.append(("process", len(p.all_prompts)))
            super().process(p, *args)

        def postprocess_image(self, p, pp, *args):
            calls.append(("postprocess_image", p.iteration))
            super().postprocess_image(p, pp, *args)

    processed = run(run_txt2img, [Recording], [True], n_iter=2)
    assert calls == [("before_process", 0), ("process", 2), ("postprocess_image", 0), ("postprocess_image", 1)]
    assert len(image_infotexts(processed)) == 2


def test_prompts_are_enhanced_before_loras_are_picked_with_provenance_per_image(orchestrator, run_txt2img, serve,
                                                                               monkeypatch):
    from modules import shared

    from ..enhance.fake_servers import backend, idea_of

    seen = []

    def model(body):
        seen.append(shared.state.textinfo)  # what Forge shows under the progress bar meanwhile
        return {"prompt": f"{idea_of(body)}, walking through a neon alley at night"}

    server = serve(backend("lmstudio", model=model, models=("qwen2.5-7b",)))
    shared.opts.data.update(orchestrator_llm_url=server.url)
    monkeypatch.setenv("ORCH_LLM_API_KEY", "sk-secret")
    embeddings = shared.cmd_opts.embeddings_dir
    os.makedirs(os.path.join(embeddings, "neg"), exist_ok=True)
    for name in ("easynegative.safetensors", "neg/bad-hands-5.pt", "easynegative.preview.png"):
        open(os.path.join(embeddings, name), "wb").close()
    _, classes = orchestrator
    processed = run(run_txt2img, classes, [True, True, 1, 2, 0.0, "", False, "", True, "noir"], n_iter=2,
                    prompt="a street musician, {rain|fog}, easynegative")
    assert seen == [f"Orchestrator: enhancing prompt {k}/2 with the LLM" for k in (1, 2)]
    assert shared.state.textinfo is None
    for prompt, text in zip(processed.all_prompts, image_infotexts(processed)):
        assert "neon alley at night" in prompt and "easynegative" in prompt
        params = info_dict(text)
        assert "neon_alley_xl" in lora_hash_names(params)  # picked for what the LLM wrote
        llm = json.loads(params["Orchestrator LLM"])
        assert (llm["status"], llm["model"], llm["template"]) == ("enhanced", "qwen2.5-7b", "sdxl@1")
        assert llm["original"].startswith("a street musician, ") and "neon" not in llm["original"]
        assert json.loads(params[KEY_SETTINGS])["genre"] == "noir"
        assert server.url not in text and "secret" not in text
    request = server.requests[-1]
    assert request[3]["Authorization"] == "Bearer sk-secret"  # from the environment, not from Settings
    assert "venetian-blind" in request[2]["messages"][1]["content"]
    assert "easynegative" not in idea_of(request[2])  # an embedding: held as a placeholder


def test_interrupt_stops_asking_the_llm(orchestrator, run_txt2img, serve):
    from modules import shared

    from ..enhance.fake_servers import backend, diligent

    def model(body):
        shared.state.interrupt()  # the user presses Interrupt while the first prompt is being enhanced
        return diligent(body)

    server = serve(backend("lmstudio", model=model))
    shared.opts.data["orchestrator_llm_url"] = server.url
    _, classes = orchestrator
    run(run_txt2img, classes, [True, False, 1, 2, 0.0, "", False, "", True], n_iter=3)
    assert len([r for r in server.requests if r[1].endswith("/chat/completions")]) == 1


def test_a_dead_llm_server_costs_nothing_but_the_enhancement(orchestrator, run_txt2img, capsys):
    from modules import shared

    shared.opts.data["orchestrator_llm_url"] = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    _, classes = orchestrator
    processed = run(run_txt2img, classes, [True, True, 1, 2, 0.0, "", True, "", True], n_iter=2)
    assert len(image_infotexts(processed)) == 2
    for prompt, text in zip(processed.all_prompts, image_infotexts(processed)):
        assert prompt.startswith("a lighthouse keeper in a misty pine forest, watercolor wash")
        llm = json.loads(info_dict(text)["Orchestrator LLM"])
        assert llm["status"] == "fallback" and "cannot connect" in llm["reason"]
    assert "LLM enhancement fell back" in capsys.readouterr().err


def test_a_failed_library_scan_is_said_in_each_images_infotext_not_shown_as_indexing(lora_dir, forge_app,
                                                                                     monkeypatch, run_txt2img):
    import lib_orchestrator.library.service as service

    def broken(*_args, **_kw):
        raise PermissionError("[Errno 13] Permission denied: 'Lora'")

    monkeypatch.setattr(service, "scan_library", broken)
    module = forge_app(tabs=False)["orchestrator.py"]
    module.LIBRARY.wait(60)
    from modules import scripts

    processed = run(run_txt2img, [d.script_class for d in scripts.scripts_data], [True], n_iter=1)
    note = info_dict(image_infotexts(processed)[0])["Orchestrator note"]
    assert note.startswith("LoRA library scan failed: PermissionError") and "indexing" not in note


def test_saved_images_go_into_the_history_and_ratings_steer_the_next_picks(orchestrator, run_txt2img):
    """In Forge: every saved image is indexed through the image-saved callback, and a LoRA the user rated up is
    picked with `+feedback` in the next generation's infotext (the same index the tab rates in)."""
    from modules import shared

    module, classes = orchestrator
    shared.opts.data["samples_save"] = True
    made = run(run_txt2img, classes, [True, True, 1, 1, 0.0], prompt="a quiet harbour at noon", n_iter=6,
               api=True, save_images=True)
    history = module.state.HISTORY
    history.wait()
    store = history.store()
    assert store.count() == 7  # the six images and Forge's grid of them
    picked = {}
    for text in image_infotexts(made):
        for name, _, _ in parse_loras_value(info_dict(text)[KEY_LORAS]):
            picked.setdefault(name, 0)
            picked[name] += 1
    best = max(picked, key=picked.get)
    for image_id, in store.db.execute("SELECT id FROM images"):
        row = store.image(image_id)
        store.rate(image_id, stars=5 if any(u.name == best for u in row.loras) else 1)
    again = run(run_txt2img, classes, [True, True, 1, 1, 0.0], prompt="a quiet harbour at noon", n_iter=6)
    reasons = {r for text in image_infotexts(again) for n, _, r in parse_loras_value(info_dict(text)[KEY_LORAS])
               if n == best}
    assert reasons and all(r.endswith("+feedback") for r in reasons), (best, picked, reasons)
