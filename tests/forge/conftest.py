"""Fixtures for tests that run Forge-side code (the extension's scripts/) against tests/forge_stub.

The stand-in's *contents* go on sys.path, so `import modules.scripts`, `import networks`, `import launch`,
`import modules_forge.main_thread` resolve to it. This conftest is only imported for tests under tests/forge.

Fixtures:
- lora_dir             temp folder with tiny valid safetensors LoRAs (see LORAS)
- forge_stub (autouse) fresh stand-in state per test: stub_control.reset(lora_dir=...), outputs in tmp_path
- run_txt2img          Txt2ImgRunner: run_txt2img(scripts, script_args=None, *, api=False, **p_kwargs) -> Processed
- write_safetensors    the helper, for tests that need more LoRA files
- forge_app            start(tabs=True) -> {file name: script module}: this repository installed as
                       an extension and Forge started as a new process would start it (stub_control.start_webui)
- runner               scripts/orchestrator_runner.py loaded by Forge, over the sample LoRAs on an SDXL checkpoint
"""
from __future__ import annotations

import inspect
import json
import os
import struct
import sys
from pathlib import Path

import pytest

STUB_DIR = Path(__file__).resolve().parents[1] / "forge_stub"
if str(STUB_DIR) not in sys.path:
    sys.path.insert(0, str(STUB_DIR))

import stub_control  # noqa: E402
from modules import call_queue, processing, scripts, shared  # noqa: E402
from modules_forge import main_thread  # noqa: E402

from ..conftest import REPO  # noqa: E402
from ..dispatch.conftest import fakes  # noqa: E402,F401 (fake Forge servers for Run on all servers)

# The LoRA of the golden traces: Forge reported `Lora hashes: "test_lora: 1e736908a712"`.
TEST_LORA_SSHS = "1e736908a712" + "5" * 52

# file path (relative to lora_dir) -> safetensors __metadata__
LORAS = {
    "test_lora.safetensors": {"ss_output_name": "test_lora", "sshs_model_hash": TEST_LORA_SSHS,
                              "ss_base_model_version": "sd_v1"},
    "other_file.safetensors": {"ss_output_name": "other_alias", "ss_base_model_version": "sdxl_base_v1-0"},
    "sub/nested_lora.safetensors": {"ss_base_model_version": "sd_v1"},
}


def write_safetensors(path, metadata: dict, payload: bytes = b"\x00" * 16) -> Path:
    """A minimal valid safetensors file: 8-byte LE header length, JSON header (with __metadata__), tensor bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "__metadata__": {k: str(v) for k, v in metadata.items()},
        "lora_unet_down_blocks_0.lora_down.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
    }
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)
    return path


@pytest.fixture(name="write_safetensors")
def write_safetensors_fixture():
    return write_safetensors


@pytest.fixture
def lora_dir(tmp_path) -> Path:
    root = tmp_path / "models" / "Lora"
    for rel, meta in LORAS.items():
        write_safetensors(root / rel, meta, payload=rel.encode("utf-8").ljust(16, b"\x00")[:16])
    return root


@pytest.fixture(autouse=True)
def forge_stub(lora_dir, tmp_path):
    """Fresh stand-in state (variant "forge"), checkpoints in this test's own models folder (the one holding
    lora_dir); yields the stub_control module (set_variant / use_variant)."""
    stub_control.reset(lora_dir=str(lora_dir), models_dir=str(lora_dir.parent))
    shared.opts.data["outdir_txt2img_samples"] = str(tmp_path / "outputs" / "txt2img-images")
    shared.opts.data["outdir_txt2img_grids"] = str(tmp_path / "outputs" / "txt2img-grids")
    yield stub_control
    stub_control.set_variant("forge")


# Set by Forge's built-in Seed/Sampler scripts, whose setup() runs after every extension's setup() (UI path).
UI_DEFERRED_FIELDS = ("seed", "subseed", "subseed_strength", "seed_resize_from_h", "seed_resize_from_w",
                      "steps", "sampler_name", "scheduler")


class Txt2ImgRunner:
    """run_txt2img(scripts, script_args=None, *, api=False, save_images=False, **p_kwargs) -> Processed

    scripts      Script subclasses, registered in this order (like load order), instantiated by
                 ScriptRunner.initialize_scripts(False); ScriptRunner.setup_ui() calls each ui() once.
    script_args  None: every control's default `.value`;
                 dict {title: [args] or {"args": [args]}} (title case-insensitive, AlwaysOn only; missing
                 trailing args keep the defaults), as REST `alwayson_scripts`;
                 list/tuple: the complete p.script_args (index 0 = selected script, 0 = none).
    api=False    UI path: p built without seed/subseed/steps/sampler/scheduler, setup() runs (seeing the
                 dataclass defaults), then those fields are applied (as Forge's built-in scripts do), then
                 scripts_txt2img.run(...) and, if no selectable script ran, process_images(p), inline via
                 modules_forge.main_thread.run_and_wait_result under call_queue.queue_lock.
    api=True     REST path: defaults harvested by calling ui() again (as api.py does), p gets every field,
                 p.is_api = True (setup runs with is_ui=False), do_not_save_* = not save_images.
    After a run: .last_p, .last_runner.
    """

    def __init__(self):
        self.last_p = None
        self.last_runner = None

    def build_runner(self, script_classes) -> scripts.ScriptRunner:
        scripts.scripts_data.clear()  # like load_scripts(): each run is a fresh load of exactly these classes
        for cls in script_classes:
            try:
                path = inspect.getfile(cls)
            except TypeError:
                path = f"{cls.__name__}.py"
            scripts.scripts_data.append(scripts.ScriptClassData(cls, path, os.path.dirname(path), None))
        runner = scripts.ScriptRunner()
        runner.initialize_scripts(False)
        runner.setup_ui()
        scripts.scripts_txt2img = runner
        return runner

    @staticmethod
    def default_args(runner, *, harvest_again: bool):
        args = [None] * len(runner.inputs)
        args[0] = 0
        for script in runner.scripts:
            controls = script.ui(script.is_img2img) if harvest_again else script.controls
            if controls:
                args[script.args_from:script.args_to] = [c.value for c in controls]
        return args

    @staticmethod
    def apply_alwayson(runner, args, mapping):
        for title, values in mapping.items():
            script = next((s for s in runner.scripts if s.title().lower() == title.lower()), None)
            if script is None:
                raise KeyError(f"always on script {title} not found")
            if not script.alwayson:
                raise ValueError("Cannot have a selectable script in the always on scripts params")
            values = values.get("args", []) if isinstance(values, dict) else values
            for idx in range(min(script.args_to - script.args_from, len(values))):
                args[script.args_from + idx] = values[idx]
        return args

    def __call__(self, script_classes, script_args=None, *, api=False, save_images=False, **p_kwargs):
        runner = self.build_runner(script_classes)
        self.last_runner = runner
        if isinstance(script_args, (list, tuple)):
            args = list(script_args)
        else:
            args = self.default_args(runner, harvest_again=api)
            if script_args:
                self.apply_alwayson(runner, args, script_args)

        if api:
            p_kwargs.setdefault("do_not_save_samples", not save_images)
            p_kwargs.setdefault("do_not_save_grid", not save_images)
            p = processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, **p_kwargs)
            self.last_p = p
            p.is_api = True
            p.scripts = runner
            p.outpath_grids = shared.opts.outdir_txt2img_grids
            p.outpath_samples = shared.opts.outdir_txt2img_samples
            with call_queue.queue_lock:
                shared.state.begin(job="scripts_txt2img")
                try:
                    p.script_args = tuple(args)
                    return processing.process_images(p)
                finally:
                    shared.state.end()

        deferred = {k: p_kwargs.pop(k) for k in UI_DEFERRED_FIELDS if k in p_kwargs}
        p_kwargs.setdefault("outpath_samples", shared.opts.outdir_samples or shared.opts.outdir_txt2img_samples)
        p_kwargs.setdefault("outpath_grids", shared.opts.outdir_grids or shared.opts.outdir_txt2img_grids)
        p = processing.StableDiffusionProcessingTxt2Img(**p_kwargs)
        self.last_p = p
        p.scripts = scripts.scripts_txt2img
        p.script_args = tuple(args)
        for k, v in deferred.items():
            setattr(p, k, v)

        def job():
            processed = scripts.scripts_txt2img.run(p, *p.script_args)
            if processed is None:
                processed = processing.process_images(p)
            shared.total_tqdm.clear()
            return processed

        with call_queue.queue_lock:
            shared.state.begin(job="txt2img")
            try:
                main_thread.last_exception = None
                processed = main_thread.run_and_wait_result(job)
            finally:
                shared.state.end()
        if processed is None and main_thread.last_error is not None:
            raise main_thread.last_error  # the object (Neo's last_exception is only its text)
        return processed


@pytest.fixture
def run_txt2img() -> Txt2ImgRunner:
    return Txt2ImgRunner()


@pytest.fixture
def forge_app(tmp_path):
    """Install this repository as an extension of a Forge that has not run it yet; call the result to start
    Forge (again, for a UI reload): it loads every file in scripts/ the way Forge does and returns the loaded
    modules by file name. The LoRA library's cache and the history index go to tmp_path (never the extension's
    own data folder: a user's clone keeps its ratings there)."""
    shared.opts.data["orchestrator_cache_path"] = str(tmp_path / "library.sqlite")
    shared.opts.data["orchestrator_history_path"] = str(tmp_path / "history.sqlite")
    stub_control.install_extension(str(REPO))
    stub_control.forget_extension_modules()
    return stub_control.start_webui


@pytest.fixture
def runner(lora_dir, forge_app):
    """The batch and swatch runner, with the bundled sample LoRAs in Forge's registry, an SDXL model
    loaded and image saving on."""
    import shutil

    import networks
    from modules import sd_models

    from lib_orchestrator import SAMPLE_LORAS

    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    networks.list_available_networks()
    shared.sd_model = sd_models.make_model("juggernautXL_v9.safetensors", "ab" * 32, family="sdxl")
    shared.opts.data["samples_save"] = True
    return forge_app(tabs=False)["orchestrator_runner.py"]


@pytest.fixture
def load_orchestrator(lora_dir, monkeypatch, forge_app):
    """Call it to load the real script as Forge loads it (after a test's own Settings), with the sample LoRAs in
    Forge's LoRA folder and an SDXL checkpoint loaded; it returns (module, script classes)."""
    import shutil

    import networks
    from modules import sd_models

    from lib_orchestrator import SAMPLE_LORAS

    from . import fake_gradio

    def load():
        try:
            import gradio  # noqa: F401
        except ImportError:
            monkeypatch.setitem(sys.modules, "gradio", fake_gradio)
        shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
        networks.list_available_networks()
        shared.sd_model = sd_models.make_model("juggernautXL_v9.safetensors", "ab" * 32, family="sdxl")
        module = forge_app(tabs=False)["orchestrator.py"]
        assert module is not None, "the script failed to load"
        return module, [d.script_class for d in scripts.scripts_data]

    return load
