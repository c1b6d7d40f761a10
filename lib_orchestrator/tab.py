"""What the Orchestrator tab does, without Gradio: every handler takes and returns plain values, so it
is tested directly; scripts/orchestrator_tab.py only wires these to widgets."""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Set, Tuple

from .checkpoint import NATIVE_SIZE
from .errors import OrchestratorError
from .history_tab import score_line
from .library.browse import Catalogue, Query, details, score_of
from .library.overrides import Override, OverrideStore
from .library.thumbnails import name_card, thumbnail
from .preview import preview
from .selection import LoraIndex, Rules
from .swatches import Swatch, parse_weights, plan_swatch
from .wildcards import PromptEngine

_NAME = re.compile(r"^[\w\- ]{1,80}$")
BATCH_FORMATS = ("json", "txt", "csv")


@dataclass
class TabModel:
    engine: Callable[[], PromptEngine]
    index: Callable[[], Optional[LoraIndex]]
    records: Callable[[], List[Any]]
    checkpoint: Callable[[], Tuple[str, str]]  # (family, base model) of the loaded checkpoint
    overrides: OverrideStore
    library_roots: Callable[[], List[str]]
    saved_dir: str  # where "save template" writes: <saved_dir>/user_templates/NAME.txt
    thumbs_dir: str
    rules: Callable[[], Rules] = field(default=lambda: Rules())
    batches_dir: str = "saved_batches"
    running: Set[str] = field(default_factory=set)  # batch files being run now: never overwritten
    enhancer: Optional[Callable[[str], Any]] = None  # genre -> an Enhancer for the Settings' server
    embeddings: Callable[[], List[str]] = field(default=lambda: [])  # textual-inversion names to protect
    # a checkpoint name as the user wrote it -> (the host's exact name for it, family, base model), or None when
    # the host has no such checkpoint; unset (the CLI, tests): names are taken as written, with the selected
    # checkpoint's family
    checkpoints: Optional[Callable[[str], Optional[Tuple[str, str, str]]]] = None
    upscalers: Callable[[], List[str]] = field(default=lambda: [])  # the host's hires upscaler names
    overrides_changed: Callable[[], None] = field(default=lambda: None)  # e.g. re-index the library with them
    library_status: Callable[[], Any] = field(default=lambda: None)  # a LibraryStatus (library/service.py), or None
    # a LoRA's name in lower case -> its LoraScore (history/effect.py) over all weights: the library browser's
    # effectiveness line, its sort by effectiveness and its filter to rated LoRAs
    lora_scores: Callable[[], Mapping[str, Any]] = field(default=lambda: {})
    _catalogue_of: Any = field(default=None, init=False, repr=False)
    _catalogue_cache: Optional[Catalogue] = field(default=None, init=False, repr=False)

    # -- compose ------------------------------------------------------------------------------
    def compose_preview(self, template: str, seed: int, count: int, locks: str, pinned: str,
                        enhance: bool = False, genre: str = "") -> Tuple[str, str]:
        """(HTML table of prompts and picks, lint messages)."""
        result = self._preview(template, seed, max(1, min(int(count), 50)), locks, pinned, enhance, genre)
        rows = []
        for k, c in enumerate(result.prompts):
            picks = "".join(
                f"<li><b>{html.escape(p.name)}</b> @ {p.weight:g} <i>{html.escape(p.category)}</i>, "
                f"{html.escape(p.reason)}, score {p.score:g}"
                f"{f', similarity {p.similarity:.2f}' if p.similarity is not None and p.reason != 'semantic' else ''}"
                f"{', matched ' + html.escape(', '.join(p.matched[:5])) if p.matched else ''}"
                f"{': ' + html.escape(p.why) if p.why else ''}</li>"
                for p in c.loras)
            llm = ""
            if result.enhanced and result.enhanced[k] is not None:
                e = result.enhanced[k]
                llm = (f"<div class='orch-llm orch-llm-{e.status}'>LLM {html.escape(e.status)}"
                       f"{': ' + html.escape(e.reason) if e.reason else ''}"
                       f"{'<br>was: ' + html.escape(e.original) if e.status == 'enhanced' else ''}</div>")
            rows.append(f"<tr><td>{c.seed}</td><td class='orch-prompt'>{html.escape(c.prompt)}{llm}</td>"
                        f"<td><ul>{picks}</ul></td></tr>")
        table = ("<table class='orch-preview'><tr><th>seed</th><th>prompt</th><th>LoRAs</th></tr>"
                 + "".join(rows) + "</table>") if rows else ""
        return table, "\n".join(result.messages)

    def first_prompt(self, template: str, seed: int, locks: str, pinned: str, enhance: bool = False,
                     genre: str = "") -> Tuple[str, str]:
        """(prompt, negative) of the first previewed image, for 'send to txt2img' (the LLM's answer is
        cached, so this is the prompt the preview showed)."""
        result = self._preview(template, seed, 1, locks, pinned, enhance, genre)
        if not result.prompts:
            return "", ""
        return result.prompts[0].prompt, result.prompts[0].negative_prompt

    def _preview(self, template: str, seed: int, count: int, locks: str, pinned: str, enhance: bool,
                 genre: str) -> Any:
        family, base = self.checkpoint()
        step = None
        if enhance and self.enhancer is not None:
            enhancer, embeddings = self.enhancer(genre), self.embeddings()
            step = lambda text, s: enhancer(text, s, family, base, embeddings)  # noqa: E731
        index = self.index()
        rules = self.rules()
        chooser = None
        if rules.match == "llm" and self.enhancer is not None:
            from .selection.llm_choice import LlmChooser

            chooser = LlmChooser(self.enhancer(""))
        found = preview(template, int(seed), count, self.engine(), index, rules, family, base,
                        locks=parse_locks(locks), pinned=[p.strip() for p in pinned.split(",") if p.strip()],
                        enhance=step, chooser=chooser)
        status = self.library_status()
        why = (status.text() if index is None and status is not None and status.failed
               else "the LoRA library is still being indexed: no LoRAs picked yet, preview again in a moment"
               if index is None else "the selected checkpoint's model family is unknown: no LoRA is picked for it"
               if family == "unknown" else "")
        return replace(found, messages=found.messages + (why,)) if why and found.prompts else found

    def check_llm(self) -> str:
        """The LLM server's readiness, for the tab's check button."""
        if self.enhancer is None:
            return "no LLM configured"
        from .enhance.client import LlmError, readiness

        try:
            return readiness(self.enhancer("").server)
        except LlmError as exc:
            return f"not ready: {exc}"

    # -- story --------------------------------------------------------------------------------
    def plan_story(self, bible_text: str, scenes: int, seed: int, use_llm: bool) -> Tuple[str, str]:
        """(status, HTML table of the scenes in order)."""
        planned = self._story(bible_text, scenes, seed, use_llm)
        if isinstance(planned, str):
            return planned, ""
        _, found, note = planned
        return note or f"{len(found)} scenes planned by the LLM", story_table(found)

    def save_story(self, name: str, bible_text: str, scenes: int, seed: int, use_llm: bool,
                   negative: str = "") -> Tuple[str, str]:
        """Plan the story (the LLM's beats come from the cache when just previewed) and save it as a batch."""
        from .story import story_batch

        name = name.strip()
        if not _NAME.match(name):
            return "error: a batch name is letters, digits, spaces, '-' and '_'", ""
        planned = self._story(bible_text, scenes, seed, use_llm)
        if isinstance(planned, str):
            return planned, ""
        bible, found, _ = planned
        batch = story_batch(name, bible, found, int(seed), negative=negative)
        path = os.path.join(self.batches_dir, f"{name}.json")
        error = _save_unless_under_way(batch, path, self.running)
        return (error or f"saved {len(found):,} scenes to {path}"), story_table(found)

    def _story(self, bible_text: str, scenes: int, seed: int, use_llm: bool) -> Any:
        from .enhance.templates import genre_card, load_template, template_for
        from .story import make_story, parse_bible
        from .story.beats import llm_asker

        family, base = self.checkpoint()
        try:
            bible = parse_bible(bible_text, "story bible")
            enhancer = self.enhancer(bible.genre) if self.enhancer is not None else None
            folder = (enhancer.options.templates_dir or None) if enhancer else None
            chosen = enhancer.options.template if enhancer else "auto"
            template = load_template(template_for(family, base) if chosen == "auto" else chosen, folder)
            card = genre_card(bible.genre, folder)
        except OrchestratorError as exc:
            return f"error: {exc.one_line()}"
        ask = llm_asker(enhancer.chat, bible, int(seed), f"story@{template.ident}") \
            if use_llm and enhancer is not None else None

        found, note = make_story(bible, max(1, min(int(scenes), 100)), int(seed), template, card, ask)
        return bible, found, note

    def save_template(self, name: str, template: str) -> str:
        name = name.strip()
        if not _NAME.match(name):
            return "error: a template name is letters, digits, spaces, '-' and '_'"
        if not template.strip():
            return "error: the template is empty"
        folder = os.path.join(self.saved_dir, "user_templates")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name + ".txt"), "w", encoding="utf-8") as fh:
            fh.write(template.replace("\n", " ").strip() + "\n")
        self.engine().refresh()
        return f"saved: use __user_templates/{name}__ as the Orchestrator template"

    # -- batches ------------------------------------------------------------------------------
    def save_batch_file(self, name: str, fmt: str, template: str, negative: str, count: int, seed: int,
                        settings: Dict[str, Any]) -> Tuple[str, str]:
        """Plan every image and write `<batches_dir>/<name>.<fmt>`: (status, the batch as a table)."""
        from .batches import Settings, plan_batch

        name = name.strip()
        if not _NAME.match(name):
            return "error: a batch name is letters, digits, spaces, '-' and '_'", ""
        if fmt not in BATCH_FORMATS:  # the dropdown's choices are not enforced by the server
            return f"error: a batch is saved as {', '.join(BATCH_FORMATS)}, not {fmt!r}", ""
        resolved = self.generation_settings(settings)
        if isinstance(resolved, str):
            return resolved, ""
        settings, family, base = resolved
        try:
            batch = plan_batch(name, template, int(count), int(seed), self.engine(), self.index(), self.rules(),
                               family, base, settings=Settings(**settings), negative=negative,
                               loras=self.index() is not None)
        except (OrchestratorError, TypeError, ValueError) as exc:
            return f"error: {exc}", ""
        path = os.path.join(self.batches_dir, f"{name}.{fmt}")
        error = _save_unless_under_way(batch, path, self.running)
        if error:
            return error, ""
        return f"saved {len(batch.images):,} images to {path}", batch_table(batch, {})

    def generation_settings(self, settings: Dict[str, Any]) -> Any:
        """The form's generation settings made whole for the checkpoint they run on: (settings, family,
        base model), or an error line. A named checkpoint becomes the host's exact name for it (Forge
        quietly ignores any other) and brings its own family; a width or height of 0 is that family's
        native size; a hires CFG of 0 is the base CFG; a hires upscaler must be one the host has."""
        family, base = self.checkpoint()
        checkpoint = (settings.get("checkpoint") or "").strip() or None
        if checkpoint and self.checkpoints is not None:
            found = self.checkpoints(checkpoint)
            if found is None:
                return f"error: Forge has no checkpoint named {checkpoint!r} (see its checkpoint list)"
            checkpoint, family, base = found
        native_w, native_h = NATIVE_SIZE.get(family, (1024, 1024))
        settings = dict(settings, checkpoint=checkpoint, width=int(settings.get("width") or native_w),
                        height=int(settings.get("height") or native_h))
        if "hr_cfg" in settings and not settings["hr_cfg"]:
            settings["hr_cfg"] = None
        problem = self._missing_upscaler(bool(settings.get("enable_hr")), settings.get("hr_upscaler"))
        return f"error: {problem}" if problem else (settings, family, base)

    def _missing_upscaler(self, enable_hr: bool, name: Any) -> str:
        names = self.upscalers()
        if enable_hr and names and name not in names:
            return f"this Forge has no hires upscaler {name!r} (it has {', '.join(names)})"
        return ""

    def batch_files(self) -> List[str]:
        try:
            return sorted(f for f in os.listdir(self.batches_dir) if f.endswith((".json", ".txt", ".csv")))
        except OSError:
            return []

    def show_batch(self, file: str) -> Tuple[str, str]:
        """(status with the run state, the batch as a table) of a saved batch."""
        from .batches import RunState, load_batch

        if not file:
            return "", ""
        path = os.path.join(self.batches_dir, os.path.basename(file))
        try:
            batch = load_batch(path)
        except OrchestratorError as exc:
            return exc.one_line(), ""
        state = RunState(path)
        return f"{batch.name}: {state.summary(batch)}", batch_table(batch, state.done())

    def run_batch(self, file: str, run: Callable[[Any, str, Callable[[Any], None]], Any]
                  ) -> Iterator[Tuple[List[str], str, str]]:
        """Run what is left of a saved batch with the host's `run(batch, path, on_progress)` (blocking: it
        makes the images), streaming (gallery files, status line, batch table with its done column). A batch
        that cannot run here (a checkpoint or upscaler this host lacks) or is already running is refused
        before any image is made."""
        from .batches.stream import WorkFailed, stream

        batch, path, refused = self._saved(file)
        if refused:
            yield refused
            return
        problem = self._already_running(path) or self._cannot_run(batch)
        if problem:
            yield self._batch_view(batch, path, f"error: {problem}")
            return
        self.running.add(path)

        def work(emit: Callable[[Any], None]) -> None:
            try:
                run(batch, path, emit)
            finally:
                self.running.discard(path)

        events = stream(work)
        status = "starting…"
        yield self._batch_view(batch, path, status)
        for event in events:
            status = f"error: {event}" if isinstance(event, WorkFailed) else event.text()
            yield self._batch_view(batch, path, status)
        yield self._batch_view(batch, path, status, final=True)

    def dispatch_batch(self, file: str, servers: Callable[[], List[str]], dispatch: Callable[..., Any]
                       ) -> Iterator[Tuple[List[str], str, str]]:
        """*Run on all servers*: what is left of a saved batch made on every server at once by the host's
        `dispatch(batch, path, servers, on_snapshot)` (blocking: dispatch/run.py dispatch_file with the host's
        queue, output folder and stop event), streaming (gallery, status with each server's rate, table) like
        `run_batch`. The servers come from `servers()` (the Settings list and this Forge), which may refuse with an
        OrchestratorError; whether each server can make each image is checked per server by the dispatcher."""
        from .batches.stream import WorkFailed, stream

        batch, path, refused = self._saved(file)
        if refused:
            yield refused
            return
        try:
            urls = servers()
        except OrchestratorError as exc:  # the Settings' list: no file location, so the line reads "error: …"
            yield self._batch_view(batch, path, exc.one_line())
            return
        if not urls:
            yield self._batch_view(batch, path, "error: no server to run on: list them in Settings › Orchestrator "
                                                "› Servers, or start this Forge with --api")
            return
        problem = self._already_running(path)  # what each server lacks, the dispatcher checks per server
        if problem:
            yield self._batch_view(batch, path, f"error: {problem}")
            return
        self.running.add(path)
        last: List[Any] = []

        def work(emit: Callable[[Any], None]) -> None:
            try:
                last.append(dispatch(batch, path, urls, emit))
            except OrchestratorError as exc:  # no server answered, a queue it cannot use: said as such
                last.append(exc)
            finally:
                self.running.discard(path)

        status = f"starting on {len(urls)} server{'s' if len(urls) != 1 else ''}…"
        yield self._batch_view(batch, path, status)
        for event in stream(work, name="orchestrator-dispatch"):
            status = f"error: {event}" if isinstance(event, WorkFailed) else dispatch_status(event)
            yield self._batch_view(batch, path, status)
        if last:
            status = last[-1].one_line() if isinstance(last[-1], OrchestratorError) else \
                dispatch_status(last[-1], final=True)
        yield self._batch_view(batch, path, status)

    def _saved(self, file: str) -> Tuple[Any, str, Optional[Tuple[List[str], str, str]]]:
        """(the saved batch, its path, None), or (None, path, the view that says why it cannot be read)."""
        from .batches import load_batch

        if not file:
            return None, "", ([], "pick a saved batch first", "")
        path = os.path.abspath(os.path.join(self.batches_dir, os.path.basename(file)))
        try:
            return load_batch(path), path, None
        except OrchestratorError as exc:
            return None, path, ([], f"error: {exc.one_line()}", "")

    def _already_running(self, path: str) -> str:
        if path in self.running:
            return f"{os.path.basename(path)} is running already: its images appear below as they are made"
        return ""

    def _cannot_run(self, batch: Any) -> str:
        problem = self._missing_upscaler(batch.settings.enable_hr, batch.settings.hr_upscaler)
        if problem:
            return f"{problem}: load the batch into the form, pick one and save it under a new name"
        if self.checkpoints is not None:
            missing = sorted({c for c in map(batch.checkpoint_of, batch.images) if c and self.checkpoints(c) is None})
            if missing:
                return f"this Forge has no checkpoint named {', '.join(missing)}"
        return ""

    def _batch_view(self, batch: Any, path: str, status: str, final: bool = False) -> Tuple[List[str], str, str]:
        from .batches import RunState

        state = RunState(path)
        done = state.done()
        files = [f for f in done.values() if f and os.path.exists(f)]
        if final:
            summary = state.summary(batch)
            status = f"{status} · {summary}" if status.startswith("error") else summary
        return files, status, batch_table(batch, done)

    def batch_form(self, file: str) -> Tuple[str, Dict[str, Any]]:
        """(status, the form's values) of a saved batch, to edit it and plan it again: name, template,
        negative, count, seed and every generation setting (hires CFG 0: the base CFG)."""
        from dataclasses import asdict

        from .batches import load_batch

        if not file:
            return "pick a saved batch first", {}
        try:
            batch = load_batch(os.path.join(self.batches_dir, os.path.basename(file)))
        except OrchestratorError as exc:
            return exc.one_line(), {}
        if batch.origin == "story" or batch.template.startswith("story: "):  # (older story files say so this way)
            return f"{file} holds a story's scenes: plan them again in the Story tab", {}
        if batch.origin == "by LoRA":
            return f"{file} is a batch by LoRA: plan it again in the Swatches tab", {}
        if not batch.template:
            return f"{file} is a list of prompts, not a template: edit the file itself", {}
        values = dict(asdict(batch.settings), checkpoint=batch.settings.checkpoint or "",
                      format=os.path.splitext(file)[1].lstrip(".").lower(),
                      hr_cfg=batch.settings.hr_cfg or 0, name=batch.name, template=batch.template,
                      negative=batch.negative_template, count=len(batch.images), seed=batch.seed)
        return f"loaded {file} into the form", values

    # -- swatches -----------------------------------------------------------------------------
    def plan_swatch(self, names: str, text: str, category: str, weights: str, template: str, seed: int,
                    negative: str = "", limit: int = 24) -> Tuple[str, Optional[Swatch]]:
        """(status, swatch): the LoRAs named (one per line or comma), else the first `limit` the filter
        finds among those that load on this checkpoint; the template expanded once with `seed`."""
        status, grids = self.plan_swatches(names, text, category, weights, template, seed, negative, limit=limit)
        return status, grids[0][0] if grids else None

    def plan_swatches(self, names: str, text: str, category: str, weights: str, template: str, seed: int,
                      negative: str = "", axis: str = "", values: str = "",
                      limit: int = 24) -> Tuple[str, List[Tuple[Swatch, Optional[str]]]]:
        """(status, [(swatch, checkpoint)]): one grid, or one per value of a second axis: `prompts` (each
        line a template, expanded once) or `checkpoints` (each line a checkpoint of the loaded one's
        family, judged by the loaded one's base model). The weights and LoRAs are worked out once."""
        lines = [v.strip() for v in (values or "").splitlines() if v.strip()] if axis else []
        if lines and axis not in ("prompts", "checkpoints"):
            return f"error: unknown second axis {axis!r} (prompts or checkpoints)", []
        _, base = self.checkpoint()
        try:
            parsed = parse_weights(weights)
            templates = lines if axis == "prompts" and lines else [template]
            prompts = [self.engine().prompt(t, int(seed)) if t.strip() else "" for t in templates]
        except OrchestratorError as exc:
            return exc.one_line(), []
        error, records = self._chosen_loras(names, text, category, limit)
        if error:
            return error, []
        swatches = [plan_swatch(prompt, int(seed), records, parsed, base, negative) for prompt in prompts]
        first = swatches[0]
        status = "\n".join([f"{len(first.loras)} LoRAs × {len(parsed)} weights + baseline = {len(first.cells)} images"]
                           + [f"- {note}" for note in first.notes])
        if axis == "prompts" and lines:
            return f"{len(swatches)} grids, one per prompt · {status}", [(swatch, None) for swatch in swatches]
        if axis == "checkpoints" and lines:
            checkpoints = []
            for line in lines:  # the LoRAs were chosen for the selected checkpoint: every grid is of its family
                found = self.checkpoints(line) if self.checkpoints is not None else (line, "", base)
                if found is None:
                    return f"error: Forge has no checkpoint named {line!r}", []
                exact, family, other = found
                if family and family != self.checkpoint()[0]:
                    return (f"error: {line} is a {other} checkpoint; the swatch's LoRAs are for {base}: "
                            "name checkpoints of the selected one's family"), []
                checkpoints.append(exact)
            return f"{len(lines)} grids, one per checkpoint · {status}", [(first, c) for c in checkpoints]
        return status, [(first, None)]

    def run_swatches(self, make_grid: Any, names: str, text: str, category: str, template: str, negative: str,
                     weights: str, seed: int, steps: int, width: int, height: int, cfg: float, axis: str,
                     values: str, current: Optional[Dict[str, Any]], rerun: bool = False,
                     stopped: Callable[[], bool] = lambda: False,
                     on_start: Callable[[int], None] = lambda cells: None) -> Tuple[List[Any], str, Dict[str, Any]]:
        """Plan the swatch's grids (or, to re-run, take the last ones with their own settings) and make them
        with the host's `make_grid`: (gallery, status, the state to keep for a re-run)."""
        from .batches import Settings
        from .swatches.session import PlannedGrid, run_grids

        current = current or {}
        if rerun and current.get("grids"):
            return self._shown(run_grids(current["grids"], make_grid, stopped, on_start))
        resolved = self.generation_settings(dict(steps=int(steps or 20), width=int(width or 0),
                                                 height=int(height or 0), cfg_scale=float(cfg or 7.0)))
        if isinstance(resolved, str):
            return [], resolved, current
        settings = Settings(**resolved[0])
        status, grids = self.plan_swatches(names, text, category, weights, template, int(seed or 0), negative,
                                           axis if axis != "none" else "", values)
        if not grids:
            return [], status, current
        planned = [PlannedGrid(swatch, checkpoint, settings) for swatch, checkpoint in grids]
        return self._shown(run_grids(planned, make_grid, stopped, on_start, note=status))

    @staticmethod
    def _shown(view: Any) -> Tuple[List[Any], str, Dict[str, Any]]:
        return view.gallery, view.status, view.state()

    def save_batch_by_lora(self, name: str, names: str, text: str, category: str, template: str, negative: str,
                           count: int, seed: int, weight: float, settings: Dict[str, Any],
                           limit: int = 24) -> Tuple[str, str]:
        """The same prompt set once per chosen LoRA, saved as `<name>.json` to run like any batch."""
        from .batches import Settings
        from .swatches.by_lora import plan_batch_by_lora

        name = name.strip()
        if not _NAME.match(name):
            return "error: a batch name is letters, digits, spaces, '-' and '_'", ""
        error, records = self._chosen_loras(names, text, category, limit)
        if error:
            return error, ""
        resolved = self.generation_settings(settings)
        if isinstance(resolved, str):
            return resolved, ""
        settings, _, base = resolved
        try:
            batch, notes = plan_batch_by_lora(name, template, int(count), int(seed), self.engine(), records,
                                              float(weight), base, Settings(**settings), negative)
        except (OrchestratorError, TypeError, ValueError) as exc:
            return f"error: {exc}", ""
        path = os.path.join(self.batches_dir, f"{name}.json")
        error = _save_unless_under_way(batch, path, self.running)
        if error:
            return error, ""
        lines = [f"saved {len(batch.images):,} images ({len(batch.images) // max(1, int(count))} LoRAs × "
                 f"{int(count)} prompts) to {path}"]
        return "\n".join(lines + [f"- {note}" for note in notes]), batch_table(batch, {})

    def _chosen_loras(self, names: str, text: str, category: str, limit: int) -> Tuple[str, List[Any]]:
        """(error, records): the LoRAs named, else the first `limit` of the filter's among those that
        load on this checkpoint."""
        wanted = [n.strip() for n in re.split(r"[,\n]", names or "") if n.strip()]
        if wanted:
            by_name = {r.name.lower(): r for r in self.records()}
            unknown = [n for n in wanted if n.lower() not in by_name]
            if unknown:
                return f"error: no LoRA named {', '.join(unknown)} in the library", []
            return "", [by_name[n.lower()] for n in wanted]
        _, base = self.checkpoint()
        records = list(self._catalogue().search(Query(
            text=text or "", category=category or None, checkpoint=base, page_size=limit)).items)
        return ("" if records else "error: no LoRA matches; name some, or widen the filter"), records

    def swatch_thumbnail_path(self, record: Any) -> str:
        """Where a LoRA's chosen swatch cell is kept: our data folder, never beside the user's files."""
        return os.path.join(self.thumbs_dir, "swatches", record.path + ".png")

    def use_as_thumbnail(self, lora: str, image_file: str) -> str:
        """Keep a swatch cell as the LoRA's thumbnail in the library browser."""
        record = next((r for r in self.records() if r.name == lora), None)
        if record is None or not image_file or not os.path.exists(image_file):
            return "error: pick a cell with a LoRA first"
        from PIL import Image

        target = self.swatch_thumbnail_path(record)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with Image.open(image_file) as im:
            im.convert("RGB").save(target + ".tmp.png")
        os.replace(target + ".tmp.png", target)
        return f"{lora}: this cell is now its thumbnail"

    # -- library ------------------------------------------------------------------------------
    def search(self, text: str, category: str, base_model: str, compatible_only: bool, warnings_only: bool,
               page: int, sort: str = "", rated_only: bool = False,
               page_size: int = 48) -> Tuple[List[Tuple[Optional[str], str]], str, List[str]]:
        """(gallery items (thumbnail or None, caption), page summary, paths of the items). `sort`:
        "effectiveness" puts the best judged LoRAs first; `rated_only` keeps the judged ones."""
        _, base = self.checkpoint()
        wants_scores = sort == "effectiveness" or bool(rated_only)
        result = self._catalogue().search(Query(
            text=text or "", category=category or None, base_model=base_model or None,
            checkpoint=base if compatible_only else None, warnings_only=bool(warnings_only),
            page=int(page or 0), page_size=page_size, sort="effectiveness" if sort == "effectiveness" else "",
            rated_only=bool(rated_only)), self._scores() if wants_scores else None)
        items, paths = [], []
        for r in result.items:
            items.append((self._thumb(r) or name_card(self.thumbs_dir, r.name, f"{r.category} · {r.base_model}"),
                          f"{r.name} · {r.base_model}" + (" ⚠" if r.problems else "")))
            paths.append(r.path)
        status = self.library_status()
        if self.index() is None and not result.total:
            summary = status.text() if status is not None and status.failed else \
                "indexing your LoRA library in the background: this page fills in a moment"
            return items, summary, paths
        summary = f"{result.total:,} LoRAs · page {result.page + 1} of {result.pages}"
        if status is not None and (status.failed or status.skipped or status.with_problems or status.last_error):
            summary += f"\n\n{status.text()}"  # a skipped file or a failed rescan is never silent
        elif status is not None and status.semantic:  # embedded, embedding, or why matching uses keywords only
            summary += f" · {status.semantic}"
        return items, summary, paths

    def _scores(self) -> Mapping[str, Any]:
        return self.lora_scores() or {}

    def _catalogue(self) -> Catalogue:
        """Built once per library scan (the service hands out a new list after each)."""
        records = self.records()
        if self._catalogue_of is not records:
            self._catalogue_cache = Catalogue(records)
            self._catalogue_of = records
        return self._catalogue_cache  # type: ignore[return-value]

    def _thumb(self, record: Any) -> Optional[str]:
        chosen = self.swatch_thumbnail_path(record)
        if os.path.exists(chosen):
            return thumbnail(chosen, self.thumbs_dir)
        if not record.preview:
            return None
        for root in self.library_roots():
            source = os.path.join(root, record.preview)
            if os.path.exists(source):
                return thumbnail(source, self.thumbs_dir)
        return None

    def details_html(self, path: str) -> str:
        record = next((r for r in self.records() if r.path == path), None)
        if record is None:
            return ""
        d = details(record)
        override = self.overrides.get(path)
        said = "; ".join(f"{c['source']} {c['field']}: {c['value']} ({c['specificity']})"
                         for c in d["base_model_candidates"])
        rows = [("base model", f"{d['base_model']} ({d['base_model_source']}, family {d['family']})"),
                ("base model evidence", said or "none"),
                ("category", f"{d['category']} ({d['category_source']})"),
                ("trigger words", f"{', '.join(d['trigger_words']) or '—'} ({d['trigger_source'] or 'none'})"),
                ("activation text", " || ".join(d["activation_text"]) or "—"),
                ("weight", f"{d['preferred_weight'] if d['preferred_weight'] is not None else 'default'} "
                           f"({d['weight_source'] or 'category default'})"),
                ("sha256", d["sha256"] or "unknown (not hashed)"), ("tensor hash", d["tensor_hash"] or "—"),
                ("warnings", "; ".join(f"{w['code']}: {w['message']}" for w in d["warnings"]) or "none"),
                ("effectiveness", score_line(score_of(record, self._scores()))),
                ("notes", override.notes or "—"),
                ("thumbnail", "a swatch cell you chose" if os.path.exists(self.swatch_thumbnail_path(record))
                 else "its preview file" if record.preview else "none")]
        table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return (f"<h3>{html.escape(d['name'])}</h3><p><code>{html.escape(d['path'])}</code></p>"
                f"<table class='orch-details'>{table}</table><div class='orch-description'>{d['description_html']}"
                "</div>")

    def save_override(self, path: str, category: str, weight: Any, excluded: bool, pinned: bool,
                      notes: str) -> str:
        """Save the user's settings for a LoRA (weight: a number, or empty for the LoRA's own)."""
        if not path:
            return "error: pick a LoRA first"
        text = "" if weight is None else str(weight).strip()
        try:
            value = float(text) if text else None
        except ValueError:
            return f"error: {text!r} is not a weight; write a number such as 0.8, or nothing for the LoRA's own"
        try:
            self.overrides.set(path, Override(category=category or None, weight=value, excluded=bool(excluded),
                                              pinned=bool(pinned), notes=notes or ""))
        except (OrchestratorError, ValueError) as exc:
            return f"error: {exc}"
        self.overrides_changed()
        return "saved; the next picks use it"


def dispatch_status(snapshot: Any, final: bool = False) -> str:
    """A dispatch's progress (dispatch/progress.py Snapshot) as the status line: the batch's numbers, then one line
    per server; what no server can make, and where the failures are told, at the end."""
    lines = [("finished: " if final and snapshot.finished else "stopped: " if final else "") + snapshot.text()]
    lines += [f"- {line.text()}" for line in snapshot.servers]
    lines += [f"- error: {problem}" for problem in snapshot.problems]
    if final and snapshot.failed:
        lines.append(f"- {snapshot.failed} image{'s' if snapshot.failed != 1 else ''} failed: `batch show` says why; "
                     "*Run on all servers* again tries them again")
    return "\n".join(lines)


def batch_table(batch: Any, done: Dict[int, Any]) -> str:
    rows = "".join(
        f"<tr><td>{'✔' if im.index in done else ''}</td><td>{im.index}</td><td>{im.seed}</td>"
        f"<td class='orch-prompt'>{html.escape(im.prompt)}</td>"
        f"<td>{html.escape(', '.join(f'{n}:{w:g}' for n, w, _ in im.loras))}</td></tr>" for im in batch.images)
    return ("<table class='orch-preview'><tr><th></th><th>#</th><th>seed</th><th>prompt</th><th>LoRAs</th></tr>"
            + rows + "</table>")


def story_table(scenes: List[Any]) -> str:
    rows = "".join(
        f"<tr><td>{s.index + 1}</td><td>{s.seed}</td><td>{html.escape(s.beat.shot)}</td>"
        f"<td>{html.escape(', '.join(s.beat.characters))}</td><td class='orch-prompt'>{html.escape(s.prompt)}</td></tr>"
        for s in scenes)
    return ("<table class='orch-preview orch-story'><tr><th>#</th><th>seed</th><th>shot</th><th>who</th>"
            f"<th>prompt</th></tr>{rows}</table>") if rows else ""


def parse_locks(text: str) -> Dict[str, str]:
    """`style = oil painting; mood = serene` -> {"style": "oil painting", "mood": "serene"}."""
    out = {}
    for part in (text or "").split(";"):
        if "=" in part:
            name, _, value = part.partition("=")
            name = name.strip().strip("_")
            if name:
                out[name] = value.strip()
    return out


def _save_unless_under_way(batch: Any, path: str, running: Set[str]) -> str:
    """Save the batch to `path`, unless the batch there is running or has images done: its run state
    counts the old plan's images, so overwriting would mix two batches. Returns the error, or ""."""
    from .batches import RunState, save_batch

    if os.path.abspath(path) in running:
        return f"error: {os.path.basename(path)} is running; save the edited batch under another name"
    state = RunState(path)
    started = len(state.done())
    if started:
        name = os.path.basename(path)
        return (f"error: {name} is under way ({started} done); save the edited batch under another name, "
                f"or delete {os.path.basename(state.path)} to start it over")
    save_batch(batch, path)
    if os.path.exists(state.path):  # only "started" lines of the old plan: they mean nothing for the new one
        os.remove(state.path)
    return ""
