"""Orchestrator's AlwaysOn script: each image's prompt and LoRAs composed in-process.

Thin: it reads Forge's processing object and settings, asks lib_orchestrator for a plan, and writes the
plan back (all_prompts, all_negative_prompts, hires prompts, per-image infotext). The REST args are the
`ui()` controls in order: enabled, loras, min_loras, max_loras, detailer, rules_file, fixed_prompt,
template, enhance, genre, match. `"args": [true]` runs with the defaults.
"""
from __future__ import annotations

import html
import os
import sys
from dataclasses import replace
from typing import Any, Callable

from modules import script_callbacks, scripts, sd_models, shared

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # Forge loads script files by path, not as a package
    sys.path.insert(0, _HERE)
import orchestrator_adetailer as adetailer  # noqa: E402
import orchestrator_compat as compat  # noqa: E402
import orchestrator_state as state  # noqa: E402

from lib_orchestrator import __version__  # noqa: E402
from lib_orchestrator.compose import lora_gated  # noqa: E402
from lib_orchestrator.enhance import PRESETS, TEMPLATE_NAMES, Enhanced  # noqa: E402
from lib_orchestrator.errors import OrchestratorError  # noqa: E402
from lib_orchestrator.job import JobSettings, enhance_after_paste, pasted_settings, plan_job  # noqa: E402
from lib_orchestrator.provenance import KEY_NOTE, KEY_SETTINGS  # noqa: E402
from lib_orchestrator.selection.llm_choice import ChoiceResult  # noqa: E402
from lib_orchestrator.selection.rules import MATCH_MODES, VARIABLE_SCOPES  # noqa: E402
from lib_orchestrator.wildcards.batch_vars import expander  # noqa: E402

SECTION = ("orchestrator", f"Orchestrator {__version__}")  # the id keys the settings; the label shows the version
DEFAULTS = JobSettings()
LIBRARY = state.LIBRARY
OVERRIDES = state.OVERRIDES
_SAID: set = set()  # wildcard notes already printed: the engine keeps them for as long as its files are unchanged


class OrchestratorScript(scripts.Script):
    sorting_priority = 5

    def title(self) -> str:
        return "Orchestrator"  # never versioned: REST callers and other machines match it by name

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list:
        # Side-effect free: Forge calls this several times (once per tab, twice more for the API).
        gr = compat.gr
        if compat.InputAccordion is not None:
            accordion = compat.InputAccordion(DEFAULTS.enabled, label="Orchestrator", elem_id=self.elem_id("enabled"))
            block = accordion
        else:  # A1111 before 1.7: a plain checkbox inside an accordion
            block = gr.Accordion("Orchestrator", open=False)
            with block:
                accordion = gr.Checkbox(DEFAULTS.enabled, label="Enable", elem_id=self.elem_id("enabled"))
        with block:
            gr.Markdown("Composes each image's prompt from wildcards and picks LoRAs for it. Per-image LoRAs need "
                        "batch size 1: larger batches are split into single-image batches (see Settings).")
            with gr.Row():
                loras = gr.Checkbox(DEFAULTS.loras, label="Pick LoRAs", elem_id=self.elem_id("loras"))
                fixed = gr.Checkbox(DEFAULTS.fixed_prompt, label="Same prompt for every image",
                                    elem_id=self.elem_id("fixed_prompt"))
            with gr.Row():
                min_loras = gr.Slider(0, 10, value=DEFAULTS.min_loras, step=1, label="Min LoRAs",
                                      elem_id=self.elem_id("min_loras"))
                max_loras = gr.Slider(0, 10, value=DEFAULTS.max_loras, step=1, label="Max LoRAs",
                                      elem_id=self.elem_id("max_loras"))
                detailer = gr.Slider(0, 1, value=DEFAULTS.detailer, step=0.05, label="Detailer chance",
                                     elem_id=self.elem_id("detailer"))
            rules_file = gr.Textbox(DEFAULTS.rules_file, label="Rules file (empty: Settings, else defaults)",
                                    elem_id=self.elem_id("rules_file"))
            template = gr.Textbox(DEFAULTS.template, label="Template (empty: the prompt box is the template)",
                                  placeholder="__templates/noir__", elem_id=self.elem_id("template"))
            with gr.Row():
                enhance = gr.Checkbox(DEFAULTS.enhance, label="Enhance prompts with the LLM (server: Settings)",
                                      elem_id=self.elem_id("enhance"))
                genre = gr.Dropdown(choices=state.genre_names(), value=DEFAULTS.genre, allow_custom_value=True,
                                    label="Genre (or your own card text)", elem_id=self.elem_id("genre"))
            # Last of the controls: REST callers' positional args before it keep their meaning.
            match = gr.Dropdown(choices=["", *MATCH_MODES], value=DEFAULTS.match,
                                label="LoRA matching (empty: the rules', else Settings')",
                                elem_id=self.elem_id("match"))
        controls = [accordion, loras, min_loras, max_loras, detailer, rules_file, fixed, template, enhance, genre,
                    match]

        def field(name: str):
            if name == "enhance":
                return enhance_after_paste
            return lambda params: getattr(pasted_settings(params), name)

        self.infotext_fields = [(accordion, lambda params: KEY_SETTINGS in params)] + [
            (control, field(name)) for control, name in zip(controls[1:], [
                "loras", "min_loras", "max_loras", "detailer", "rules_file", "fixed_prompt", "template", "enhance",
                "genre", "match"])]
        self.paste_field_names = [KEY_SETTINGS]
        return controls

    def before_process(self, p: Any, *args: Any) -> None:
        settings = JobSettings.from_args(args)
        if not settings.enabled:
            return
        if settings.template:
            p.prompt = settings.template
        batch_size = int(getattr(p, "batch_size", 1) or 1)
        if settings.loras and batch_size > 1 and state.opt("orchestrator_split_batches", True):
            # Forge applies only a batch's first prompt's LoRAs: one image per batch keeps picks per image.
            p.n_iter = int(p.n_iter) * batch_size
            p.batch_size = 1
            p.extra_generation_params[KEY_NOTE] = f"batches of {batch_size} split into single images"

    def process(self, p: Any, *args: Any) -> None:
        settings = JobSettings.from_args(args)
        if not settings.enabled:
            p._orchestrator_plan = None
            return
        if _planned(p):
            return  # ADetailer runs every script's process() again, on a copy of this p, after each batch
        index = state.current_index()
        known = compat.known_lora_names()
        if index is None or (known is not None and known != state.last_known):
            state.last_known = known  # Forge's LoRA list changed (its Refresh button): rescan in the background
            LIBRARY.refresh()
        kind = compat.checkpoint(shared, sd_models)
        hr = getattr(p, "all_hr_prompts", None) if getattr(p, "enable_hr", False) else None
        enhance = _enhance_step(settings, len(p.all_prompts), kind.family, kind.base_model) \
            if settings.enhance else None
        try:
            engine = state.engine()
            if index is not None and settings.loras:  # wildcard entries that carry a LoRA: only loadable ones
                engine = lora_gated(engine, index, kind.family, kind.base_model, known)
            rules = state.rules(settings.rules_file)
            if index is not None:
                pinned = OVERRIDES.pinned_names(index.records)
                if pinned:
                    rules = replace(rules, pinned=tuple(dict.fromkeys([*rules.pinned, *pinned])))
            # Per batch (the rules file's scope, else Settings'): every image reads its first seed's variables
            expand = expander(engine, int(p.all_seeds[0]) if p.all_seeds else 0, rules.variable_scope())
            plan = plan_job(list(p.all_prompts), list(p.all_negative_prompts), list(p.all_seeds), settings, expand,
                            index, rules, kind.family, kind.base_model, known,
                            batch_size=int(getattr(p, "batch_size", 1) or 1),
                            hr_templates=list(hr) if hr else None, enhance=enhance,
                            no_library=_no_library_note(), chooser=_choose_step(settings.rules(rules)))
        except OrchestratorError as exc:
            print(f"[Orchestrator] {exc.one_line()}", file=sys.stderr)
            p.extra_generation_params[KEY_NOTE] = exc.one_line()
            p._orchestrator_plan = None
            return
        plan.warnings.extend(getattr(expand, "notes", ()))  # variables per batch that stayed per image
        p.all_prompts = plan.prompts
        p.all_negative_prompts = plan.negative_prompts
        if hr and plan.hr_prompts is not None:
            p.all_hr_prompts = plan.hr_prompts
            p.all_hr_negative_prompts = plan.hr_negative_prompts
        p.main_prompt = plan.prompts[0] if plan.prompts else p.main_prompt
        p.main_negative_prompt = plan.negative_prompts[0] if plan.negative_prompts else p.main_negative_prompt
        p.extra_generation_params[KEY_SETTINGS] = settings.to_infotext()
        for warning in plan.warnings:
            print(f"[Orchestrator] {warning}", file=sys.stderr)
        for note in engine.warnings:  # the wildcards' notes (an entry whose LoRA cannot load here): once a session
            if note not in _SAID:
                _SAID.add(note)
                print(f"[Orchestrator] {note}", file=sys.stderr)
        p._orchestrator_plan = plan
        adetailer.prepare(p, engine, expand)  # ADetailer's unit prompts with templates, expanded per image

    def process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        batch = int(kwargs.get("batch_number", getattr(p, "iteration", 0)) or 0)
        adetailer.apply(p, batch * int(getattr(p, "batch_size", 1) or 1))  # the batch's first image

    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        plan = getattr(p, "_orchestrator_plan", None)
        if plan is None:
            return
        index = compat.postprocess_index(p, pp)
        if not 0 <= index < len(plan.images):
            return
        adetailer.apply(p, index)  # when ours runs before ADetailer's
        p.extra_generation_params.update(adetailer.infotext_values(p, index))
        # Plain strings set here land in this image's infotext (a list would be read batch-locally).
        p.extra_generation_params.update(plan.infotext_values(index))
        if plan.hr_prompts is not None:
            # Forge's own `Hires prompt` entry reads all_hr_prompts batch-locally: right only for image 0.
            same = plan.hr_prompts[index] == plan.prompts[index]
            p.extra_generation_params["Hires prompt"] = None if same else plan.hr_prompts[index]
            p.extra_generation_params["Hires negative prompt"] = None

    def postprocess_image_after_composite(self, p: Any, pp: Any, *args: Any) -> None:
        # ADetailer's postprocess_image of the next image may come before ours: its args are set now
        adetailer.after_image(p, compat.postprocess_index(p, pp))


def _planned(p: Any) -> bool:
    """Whether p's prompts are already the plan's: ADetailer calls process() again on copies of p (p's
    prompts put back after each); a new generation's prompts are its templates, fresh from Forge."""
    plan = getattr(p, "_orchestrator_plan", None)
    return plan is not None and list(p.all_prompts) == plan.prompts and \
        [int(s) for s in p.all_seeds] == [image.composed.seed for image in plan.images]


def _no_library_note() -> str:
    """What each image's infotext says when it got no LoRAs for want of an index: a failed scan is said, never
    shown as "still indexing" for ever."""
    status = LIBRARY.status()
    return status.text() if status.failed else "LoRA library still indexing: wildcards only"


def _enhance_step(settings: JobSettings, total: int, family: str, base: Any) -> Callable[[str, int], Enhanced]:
    enhancer = state.enhancer(settings.genre)
    embeddings = compat.embedding_names(shared)
    done = [0]

    def step(prompt: str, seed: int) -> Enhanced:
        if getattr(shared.state, "interrupted", False):  # Interrupt: stop asking, generate nothing more
            return Enhanced(prompt, prompt, "skipped", "interrupted")
        done[0] += 1
        # Forge shows textinfo under the progress bar: the wait for the LLM is not a hang
        shared.state.textinfo = f"Orchestrator: enhancing prompt {done[0]}/{total} with the LLM"
        try:
            return enhancer(prompt, seed, family, base, embeddings)
        finally:
            shared.state.textinfo = None

    return step


def _choose_step(rules: Any) -> Any:
    """The LLM's LoRA choice for `match: llm` (None otherwise), as the enhancement step: said under the
    progress bar while it waits, and not asked once the user pressed Interrupt."""
    chooser = state.chooser(rules)
    if chooser is None:
        return None

    def step(prompt: str, seed: int, cards: Any) -> ChoiceResult:
        if getattr(shared.state, "interrupted", False):
            return ChoiceResult((), "interrupted")
        shared.state.textinfo = "Orchestrator: choosing LoRAs with the LLM"
        try:
            return chooser(prompt, seed, cards)
        finally:
            shared.state.textinfo = None

    return step


def on_ui_settings() -> None:
    options = {
        "orchestrator_wildcard_dirs": shared.OptionInfo(
            "", "Extra wildcard folders (comma-separated; the bundled wildcards are always searched first)",
            section=SECTION),
        "orchestrator_wildcard_extensions": shared.OptionInfo(
            True, "Also search every enabled extension's wildcards/ folder, after yours (sd-dynamic-prompts' "
            "folder too, even when it is disabled); the search order is listed below and under the Orchestrator "
            "tab's wildcard list", section=SECTION),
        "orchestrator_wildcard_order": shared.OptionHTML(_search_order_html()),
        "orchestrator_rules_file": shared.OptionInfo("", "Default rules file (YAML)", section=SECTION),
        "orchestrator_cache_path": shared.OptionInfo(
            "", "LoRA library cache file (empty: cache/library.sqlite in the extension folder)", section=SECTION),
        "orchestrator_match": shared.OptionInfo(
            "hybrid", "LoRA matching: keyword (words, triggers), semantic (meaning), hybrid (both), llm (the LLM "
            "server below chooses among the hybrid candidates)", compat.gr.Dropdown, {"choices": list(MATCH_MODES)},
            section=SECTION),
        "orchestrator_embed": shared.OptionInfo(
            "builtin", "What gives LoRAs and prompts their meaning: builtin (offline, in-process), off, or an "
            "OpenAI-compatible embeddings server: lmstudio, ollama, llamacpp or its address",
            onchange=LIBRARY.refresh, section=SECTION),  # the library's vectors are made again, in the background
        "orchestrator_embed_model": shared.OptionInfo(
            "", "Embedding model on that server (empty: the first it lists with 'embed' in its name)",
            onchange=LIBRARY.refresh, section=SECTION),
        "orchestrator_history": shared.OptionInfo(
            True, "Keep a history of the images Forge saves (search, ratings, LoRA scores that steer picks)",
            section=SECTION),
        "orchestrator_history_path": shared.OptionInfo(
            "", "History index file (empty: data/history.sqlite in the extension folder; it holds your ratings)",
            section=SECTION),
        "orchestrator_history_dirs": shared.OptionInfo(
            "", "More image folders for the history (comma-separated; Forge's output folders are always in it)",
            onchange=state.HISTORY.refresh, section=SECTION),
        "orchestrator_servers": shared.OptionInfo(
            "", "Servers for *Run on all servers* (comma-separated Forge addresses started with --api, e.g. "
            "http://192.168.1.20:7860; no passwords here: set ORCHESTRATOR_SERVER_AUTH=user:password for --api-auth)",
            section=SECTION),
        "orchestrator_dispatch_here": shared.OptionInfo(
            True, "*Run on all servers* makes images on this Forge too (needs --api)", section=SECTION),
        "orchestrator_queue": shared.OptionInfo(
            "", "Dispatch queue (empty: a file beside each batch; postgresql://user@host/db shares one queue between "
            "machines, with the password in PGPASSWORD or ~/.pgpass)", section=SECTION),
        "orchestrator_variables": shared.OptionInfo(
            "image", "Immediate variables ${v=!…}: drawn per image (default) or once per batch (one value for every "
            "image of a generation; a rules file's `variables:` wins)", compat.gr.Radio,
            {"choices": list(VARIABLE_SCOPES)}, section=SECTION),
        "orchestrator_split_batches": shared.OptionInfo(
            True, "Split batches into single images so every image gets its own LoRAs", section=SECTION),
        "orchestrator_llm_url": shared.OptionInfo(
            PRESETS["lmstudio"], "LLM server (OpenAI-compatible): LM Studio http://localhost:1234/v1, Ollama "
            "http://localhost:11434/v1, llama.cpp http://localhost:8080/v1", section=SECTION),
        "orchestrator_llm_model": shared.OptionInfo("", "LLM model (empty: the first the server lists)",
                                                    section=SECTION),
        "orchestrator_llm_template": shared.OptionInfo(
            "auto", "LLM enhancement template (auto: from the checkpoint)", compat.gr.Dropdown,
            {"choices": ["auto", *TEMPLATE_NAMES]}, section=SECTION),
        "orchestrator_llm_templates_dir": shared.OptionInfo(
            "", "Your enhancement templates folder (files there replace the shipped ones of the same name)",
            section=SECTION),
        "orchestrator_llm_timeout": shared.OptionInfo(
            60, "Seconds to wait for the LLM's answer (the first call may load the model)", compat.gr.Slider,
            {"minimum": 5, "maximum": 600, "step": 5}, section=SECTION),
    }
    options["orchestrator_wildcard_order"].section = SECTION  # an OptionHTML takes only its text
    for key, info in options.items():
        shared.opts.add_option(key, info)


def _search_order_html() -> str:
    """The wildcard folders in search order as Settings shows them (as they were when the page was built: the
    Compose page's list follows changes at once)."""
    items = "".join(f"<li><code>{html.escape(f.path)}</code> ({html.escape(f.origin)})</li>"
                    for f in state.wildcard_folders())
    return f"Wildcard folders, in search order (the first that has a name owns it):<ol>{items}</ol>"


def on_app_started(*_args: Any) -> None:
    LIBRARY.refresh()
    state.HISTORY.refresh()


def on_image_saved(params: Any) -> None:
    """Every image Forge saves (ours, txt2img's, img2img's, grids) goes into the history as it is written."""
    filename = getattr(params, "filename", None)
    if filename:
        state.HISTORY.add_file(filename)


# Callbacks at import, not in Script.__init__: Forge re-imports this file on every UI reload and clears
# callbacks before, while it creates Script instances several times.
script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_app_started(on_app_started)
script_callbacks.on_image_saved(on_image_saved)
