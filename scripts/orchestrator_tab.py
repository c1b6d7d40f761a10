"""The Orchestrator tab: compose and preview, and the LoRA library browser. Widgets only: every handler
is a method of lib_orchestrator.tab.TabModel, tested without Gradio.

Registered with `on_ui_tabs` at import (Forge re-imports script files on UI reload and clears callbacks
first, so this never registers twice).
"""
from __future__ import annotations

import os
import sys
from typing import Any, List

from modules import script_callbacks, shared

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import orchestrator_compat as compat  # noqa: E402
import orchestrator_state as state  # noqa: E402

from lib_orchestrator.library.categories import CATEGORIES  # noqa: E402
from lib_orchestrator.selection.index import checkpoint_base  # noqa: E402
from lib_orchestrator.tab import TabModel  # noqa: E402

gr = compat.gr  # module level: Gradio resolves the handlers' type hints (gr.SelectData) in module globals


def _checkpoint():
    family, base = compat.checkpoint(shared)
    return family, checkpoint_base(family, base)


MODEL = TabModel(
    engine=state.engine, index=state.LIBRARY.current, records=lambda: state.LIBRARY.records,
    checkpoint=_checkpoint, overrides=state.OVERRIDES, library_roots=state.lora_dirs,
    saved_dir=state.SAVED_WILDCARDS, thumbs_dir=os.path.join(state.DATA_DIR, "thumbs"),
    rules=lambda: state.rules(""))


def on_ui_tabs() -> List[Any]:
    with gr.Blocks(analytics_enabled=False) as tab:
        with gr.Tab("Compose", elem_id="orchestrator_compose"):
            with gr.Row():
                with gr.Column(scale=3):
                    template = gr.Textbox(label="Template", lines=3, elem_id="orchestrator_template",
                                          placeholder="__templates/noir__, {rain|fog}")
                    with gr.Row():
                        seed = gr.Number(value=1000, precision=0, label="Seed", elem_id="orchestrator_seed")
                        count = gr.Slider(1, 50, value=8, step=1, label="Prompts", elem_id="orchestrator_count")
                        reroll = gr.Button("🎲 Reroll", elem_id="orchestrator_reroll")
                    locks = gr.Textbox(label="Lock wildcards (name = value; …)", elem_id="orchestrator_locks")
                    pinned = gr.Textbox(label="Pin LoRAs (names, comma-separated)", elem_id="orchestrator_pinned")
                    with gr.Row():
                        preview_button = gr.Button("Preview", variant="primary", elem_id="orchestrator_preview")
                        send = gr.Button("Send first to txt2img", elem_id="orchestrator_send")
                    with gr.Row():
                        template_name = gr.Textbox(label="Save as", elem_id="orchestrator_template_name")
                        save = gr.Button("Save template", elem_id="orchestrator_save_template")
                    status = gr.Markdown(elem_id="orchestrator_status")
                with gr.Column(scale=2):
                    names = gr.Dropdown(choices=[], label="Wildcards (pick one to insert it)",
                                        elem_id="orchestrator_wildcards")
                    refresh_names = gr.Button("Refresh wildcard list", elem_id="orchestrator_refresh_wildcards")
            messages = gr.Textbox(label="Lint", interactive=False, elem_id="orchestrator_lint")
            table = gr.HTML(elem_id="orchestrator_preview_table")
            # The first previewed prompt, as infotext text: the paste binding reads it when "send" is clicked.
            sent = gr.Textbox(visible=False, elem_id="orchestrator_sent")

            def first_as_infotext(*args: Any) -> str:
                prompt, negative = MODEL.first_prompt(*args)
                return f"{prompt}\nNegative prompt: {negative}" if negative else prompt

            inputs = [template, seed, count, locks, pinned]
            preview_button.click(MODEL.compose_preview, inputs, [table, messages]).then(
                first_as_infotext, [template, seed, locks, pinned], [sent])
            reroll.click(lambda s: int(s or 0) + 1000, [seed], [seed]).then(
                MODEL.compose_preview, inputs, [table, messages]).then(
                first_as_infotext, [template, seed, locks, pinned], [sent])
            save.click(MODEL.save_template, [template_name, template], [status])
            refresh_names.click(lambda: gr.update(choices=state.engine().store.names()), [], [names])
            names.change(lambda t, n: f"{t} __{n}__".strip() if n else t, [template, names], [template])
            _bind_send_to_txt2img(send, sent)

        with gr.Tab("LoRA library", elem_id="orchestrator_library"):
            with gr.Row():
                query = gr.Textbox(label="Search name, trigger word or tag", elem_id="orchestrator_search")
                category = gr.Dropdown(choices=[""] + list(CATEGORIES), value="", label="Category",
                                       elem_id="orchestrator_category")
                base_model = gr.Textbox(label="Base model", elem_id="orchestrator_base_model")
                compatible = gr.Checkbox(label="Loads on this checkpoint", elem_id="orchestrator_compatible")
                warned = gr.Checkbox(label="Has warnings", elem_id="orchestrator_warned")
                page = gr.Number(value=0, precision=0, label="Page", elem_id="orchestrator_page")
            with gr.Row():
                search = gr.Button("Search", variant="primary", elem_id="orchestrator_search_button")
                rescan = gr.Button("Rescan library", elem_id="orchestrator_rescan")
            summary = gr.Markdown(elem_id="orchestrator_summary")
            with gr.Row():
                gallery = gr.Gallery(label="LoRAs", columns=6, height=520, elem_id="orchestrator_gallery")
                with gr.Column():
                    info = gr.HTML(elem_id="orchestrator_details")
                    selected = gr.Textbox(label="Selected", interactive=False, elem_id="orchestrator_selected")
                    o_category = gr.Dropdown(choices=[""] + list(CATEGORIES), value="", label="My category",
                                             elem_id="orchestrator_override_category")
                    o_weight = gr.Number(value=None, label="My default weight", elem_id="orchestrator_override_weight")
                    o_excluded = gr.Checkbox(label="Never pick", elem_id="orchestrator_override_excluded")
                    o_pinned = gr.Checkbox(label="Always pick", elem_id="orchestrator_override_pinned")
                    o_notes = gr.Textbox(label="Notes", lines=2, elem_id="orchestrator_override_notes")
                    o_save = gr.Button("Save my settings", elem_id="orchestrator_override_save")
                    o_status = gr.Markdown(elem_id="orchestrator_override_status")
            paths = gr.JSON(visible=False)

            def run_search(*args: Any):
                items, text, found = MODEL.search(*args)
                return [(thumb, caption) for thumb, caption in items if thumb], text, found

            search.click(run_search, [query, category, base_model, compatible, warned, page], [gallery, summary, paths])

            def pick(found: List[str], evt: gr.SelectData):
                path = found[evt.index] if found and evt.index < len(found) else ""
                o = state.OVERRIDES.get(path)
                return (MODEL.details_html(path), path, o.category or "", o.weight, o.excluded, o.pinned, o.notes)

            gallery.select(pick, [paths], [info, selected, o_category, o_weight, o_excluded, o_pinned, o_notes])
            o_save.click(MODEL.save_override, [selected, o_category, o_weight, o_excluded, o_pinned, o_notes],
                         [o_status])

            def do_rescan():
                state.LIBRARY.refresh()
                return "rescanning in the background; search again in a moment"

            rescan.click(do_rescan, [], [summary])
    return [(tab, "Orchestrator", "orchestrator")]


def _bind_send_to_txt2img(button: Any, text: Any) -> None:
    """Forge's paste-params binding fills txt2img's prompt fields from the infotext text in `text`."""
    utils = compat.infotext_utils
    try:
        utils.register_paste_params_button(utils.ParamBinding(
            paste_button=button, tabname="txt2img", source_text_component=text, source_image_component=None))
    except Exception as exc:  # another variant's signature: the preview still works, sending does not
        print(f"[Orchestrator] send to txt2img unavailable: {exc}", file=sys.stderr)


script_callbacks.on_ui_tabs(on_ui_tabs)
