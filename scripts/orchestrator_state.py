"""Process-wide state shared by the AlwaysOn script and the tab: the user's overrides, the LoRA library
(indexed in the background, overrides applied), wildcard engines and rules by their inputs, and the
LLM's answer cache and circuit breakers.

Forge executes every file in scripts/ as its own module and keeps none in sys.modules, so state that two
script files share lives here and is imported by name (this folder is put on sys.path).
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple

import orchestrator_compat as compat
from modules import extensions, shared

from lib_orchestrator import BUNDLED_WILDCARDS
from lib_orchestrator.enhance import API_KEY_ENV, PRESETS, AnswerCache, Breaker, EnhanceOptions, Enhancer, load_genres
from lib_orchestrator.errors import OrchestratorError
from lib_orchestrator.history.service import HistoryService
from lib_orchestrator.library.overrides import OverrideStore
from lib_orchestrator.library.service import LibraryService
from lib_orchestrator.selection import Rules, load_rules
from lib_orchestrator.selection.rules import MATCH_MODES
from lib_orchestrator.wildcards import PromptEngine
from lib_orchestrator.wildcards.discovery import InstalledExtension, WildcardFolder, search_order

EXT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(EXT_DIR, "data")
SAVED_WILDCARDS = os.path.join(DATA_DIR, "wildcards")  # templates saved from the tab: __user_templates/NAME__


def opt(key: str, default: Any) -> Any:
    return getattr(shared.opts, key, default)


def wildcard_folders() -> Tuple[WildcardFolder, ...]:
    """The folders searched for wildcards, in order (discovery.py): ours, the user's, then the extensions'."""
    extra = [d.strip() for d in str(opt("orchestrator_wildcard_dirs", "")).replace("\n", ",").split(",")]
    sddp_dir = str(opt("wildcard_dir", "") or "")  # sd-dynamic-prompts' own setting, kept in config.json
    return search_order(BUNDLED_WILDCARDS, SAVED_WILDCARDS, extra, _installed_extensions(), EXT_DIR,
                        os.path.abspath(sddp_dir) if sddp_dir else "",
                        bool(opt("orchestrator_wildcard_extensions", True)))


def wildcard_dirs() -> Tuple[str, ...]:
    return tuple(f.path for f in wildcard_folders())


def _installed_extensions() -> List[InstalledExtension]:
    """Forge's extensions in its order, each enabled when active() lists it (which also honours "disable all
    extensions")."""
    active = {id(e) for e in extensions.active()}
    return [InstalledExtension(e.name, e.path, id(e) in active) for e in extensions.extensions]


def cache_path() -> str:
    path = str(opt("orchestrator_cache_path", "") or "")
    return path or os.path.join(EXT_DIR, "cache", "library.sqlite")


def lora_dirs() -> List[str]:
    models = getattr(shared, "models_path", None)
    if models is None:
        try:
            from modules import paths

            models = getattr(paths, "models_path", None)
        except ImportError:
            models = None
    return compat.lora_dirs(shared, models)


def embedder() -> Any:
    """The embedder Settings name for the library's vectors (None: off); raises EmbedError when it cannot
    work (the library's status says why, and picks use keywords)."""
    from lib_orchestrator.embeddings.remote import embedder_for

    spec = str(opt("orchestrator_embed", "builtin") or "builtin").strip()
    if spec.lower() == "off":
        return None
    return embedder_for(spec, str(opt("orchestrator_embed_model", "") or ""),
                        float(opt("orchestrator_llm_timeout", 60) or 60))


# Where Forge saves what it makes (its Settings › Paths for saving): relative paths are Forge's working folder's.
_OUTPUT_OPTIONS = ("outdir_samples", "outdir_txt2img_samples", "outdir_img2img_samples", "outdir_extras_samples",
                   "outdir_grids", "outdir_txt2img_grids", "outdir_img2img_grids", "outdir_save")


def history_folders() -> List[Tuple[str, str]]:
    """Forge's output folders, then the user's extra ones from Settings (each once)."""
    found: Dict[str, str] = {}
    for key in _OUTPUT_OPTIONS:
        path = str(opt(key, "") or "").strip()
        if path:
            found.setdefault(os.path.abspath(path), "forge")
    extra = str(opt("orchestrator_history_dirs", "") or "").replace("\n", ",").split(",")
    for path in (p.strip() for p in extra):
        if path:
            found.setdefault(os.path.abspath(os.path.expanduser(path)), "user")
    return list(found.items())


def _prompt_embedder() -> Any:
    try:
        return embedder()
    except OrchestratorError:  # the library's status says why; search uses words only
        return None


OVERRIDES = OverrideStore(os.path.join(DATA_DIR, "overrides.json"))
def history_path() -> str:
    return str(opt("orchestrator_history_path", "") or "") or os.path.join(DATA_DIR, "history.sqlite")


HISTORY = HistoryService(history_path, history_folders, _prompt_embedder,
                         lambda: bool(opt("orchestrator_history", True)))
LIBRARY = LibraryService(lora_dirs, cache_path, lambda records: OVERRIDES.apply(records), embedder,
                         lambda record: OVERRIDES.get(record.path).notes)
_ENGINES: Dict[Tuple[str, ...], PromptEngine] = {}
_RULES: Dict[Tuple[str, float, str], Rules] = {}
last_known: Optional[set] = None  # Forge's LoRA names when the library was last refreshed
RUNNING: set = set()  # batch files being run: here, not in the tab's module, so a UI reload does not forget them
DISPATCH_STOPS: set = set()  # one event per *Run on all servers* under way: the batch's Interrupt sets them all


def dispatch_servers() -> List[str]:
    """*Run on all servers*: this Forge (when Settings say it takes part and it was started with --api, whose
    txt2img the dispatcher calls like any other server's), then the servers of Settings."""
    from lib_orchestrator.dispatch.servers import AUTH_ENV, fleet, own_server

    cmd = shared.cmd_opts
    here = None
    if opt("orchestrator_dispatch_here", True) and getattr(cmd, "api", False):
        here = own_server(getattr(getattr(shared, "demo", None), "local_url", None), getattr(cmd, "port", None),
                          bool(getattr(cmd, "tls_keyfile", None)), getattr(cmd, "api_auth", None))
    return fleet(str(opt("orchestrator_servers", "") or ""), here, os.environ.get(AUTH_ENV))


def current_index() -> Any:
    """The library's index with the user's verdicts from the history attached (what picks use), or None."""
    index = LIBRARY.current()
    return HISTORY.with_feedback(index) if index is not None else None


def engine() -> PromptEngine:
    roots = wildcard_dirs()
    found = _ENGINES.get(roots)
    if found is None:
        found = _ENGINES[roots] = PromptEngine(roots)
    else:
        found.refresh()  # picks up edited wildcard files
    return found


def rules(path: str) -> Rules:
    """The rules file's (the accordion's, else Settings'), over the Settings' match mode and variables scope."""
    base = Rules(match=str(opt("orchestrator_match", "hybrid") or "hybrid"))
    if base.match not in MATCH_MODES:
        base = Rules()
    base = replace(base, variables=Rules().variable_scope(opt("orchestrator_variables", "image")))
    path = path or str(opt("orchestrator_rules_file", "") or "")
    if not path:
        return base
    key = (path, os.path.getmtime(path) if os.path.exists(path) else 0.0, base.match, base.variables)
    if key not in _RULES:
        _RULES[key] = load_rules(path, base)
    return _RULES[key]


def chooser(rules: Rules) -> Any:
    """The LLM that chooses LoRAs (the enhancement server of Settings) when the match is `llm`."""
    if rules.match != "llm":
        return None
    from lib_orchestrator.selection.llm_choice import LlmChooser

    return LlmChooser(enhancer())


_ANSWERS: Dict[str, AnswerCache] = {}
_BREAKERS: Dict[str, Breaker] = {}  # by server: a dead server is skipped across generations


def genre_names() -> List[str]:
    try:
        return ["", *load_genres(str(opt("orchestrator_llm_templates_dir", "") or "") or None)]
    except OrchestratorError as exc:  # a broken genres.yaml must not stop Forge building its UI
        print(f"[Orchestrator] {exc.one_line()}", file=sys.stderr)
        return [""]


def enhance_options(genre: str = "") -> EnhanceOptions:
    return EnhanceOptions(
        url=str(opt("orchestrator_llm_url", "") or PRESETS["lmstudio"]),
        model=str(opt("orchestrator_llm_model", "") or ""),
        template=str(opt("orchestrator_llm_template", "auto") or "auto"),
        genre=genre, timeout=float(opt("orchestrator_llm_timeout", 60) or 60),
        templates_dir=str(opt("orchestrator_llm_templates_dir", "") or ""),
        # from the environment, not Settings: Forge's sysinfo and /sdapi/v1/options publish every setting
        api_key=os.environ.get(API_KEY_ENV) or None)


def enhancer(genre: str = "") -> Enhancer:
    options = enhance_options(genre)
    path = os.path.join(os.path.dirname(os.path.abspath(cache_path())), "llm-answers.jsonl")
    answers = _ANSWERS.setdefault(path, AnswerCache(path))  # beside the library cache
    return Enhancer(options, answers, _BREAKERS.setdefault(options.url, Breaker()))
