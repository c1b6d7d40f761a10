"""The Orchestrator tab: compose and preview, stories, batches, swatches and the LoRA library browser.
Widgets only: every handler is a method of lib_orchestrator.tab.TabModel, tested without Gradio.

Registered with `on_ui_tabs` at import (Forge re-imports script files on UI reload and clears callbacks
first, so this never registers twice).

Forge saves each field's default in ui-config.json under `orchestrator/<label>`: sub-tabs play no part in
that key, so no two fields of this tab may share a label (a second "Seed" would take the first's default).
"""
from __future__ import annotations

import functools
import os
import sys
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
from lib_orchestrator.library.categories import CATEGORIES  # noqa: E402
from lib_orchestrator.tab import BATCH_FORMATS, TabModel  # noqa: E402

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
    engine=state.engine, index=state.LIBRARY.current, records=lambda: state.LIBRARY.records,
    checkpoint=_checkpoint, overrides=state.OVERRIDES, library_roots=state.lora_dirs,
    saved_dir=state.SAVED_WILDCARDS, thumbs_dir=os.path.join(state.DATA_DIR, "thumbs"),
    rules=lambda: state.rules(""), batches_dir=os.path.join(state.DATA_DIR, "saved_batches"),
    enhancer=state.enhancer, embeddings=lambda: compat.embedding_names(shared), checkpoints=_find_checkpoint,
    upscalers=lambda: compat.upscaler_names(shared), overrides_changed=state.LIBRARY.refresh, running=state.RUNNING,
    library_status=state.LIBRARY.status)
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
            refresh_names.click(lambda: gr.update(choices=state.engine().store.names()), [], [names])
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
            b_skip.click(lambda: shared.state.skip(), [], [])
            b_interrupt.click(lambda: shared.state.interrupt(), [], [])

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

            def run_search(*args: Any):
                items, text, found = MODEL.search(*args)
                return [(thumb, caption) for thumb, caption in items if thumb], text, found

            filters = [query, category, base_model, compatible, warned, page]
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
    return [(tab, "Orchestrator", "orchestrator")]


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


def _bind_send_to_txt2img(button: Any, text: Any) -> None:
    """Forge's paste-params binding fills txt2img's prompt fields from the infotext text in `text`."""
    utils = compat.infotext_utils
    try:
        utils.register_paste_params_button(utils.ParamBinding(
            paste_button=button, tabname="txt2img", source_text_component=text, source_image_component=None))
    except Exception as exc:  # another variant's signature: the preview still works, sending does not
        print(f"[Orchestrator] send to txt2img unavailable: {exc}", file=sys.stderr)


script_callbacks.on_ui_tabs(on_ui_tabs)
