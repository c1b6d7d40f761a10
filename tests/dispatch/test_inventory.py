"""A server's inventory read from Forge-shaped answers, and what a job needs that a server lacks.

The answers below are written as Forge's API writes them (modules/api/api.py:729 for sd-models,
sd_forge_lora/scripts/lora_script.py:42-48 for loras, modules/scripts.py:663 for script-info names), by hand."""
from __future__ import annotations

from lib_orchestrator.batches.model import Batch, BatchImage, Settings
from lib_orchestrator.dispatch.forge_client import ForgeClient
from lib_orchestrator.dispatch.inventory import (
    Checkpoint,
    Inventory,
    Lora,
    checkpoint_title,
    inventory_from_api,
    missing,
    missing_settings,
    split_hash,
)
from lib_orchestrator.dispatch.jobs import NewJob, batch_jobs

from .fake_forge import FakeForge

SHA_BASE = "31e35c80fca78465ca6f6737693ab90732c7eea75a53fbdf42b6cce50206a3ac"
SHA_JUGG = "4496b36d48" + "0" * 54

SD_MODELS = [
    {"title": "sd_xl_base_1.0.safetensors [31e35c80fc]", "model_name": "sd_xl_base_1.0", "hash": "31e35c80fc",
     "sha256": SHA_BASE, "filename": "/forge/models/Stable-diffusion/sd_xl_base_1.0.safetensors", "config": None},
    {"title": "SDXL/juggernautXL_v9.safetensors [4496b36d48]", "model_name": "SDXL_juggernautXL_v9",
     "hash": "4496b36d48", "sha256": SHA_JUGG,
     "filename": "/forge/models/Stable-diffusion/SDXL/juggernautXL_v9.safetensors", "config": None},
    # a fresh install: the hash is computed at the first load only
    {"title": "flux1-dev-bnb-nf4-v2.safetensors", "model_name": "flux1-dev-bnb-nf4-v2", "hash": None,
     "sha256": None, "filename": "/forge/models/Stable-diffusion/flux1-dev-bnb-nf4-v2.safetensors", "config": None},
]
LORAS = [
    {"name": "add-detail-xl", "alias": "add-detail-xl", "path": "/forge/models/Lora/add-detail-xl.safetensors",
     "metadata": {}},
    {"name": "frieren_v2-000010", "alias": "frieren", "path": "/forge/models/Lora/chars/frieren_v2-000010.safetensors",
     "metadata": {"ss_output_name": "frieren"}},
]
SCRIPTS = [{"name": "orchestrator", "is_alwayson": True, "is_img2img": False, "args": []},
           {"name": "orchestrator", "is_alwayson": True, "is_img2img": True, "args": []}]


def forge_inventory(options=None, scripts=SCRIPTS, loras=LORAS, sd_models=SD_MODELS) -> Inventory:
    return inventory_from_api("http://gpu1:7860", sd_models, loras,
                              options or {"sd_model_checkpoint": "sd_xl_base_1.0.safetensors [31e35c80fc]"}, scripts)


def job(checkpoint: str = "", loras=()) -> NewJob:
    return NewJob("b-000000000000", 0, 0, checkpoint, tuple(loras), "key")


def test_forge_answers_become_the_inventory():
    inv = forge_inventory()
    assert inv.url == "http://gpu1:7860"
    assert inv.checkpoints[1] == Checkpoint("SDXL/juggernautXL_v9.safetensors [4496b36d48]", "SDXL_juggernautXL_v9",
                                            "/forge/models/Stable-diffusion/SDXL/juggernautXL_v9.safetensors",
                                            "4496b36d48", SHA_JUGG)
    assert inv.checkpoints[2].hash == "" and inv.checkpoints[2].sha256 == ""  # null: not computed yet
    assert inv.loras[1] == Lora("frieren_v2-000010", "frieren",
                                "/forge/models/Lora/chars/frieren_v2-000010.safetensors")
    assert inv.loaded == "sd_xl_base_1.0.safetensors [31e35c80fc]"
    assert inv.has_orchestrator


def test_the_selected_checkpoint_given_by_a_short_name_is_reported_as_its_title():
    # POST /options stores the string it was given; the option then holds a short name, not the title
    assert forge_inventory({"sd_model_checkpoint": "juggernautXL_v9"}).loaded == \
        "SDXL/juggernautXL_v9.safetensors [4496b36d48]"
    assert forge_inventory({"sd_model_checkpoint": None}).loaded == ""
    assert forge_inventory({"sd_model_checkpoint": "gone.ckpt"}).loaded == "gone.ckpt"


def test_our_script_counts_only_as_a_txt2img_always_on_script():
    assert not forge_inventory(scripts=[]).has_orchestrator
    assert not forge_inventory(scripts=[{"name": "orchestrator", "is_alwayson": True, "is_img2img": True}]
                               ).has_orchestrator
    assert not forge_inventory(scripts=[{"name": "orchestrator", "is_alwayson": False, "is_img2img": False}]
                               ).has_orchestrator


def test_odd_answers_leave_out_what_cannot_be_read():
    inv = inventory_from_api("http://x", [{"title": None}, "junk", {"title": "a.ckpt"}], None, [], None)
    assert [c.title for c in inv.checkpoints] == ["a.ckpt"]
    assert inv.loras == () and inv.loaded == "" and not inv.has_orchestrator


def test_a_checkpoint_is_found_by_title_name_model_name_file_name_stem_or_hash():
    inv = forge_inventory()
    jugg = "SDXL/juggernautXL_v9.safetensors [4496b36d48]"
    for name in (jugg, "SDXL/juggernautXL_v9.safetensors", "SDXL_juggernautXL_v9", "juggernautXL_v9.safetensors",
                 "juggernautXL_v9", "4496b36d48", SHA_JUGG, "  juggernautXL_v9  "):
        assert checkpoint_title(name, inv) == jugg, name
    assert checkpoint_title("flux1-dev-bnb-nf4-v2", inv) == "flux1-dev-bnb-nf4-v2.safetensors"


def test_a_checkpoint_is_never_guessed_from_part_of_a_name_or_another_case():
    inv = forge_inventory()
    for name in ("juggernaut", "sd_xl", "SD_XL_BASE_1.0", "xl", "", "juggernautXL_v9.ckpt"):
        assert checkpoint_title(name, inv) is None, name


def test_a_hash_in_the_name_must_agree_with_the_servers():
    inv = forge_inventory()
    assert checkpoint_title("sd_xl_base_1.0.safetensors [31e35c80fc]", inv) == \
        "sd_xl_base_1.0.safetensors [31e35c80fc]"
    # another machine keeps it in a subfolder: found by file name, and the hash says it is the same file
    moved = forge_inventory(sd_models=[dict(SD_MODELS[0], title="XL/sd_xl_base_1.0.safetensors [31e35c80fc]",
                                            model_name="XL_sd_xl_base_1.0",
                                            filename="/m/XL/sd_xl_base_1.0.safetensors")])
    assert checkpoint_title("sd_xl_base_1.0.safetensors [31e35c80fc]", moved) == \
        "XL/sd_xl_base_1.0.safetensors [31e35c80fc]"
    assert checkpoint_title("sd_xl_base_1.0.safetensors [0123456789]", inv) is None
    assert checkpoint_title(f"sd_xl_base_1.0.safetensors [{SHA_BASE}]", inv) is not None  # full sha256
    # the server has not computed the hash: the name decides
    assert checkpoint_title("flux1-dev-bnb-nf4-v2.safetensors [abcdef0123]", inv) == "flux1-dev-bnb-nf4-v2.safetensors"


def test_two_files_with_one_stem_are_told_apart_by_hash_or_not_at_all():
    models = [{"title": "a/model.safetensors [aaaaaaaaaa]", "model_name": "a_model", "hash": "aaaaaaaaaa",
               "sha256": "a" * 64, "filename": "/m/a/model.safetensors"},
              {"title": "b/model.safetensors [bbbbbbbbbb]", "model_name": "b_model", "hash": "bbbbbbbbbb",
               "sha256": "b" * 64, "filename": "/m/b/model.safetensors"}]
    inv = forge_inventory(sd_models=models)
    assert checkpoint_title("model", inv) is None
    assert checkpoint_title("model.safetensors [bbbbbbbbbb]", inv) == "b/model.safetensors [bbbbbbbbbb]"
    assert missing(job("model"), inv) == ["checkpoint 'model' (ambiguous: a/model.safetensors [aaaaaaaaaa], "
                                          "b/model.safetensors [bbbbbbbbbb])"]


def test_split_hash_reads_only_a_hex_bracket():
    assert split_hash("x.safetensors [31E35C80FC]") == ("x.safetensors", "31e35c80fc")
    assert split_hash("x [v2]") == ("x [v2]", "")
    assert split_hash("x") == ("x", "")


def test_missing_names_the_checkpoint_and_loras_the_server_lacks():
    inv = forge_inventory()
    assert missing(job("sd_xl_base_1.0", ["add-detail-xl", "frieren"]), inv) == []
    assert missing(job("", ["frieren_v2-000010"]), inv) == []  # "" = whatever is loaded
    assert missing(job("ponyDiffusionV6XL", ["frieren", "eyepatch", "Frieren"]), inv) == \
        ["checkpoint 'ponyDiffusionV6XL'", "LoRA 'eyepatch'", "LoRA 'Frieren'"]
    assert missing(job("sd_xl_base_1.0.safetensors [0123456789]"), inv) == \
        ["checkpoint 'sd_xl_base_1.0.safetensors [0123456789]' (the server's sd_xl_base_1.0.safetensors "
         "[31e35c80fc] has another hash)"]


def test_an_alias_two_files_share_works_only_as_a_file_name():
    # networks.py:147-148: the second file with alias "style" makes it forbidden; each stem still works
    loras = [{"name": "style_a", "alias": "style", "path": "/l/style_a.safetensors"},
             {"name": "style_b", "alias": "style", "path": "/l/style_b.safetensors"},
             {"name": "nothing", "alias": "None", "path": "/l/nothing.safetensors"},
             {"name": "solo", "alias": "solo_alias", "path": "/l/solo.safetensors"}]
    inv = forge_inventory(loras=loras)
    assert missing(job(loras=["style", "None", "style_a", "style_b", "nothing", "solo_alias", "solo"]), inv) == \
        ["LoRA 'style'", "LoRA 'None'"]


def test_an_alias_equal_to_another_files_name_is_forbidden():
    loras = [{"name": "detail", "alias": "detail", "path": "/l/detail.safetensors"},
             {"name": "detail_v2", "alias": "detail", "path": "/l/detail_v2.safetensors"}]
    assert missing(job(loras=["detail"]), forge_inventory(loras=loras)) == []  # still the first file's stem


def test_a_tag_forge_skips_needs_nothing():
    # Forge looks extra networks up by their exact name (extra_networks.py); none is registered as `lyco` or `LORA`
    batch = Batch("b", "", 1, Settings(checkpoint="sd_xl_base_1.0"),
                  (BatchImage(0, 1, "a fox <lyco:watercolor_style:0.6> <LORA:loud:1> <lora:add-detail-xl:0.8>"),))
    (new_job,) = batch_jobs(batch)
    assert new_job.loras == ("add-detail-xl",)
    assert missing(new_job, forge_inventory()) == []


# ---- the batch's settings on the server ------------------------------------------------------------------------


def forge_settings_inventory(**answers):
    """An inventory read from answers shaped like Forge's (api.py:693-724), written here by hand."""
    samplers = [{"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {"scheduler": "karras"}},
                {"name": "Euler a", "aliases": ["k_euler_a", "k_euler_ancestral"], "options": {"uses_ensd": True}},
                {"name": "Euler", "aliases": ["k_euler"], "options": {}}]
    schedulers = [{"name": "automatic", "label": "Automatic", "aliases": None, "default_rho": -1,
                   "need_inner_model": False},
                  {"name": "karras", "label": "Karras", "aliases": None, "default_rho": 7.0, "need_inner_model": False},
                  {"name": "sgm_uniform", "label": "SGM Uniform", "aliases": ["SGMUniform"], "default_rho": -1,
                   "need_inner_model": True}]
    upscalers = [{"name": "None", "model_name": None, "model_path": None, "model_url": None, "scale": 4},
                 {"name": "R-ESRGAN 4x+", "model_name": "RealESRGAN_x4plus", "model_path": "x", "model_url": None,
                  "scale": 4}]
    latent = [{"name": "Latent"}, {"name": "Latent (nearest-exact)"}]
    given = dict(samplers=samplers, schedulers=schedulers, upscalers=upscalers, latent_upscale_modes=latent)
    given.update(answers)
    return inventory_from_api("http://gpu1:7860", [], [], {}, [], **given)


def test_the_settings_lists_are_read_from_forges_answers():
    inv = forge_settings_inventory()
    assert [s.name for s in inv.samplers] == ["DPM++ 2M", "Euler a", "Euler"]
    assert inv.samplers[1].aliases == ("k_euler_a", "k_euler_ancestral")
    assert [(s.name, s.label, s.aliases) for s in inv.schedulers] == [
        ("automatic", "Automatic", ()), ("karras", "Karras", ()), ("sgm_uniform", "SGM Uniform", ("SGMUniform",))]
    assert inv.upscalers == ("None", "R-ESRGAN 4x+")
    assert inv.latent_upscale_modes == ("Latent", "Latent (nearest-exact)")


def test_an_inventory_built_without_the_settings_lists_knows_none_and_blocks_nothing():
    inv = Inventory("http://h:1", (), (), "", False)
    assert (inv.samplers, inv.schedulers, inv.upscalers, inv.latent_upscale_modes) == (None, None, None, None)
    assert missing_settings(Settings(sampler_name="Anything", scheduler="Whatever", enable_hr=True,
                                     hr_upscaler="Nope"), inv) == []


def test_settings_the_server_has_are_not_missing():
    inv = forge_settings_inventory()
    assert missing_settings(Settings(sampler_name="Euler a", scheduler="Automatic"), inv) == []
    assert missing_settings(Settings(sampler_name="DPM++ 2M", scheduler="Karras"), inv) == []
    assert missing_settings(Settings(sampler_name="DPM++ 2M", scheduler="karras"), inv) == []  # name or label
    # A1111's old "<sampler> <scheduler>" names: Forge cuts the scheduler off (label, name or alias)
    assert missing_settings(Settings(sampler_name="DPM++ 2M Karras"), inv) == []
    assert missing_settings(Settings(sampler_name="Euler SGMUniform"), inv) == []
    assert missing_settings(Settings(enable_hr=True, hr_upscaler="Latent (nearest-exact)"), inv) == []
    assert missing_settings(Settings(enable_hr=True, hr_upscaler="R-ESRGAN 4x+"), inv) == []


def test_settings_forge_would_swap_silently_or_refuse_are_missing():
    inv = forge_settings_inventory()
    assert missing_settings(Settings(sampler_name="DPM++ 3M SDE"), inv) == ["sampler 'DPM++ 3M SDE'"]
    assert missing_settings(Settings(sampler_name="euler a"), inv) == ["sampler 'euler a'"]  # case counts
    assert missing_settings(Settings(sampler_name="k_euler_a"), inv) == ["sampler 'k_euler_a'"]  # no alias lookup
    assert missing_settings(Settings(sampler_name="DPM++ 2M Turbo"), inv) == ["sampler 'DPM++ 2M Turbo'"]
    assert missing_settings(Settings(scheduler="Beta"), inv) == ["scheduler 'Beta'"]
    assert missing_settings(Settings(scheduler="SGMUniform"), inv) == ["scheduler 'SGMUniform'"]  # alias: no
    assert missing_settings(Settings(sampler_name="Heun", scheduler="Beta", enable_hr=True,
                                     hr_upscaler="4x-UltraSharp"), inv) == [
        "sampler 'Heun'", "scheduler 'Beta'", "hires upscaler '4x-UltraSharp'"]
    assert missing_settings(Settings(hr_upscaler="4x-UltraSharp"), inv) == []  # no hires pass: not needed


def test_a_server_without_the_schedulers_route_does_not_block_on_the_scheduler():
    inv = forge_settings_inventory(schedulers=None)
    assert inv.schedulers is None
    assert missing_settings(Settings(sampler_name="Euler", scheduler="Beta"), inv) == []
    assert missing_settings(Settings(sampler_name="DPM++ 2M Karras"), inv) == ["sampler 'DPM++ 2M Karras'"]


def test_the_client_reads_the_settings_lists_from_the_fake_forge():
    with FakeForge(samplers=["Euler", "DDIM"], schedulers=[("automatic", "Automatic", None), ("beta", "Beta", None)],
                   upscalers=["None", "Lanczos"], latent_upscale_modes=["Latent"]) as fake:
        inv = ForgeClient(fake.url, connect_timeout_s=10.0).inventory()
    assert [s.name for s in inv.samplers] == ["Euler", "DDIM"]
    assert [s.label for s in inv.schedulers] == ["Automatic", "Beta"]
    assert (inv.upscalers, inv.latent_upscale_modes) == (("None", "Lanczos"), ("Latent",))
    with FakeForge(schedulers=None) as old:
        assert ForgeClient(old.url, connect_timeout_s=10.0).inventory().schedulers is None
