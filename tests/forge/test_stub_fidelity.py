"""Replays the golden scenarios recorded on a real Forge (../shared/forge/real-forge-traces.json) on the stand-in.

Compared EXACTLY (after mapping the random seeds/subseeds the real run drew onto the ones the stub drew):
- the hook order per scenario: (hook, p.iteration, pp.index) for every call the Trace script saw;
- p at every hook: prompt, negative_prompt, seed, subseed, n_iter, batch_size, iteration, steps, sampler_name,
  scheduler, cfg_scale, width, height, enable_hr, hr_prompt, main_prompt, batch_index (and whether it exists yet),
  all_prompts, all_negative_prompts, all_seeds, all_subseeds, all_hr_prompts, all_hr_negative_prompts, prompts,
  negative_prompts, seeds, subseeds, hr_prompts, extra_generation_params (callables compared as "a callable");
- the hook kwargs (batch_number, prompts, seeds, subseeds; not the image tensor), and Processed.infotexts at
  postprocess;
- every infotext, byte for byte. Model hash / Model / Version match too because the stub's default model is the
  golden `random-sd15 [3c6190d76a]` and the fixture LoRA carries sshs_model_hash 1e736908a712...;
- Processed.js(): key order, and every value except job_timestamp (wall clock), denoising_strength and
  restore_faces (defaults supplied by the REST request model, which the stub does not reproduce).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import networks
import pytest
from modules import errors, extra_networks, infotext_utils, processing, script_callbacks, scripts, shared
from modules.ui_components import InputAccordion

GOLDEN_PATH = Path(__file__).resolve().parents[3] / "shared" / "forge" / "real-forge-traces.json"
GOLDEN = json.loads(GOLDEN_PATH.read_text()) if GOLDEN_PATH.is_file() else None
needs_golden = pytest.mark.skipif(GOLDEN is None, reason="../shared/forge/real-forge-traces.json not present")

P_FIELDS = ("prompt", "negative_prompt", "seed", "subseed", "n_iter", "batch_size", "iteration", "steps",
            "sampler_name", "scheduler", "cfg_scale", "width", "height", "enable_hr", "hr_prompt", "main_prompt",
            "batch_index", "all_prompts", "all_negative_prompts", "all_seeds", "all_subseeds", "all_hr_prompts",
            "all_hr_negative_prompts", "prompts", "negative_prompts", "seeds", "subseeds", "hr_prompts")
CALLABLE = "<callable>"
TRACE: list = []


@pytest.fixture(autouse=True)
def _clear_trace():
    TRACE.clear()


class _Field:
    """A plain control for ui(): only .value and .label are needed."""

    def __init__(self, value, label):
        self.value = value
        self.label = label


def _snap(value):
    return json.loads(json.dumps(value, default=lambda o: CALLABLE if callable(o) else str(o)))


class TraceScript(scripts.Script):
    """The AlwaysOn tracing script of REAL-FORGE.md, re-created. `image_label` picks the Trace image format that
    the real run used: "seed" (scenarios C, D) -> img{p.batch_index}-seed{p.seed}; "index" (C2, C3) ->
    img{pp.index}-batchidx{p.batch_index}."""

    image_label = "index"

    def title(self):
        return "Trace"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        enabled = InputAccordion(False, label="Trace", elem_id=self.elem_id("enabled"))
        mode = _Field("", "Mode")
        return [enabled, mode]

    def _record(self, hook, p, **extra):
        rec = {"hook": hook}
        for name in P_FIELDS:
            if hasattr(p, name):
                rec[name] = _snap(getattr(p, name))
        rec["extra_generation_params"] = _snap(p.extra_generation_params)
        rec.update(extra)
        TRACE.append(rec)

    def setup(self, p, enabled, mode):
        self._record("setup", p)

    def before_process(self, p, enabled, mode):
        self._record("before_process", p)

    def process(self, p, enabled, mode):
        self._record("process", p)
        if not enabled or mode != "rewrite":
            return
        p.all_prompts = [f"{x} rewritten{i} <lora:test_lora:0.{i + 3}>" for i, x in enumerate(p.all_prompts)]
        if p.enable_hr:
            p.all_hr_prompts = [f"{x} rewritten{i} <lora:test_lora:0.{i + 3}>" for i, x in enumerate(p.all_hr_prompts)]
        p.extra_generation_params["Trace list"] = [f"item{i}" for i in range(len(p.all_prompts))]
        p.extra_generation_params["Trace job"] = 'job, with "quotes": and colon'

    def before_process_batch(self, p, enabled, mode, **kwargs):
        self._record("before_process_batch", p, kw={k: str(v) for k, v in kwargs.items()})

    def process_batch(self, p, enabled, mode, **kwargs):
        self._record("process_batch", p, kw={k: str(v) for k, v in kwargs.items()})

    def postprocess_batch(self, p, enabled, mode, **kwargs):
        self._record("postprocess_batch", p, kw={k: str(v) for k, v in kwargs.items()})

    def postprocess_image(self, p, pp, enabled, mode):
        self._record("postprocess_image", p, pp_index=getattr(pp, "index", None))
        if enabled and mode == "rewrite":
            if self.image_label == "seed":
                p.extra_generation_params["Trace image"] = f"img{p.batch_index}-seed{p.seed}"
            else:
                p.extra_generation_params["Trace image"] = f"img{pp.index}-batchidx{p.batch_index}"

    def postprocess(self, p, processed, enabled, mode):
        self._record("postprocess", p, processed_infotexts=list(processed.infotexts))


API_FLOATS = {"cfg_scale", "hr_scale", "denoising_strength", "hr_cfg", "subseed_strength", "distilled_cfg_scale",
              "hr_distilled_cfg"}


def replay(run_txt2img, name):
    """Run a golden request through the REST-like path of the harness; returns (Processed, golden scenario)."""
    scenario = GOLDEN[name]
    request = dict(scenario["request"])
    alwayson = request.pop("alwayson_scripts")
    save_images = request.pop("save_images", False)
    request.pop("send_images", None)
    kwargs = {k: (float(v) if k in API_FLOATS and v is not None else v) for k, v in request.items()}
    TraceScript.image_label = "seed" if name in ("C_rewrite_iter3", "D_rewrite_hires") else "index"
    TRACE.clear()
    processed = run_txt2img([TraceScript], alwayson, api=True, save_images=save_images, **kwargs)
    return processed, scenario


def random_map(scenario, processed):
    """golden random value -> stub random value, for the seeds/subseeds the request left random (-1)."""
    info, req = scenario["response_info"], scenario["request"]
    mapping = {}
    if req.get("seed", -1) == -1:
        mapping.update(zip(info["all_seeds"], processed.all_seeds))
    if req.get("subseed", -1) == -1:
        mapping.update(zip(info["all_subseeds"], processed.all_subseeds))
    return mapping


def remap_text(text, mapping):
    return re.sub(r"\d+", lambda m: str(mapping.get(int(m.group(0)), m.group(0))), text)


def remap(value, mapping):
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return mapping.get(value, value)
    if isinstance(value, list):
        return [remap(v, mapping) for v in value]
    return value


def normalise_record(rec, mapping):
    out = {}
    for k, v in rec.items():
        if v == "None":  # the real trace stringified None lists
            v = None
        if k in ("all_seeds", "all_subseeds", "seeds", "subseeds"):
            v = remap(v, mapping)
        if k == "extra_generation_params":
            v = {ek: (CALLABLE if isinstance(ev, str) and ev.startswith("<function ") else ev) for ek, ev in v.items()}
        if k == "kw":
            v = {kk: remap_text(kv, mapping) for kk, kv in v.items() if kk != "images"}
        if k == "processed_infotexts":
            v = [remap_text(t, mapping) for t in v]
        out[k] = v
    return out


def stub_record(rec):
    rec = dict(rec)
    if "kw" in rec:
        rec["kw"] = {k: v for k, v in rec["kw"].items() if k != "images"}
    return rec


TRACED = ["A_batch2_iter2_lora", "B_hires", "C_rewrite_iter3", "D_rewrite_hires", "E_seed_random_subseed"]
ALL_SCENARIOS = TRACED + ["C2_rewrite_iter3", "C3_rewrite_batch2"]


@needs_golden
@pytest.mark.parametrize("name", TRACED)
def test_hook_order_matches_golden(run_txt2img, name):
    processed, scenario = replay(run_txt2img, name)
    golden = [(h["hook"], h["iteration"], h.get("pp_index")) for h in scenario["hook_trace"]]
    assert [(h["hook"], h["iteration"], h.get("pp_index")) for h in TRACE] == golden
    assert len(processed.images) == scenario["n_images"]


@needs_golden
@pytest.mark.parametrize("name", TRACED)
def test_p_at_every_hook_matches_golden(run_txt2img, name):
    processed, scenario = replay(run_txt2img, name)
    mapping = random_map(scenario, processed)
    assert len(TRACE) == len(scenario["hook_trace"])
    for step, (gold, mine) in enumerate(zip(scenario["hook_trace"], TRACE)):
        expected = normalise_record(gold, mapping)
        assert stub_record(mine) == expected, f"{name} step {step} ({gold['hook']})"


@needs_golden
@pytest.mark.parametrize("name", ALL_SCENARIOS)
def test_infotexts_match_golden_exactly(run_txt2img, name):
    processed, scenario = replay(run_txt2img, name)
    mapping = random_map(scenario, processed)
    expected = [remap_text(t, mapping) for t in scenario["response_info"]["infotexts"]]
    assert processed.infotexts == expected
    assert [img.info["parameters"] for img in processed.images] == expected


@needs_golden
@pytest.mark.parametrize("name", ALL_SCENARIOS)
def test_processed_js_matches_golden(run_txt2img, name):
    processed, scenario = replay(run_txt2img, name)
    mapping = random_map(scenario, processed)
    golden = scenario["response_info"]
    mine = json.loads(processed.js())
    assert list(mine) == list(golden)
    for key, value in golden.items():
        if key in ("job_timestamp", "denoising_strength", "restore_faces"):
            continue
        if key in ("seed", "subseed", "all_seeds", "all_subseeds"):
            value = remap(value, mapping)
        if key == "infotexts":
            value = [remap_text(t, mapping) for t in value]
        assert mine[key] == value, key
        if key == "extra_generation_params":
            assert list(mine[key]) == list(value)


@needs_golden
def test_specific_quirks(run_txt2img):
    # D: the hires prompt of image 1 is read with the batch-local index -> a wrong "Hires prompt".
    processed, _ = replay(run_txt2img, "D_rewrite_hires")
    assert "Hires prompt" not in processed.infotexts[0]
    assert 'Hires prompt: "a owl rewritten0 <lora:test_lora:0.3>"' in processed.infotexts[1]
    assert processed.images[0].size == (128, 128)
    # E: variation seed counts up, seed stays.
    processed, _ = replay(run_txt2img, "E_seed_random_subseed")
    assert processed.all_seeds[0] == processed.all_seeds[1]
    assert "Variation seed: 77," in processed.infotexts[0] and "Variation seed: 78," in processed.infotexts[1]
    # C: a list value is indexed with the batch-local index: every image gets item0.
    processed, _ = replay(run_txt2img, "C2_rewrite_iter3")
    assert all("Trace list: item0," in t for t in processed.infotexts)
    assert [re.search(r"Trace image: (\S+),", t).group(1) for t in processed.infotexts] == [
        "img0-batchidx0", "img1-batchidx0", "img2-batchidx0"]


@needs_golden
def test_golden_request_fields_are_dataclass_fields():
    import dataclasses

    api_only = {"alwayson_scripts", "infotext", "save_images", "send_images", "script_args", "script_name",
                "sampler_index"}
    init_fields = {f.name for f in dataclasses.fields(processing.StableDiffusionProcessingTxt2Img) if f.init}
    golden_keys = set(GOLDEN["A_batch2_iter2_lora"]["response_parameters_keys"]) - api_only
    assert golden_keys <= init_fields, golden_keys - init_fields


@needs_golden
def test_lora_registry_matches_golden_listing():
    golden = GOLDEN["GET_loras"][0]
    nod = networks.available_networks[golden["name"]]
    assert (nod.name, nod.alias) == (golden["name"], golden["alias"])
    assert nod.shorthash == "1e736908a712"


# ---- stand-in contract beyond the golden data --------------------------------------------------------------


def test_unknown_lora_fails_whole_batch_in_forge_and_is_skipped_in_neo(run_txt2img, forge_stub):
    prompt = "a cat <lora:test_lora:0.5> <lora:does_not_exist:0.5>"
    processed = run_txt2img([TraceScript], {"trace": [True, ""]}, api=True, prompt=prompt, seed=1, width=8, height=8)
    assert "Lora hashes" not in processed.infotexts[0]
    assert any("'NoneType' object has no attribute 'filename'" in (tb or "") for _m, tb in errors.reported)
    assert shared.sd_model.applied_loras == []
    with forge_stub.use_variant("neo"):
        networks.list_available_networks()
        processed = run_txt2img([TraceScript], {"trace": [True, ""]}, api=True, prompt=prompt, seed=1, width=8,
                                height=8)
        assert 'Lora hashes: "test_lora: 1e736908a712"' in processed.infotexts[0]
        assert isinstance(networks.forbidden_network_aliases, set)
    assert isinstance(networks.forbidden_network_aliases, dict)


def test_first_prompt_only_lora_in_a_batch(run_txt2img):
    processed = run_txt2img([], None, api=True, prompt=["x <lora:test_lora:0.7>", "y <lora:other_alias:0.2>"],
                            negative_prompt="", batch_size=2, seed=5, width=8, height=8)
    assert [f for f, *_ in shared.sd_model.applied_loras] == [networks.available_networks["test_lora"].filename]
    assert shared.sd_model.applied_loras[0][1:] == (0.7, 0.7)
    assert processed.infotexts[1].startswith("y <lora:other_alias:0.2>\n")


def test_network_on_disk_fields(lora_dir):
    other = networks.available_networks["other_file"]
    assert other.alias == "other_alias" and networks.available_network_aliases["other_alias"] is other
    assert other.shorthash == "" and other.sd_version.name == "SDXL"
    other.read_hash()
    import hashlib

    raw = (lora_dir / "other_file.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert other.hash == hashlib.sha256(raw[8 + n:]).hexdigest() and len(other.shorthash) == 12
    nested = networks.available_networks["nested_lora"]
    assert nested.alias == "nested_lora" and nested.get_alias() == "nested_lora"
    assert "none" in networks.forbidden_network_aliases


def test_variants_alias_module_and_postprocess_index(run_txt2img, forge_stub):
    import importlib

    assert importlib.import_module("modules.generation_parameters_copypaste").quote is infotext_utils.quote
    seen = []

    class Probe(TraceScript):
        def postprocess_image(self, p, pp, *args):
            seen.append(hasattr(pp, "index"))

    for variant in ("classic", "neo"):
        with forge_stub.use_variant(variant):
            if variant == "classic":
                with pytest.raises(ImportError):
                    importlib.import_module("modules.generation_parameters_copypaste")
            run_txt2img([Probe], None, api=True, prompt="a", seed=1, width=8, height=8)
    assert seen == [False, True]


def test_ui_path_setup_sees_defaults_and_api_path_calls_ui_again(run_txt2img):
    calls = []

    class Counting(TraceScript):
        def ui(self, is_img2img):
            calls.append(1)
            return super().ui(is_img2img)

    run_txt2img([Counting], {"Trace": [True]}, prompt="a", seed=42, steps=3, width=8, height=8)
    setup = TRACE[0]
    assert setup["hook"] == "setup" and (setup["seed"], setup["steps"], setup["sampler_name"]) == (-1, 50, None)
    assert TRACE[1]["seed"] == 42 and TRACE[1]["steps"] == 3
    assert len(calls) == 1
    run_txt2img([Counting], {"Trace": [True]}, api=True, prompt="a", seed=42, width=8, height=8)
    assert len(calls) == 3


def test_runner_slicing_override_filter_and_error_isolation(run_txt2img):
    class NoUi(scripts.Script):
        def title(self):
            return "No UI"

        def show(self, is_img2img):
            return scripts.AlwaysVisible

    class Broken(TraceScript):
        def title(self):
            return "Broken Script!"

        def process(self, p, *args):
            raise RuntimeError("boom")

    processed = run_txt2img([NoUi, TraceScript, Broken], None, prompt="a", seed=1, width=8, height=8,
                            do_not_save_samples=True, do_not_save_grid=True)
    runner = run_txt2img.last_runner
    no_ui, trace, broken = runner.alwayson_scripts
    assert (no_ui.args_from, no_ui.args_to) == (1, 1)
    assert (trace.args_from, trace.args_to, broken.args_from, broken.args_to) == (1, 3, 3, 5)
    assert runner.ordered_scripts("process") == [trace, broken]
    assert runner.ordered_scripts("before_hr") == []
    assert broken.elem_id("x") == "script_txt2img_broken_script_x"
    assert trace.controls[0].custom_script_source == "test_stub_fidelity.py"
    assert any(m.startswith("Error running process:") for m, _ in errors.reported)
    assert len(processed.images) == 1


def test_create_infotext_and_parse_round_trip(run_txt2img):
    seen = {}

    def per_image(p, index, prompt_text, **kwargs):
        seen[index] = prompt_text
        return f"value: {index}"

    class Writer(TraceScript):
        def process(self, p, *args):
            p.extra_generation_params.update({"Same": "Same", "Gone": None, "Fn": per_image, "Steps": 99})

    processed = run_txt2img([Writer], None, api=True, prompt="a, b", negative_prompt="", n_iter=2, seed=3, width=8,
                            height=8)
    text = processed.infotexts[1]
    assert text.startswith("a, b\nSteps: 99, Sampler: Euler")
    assert ", Same, " in text and "Gone" not in text and 'Fn: "value: 0"' in text
    assert seen == {0: "a, b"}
    parsed = infotext_utils.parse_generation_parameters(text)
    assert parsed["Prompt"] == "a, b" and parsed["Negative prompt"] == ""
    assert (parsed["Size-1"], parsed["Size-2"], parsed["Fn"], parsed["Seed"]) == ("8", "8", "value: 0", "4")
    # Processed.infotext (params.txt, scripts) uses the GLOBAL index, unlike the per-image infotext.
    assert processed.infotext(run_txt2img.last_p, 1) == text.replace('"value: 0"', '"value: 1"')


def test_opts_callbacks_and_main_thread():
    from modules_forge import main_thread

    with pytest.raises(AttributeError):
        shared.opts.orchestrator_missing  # noqa: B018
    assert getattr(shared.opts, "orchestrator_missing", "d") == "d"
    shared.opts.add_option("orchestrator_x", shared.OptionInfo(5, "X", section=("orchestrator", "Orchestrator")))
    assert shared.opts.orchestrator_x == 5 and shared.opts.set("orchestrator_x", 6) and shared.opts.orchestrator_x == 6

    hits = []
    script_callbacks.on_ui_settings(lambda: hits.append("settings"), name="mine")
    script_callbacks.on_ui_tabs(lambda: 1 / 0)
    script_callbacks.on_ui_tabs(lambda: [("blocks", "Tab", "tab_id")])
    script_callbacks.ui_settings_callback()
    assert script_callbacks.ui_tabs_callback() == [("blocks", "Tab", "tab_id")]
    assert hits == ["settings"]
    assert script_callbacks.callback_map["callbacks_ui_settings"][0].name.endswith("/ui_settings/mine")
    script_callbacks.clear_callbacks()
    assert not any(script_callbacks.callback_map.values())

    assert main_thread.run_and_wait_result(lambda a, b=0: a + b, 1, b=2) == 3
    assert main_thread.run_and_wait_result(lambda: 1 / 0) is None
    assert isinstance(main_thread.last_exception, ZeroDivisionError)


def test_ui_path_saves_images_and_grid(run_txt2img, tmp_path):
    processed = run_txt2img([TraceScript], None, prompt="a", seed=1, batch_size=2, width=8, height=8)
    assert processed.index_of_first_image == 1 and processed.images[0].size == (16, 8)
    saved = sorted(p.name for p in (tmp_path / "outputs").rglob("*.png"))
    assert len(saved) == 3
    assert extra_networks.parse_prompt("x <lora:a:1:te=0.5>")[1]["lora"][0].named == {"te": "0.5"}


# ---- checkpoints: nothing loaded until the first generation (audit §2) ----------------------------------------


def _quick(run_txt2img, **kw):
    kw.setdefault("prompt", "a")
    return run_txt2img([], None, api=True, seed=1, width=8, height=8, **kw)


def test_no_model_until_the_first_generation(run_txt2img, lora_dir):
    from modules import sd_models

    model = shared.sd_model
    assert type(model).__name__ == "FakeInitialModel" and model.cond_stage_model is None
    assert not any(hasattr(model, f) for f in ("is_sd1", "is_sd2", "is_sdxl", "is_sd3", "is_flux",
                                               "sd_checkpoint_info"))
    assert shared.opts.sd_model_checkpoint == "random-sd15.safetensors"  # .name, as main_entry sets it
    (info,) = sd_models.checkpoints_list.values()
    assert info.filename == str(lora_dir.parent / "Stable-diffusion" / "random-sd15.safetensors")  # per test
    assert (info.name, info.title, info.model_name, info.name_for_extra) == (
        "random-sd15.safetensors", "random-sd15.safetensors", "random-sd15", "random-sd15")
    assert info.sha256 is None and info.shorthash is None and re.fullmatch(r"[0-9a-f]{8}", info.hash)
    assert info.ids == [info.hash, "random-sd15", "random-sd15.safetensors", "random-sd15.safetensors",
                        "random-sd15", f"random-sd15.safetensors [{info.hash}]"]
    assert sd_models.select_checkpoint() is info

    processed = _quick(run_txt2img)
    model = shared.sd_model
    assert model.is_sd1 and not (model.is_sd2 or model.is_sdxl or model.is_sd3) and not hasattr(model, "is_flux")
    assert model.model_config.huggingface_repo == "runwayml/stable-diffusion-v1-5"
    assert model.sd_checkpoint_info is info and model.sd_model_hash == "3c6190d76a"
    assert info.title == "random-sd15.safetensors [3c6190d76a]" and info.sha256 == sd_models.DEFAULT_CHECKPOINT_SHA256
    assert sd_models.checkpoint_aliases["3c6190d76a"] is info and list(sd_models.checkpoints_list) == [info.title]
    assert "Model hash: 3c6190d76a, Model: random-sd15," in processed.infotexts[0]
    assert shared.opts.sd_checkpoint_hash == info.sha256
    again = _quick(run_txt2img)  # loaded once: the same object
    assert shared.sd_model is model and again.infotexts[0] == processed.infotexts[0]


@pytest.mark.parametrize("family, forge_flags, neo_flags, repo", [
    ("sd1", {"is_sd1"}, {"is_sd1"}, "runwayml/stable-diffusion-v1-5"),
    ("sd2", {"is_sd2"}, None, "stabilityai/stable-diffusion-2-1"),
    ("sdxl", {"is_sdxl"}, {"is_sdxl"}, "stabilityai/stable-diffusion-xl-base-1.0"),
    ("sdxl_refiner", {"is_sdxl"}, {"is_sdxl"}, "stabilityai/stable-diffusion-xl-refiner-1.0"),
    ("sd3", {"is_sd3"}, None, "stabilityai/stable-diffusion-3-medium-diffusers"),
    ("flux", set(), set(), "black-forest-labs/FLUX.1-dev"),
    ("flux_schnell", set(), set(), "black-forest-labs/FLUX.1-schnell"),
    ("chroma", set(), set(), "Chroma"),
    ("wan", None, {"is_wan"}, "Wan-AI/Wan2.1-T2V-14B"),
])
def test_a_checkpoints_family_is_in_its_header_and_decides_the_flags(run_txt2img, forge_stub, family, forge_flags,
                                                                      neo_flags, repo):
    from modules import sd_models

    info = sd_models.add_checkpoint(f"sub/{family}_v1.safetensors", family)
    assert (info.name, info.model_name, info.name_for_extra) == (f"sub/{family}_v1.safetensors",
                                                                 f"sub_{family}_v1", f"{family}_v1")
    assert info.title == info.name and info.sha256 is None
    raw = Path(info.filename).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    end = max(t["data_offsets"][1] for k, t in header.items() if k != "__metadata__")
    assert len(raw) == 8 + n + end  # a valid safetensors file: the offsets cover the data exactly
    assert len(raw) >= 0x110000 and info.hash != sd_models.checkpoint_aliases["random-sd15"].hash
    keys = set(header)
    expected = {"sd1": "cond_stage_model.transformer.text_model.", "sd2": "cond_stage_model.model.",
                "sdxl": "conditioner.embedders.1.model.", "sd3": "model.diffusion_model.joint_blocks.0.",
                "flux": "model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale"}
    if family in expected:
        assert any(k.startswith(expected[family]) for k in keys), keys
    assert ("model.diffusion_model.guidance_in.in_layer.weight" in keys) == (family == "flux")
    if family == "sdxl":
        assert header["model.diffusion_model.label_emb.0.0.weight"]["shape"][1] == 2816
    assert sd_models.guess_family(info.filename) == family

    for variant, flags in (("forge", forge_flags), ("neo", neo_flags)):
        with forge_stub.use_variant(variant):
            shared.opts.data["sd_model_checkpoint"] = info.name
            all_flags = {"is_sd1", "is_sdxl", "is_wan"} if variant == "neo" else {"is_sd1", "is_sd2", "is_sdxl",
                                                                                   "is_sd3"}
            if flags is None:  # this host cannot load it
                error = ModuleNotFoundError if variant == "neo" else ValueError
                with pytest.raises(error, match="ecognize"):
                    _quick(run_txt2img)
                continue
            _quick(run_txt2img)
            model = shared.sd_model
            assert {f for f in all_flags if getattr(model, f)} == flags
            assert not any(hasattr(model, f) for f in ({"is_sd1", "is_sd2", "is_sdxl", "is_sd3", "is_wan",
                                                        "is_flux"} - all_flags))
            assert model.model_config.huggingface_repo == repo
            assert model.sd_checkpoint_info is info and info.title == f"{info.name} [{info.shorthash}]"


def test_a_failed_load_leaves_no_model_in_forge_and_the_placeholder_in_neo(run_txt2img, forge_stub):
    from modules import sd_models

    bad = Path(sd_models.model_path) / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    sd_models.list_models()
    shared.opts.data["sd_model_checkpoint"] = "broken.safetensors"
    with pytest.raises(ValueError, match="Failed to recognize model type!"):
        _quick(run_txt2img)
    assert shared.sd_model is None
    with forge_stub.use_variant("neo"):
        with pytest.raises(ModuleNotFoundError, match="Failed to recognize model"):
            _quick(run_txt2img)
        assert type(shared.sd_model).__name__ == "FakeInitialModel"


def test_select_checkpoint_falls_back_to_the_first_and_says_so_every_time(capsys):
    from modules import sd_models

    sd_models.add_checkpoint("xl.safetensors", "sdxl")
    shared.opts.data["sd_model_checkpoint"] = "gone.safetensors"
    for _ in range(2):
        assert sd_models.select_checkpoint().name == "random-sd15.safetensors"
    assert capsys.readouterr().err.count("Checkpoint gone.safetensors not found; loading fallback "
                                         "random-sd15.safetensors") == 2
    shared.opts.data["sd_model_checkpoint"] = "xl"  # any alias: here the file stem
    assert sd_models.select_checkpoint().name == "xl.safetensors"


def test_closest_checkpoint_match_and_exact_override(run_txt2img):
    from modules import sd_models

    xl = sd_models.add_checkpoint("juggernautXL_v9.safetensors", "sdxl", "ab" * 32)
    assert xl.title == "juggernautXL_v9.safetensors [ababababab]" and xl.shorthash == "ababababab"  # hash known
    match = sd_models.get_closet_checkpoint_match
    assert match("juggernautXL_v9") is xl and match("juggernaut") is xl  # alias, then part of a title
    assert match("juggernautXL_v9.safetensors [0123456789]") is xl  # third step: without the [hash]
    assert match("nothing") is None and match("") is None

    _quick(run_txt2img, override_settings={"sd_model_checkpoint": "juggernaut"})  # not an exact alias: dropped
    assert shared.sd_model.sd_checkpoint_info.name == "random-sd15.safetensors"
    processed = _quick(run_txt2img, override_settings={"sd_model_checkpoint": "juggernautXL_v9"})
    assert "Model hash: ababababab, Model: juggernautXL_v9," in processed.infotexts[0]
    assert shared.opts.sd_model_checkpoint == "random-sd15.safetensors"  # restored afterwards ...
    assert shared.sd_model.is_sdxl  # ... while the override's model stays loaded until the next generation
    _quick(run_txt2img)
    assert shared.sd_model.is_sd1


def test_make_model_is_a_checkpoint_picked_and_generated_with():
    from modules import sd_models

    model = sd_models.make_model("ponyXL.safetensors", "cd" * 32, family="sdxl")
    assert shared.sd_model is model and model.is_sdxl and shared.opts.sd_model_checkpoint == "ponyXL.safetensors"
    assert model.sd_checkpoint_info.title == "ponyXL.safetensors [cdcdcdcdcd]"
    assert model.sd_model_hash == "cdcdcdcdcd"
    assert list(sd_models.checkpoints_list) == ["random-sd15.safetensors", "ponyXL.safetensors [cdcdcdcdcd]"]


# ---- hires upscalers (audit §3) ---------------------------------------------------------------------------


def test_hires_upscaler_names_per_host(forge_stub, lora_dir):
    assert list(shared.latent_upscale_modes) == ["Latent", "Latent (antialiased)", "Latent (bicubic)",
                                                 "Latent (bicubic antialiased)", "Latent (nearest)",
                                                 "Latent (nearest-exact)"]
    assert shared.latent_upscale_default_mode == "Latent"
    names = [u.name for u in shared.sd_upscalers]
    assert names[:3] == ["None", "Lanczos", "Nearest"] and "R-ESRGAN 4x+" in names
    assert type(shared.sd_upscalers[0]).__name__ == "UpscalerData" and shared.sd_upscalers[1].scaler.name
    modes = shared.latent_upscale_modes  # switched in place
    with forge_stub.use_variant("neo"):
        assert shared.latent_upscale_modes == {} and modes is shared.latent_upscale_modes
        assert shared.latent_upscale_default_mode == "None"
        assert [u.name for u in shared.sd_upscalers] == ["None", "ESRGAN"]
    assert "Latent" in shared.latent_upscale_modes
    forge_stub.reset(lora_dir=str(lora_dir), variant="neo")
    assert shared.latent_upscale_modes == {} and [u.name for u in shared.sd_upscalers] == ["None", "ESRGAN"]


@pytest.mark.parametrize("variant, upscaler, error", [
    ("forge", "Latent", None),
    ("forge", "Lanczos", None),
    ("forge", None, None),  # the default latent mode
    ("forge", "None", None),
    ("forge", "Nope", (Exception, "could not find upscaler named Nope")),
    ("classic", "Nope", (Exception, "could not find upscaler named Nope")),
    ("neo", "None", None),
    ("neo", "ESRGAN", None),
    ("neo", "Latent", (ValueError, 'Could not find upscaler named "Latent"')),
    ("neo", "Lanczos", (ValueError, 'Could not find upscaler named "Lanczos"')),
    ("neo", None, (TypeError, "string indices must be integers")),
])
def test_hires_upscaler_is_checked_like_the_host(run_txt2img, forge_stub, variant, upscaler, error):
    kw = dict(enable_hr=True, hr_scale=2, hr_upscaler=upscaler, denoising_strength=0.5)
    with forge_stub.use_variant(variant):
        if error is None:
            processed = _quick(run_txt2img, **kw)
            assert processed.images[0].size == (16, 16)
            assert (f"Hires upscaler: {upscaler}" in processed.infotexts[0]) == (upscaler is not None)
        else:
            with pytest.raises(error[0]) as caught:
                _quick(run_txt2img, **kw)
            assert type(caught.value) is error[0] and error[1] in str(caught.value)


# ---- Forge Neo (audit §5) ---------------------------------------------------------------------------------


def test_neo_generation_parameters_copypaste_is_a_near_empty_module(forge_stub):
    import importlib

    gpc = importlib.import_module("modules.generation_parameters_copypaste")
    assert gpc.bind_buttons is infotext_utils.bind_buttons and gpc.infotext_to_setting_name_mapping
    with forge_stub.use_variant("neo"):
        gpc = importlib.import_module("modules.generation_parameters_copypaste")
        assert {n for n in dir(gpc) if not n.startswith("_")} == {"bind_buttons", "create_buttons", "gr"}
        (button,) = gpc.create_buttons(["txt2img"])
        assert button.value == "txt2img" and button.elem_id == "txt2img_button"
        assert gpc.bind_buttons([button], "txt2img", print) is None and infotext_utils.registered_param_bindings == []
        assert not hasattr(infotext_utils, "bind_buttons")
        assert not hasattr(infotext_utils, "infotext_to_setting_name_mapping")
        assert infotext_utils.create_buttons and infotext_utils.register_paste_params_button
    assert hasattr(infotext_utils, "bind_buttons") and hasattr(infotext_utils, "infotext_to_setting_name_mapping")
    infotext_utils.bind_buttons({"img2img": "b"}, None, "txt2img")
    assert infotext_utils.registered_param_bindings[0].source_tabname == "txt2img"


def test_neo_cmd_opts_and_option_defaults(forge_stub, lora_dir):
    models = str(lora_dir.parent)
    assert shared.cmd_opts.ckpt_dir is None and not hasattr(shared.cmd_opts, "lora_dirs")
    assert shared.cmd_opts.embeddings_dir == str(lora_dir.parent.parent / "embeddings")  # <data>/embeddings
    opts = shared.opts
    assert (opts.CLIP_stop_at_last_layers, opts.grid_format, opts.randn_source) == (1, "png", "GPU")
    assert opts.quick_setting_list == [] and opts.font == "" and opts.save_incomplete_images is False
    assert shared.opts.get_default("sd_model_checkpoint") is None
    shared.opts.data["grid_format"] = "webp"  # the user's choice survives a switch
    with forge_stub.use_variant("neo"):
        assert shared.cmd_opts.lora_dirs == [] and shared.cmd_opts.ckpt_dirs == []
        assert not hasattr(shared.cmd_opts, "ckpt_dir") and not hasattr(shared.cmd_opts, "lyco_dir_backcompat")
        assert shared.cmd_opts.embeddings_dir == models + "/embeddings"
        assert shared.opts.CLIP_stop_at_last_layers == 2 and shared.opts.grid_format == "webp"
        assert shared.opts.randn_source == "CPU" and shared.opts.show_progress_every_n_steps == 1
        assert shared.opts.quicksettings_list == [] and shared.opts.get_default("sd_model_checkpoint") == ""
        with pytest.raises(AttributeError):
            shared.opts.quick_setting_list  # noqa: B018
        with pytest.raises(AttributeError):
            shared.opts.font  # noqa: B018
        assert shared.opts.sd_model_checkpoint == "random-sd15.safetensors"  # set when the UI was built
    forge_stub.reset(lora_dir=str(lora_dir), variant="neo")
    assert shared.opts.grid_format == "jpg" and shared.cmd_opts.lora_dir == str(lora_dir)


def test_neo_scans_lora_dirs_and_ckpt_dirs(forge_stub, tmp_path, write_safetensors):
    from modules import sd_models

    extra_loras, extra_ckpts = tmp_path / "more_loras", tmp_path / "more_ckpts"
    write_safetensors(extra_loras / "far_away.safetensors", {"ss_output_name": "far_away"})
    sd_models.write_checkpoint_file(str(extra_ckpts / "styles" / "far.safetensors"), "sdxl")
    shared.cmd_opts.lora_dirs = [str(extra_loras)]  # ignored by Forge, which has no --lora-dirs
    networks.list_available_networks()
    assert "far_away" not in networks.available_networks
    with forge_stub.use_variant("neo"):
        shared.cmd_opts.lora_dirs = [str(extra_loras)]
        shared.cmd_opts.ckpt_dirs = [str(extra_ckpts)]
        networks.list_available_networks()
        assert {"far_away", "test_lora"} <= set(networks.available_networks)
        sd_models.list_models()
        assert sd_models.checkpoint_aliases["far"].name == "styles/far.safetensors"
        assert [i.name for i in sd_models.checkpoints_list.values()] == ["styles/far.safetensors",
                                                                          "random-sd15.safetensors"]


def test_neo_infotext(run_txt2img, forge_stub):
    forge_text = _quick(run_txt2img, prompt="a flux of ideas").infotexts[0]
    assert ", Model hash: 3c6190d76a, Model: random-sd15, Version: f2.0.1v1.10.1-1.10.1" in forge_text
    assert "Clip skip" not in forge_text and "RNG" not in forge_text
    with forge_stub.use_variant("neo"):
        text = _quick(run_txt2img, prompt="a flux of ideas", cfg_scale=5).infotexts[0]
        assert text == ("a flux of ideas\nSteps: 50, Sampler: Euler, Schedule type: Automatic, CFG scale: 5, Seed: 1, "
                        "Size: 8x8, Model: random-sd15, Model hash: 3c6190d76a, Clip skip: 2, RNG: CPU, "
                        "Version: neo-2.26")
        assert processing.program_version() == "neo-2.26"
        parsed = infotext_utils.parse_generation_parameters(text + ", Lora hashes: \"my_flux_lora: abc\"")
        # "flux" anywhere in the line + CFG above 1: read as a Civitai Flux line
        assert (parsed["CFG scale"], parsed["Distilled CFG Scale"]) == ("1.0", "5")
        assert "Clip skip" not in parsed and "Model" not in parsed  # Model: the selected checkpoint's
        plain = infotext_utils.parse_generation_parameters("x\nSteps: 2, CFG scale: 5, Model: other, Size: 8x8")
        assert (plain["CFG scale"], plain["RNG"], plain["Schedule type"], plain["Model"]) == ("5", "CPU", "Simple",
                                                                                             "other")
        from modules import sd_models

        sd_models.make_model("xl.safetensors", "ef" * 32, family="sdxl")
        text = _quick(run_txt2img, prompt="b").infotexts[0]
        assert "Clip skip" not in text and "Model hash: efefefefef" in text  # Clip skip only for SD1
    forge_parsed = infotext_utils.parse_generation_parameters(text)
    assert forge_parsed["Clip skip"] == "1" and forge_parsed["RNG"] == "CPU" and forge_parsed["CFG scale"] == "7.0"


# ---- call_queue and progress (audit §0 #6, #7; §4) -------------------------------------------------------


def _fails(*args):
    raise ValueError("mine")


@pytest.mark.parametrize("variant", ["forge", "neo"])
def test_gpu_call_error_path_and_stale_main_thread_exception(forge_stub, variant, capsys):
    from modules import call_queue
    from modules_forge import main_thread

    with forge_stub.use_variant(variant):
        wrapped = call_queue.wrap_gradio_gpu_call(_fails, extra_outputs=["gallery", "status"])
        out = wrapped("task(x-1)")
        assert out[:2] == ("gallery", "status") and out[2].startswith("<div class='error'>ValueError: mine</div>")
        assert "Time taken: <wbr><span class='measurement'>0.0 sec.</span>" in out[2]
        assert "ValueError: mine" in capsys.readouterr().err  # its traceback is printed
        with pytest.raises(TypeError):  # extra_outputs + [html]: a tuple cannot take a list
            call_queue.wrap_gradio_gpu_call(_fails, extra_outputs=("gallery", "status"))("task(x-2)")

        assert main_thread.run_and_wait_result(lambda: 1 / 0) is None  # an earlier, unrelated failure ...
        stale = main_thread.last_exception
        assert isinstance(stale, str if variant == "neo" else ZeroDivisionError)
        assert stale == "ZeroDivisionError: division by zero" or variant != "neo"
        out = wrapped("task(x-3)")  # ... is what this error is reported as
        assert "ZeroDivisionError: division by zero" in out[2] and "mine" not in out[2]
        assert main_thread.run_and_wait_result(lambda: 1) == 1 and main_thread.last_exception is None
        assert "ValueError: mine" in wrapped("task(x-4)")[2]
        assert call_queue.wrap_gradio_gpu_call(_fails)("task(x-5)")[:2] == (None, "")


def test_gpu_call_resets_the_flags_and_records_the_task():
    from modules import call_queue, progress

    seen = {}

    def work(id_task, value):
        seen["during"] = progress.progressapi(id_task)
        shared.state.interrupted = True
        return [value, "<p>ok</p>"]

    out = call_queue.wrap_gradio_gpu_call(work, extra_outputs=[None])("task(y-1)", 7)
    assert out[0] == 7 and out[1].startswith("<p>ok</p><div class='performance'>")
    assert seen["during"]["active"] and not seen["during"]["queued"]
    assert shared.state.interrupted is False and shared.state.job == "" and shared.state.job_count == 0
    assert progress.progressapi("task(y-1)")["completed"] is True
    assert progress.recorded_results[-1] == ("task(y-1)", [7, "<p>ok</p>"])


def test_progress_answers_like_internal_progress(monkeypatch):
    import time

    from modules import call_queue, progress

    assert progress.progressapi("task(never)") == {
        "active": False, "queued": False, "completed": False, "progress": None, "eta": None, "live_preview": None,
        "id_live_preview": -1, "textinfo": "Waiting..."}  # the page drops this after 40 s
    before = time.time()
    progress.add_task_to_queue("task(a)")
    progress.add_task_to_queue("task(b)")
    assert before <= progress.pending_tasks["task(a)"] <= progress.pending_tasks["task(b)"] <= time.time()
    assert progress.progressapi("task(b)")["textinfo"] == "In queue: 2/2"
    assert progress.get_pending_tasks() == {"size": 2, "tasks": ["task(a)", "task(b)"]}

    # a task queued but never started (here: queue_lock never free) stays "queued" for good
    monkeypatch.setattr(call_queue, "LOCK_TIMEOUT", 0.05)
    with call_queue.queue_lock:
        out = call_queue.wrap_gradio_gpu_call(lambda t: ["x", ""], extra_outputs=[None])("task(c)")
    assert "queue_lock re-entered" in out[1]
    answer = progress.progressapi("task(c)")
    assert answer["queued"] and not answer["completed"] and answer["textinfo"] == "In queue: 3/3"

    progress.start_task("task(a)")
    shared.state.begin(job="task(a)")
    shared.state.job_count, shared.state.job_no, shared.state.sampling_steps, shared.state.sampling_step = 4, 1, 10, 5
    shared.state.textinfo = "image 2/4"
    answer = progress.progressapi("task(a)")
    assert answer["active"] and answer["progress"] == pytest.approx(0.375) and answer["textinfo"] == "image 2/4"
    progress.finish_task("task(a)")
    assert progress.progressapi("task(a)")["completed"]
    assert progress.progressapi("task(b)")["textinfo"] == "In queue: 1/2"


# ---- saving (audit §0 #10, §1 images.save_image) ---------------------------------------------------------


class _Stopper(scripts.Script):
    """Skips or interrupts the job in process_batch of the first batch (as a click on Skip/Interrupt)."""

    action = "skip"

    def title(self):
        return "Stopper"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process_batch(self, p, *args, **kwargs):
        if p.iteration == 0:
            getattr(shared.state, self.action)()


@pytest.mark.parametrize("action", ["skip", "interrupt"])
def test_skipped_or_interrupted_images_are_not_saved(run_txt2img, tmp_path, action):
    _Stopper.action = action
    outputs = tmp_path / "outputs"
    processed = run_txt2img([_Stopper], None, prompt="a", seed=1, n_iter=2, width=8, height=8)
    saved = sorted(p.name for p in outputs.rglob("*.png") if "grids" not in str(p))
    if action == "skip":  # the skipped batch is shown but not saved; the next one is saved
        assert len(processed.images) == 3 and saved == ["00000-2.png"]
    else:  # the interrupted batch is shown, not saved, and the job ends
        assert len(processed.images) == 1 and saved == []
        assert not hasattr(processed.images[0], "already_saved_as")
    shared.opts.data["save_incomplete_images"] = True
    run_txt2img([_Stopper], None, prompt="a", seed=1, n_iter=2, width=8, height=8)
    assert len([p for p in outputs.rglob("*.png") if "grids" not in str(p)]) == len(saved) + (2 if action == "skip"
                                                                                               else 1)


def test_an_interrupt_before_any_image_still_gives_one_infotext(run_txt2img):
    class Early(_Stopper):
        def process(self, p, *args):
            shared.state.interrupt()

    processed = run_txt2img([Early], None, prompt="a", seed=1, width=8, height=8)
    assert processed.images == [] and len(processed.infotexts) == 1 and processed.infotexts[0].startswith("a\n")


def test_save_image_names_and_folders_like_forge(tmp_path, forge_stub):
    import datetime

    from modules import images
    from PIL import Image

    today = datetime.date.today().strftime("%Y-%m-%d")
    out = tmp_path / "out"
    first, _ = images.save_image(Image.new("RGB", (4, 4)), str(out), "", 123, "a cat", "png", info="i")
    second, _ = images.save_image(Image.new("RGB", (4, 4)), str(out), "", 124, "a cat", "png", info="i")
    assert (first, second) == (f"{out}/{today}/00000-123.png", f"{out}/{today}/00001-124.png")
    grid, _ = images.save_image(Image.new("RGB", (4, 4)), str(out), "grid", 123, "a", "png", short_filename=True,
                                grid=True)
    assert grid == f"{out}/{today}/grid-0000.png"
    image = Image.new("RGB", (4, 4))
    text = 'a cat, red\nSteps: 2, Orchestrator swatch: "x × y"'
    swatch, txt = images.save_image(image, str(out), "swatch", seed=7, prompt="a", extension="jpg", info=text,
                                    short_filename=False, grid=True)
    assert swatch == f"{out}/{today}/swatch-0000-7.jpg" and txt is None and image.already_saved_as == swatch
    with Image.open(swatch) as saved:  # a jpg carries its infotext as EXIF UserComment
        assert images.read_info_from_image(saved)[0] == text
    with Image.open(first) as saved:
        assert images.read_info_from_image(saved) == ("i", {})
    shared.opts.data.update(grid_save_to_dirs=False, save_to_dirs=False)  # flat, and the prompt joins the seed
    assert images.save_image(Image.new("RGB", (4, 4)), str(out), "swatch", 8, "a b", "png", grid=True)[0] == \
        f"{out}/swatch-0000-8-a b.png"
    # Forge numbers from every name in the folder: the date folder "YYYY-MM-DD" counts as number YYYY
    assert images.save_image(Image.new("RGB", (4, 4)), str(out), "", 9, "a b", "png")[0] == \
        f"{out}/{int(today[:4]) + 1:05}-9-a b.png"
