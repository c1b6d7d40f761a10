"""Wildcard folders inside Forge (lib_orchestrator/wildcards/discovery.py, scripts/orchestrator_state.py): ours,
the user's, then every enabled extension's `wildcards/` in Forge's order, sd-dynamic-prompts' even when disabled.

The fake extensions are folders the test writes; what each one's lists hold is written here, so the expected
prompts come from the fixture, not from the engine."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Dict

import pytest

from lib_orchestrator import BUNDLED_WILDCARDS, SAMPLE_LORAS
from lib_orchestrator.wildcards.discovery import InstalledExtension, WildcardFolder, describe, search_order

# Each extension's wildcards/ files. "shared" is defined by the user's folder and by two extensions.
EXTENSIONS: Dict[str, Dict[str, str]] = {
    "a-pack": {"animals.txt": "heron\n", "shared.txt": "from a-pack\n", "pack/deep/colors.txt": "teal\n",
               "both.txt": "from a-pack\n"},
    "sd-dynamic-prompts": {"sddp_only.txt": "lantern\n", "jumbo/moods.yaml": "calm: [serene]\n"},
    "stable-diffusion-webui-wildcards": {"shared.txt": "from sd-webui-wildcards\n", "weather.txt": "fog\n",
                                         "both.txt": "from sd-webui-wildcards\n"},
    "z-disabled": {"hidden.txt": "never\n"},
    "no-wildcards": {},
}
USER = {"shared.txt": "from the user\n", "mine.txt": "kite\n"}


def write(root: Path, files: Dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def installed(tmp_path, forge_stub):
    """Forge's extensions/ with the fake extensions (z-disabled and sd-dynamic-prompts disabled, as a user who
    switched would leave it) and a user folder in Settings; returns (extensions folder, user folder)."""
    from modules import extensions, shared

    base = tmp_path / "extensions"
    for name, files in EXTENSIONS.items():
        folder = base / name
        folder.mkdir(parents=True)
        if files:
            write(folder / "wildcards", files)
        forge_stub.install_extension(str(folder))
    for ext in extensions.extensions:
        if ext.name in ("z-disabled", "sd-dynamic-prompts"):
            ext.enabled = False
    user = write(tmp_path / "my wildcards", USER)
    shared.opts.data["orchestrator_wildcard_dirs"] = str(user)
    return base, user


@pytest.fixture
def orchestrator(installed, load_orchestrator):
    """The real script loaded as Forge loads it (this repository installed as one more extension)."""
    return load_orchestrator()


def test_extensions_wildcard_folders_come_after_the_users_in_forges_order(orchestrator, installed):
    module, _ = orchestrator
    base, user = installed
    folders = module.state.wildcard_folders()
    assert [(f.origin, os.path.realpath(f.path)) for f in folders] == [
        ("bundled", os.path.realpath(BUNDLED_WILDCARDS)),
        ("saved templates", os.path.realpath(module.state.SAVED_WILDCARDS)),
        ("Settings", os.path.realpath(user)),
        ("a-pack", os.path.realpath(base / "a-pack" / "wildcards")),
        ("sd-dynamic-prompts", os.path.realpath(base / "sd-dynamic-prompts" / "wildcards")),
        ("stable-diffusion-webui-wildcards", os.path.realpath(base / "stable-diffusion-webui-wildcards" / "wildcards")),
    ]
    assert module.state.wildcard_dirs() == tuple(f.path for f in folders)


def test_a_generation_uses_the_extensions_wildcards_and_the_users_win(orchestrator, run_txt2img):
    _, classes = orchestrator
    template = "__animals__, __sddp_only__, __jumbo/calm__, __weather__, __pack/deep/colors__, __shared__, __mine__"
    # [enabled, LoRAs off]: the prompt is the template's alone
    processed = run_txt2img(classes, {"Orchestrator": [True, False]}, prompt=template, negative_prompt="",
                            seed=7, steps=2, width=64, height=64)
    assert processed.all_prompts == ["heron, lantern, serene, fog, teal, from the user, kite"]


def test_a_disabled_extensions_wildcards_are_not_found(orchestrator):
    module, _ = orchestrator
    store = module.state.engine().store
    assert store.lookup("hidden").names == ()
    assert "hidden" not in store.names()
    # when a name is defined by several extensions, the first in Forge's order owns it (after the user's)
    assert [e.text for e in store.entries_of("both")] == ["from a-pack"]


def test_the_extension_search_can_be_turned_off_in_settings(orchestrator, installed):
    from modules import shared

    module, _ = orchestrator
    assert shared.opts.data_labels["orchestrator_wildcard_extensions"].default is True
    shared.opts.data["orchestrator_wildcard_extensions"] = False
    assert [f.origin for f in module.state.wildcard_folders()] == ["bundled", "saved templates", "Settings"]
    assert module.state.engine().store.lookup("animals").names == ()


def test_settings_show_the_folders_in_search_order(orchestrator, installed):
    from modules import shared

    module, _ = orchestrator
    info = shared.opts.data_labels["orchestrator_wildcard_order"]
    assert info.section == module.SECTION and info.do_not_save
    listed = re.findall(r"<li><code>(.*?)</code> \((.*?)\)</li>", info.default)
    expected = [(f.path, f.origin) for f in module.state.wildcard_folders()]
    assert listed == expected and [origin for _, origin in listed][:3] == ["bundled", "saved templates", "Settings"]
    assert len(listed) > 3  # the extensions' folders follow


def test_sd_dynamic_prompts_wildcard_dir_setting_moves_its_folder(orchestrator, installed, tmp_path):
    from modules import shared

    module, _ = orchestrator
    elsewhere = write(tmp_path / "dp elsewhere", {"moved.txt": "comet\n"})
    shared.opts.data["wildcard_dir"] = str(elsewhere)  # sd-dynamic-prompts' own key in config.json
    origins = {f.origin: f.path for f in module.state.wildcard_folders()}
    assert origins["sd-dynamic-prompts (wildcard_dir)"] == str(elsewhere)
    assert "sd-dynamic-prompts" not in origins
    assert module.state.engine().prompt("__moved__", 1) == "comet"


def test_an_extension_installed_twice_under_one_real_folder_is_searched_once(orchestrator, installed, forge_stub,
                                                                            tmp_path):
    base, _ = installed
    link = tmp_path / "extensions" / "b-link-to-a-pack"
    try:
        os.symlink(base / "a-pack", link)
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symlinks here")
    forge_stub.install_extension(str(link))
    module, _ = orchestrator
    origins = [f.origin for f in module.state.wildcard_folders()]
    assert origins.count("a-pack") == 1 and "b-link-to-a-pack" not in origins


# -- the pure function, without Forge ---------------------------------------------------------------


def test_search_order_keeps_forges_order_and_skips_orchestrator_itself():
    exts = [InstalledExtension("builtin-thing", "/forge/extensions-builtin/builtin-thing"),
            InstalledExtension("orchestrator", "/forge/extensions/orchestrator"),
            InstalledExtension("b", "/forge/extensions/b"),
            InstalledExtension("a-off", "/forge/extensions/a-off", enabled=False),
            InstalledExtension("c-without", "/forge/extensions/c-without")]
    dirs = {"/u1", "/forge/extensions-builtin/builtin-thing/wildcards", "/forge/extensions/orchestrator/wildcards",
            "/forge/extensions/b/wildcards", "/forge/extensions/a-off/wildcards"}
    folders = search_order("/forge/extensions/orchestrator/wildcards", "/data/saved", ["/u1", "", "/missing"], exts,
                           "/forge/extensions/orchestrator", isdir=dirs.__contains__, realpath=lambda p: p)
    assert folders == (WildcardFolder("/forge/extensions/orchestrator/wildcards", "bundled"),
                       WildcardFolder("/data/saved", "saved templates"), WildcardFolder("/u1", "Settings"),
                       WildcardFolder("/forge/extensions-builtin/builtin-thing/wildcards", "builtin-thing"),
                       WildcardFolder("/forge/extensions/b/wildcards", "b"))


def test_a_renamed_sd_dynamic_prompts_is_known_by_its_package_and_its_setting_without_it_comes_last():
    dirs = {"/x/dp-fork/sd_dynamic_prompts", "/x/dp-fork/wildcards", "/x/other/wildcards", "/dp-setting"}
    exts = [InstalledExtension("dp-fork", "/x/dp-fork", enabled=False), InstalledExtension("other", "/x/other")]
    folders = search_order("/b", "/s", [], exts, "/own", isdir=dirs.__contains__, realpath=lambda p: p)
    assert [f.origin for f in folders] == ["bundled", "saved templates", "dp-fork", "other"]
    alone = search_order("/b", "/s", [], [exts[1]], "/own", "/dp-setting", isdir=dirs.__contains__,
                         realpath=lambda p: p)
    assert [(f.path, f.origin) for f in alone[2:]] == [("/x/other/wildcards", "other"),
                                                       ("/dp-setting", "sd-dynamic-prompts (wildcard_dir)")]


def test_folders_are_de_duplicated_by_real_path_the_first_kept():
    real = {"/link-to-u1": "/u1", "/x/e/wildcards": "/u1"}.get
    dirs = {"/u1", "/link-to-u1", "/x/e/wildcards"}
    folders = search_order("/b", "/s", ["/u1", "/link-to-u1"], [InstalledExtension("e", "/x/e")], "/own",
                           isdir=dirs.__contains__, realpath=lambda p: real(p, p))
    assert [f.path for f in folders] == ["/b", "/s", "/u1"]


def test_describe_lists_the_folders_numbered_in_search_order():
    text = describe([WildcardFolder("/b", "bundled"), WildcardFolder("/e/wildcards", "e")])
    assert text == "1. /b (bundled)\n2. /e/wildcards (e)"


def test_the_tab_shows_the_folders_in_search_order_and_refresh_updates_it(installed, lora_dir, forge_app):
    gr = pytest.importorskip("gradio")
    from modules import script_callbacks, shared

    shutil.copytree(SAMPLE_LORAS, lora_dir, dirs_exist_ok=True)
    forge_app()
    tab = script_callbacks.ui_tabs_callback()[0][0]
    blocks = {b.elem_id: b for b in tab.blocks.values() if getattr(b, "elem_id", None)}
    shown = blocks["orchestrator_wildcard_order"]
    assert isinstance(shown, gr.Textbox) and not shown.interactive
    lines = shown.value.splitlines()
    assert [line.split(" (")[-1] for line in lines] == ["bundled)", "saved templates)", "Settings)", "a-pack)",
                                                        "sd-dynamic-prompts)", "stable-diffusion-webui-wildcards)"]
    assert lines[3].startswith("4. ") and str(installed[0] / "a-pack" / "wildcards") in lines[3]
    # the Refresh wildcard list button's handler: the one event that updates both the names and the order
    refresh = next(fn for fn in tab.fns.values() if list(fn.outputs) == [blocks["orchestrator_wildcards"], shown])
    shared.opts.data["orchestrator_wildcard_extensions"] = False
    names, order = refresh.fn()
    assert "animals" not in names["choices"] and "mine" in names["choices"]
    assert [line.split(" (")[-1] for line in order.splitlines()] == ["bundled)", "saved templates)", "Settings)"]
