"""The Orchestrator tab: compose and preview, stories, batches, swatches, the LoRA library browser and the
history of images (search, ratings, blind comparison, LoRA leaderboard). Widgets only: every handler is a
method of lib_orchestrator.tab.TabModel or lib_orchestrator.history_tab.HistoryModel, tested without Gradio.

Registered with `on_ui_tabs` at import (Forge re-imports script files on UI reload and clears callbacks
first, so this never registers twice).

Forge saves each field's default in ui-config.json under `orchestrator/<label>`: sub-tabs play no part in
that key, so no two fields of this tab may share a label (a second "Seed" would take the first's default).
"""
from __future__ import annotations

import functools
import os
import sys
import threading
import traceback
from typing import Any, Callable, List, Optional, Tuple

from modules import script_callbacks, sd_models, shared

# Forge puts scripts/ on sys.path only while this file loads and takes it off afterwards: every sibling module a
# handler needs is imported here, at load, never inside a handler.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
import orchestrator_compat as compat  # noqa: E402
import orchestrator_runner as runner  # noqa: E402
import orchestrator_state as state  # noqa: E402

from lib_orchestrator import SAMPLE_STORIES  # noqa: E402
from lib_orchestrator.checkpoint import identify_file  # noqa: E402
from lib_orchestrator.history_tab import LEADERBOARD_SORTS, RATED, REJECTED, SORTS, HistoryModel  # noqa: E402
from lib_orchestrator.library.categories import CATEGORIES  # noqa: E402
from lib_orchestrator.tab import BATCH_FORMATS, TabModel  # noqa: E402
from lib_orchestrator.wildcards.discovery import describe  # noqa: E402

gr = compat.gr  # module level: Gradio resolves the handlers' type hints (gr.SelectData) in module globals


def _checkpoint() -> Tuple[str, str]:
    kind = compat.checkpoint(shared, sd_models)
    return kind.family, kind.base_model


def _find_checkpoint(name: str) -> Optional[Tuple[str, str, str]]:
    info = compat.find_checkpoint(sd_models, name)
    if info is None:
        return None
    kind = identify_file(info.filename)
    return info.name, kind.family, kind.base_model


MODEL = TabModel(
    engine=state.engine, index=state.current_index, records=lambda: state.LIBRARY.records,
    checkpoint=_checkpoint, overrides=state.OVERRIDES, library_roots=state.lora_dirs,
    saved_dir=state.SAVED_WILDCARDS, thumbs_dir=os.path.join(state.DATA_DIR, "thumbs"),
    rules=lambda: state.rules(""), batches_dir=os.path.join(state.DATA_DIR, "saved_batches"),
    enhancer=state.enhancer, embeddings=lambda: compat.embedding_names(shared), checkpoints=_find_checkpoint,
    upscalers=lambda: compat.upscaler_names(shared), overrides_changed=state.LIBRARY.refresh, running=state.RUNNING,
    library_status=state.LIBRARY.status,
    lora_scores=lambda: {s.name.lower(): s for s in state.HISTORY.scores() if not s.bucket})
HISTORY = HistoryModel(service=state.HISTORY, thumbs_dir=os.path.join(state.DATA_DIR, "thumbs"))
_SAMPLE_STORY = os.path.join(SAMPLE_STORIES, "lighthouse.yaml")
_SIZE_HELP = "0: the checkpoint's own"


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
                        # an arrow from the fonts every system has: an emoji is an empty box without an emoji font
                        reroll = gr.Button("↻ Reroll", elem_id="orchestrator_reroll")
                    locks = gr.Textbox(label="Lock wildcards (name = value; …)", elem_id="orchestrator_locks")
                    pinned = gr.Textbox(label="Pin LoRAs (names, comma-separated)", elem_id="orchestrator_pinned")
                    with gr.Row():
                        enhance = gr.Checkbox(False, label="Enhance with the LLM", elem_id="orchestrator_enhance")
                        genre = gr.Dropdown(choices=state.genre_names(), value="", allow_custom_value=True,
                                            label="Genre", elem_id="orchestrator_genre")
                        check = gr.Button("Check LLM server", elem_id="orchestrator_check_llm")
                    with gr.Row():
                        preview_button = gr.Button("Preview", variant="primary", elem_id="orchestrator_preview")
                        send = gr.Button("Send first to txt2img", elem_id="orchestrator_send")
                    with gr.Row():
                        template_name = gr.Textbox(label="Save template as", elem_id="orchestrator_template_name")
                        save = gr.Button("Save template", elem_id="orchestrator_save_template")
                    status = gr.Markdown(elem_id="orchestrator_status")
                with gr.Column(scale=2):
                    names = _unsaved(gr.Dropdown(choices=[], label="Wildcards (pick one to insert it)",
                                                 elem_id="orchestrator_wildcards"))
                    refresh_names = gr.Button("Refresh wildcard list", elem_id="orchestrator_refresh_wildcards")
                    # read-only: where a name is looked for, first folder first (Settings › Orchestrator sets it)
                    search_order = _unsaved(gr.Textbox(describe(state.wildcard_folders()), lines=3, interactive=False,
                                                       label="Wildcard folders, in search order",
                                                       elem_id="orchestrator_wildcard_order"))
            messages = _unsaved(gr.Textbox(label="Lint", interactive=False, elem_id="orchestrator_lint"))
            table = gr.HTML(elem_id="orchestrator_preview_table")
            # The first previewed prompt, as infotext text: the paste binding reads it when "send" is clicked.
            sent = _unsaved(gr.Textbox(visible=False, elem_id="orchestrator_sent"))

            def first_as_infotext(*args: Any) -> str:
                prompt, negative = MODEL.first_prompt(*args)
                return f"{prompt}\nNegative prompt: {negative}" if negative else prompt

            inputs = [template, seed, count, locks, pinned, enhance, genre]
            first_inputs = [template, seed, locks, pinned, enhance, genre]
            show = _guarded(MODEL.compose_preview, 2, 1)
            preview_button.click(show, inputs, [table, messages]).then(
                _guarded(first_as_infotext, 1, 0), first_inputs, [sent])
            reroll.click(lambda s: int(s or 0) + 1000, [seed], [seed]).then(show, inputs, [table, messages]).then(
                _guarded(first_as_infotext, 1, 0), first_inputs, [sent])
            check.click(_guarded(MODEL.check_llm, 1, 0), [], [status])
            save.click(_guarded(MODEL.save_template, 1, 0), [template_name, template], [status])
            refresh_names.click(lambda: (gr.update(choices=state.engine().store.names()),
                                         describe(state.wildcard_folders())), [], [names, search_order])
            names.change(lambda t, n: f"{t} __{n}__".strip() if n else t, [template, names], [template])
            _bind_send_to_txt2img(send, sent)

        with gr.Tab("Story", elem_id="orchestrator_story"):
            with gr.Row():
                with gr.Column(scale=3):
                    s_bible = gr.Code(value=_read(_SAMPLE_STORY), language="yaml", lines=18,
                                      label="Story bible (genre, setting, characters with fixed descriptors)",
                                      elem_id="orchestrator_story_bible")
                with gr.Column(scale=2):
                    s_scenes = gr.Slider(1, 24, value=6, step=1, label="Scenes", elem_id="orchestrator_story_scenes")
                    s_seed = gr.Number(value=1000, precision=0, label="First scene's seed",
                                       elem_id="orchestrator_story_seed")
                    s_llm = gr.Checkbox(True, label="Let the LLM plan the beats (else the outline does)",
                                        elem_id="orchestrator_story_llm")
                    s_negative = gr.Textbox(label="Negative prompt of every scene",
                                            elem_id="orchestrator_story_negative")
                    s_plan = gr.Button("Plan scenes", variant="primary", elem_id="orchestrator_story_plan")
                    s_name = gr.Textbox(label="Story batch name", elem_id="orchestrator_story_name")
                    s_save = gr.Button("Save as batch", elem_id="orchestrator_story_save")
            s_status = gr.Markdown(elem_id="orchestrator_story_status")
            s_table = gr.HTML(elem_id="orchestrator_story_table")
            s_plan.click(_guarded(MODEL.plan_story, 2, 0), [s_bible, s_scenes, s_seed, s_llm], [s_status, s_table])

        with gr.Tab("Batches", elem_id="orchestrator_batches"):
            with gr.Row():
                b_template = gr.Textbox(label="Batch template", lines=2, elem_id="orchestrator_batch_template")
                b_negative = gr.Textbox(label="Batch negative prompt", lines=2, elem_id="orchestrator_batch_negative")
            with gr.Row():
                b_count = gr.Number(value=20, precision=0, label="Images", elem_id="orchestrator_batch_count")
                b_seed = gr.Number(value=1000, precision=0, label="First seed", elem_id="orchestrator_batch_seed")
                b_checkpoint = gr.Textbox(label="Checkpoint (empty: the selected one)",
                                          elem_id="orchestrator_batch_checkpoint")
                b_sampler = gr.Textbox(value="Euler a", label="Sampler", elem_id="orchestrator_batch_sampler")
                b_scheduler = gr.Textbox(value="Automatic", label="Schedule type",
                                         elem_id="orchestrator_batch_scheduler")
            with gr.Row():
                b_steps = gr.Number(value=20, precision=0, label="Steps", elem_id="orchestrator_batch_steps")
                b_width = gr.Number(value=0, precision=0, label=f"Width ({_SIZE_HELP})",
                                    elem_id="orchestrator_batch_width")
                b_height = gr.Number(value=0, precision=0, label=f"Height ({_SIZE_HELP})",
                                     elem_id="orchestrator_batch_height")
                b_cfg = gr.Number(value=7.0, label="CFG scale", elem_id="orchestrator_batch_cfg")
            with gr.Row():
                b_hires = gr.Checkbox(label="Hires fix", elem_id="orchestrator_batch_hires")
                b_upscaler = gr.Dropdown(choices=compat.upscaler_names(shared), value=compat.default_upscaler(shared),
                                         allow_custom_value=True, label="Upscaler",
                                         elem_id="orchestrator_batch_upscaler")
                b_scale = gr.Number(value=2.0, label="Upscale by", elem_id="orchestrator_batch_hr_scale")
                b_hr_steps = gr.Number(value=0, precision=0, label="Hires steps (0: same)",
                                       elem_id="orchestrator_batch_hr_steps")
                b_denoise = gr.Number(value=0.7, label="Denoising", elem_id="orchestrator_batch_denoise")
                b_hr_cfg = gr.Number(value=0, label="Hires CFG (0: same)", elem_id="orchestrator_batch_hr_cfg")
            with gr.Row():
                b_name = gr.Textbox(label="Batch name", elem_id="orchestrator_batch_name")
                b_format = gr.Dropdown(choices=list(BATCH_FORMATS), value="json", label="Format",
                                       elem_id="orchestrator_batch_format")
                b_save = gr.Button("Plan and save", variant="primary", elem_id="orchestrator_batch_save")
            with gr.Row():
                b_files = _unsaved(gr.Dropdown(choices=MODEL.batch_files(), label="Saved batches",
                                               elem_id="orchestrator_batch_files"))
                b_refresh = gr.Button("Refresh list", elem_id="orchestrator_batch_refresh")
                b_edit = gr.Button("Load into the form", elem_id="orchestrator_batch_edit")
                b_run = gr.Button("Run (resumes where it stopped)", elem_id="orchestrator_batch_run")
                b_run_all = gr.Button("Run on all servers", elem_id="orchestrator_batch_run_all")
                b_skip = gr.Button("Skip image", elem_id="orchestrator_batch_skip")
                b_interrupt = gr.Button("Interrupt", elem_id="orchestrator_batch_interrupt")
            b_task = _unsaved(gr.Textbox(visible=False, elem_id="orchestrator_batch_task"))  # Forge's task id, from JS
            b_status = gr.Markdown(elem_id="orchestrator_batch_status")
            with gr.Column(elem_id="orchestrator_batch_gallery_container"):
                b_gallery = gr.Gallery(label="Images", columns=6, height=420, elem_id="orchestrator_batch_gallery")
            b_table = gr.HTML(elem_id="orchestrator_batch_table")

            def save_batch(name, fmt, template, negative, count, seed, checkpoint, sampler, scheduler, steps,
                           width, height, cfg, hires, upscaler, scale, hr_steps, denoise, hr_cfg):
                settings = dict(checkpoint=checkpoint or None, sampler_name=sampler, scheduler=scheduler,
                                steps=int(steps), width=int(width or 0), height=int(height or 0), cfg_scale=float(cfg),
                                enable_hr=bool(hires), hr_upscaler=upscaler or compat.default_upscaler(shared),
                                hr_scale=float(scale), hr_second_pass_steps=int(hr_steps or 0),
                                denoising_strength=float(denoise), hr_cfg=float(hr_cfg or 0))
                status, table = MODEL.save_batch_file(name, fmt, template, negative, count, seed, settings)
                return status, table, gr.update(choices=MODEL.batch_files())

            b_save.click(_guarded(save_batch, 3, 0),
                         [b_name, b_format, b_template, b_negative, b_count, b_seed, b_checkpoint, b_sampler,
                          b_scheduler, b_steps, b_width, b_height, b_cfg, b_hires, b_upscaler, b_scale, b_hr_steps,
                          b_denoise, b_hr_cfg],
                         [b_status, b_table, b_files])
            b_refresh.click(lambda: gr.update(choices=MODEL.batch_files()), [], [b_files])
            b_files.change(_guarded(MODEL.show_batch, 2, 0), [b_files], [b_status, b_table])
            form = {"name": b_name, "format": b_format, "template": b_template, "negative": b_negative,
                    "count": b_count, "seed": b_seed, "checkpoint": b_checkpoint, "sampler_name": b_sampler,
                    "scheduler": b_scheduler, "steps": b_steps, "width": b_width, "height": b_height,
                    "cfg_scale": b_cfg, "enable_hr": b_hires, "hr_upscaler": b_upscaler, "hr_scale": b_scale,
                    "hr_second_pass_steps": b_hr_steps, "denoising_strength": b_denoise, "hr_cfg": b_hr_cfg}

            def edit_batch(file):
                status, values = MODEL.batch_form(file)
                return [status] + [gr.update(value=values[k]) if k in values else gr.update() for k in form]

            b_edit.click(_guarded(edit_batch, 1 + len(form), 0), [b_files], [b_status] + list(form.values()))
            # Forge's own progress bar and live preview: the JS gives the run a task id and polls it
            b_run.click(_run_batch, [b_task, b_files], [b_gallery, b_status, b_table],
                        js="(...args) => window.orchestrator_batch_submit ? orchestrator_batch_submit(...args) : args")
            # Not under Forge's queue lock: the dispatcher sends this Forge's images through its own API, which
            # takes that lock for each image (holding it here would wait for ever)
            b_run_all.click(_dispatch_batch, [b_files], [b_gallery, b_status, b_table])
            b_skip.click(lambda: shared.state.skip(), [], [])
            b_interrupt.click(_interrupt_batch, [], [])

            def save_story(*args):
                status, table = MODEL.save_story(*args)
                return status, table, gr.update(choices=MODEL.batch_files())

            s_save.click(_guarded(save_story, 3, 0), [s_name, s_bible, s_scenes, s_seed, s_llm, s_negative],
                         [s_status, s_table, b_files])

        with gr.Tab("Swatches", elem_id="orchestrator_swatches"):
            with gr.Row():
                w_names = gr.Textbox(label="LoRAs by name, one per line or comma (empty: the filter's)", lines=3,
                                     elem_id="orchestrator_swatch_names")
                with gr.Column():
                    w_filter = gr.Textbox(label="Filter: name, trigger word or tag",
                                          elem_id="orchestrator_swatch_filter")
                    w_category = gr.Dropdown(choices=[""] + list(CATEGORIES), value="style",
                                             label="Filter: LoRA category", elem_id="orchestrator_swatch_category")
            with gr.Row():
                w_template = gr.Textbox(label="Prompt (a template is expanded once)", lines=2,
                                        elem_id="orchestrator_swatch_template")
                w_negative = gr.Textbox(label="Swatch negative prompt", lines=2, elem_id="orchestrator_swatch_negative")
            with gr.Row():
                w_weights = gr.Textbox(value="0.4, 0.7, 1.0", label="Weights", elem_id="orchestrator_swatch_weights")
                w_seed = gr.Number(value=1234, precision=0, label="Swatch seed", elem_id="orchestrator_swatch_seed")
                w_steps = gr.Number(value=20, precision=0, label="Cell steps", elem_id="orchestrator_swatch_steps")
                w_width = gr.Number(value=0, precision=0, label=f"Cell width ({_SIZE_HELP})",
                                    elem_id="orchestrator_swatch_width")
                w_height = gr.Number(value=0, precision=0, label=f"Cell height ({_SIZE_HELP})",
                                     elem_id="orchestrator_swatch_height")
                w_cfg = gr.Number(value=7.0, label="Cell CFG scale", elem_id="orchestrator_swatch_cfg")
            with gr.Row():
                w_axis = gr.Radio(choices=["none", "prompts", "checkpoints"], value="none",
                                  label="Second axis: one grid per…", elem_id="orchestrator_swatch_axis")
                w_values = gr.Textbox(label="…each line a prompt, or a checkpoint of this family", lines=2,
                                      elem_id="orchestrator_swatch_axis_values")
            with gr.Row():
                w_run = gr.Button("Run swatch", variant="primary", elem_id="orchestrator_swatch_run")
                w_rerun = gr.Button("Re-run missing cells", elem_id="orchestrator_swatch_rerun")
                w_skip = gr.Button("Skip cell", elem_id="orchestrator_swatch_skip")
                w_interrupt = gr.Button("Interrupt swatch", elem_id="orchestrator_swatch_interrupt")
            w_task = _unsaved(gr.Textbox(visible=False, elem_id="orchestrator_swatch_task"))
            w_status = gr.Markdown(elem_id="orchestrator_swatch_status")
            with gr.Column(elem_id="orchestrator_swatch_gallery_container"):
                w_gallery = gr.Gallery(label="Grid and cells", columns=4, height=520,
                                       elem_id="orchestrator_swatch_gallery")
            with gr.Row():
                w_thumb = gr.Button("Use the selected cell as its LoRA's thumbnail",
                                    elem_id="orchestrator_swatch_thumb")
                w_thumb_status = gr.Markdown(elem_id="orchestrator_swatch_thumb_status")
            with gr.Row():
                w_count = gr.Number(value=4, precision=0, label="Batch by LoRA: prompts per LoRA",
                                    elem_id="orchestrator_swatch_count")
                w_weight = gr.Number(value=0.8, label="at weight", elem_id="orchestrator_swatch_weight")
                w_batch_name = gr.Textbox(label="Name of the batch by LoRA", elem_id="orchestrator_swatch_batch_name")
                w_batch = gr.Button("Save as a batch by LoRA", elem_id="orchestrator_swatch_batch")
            w_batch_status = gr.Markdown(elem_id="orchestrator_swatch_batch_status")
            w_log = gr.HTML(elem_id="orchestrator_swatch_log")
            w_state = gr.State({})

            swatch_inputs = [w_task, w_names, w_filter, w_category, w_template, w_negative, w_weights, w_seed,
                             w_steps, w_width, w_height, w_cfg, w_axis, w_values, w_state]
            submit = "(...args) => window.orchestrator_swatch_submit ? orchestrator_swatch_submit(...args) : args"
            for button, rerun in ((w_run, False), (w_rerun, True)):
                button.click(_gpu_call(functools.partial(_run_swatch, rerun=rerun)), swatch_inputs,
                             [w_gallery, w_status, w_state, w_log], js=submit)

            def save_by_lora(name, names, text, category, template, negative, count, seed, weight, steps, width,
                             height, cfg):
                settings = dict(steps=int(steps), width=int(width or 0), height=int(height or 0),
                                cfg_scale=float(cfg))
                status, _ = MODEL.save_batch_by_lora(name, names, text, category, template, negative, count, seed,
                                                     weight, settings)
                return status, gr.update(choices=MODEL.batch_files())

            w_batch.click(_guarded(save_by_lora, 2, 0),
                          [w_batch_name, w_names, w_filter, w_category, w_template, w_negative, w_count, w_seed,
                           w_weight, w_steps, w_width, w_height, w_cfg],
                          [w_batch_status, b_files])
            w_skip.click(lambda: shared.state.skip(), [], [])
            w_interrupt.click(lambda: shared.state.interrupt(), [], [])

            def pick_cell(current: dict, evt: gr.SelectData):
                entries = (current or {}).get("gallery", [])
                chosen = entries[evt.index] if evt.index < len(entries) else (None, None)
                return dict(current or {}, chosen=chosen)

            w_gallery.select(pick_cell, [w_state], [w_state])
            w_thumb.click(lambda current: MODEL.use_as_thumbnail(*((current or {}).get("chosen") or ("", ""))),
                          [w_state], [w_thumb_status])

        with gr.Tab("LoRA library", elem_id="orchestrator_library") as library_tab:
            with gr.Row():
                query = gr.Textbox(label="Search name, trigger word or tag", elem_id="orchestrator_search")
                # not "Category": until 0.1, that saved default was the swatches' "style" (one key per label)
                category = gr.Dropdown(choices=[""] + list(CATEGORIES), value="", label="Filter by category",
                                       elem_id="orchestrator_category")
                base_model = gr.Textbox(label="Base model", elem_id="orchestrator_base_model")
                compatible = gr.Checkbox(label="Loads on this checkpoint", elem_id="orchestrator_compatible")
                warned = gr.Checkbox(label="Has warnings", elem_id="orchestrator_warned")
                page = gr.Number(value=0, precision=0, label="Page", elem_id="orchestrator_page")
            with gr.Row():
                l_sort = gr.Dropdown(choices=["library order", "effectiveness"], value="library order",
                                     label="Order LoRAs by", elem_id="orchestrator_library_sort")
                l_rated = gr.Checkbox(label="Only LoRAs I have judged (History: stars, comparisons)",
                                      elem_id="orchestrator_library_rated")
                search = gr.Button("Search", variant="primary", elem_id="orchestrator_search_button")
                rescan = gr.Button("Rescan library", elem_id="orchestrator_rescan")
            summary = gr.Markdown(elem_id="orchestrator_summary")
            with gr.Row():
                gallery = gr.Gallery(label="LoRAs", columns=6, height=520, elem_id="orchestrator_gallery")
                with gr.Column():
                    info = gr.HTML(elem_id="orchestrator_details")
                    selected = _unsaved(gr.Textbox(label="Selected", interactive=False,
                                                   elem_id="orchestrator_selected"))
                    o_category = gr.Dropdown(choices=[""] + list(CATEGORIES), value="", label="My category",
                                             elem_id="orchestrator_override_category")
                    o_weight = gr.Textbox(label="My default weight (empty: the LoRA's own)",
                                          elem_id="orchestrator_override_weight")
                    o_excluded = gr.Checkbox(label="Never pick", elem_id="orchestrator_override_excluded")
                    o_pinned = gr.Checkbox(label="Always pick", elem_id="orchestrator_override_pinned")
                    o_notes = gr.Textbox(label="Notes", lines=2, elem_id="orchestrator_override_notes")
                    o_save = gr.Button("Save my settings", elem_id="orchestrator_override_save")
                    o_status = gr.Markdown(elem_id="orchestrator_override_status")
            paths = gr.JSON(visible=False, elem_id="orchestrator_gallery_paths")
            with gr.Accordion("LoRA leaderboard (from your ratings in History)", open=False,
                              elem_id="orchestrator_library_leaderboard_accordion"):
                l_board_refresh = gr.Button("Refresh leaderboard", size="sm",
                                            elem_id="orchestrator_library_leaderboard_refresh")
                l_board = gr.HTML(elem_id="orchestrator_library_leaderboard")
            l_board_refresh.click(_guarded(HISTORY.leaderboard, 1, 0), [], [l_board])

            def run_search(*args: Any):
                items, text, found = MODEL.search(*args)
                return [(thumb, caption) for thumb, caption in items if thumb], text, found

            filters = [query, category, base_model, compatible, warned, page, l_sort, l_rated]
            search_outputs = [gallery, summary, paths]
            # Opening the sub-tab shows the first page: nobody should face an empty page. One queue for both,
            # one at a time: a search pressed while the first page is still loading must not be overwritten by it.
            for event in (library_tab.select, search.click):
                event(_guarded(run_search, 3, 1), filters, search_outputs, concurrency_id="orchestrator_library",
                      concurrency_limit=1)

            def pick(found: List[str], evt: gr.SelectData):
                path = found[evt.index] if found and evt.index < len(found) else ""
                o = state.OVERRIDES.get(path)
                weight = "" if o.weight is None else f"{o.weight:g}"
                return (MODEL.details_html(path), path, o.category or "", weight, o.excluded, o.pinned, o.notes)

            gallery.select(pick, [paths], [info, selected, o_category, o_weight, o_excluded, o_pinned, o_notes])
            o_save.click(_guarded(MODEL.save_override, 1, 0),
                         [selected, o_category, o_weight, o_excluded, o_pinned, o_notes], [o_status])

            def do_rescan():
                state.LIBRARY.refresh()
                return "rescanning in the background; search again in a moment"

            rescan.click(do_rescan, [], [summary])

        with gr.Tab("History", elem_id="orchestrator_history") as history_tab:
            _history_tab(history_tab)
    return [(tab, "Orchestrator", "orchestrator")]


KEYS_LEGEND = ("**Keys** (when no text box has the focus): **1–5** stars · **0** clear · **x** reject · "
               "**f** favourite · **← →** previous / next image")
COMPARE_LEGEND = "**Keys**: **←** left is better · **→** right is better · **↓** or **t** tie · **s** or **↑** skip"
# a relay's first inputs become the key javascript/orchestrator.js was sent and, for a rating, the gallery's
# selected index when it was pressed (outside a page with that script: as they are)
_KEY_ARGS = "(...args) => window.orchestrator_key_args ? orchestrator_key_args(args) : args"


def _history_tab(history_tab: Any) -> None:
    """The History sub-tab: the index's status, Browse (search, filters, paged gallery, details, rating),
    Compare (two images of one prompt and seed, blind) and the LoRA leaderboard. The keys of
    javascript/orchestrator.js reach the handlers through hidden relays: a textbox and a button each."""
    with gr.Row(equal_height=False):
        h_status = gr.Markdown(elem_id="orchestrator_history_status")
        h_folder = _unsaved(gr.Textbox(label="Add a folder of images", placeholder="D:/pictures/forge", max_lines=1,
                                       elem_id="orchestrator_history_folder"))
        with gr.Column(min_width=160, scale=0):
            h_add = gr.Button("Add folder", size="sm", elem_id="orchestrator_history_add_folder")
            h_rescan = gr.Button("Rescan images", size="sm", elem_id="orchestrator_history_rescan")
    with gr.Tabs(elem_id="orchestrator_history_tabs"):
        with gr.Tab("Browse", elem_id="orchestrator_history_browse") as browse_tab:
            with gr.Row(equal_height=False):
                h_query = gr.Textbox(label="Search prompts", max_lines=1, scale=5, elem_id="orchestrator_history_query",
                                     placeholder='words  "a phrase"  prefix*  -not  a OR b  lora:NAME  model:NAME  '
                                                 'seed:N  batch:NAME')
                h_search = gr.Button("Search images", variant="primary", scale=1,
                                     elem_id="orchestrator_history_search")
            with gr.Row():
                h_checkpoint = gr.Textbox(label="Made with checkpoint", max_lines=1,
                                          elem_id="orchestrator_history_checkpoint")
                h_lora = gr.Textbox(label="Made with LoRA", max_lines=1, elem_id="orchestrator_history_lora")
                h_stars = gr.Slider(0, 5, value=0, step=1, label="At least stars",
                                    elem_id="orchestrator_history_min_stars")
                h_rated = gr.Radio(choices=list(RATED), value="any", label="Rated",
                                   elem_id="orchestrator_history_rated")
                h_rejected = gr.Radio(choices=list(REJECTED), value="hide", label="Rejected images",
                                      elem_id="orchestrator_history_rejected")
                h_favourites = gr.Checkbox(label="Favourites only", elem_id="orchestrator_history_favourites")
                h_sort = gr.Dropdown(choices=list(SORTS), value="relevance", label="Sort images",
                                     elem_id="orchestrator_history_sort")
            with gr.Row(equal_height=False):
                h_summary = gr.Markdown(elem_id="orchestrator_history_summary")
                h_prev = gr.Button("◀ Previous page", size="sm", scale=0, min_width=140,
                                   elem_id="orchestrator_history_prev_page")
                h_page = _unsaved(gr.Number(value=0, precision=0, label="Images page (from 0)", scale=0, min_width=140,
                                            elem_id="orchestrator_history_page"))
                h_next = gr.Button("Next page ▶", size="sm", scale=0, min_width=140,
                                   elem_id="orchestrator_history_next_page")
            with gr.Row():
                with gr.Column(scale=3):
                    h_gallery = gr.Gallery(label="Images", columns=6, height=620, allow_preview=False,
                                           elem_id="orchestrator_history_gallery")
                with gr.Column(scale=2):
                    # type "pil": Forge's Send to img2img passes this component's value on as the image
                    h_image = gr.Image(type="pil", interactive=False, show_label=False, height=420,
                                       elem_id="orchestrator_history_image")
                    h_rating = gr.Markdown(elem_id="orchestrator_history_rating")
                    with gr.Row():
                        star_buttons = [gr.Button(f"★{n}", size="sm", min_width=40,
                                                  elem_id=f"orchestrator_history_star{n}") for n in range(1, 6)]
                    with gr.Row():
                        h_reject = gr.Button("✕ Reject (x)", size="sm", elem_id="orchestrator_history_reject")
                        h_favourite = gr.Button("♥ Favourite (f)", size="sm", elem_id="orchestrator_history_favourite")
                        h_clear = gr.Button("Clear (0)", size="sm", elem_id="orchestrator_history_clear")
                    with gr.Row():
                        h_send_txt = gr.Button("Send to txt2img", size="sm",
                                               elem_id="orchestrator_history_send_txt2img")
                        h_send_img = gr.Button("Send to img2img", size="sm",
                                               elem_id="orchestrator_history_send_img2img")
                    h_details = gr.HTML(elem_id="orchestrator_history_details")
                    h_infotext = _unsaved(gr.Textbox(label="Generation parameters", lines=5, interactive=False,
                                                     elem_id="orchestrator_history_infotext"))
            gr.Markdown(KEYS_LEGEND, elem_id="orchestrator_history_keys")
        with gr.Tab("Compare", elem_id="orchestrator_history_compare") as compare_tab:
            with gr.Row(equal_height=False):
                c_lora = gr.Textbox(label="Only pairs with this LoRA (empty: any)", max_lines=1, scale=4,
                                    elem_id="orchestrator_compare_lora")
                c_start = gr.Button("Next pair", variant="primary", scale=1, elem_id="orchestrator_compare_next")
            c_note = gr.Markdown(elem_id="orchestrator_compare_note")
            with gr.Row(elem_id="orchestrator_compare_pair"):
                c_left = gr.Image(interactive=False, show_label=False, show_download_button=False, height=560,
                                  elem_id="orchestrator_compare_left_image")
                c_right = gr.Image(interactive=False, show_label=False, show_download_button=False, height=560,
                                   elem_id="orchestrator_compare_right_image")
            with gr.Row():
                c_buttons = {outcome: gr.Button(text, elem_id=f"orchestrator_compare_{outcome}")
                             for outcome, text in (("left", "← Left is better"), ("tie", "↓ Tie"),
                                                   ("skip", "Skip (s)"), ("right", "Right is better →"))}
            c_counter = gr.Markdown(elem_id="orchestrator_compare_counter")
            c_reveal = gr.HTML(elem_id="orchestrator_compare_reveal")
            gr.Markdown(COMPARE_LEGEND, elem_id="orchestrator_compare_keys")
        with gr.Tab("LoRA leaderboard", elem_id="orchestrator_history_leaderboard_tab") as board_tab:
            with gr.Row():
                b_sort = gr.Dropdown(choices=list(LEADERBOARD_SORTS), value="score", label="Order the leaderboard by",
                                     elem_id="orchestrator_leaderboard_sort")
                b_rated = gr.Checkbox(label="Judged LoRAs only", elem_id="orchestrator_leaderboard_rated")
                b_weight = gr.Checkbox(label="By weight", elem_id="orchestrator_leaderboard_by_weight")
                b_refresh = gr.Button("Refresh", size="sm", scale=0, min_width=120,
                                      elem_id="orchestrator_leaderboard_refresh")
            b_table = gr.HTML(elem_id="orchestrator_leaderboard")
    # the relays of javascript/orchestrator.js: it sets the key, then clicks the hidden button
    h_key = _unsaved(gr.Textbox(visible=False, elem_id="orchestrator_history_key"))
    h_key_index = _unsaved(gr.Textbox(visible=False, elem_id="orchestrator_history_key_index"))
    h_key_send = gr.Button(visible=False, elem_id="orchestrator_history_key_send")
    c_key = _unsaved(gr.Textbox(visible=False, elem_id="orchestrator_compare_key"))
    c_key_send = gr.Button(visible=False, elem_id="orchestrator_compare_key_send")
    h_ids = gr.State([])  # the ids of the gallery's images, in order
    h_selected = gr.State(None)  # the id of the image shown in the details
    c_pair = gr.State(None)  # [left id, right id] as shown
    c_made = gr.State(0)

    filters = [h_query, h_checkpoint, h_lora, h_stars, h_rated, h_rejected, h_favourites, h_sort, h_page]

    def run_search(*args: Any):
        items, summary, ids = HISTORY.search(*args)
        return items, summary, ids, HISTORY.status()

    search_outputs = [h_gallery, h_summary, h_ids, h_status]
    searching = dict(concurrency_id="orchestrator_history", concurrency_limit=1)
    for event in (history_tab.select, browse_tab.select, h_search.click, h_query.submit):
        event(_guarded(run_search, 4, 1), filters, search_outputs, **searching)
    for button, step in ((h_prev, -1), (h_next, 1)):
        button.click(_page_turner(step), [h_page], [h_page]).then(
            _guarded(run_search, 4, 1), filters, search_outputs, **searching)

    def pick(ids: List[int], evt: gr.SelectData):
        chosen = ids[evt.index] if ids and evt.index < len(ids) else None
        image, details, infotext, rating = HISTORY.details(chosen)
        return chosen, image, details, infotext, rating

    # One queue for picking and rating; every key press counts ("multiple"). A key names the image by where the
    # gallery's selection was when it was pressed, not by the details shown (those may still be on their way).
    picking = dict(concurrency_id="orchestrator_history_pick", concurrency_limit=1)
    h_gallery.select(pick, [h_ids], [h_selected, h_image, h_details, h_infotext, h_rating], trigger_mode="multiple",
                     **picking)

    def rate(key: str, chosen: Any, ids: List[int]):
        line, items, details = HISTORY.rate(key, chosen, ids)
        return line, gr.update() if items is None else items, gr.update() if details is None else details

    rate_outputs = [h_rating, h_gallery, h_details]
    for key, button in [(str(n), b) for n, b in enumerate(star_buttons, 1)] + [
            ("x", h_reject), ("f", h_favourite), ("0", h_clear)]:
        button.click(_guarded(_with_first(rate, key), 3, 0), [h_selected, h_ids], rate_outputs, **picking)
    def rate_at(key: str, index: Any, ids: List[int]):
        line, items, details = HISTORY.rate_at(key, index, ids)
        return line, gr.update() if items is None else items, gr.update() if details is None else details

    # the key and the gallery's selected index at the moment of the key press, from the page's script
    h_key_send.click(_guarded(rate_at, 3, 0), [h_key, h_key_index, h_ids], rate_outputs, js=_KEY_ARGS,
                     trigger_mode="multiple", **picking)
    _bind_send_to(h_send_txt, "txt2img", h_infotext)
    _bind_send_to(h_send_img, "img2img", h_infotext, h_image)

    def next_pair(lora: str, made: Any):
        left, right, pair, note = HISTORY.next_pair(lora)
        return left, right, pair, note, HISTORY.counter(made)

    pair_outputs = [c_left, c_right, c_pair, c_note, c_counter]
    for event in (compare_tab.select, c_start.click):
        event(_guarded(next_pair, 5, 3), [c_lora, c_made], pair_outputs)

    def judge(outcome: str, pair: Any, lora: str, made: Any):
        left, right, nxt, note, reveal, made = HISTORY.judge(outcome, pair, lora, made)
        return left, right, nxt, note, HISTORY.counter(made), reveal, made

    judge_outputs = pair_outputs + [c_reveal, c_made]
    for outcome, button in c_buttons.items():
        button.click(_guarded(_with_first(judge, outcome), 7, 3), [c_pair, c_lora, c_made], judge_outputs,
                     concurrency_id="orchestrator_compare", concurrency_limit=1)
    # a second judging key while the first is on its way would judge the next pair unseen: the page's script
    # waits for the next pair (Gradio runs an event with a js hook whatever its trigger_mode)
    c_key_send.click(_guarded(judge, 7, 3), [c_key, c_pair, c_lora, c_made], judge_outputs,
                     concurrency_id="orchestrator_compare", concurrency_limit=1, js=_KEY_ARGS)

    board_inputs = [b_sort, b_rated, b_weight]
    for event in (board_tab.select, b_refresh.click, b_sort.change, b_rated.change, b_weight.change):
        event(_guarded(HISTORY.leaderboard, 1, 0), board_inputs, [b_table])
    h_rescan.click(_guarded(HISTORY.rescan, 1, 0), [], [h_status])
    h_add.click(_guarded(HISTORY.add_folder, 1, 0), [h_folder], [h_status])


def _page_turner(step: int) -> Callable[[Any], int]:
    def turn(page: Any) -> int:
        return max(0, int(page or 0) + step)
    return turn


def _with_first(fn: Callable[..., Any], first: str) -> Callable[..., Any]:
    """`fn` with its first argument given (a button's key): a function, not a functools.partial, whose type
    hints Gradio can read (it evaluates them in the function's module)."""
    def run(*args: Any) -> Any:
        return fn(first, *args)
    return run


def _unsaved(component: Any) -> Any:
    """Not a default worth keeping in ui-config.json (an output, a list that changes, a hidden relay)."""
    component.do_not_save_to_config = True
    return component


def _guarded(fn: Callable[..., Any], outputs: int, status_at: int) -> Callable[..., Any]:
    """`fn` for a Gradio event: when it raises, Gradio shows only a red "Error" badge; this prints the
    traceback to Forge's console and says what went wrong in the status output, leaving the others as they are."""
    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 (shown to the user, never swallowed: it is printed too)
            traceback.print_exc()
            out = [gr.update()] * outputs
            out[status_at] = f"error: {type(exc).__name__}: {exc}"
            return out[0] if outputs == 1 else out
    return run


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def _gpu_call(fn: Any) -> Any:
    """Forge's wrapper for GPU work from a button: its queue, queue_lock, task progress, and the error
    and timing footer in the last (HTML) output."""
    from modules.call_queue import wrap_gradio_gpu_call

    # on an error the gallery, status and state keep what they had: finished cells stay re-runnable
    return wrap_gradio_gpu_call(fn, extra_outputs=[gr.update(), gr.update(), gr.update()])


def _run_swatch(task: str, names: str, text: str, category: str, template: str, negative: str, weights: str,
                seed: float, steps: float, width: float, height: float, cfg: float, axis: str, values: str,
                current: dict, rerun: bool = False) -> List[Any]:
    """[gallery, status, state, log] for Forge's wrapper, which runs this under its queue lock."""
    def count(cells: int) -> None:
        shared.state.job_count = cells

    gallery, status, kept = MODEL.run_swatches(
        runner.run_swatch_in_forge, names, text, category, template, negative, weights, seed, steps, width, height,
        cfg, axis, values, current, rerun=rerun, stopped=lambda: bool(getattr(shared.state, "interrupted", False)),
        on_start=count)
    return [gallery, status, kept, ""]


def _run_batch(task: str, file: str):
    """Runs a saved batch in Forge, one image at a time, streaming the gallery, the status line and the
    batch table. The images are made in a thread under Forge's queue lock, so it never overlaps another
    generation, as Forge task `task` (what wrap_gradio_gpu_call does), so Forge's progress bar and live
    preview follow it; wrap_gradio_gpu_call itself cannot wrap a generator that streams the gallery."""
    from modules import progress as forge_progress
    from modules.call_queue import queue_lock

    task_id = task if (task or "").startswith("task(") else None
    if task_id:  # at once: a task id Forge never heard of keeps the progress bar at "Waiting..."
        forge_progress.add_task_to_queue(task_id)
    started = []

    def run(batch: Any, path: str, on_progress: Callable[[Any], None]) -> None:
        started.append(True)
        with queue_lock:
            shared.state.begin(job=task_id or "orchestrator-batch")
            forge_progress.start_task(task_id)
            try:
                runner.run_in_forge(batch, path, on_progress=on_progress)
            finally:
                forge_progress.finish_task(task_id)
                shared.state.end()

    try:
        yield from MODEL.run_batch(file, run)
    except Exception as exc:  # noqa: BLE001 (printed, and shown in the status line instead of a bare "Error")
        traceback.print_exc()
        yield gr.update(), f"error: {type(exc).__name__}: {exc}", gr.update()
    finally:
        if task_id and not started:  # refused before any work: end the task, or its bar waits forever
            forge_progress.finish_task(task_id)


def _dispatch_batch(file: str):
    """*Run on all servers*: the saved batch across this Forge and the Settings' servers (lib_orchestrator/dispatch),
    its images written to Forge's txt2img folder under the batch's name, each added to the history."""
    from lib_orchestrator.dispatch.dispatcher import Options
    from lib_orchestrator.dispatch.run import dispatch_file

    def dispatch(batch: Any, path: str, urls: List[str], on_snapshot: Callable[[Any], None]) -> Any:
        stop = threading.Event()
        state.DISPATCH_STOPS.add(stop)
        try:
            out_dir = os.path.join(runner.outdir("samples"), batch.name)
            return dispatch_file(batch, path, urls, out_dir, str(state.opt("orchestrator_queue", "") or "")
                                 or None, Options(), stop, on_snapshot, state.HISTORY.add_file)
        finally:
            state.DISPATCH_STOPS.discard(stop)

    try:
        yield from MODEL.dispatch_batch(file, state.dispatch_servers, dispatch)
    except Exception as exc:  # noqa: BLE001 (printed, and shown in the status line instead of a bare "Error")
        traceback.print_exc()
        yield gr.update(), f"error: {type(exc).__name__}: {exc}", gr.update()


def _interrupt_batch() -> None:
    # The dispatches first: Forge answers an interrupted image with the partial image, which a run not yet told
    # to stop would keep as done
    for stop in list(state.DISPATCH_STOPS):
        stop.set()
    shared.state.interrupt()


def _bind_send_to_txt2img(button: Any, text: Any) -> None:
    """Forge's paste-params binding fills txt2img's prompt fields from the infotext text in `text`."""
    _bind_send_to(button, "txt2img", text)


def _bind_send_to(button: Any, tabname: str, text: Any, image: Any = None) -> None:
    """Forge's paste-params binding: a click fills `tabname`'s fields from the infotext text in `text` and
    switches to it; with `image` (a gr.Image of type "pil"), img2img's input image becomes that image, and its
    width and height the image's (Forge's send_image_and_dimensions, when "send size" is on)."""
    utils = compat.infotext_utils
    try:
        utils.register_paste_params_button(utils.ParamBinding(
            paste_button=button, tabname=tabname, source_text_component=text, source_image_component=image))
    except Exception as exc:  # another variant's signature: the tab still works, sending does not
        print(f"[Orchestrator] send to {tabname} unavailable: {exc}", file=sys.stderr)


script_callbacks.on_ui_tabs(on_ui_tabs)
