"""Process-wide state shared by the AlwaysOn script and the tab: the user's overrides, the LoRA library
(indexed in the background, overrides applied), wildcard engines and rules by their inputs.

Forge executes every file in scripts/ as its own module and keeps none in sys.modules, so state that two
script files share lives here and is imported by name (this folder is put on sys.path).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

import orchestrator_compat as compat
from modules import shared

from lib_orchestrator import BUNDLED_WILDCARDS
from lib_orchestrator.library.overrides import OverrideStore
from lib_orchestrator.library.service import LibraryService
from lib_orchestrator.selection import Rules, load_rules
from lib_orchestrator.wildcards import PromptEngine

EXT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(EXT_DIR, "data")
SAVED_WILDCARDS = os.path.join(DATA_DIR, "wildcards")  # templates saved from the tab: __user_templates/NAME__


def opt(key: str, default: Any) -> Any:
    return getattr(shared.opts, key, default)


def wildcard_dirs() -> Tuple[str, ...]:
    extra = [d.strip() for d in str(opt("orchestrator_wildcard_dirs", "")).replace("\n", ",").split(",")]
    return tuple([BUNDLED_WILDCARDS, SAVED_WILDCARDS] + [d for d in extra if d and os.path.isdir(d)])


def cache_path() -> Optional[str]:
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


OVERRIDES = OverrideStore(os.path.join(DATA_DIR, "overrides.json"))
LIBRARY = LibraryService(lora_dirs, cache_path, lambda records: OVERRIDES.apply(records))
_ENGINES: Dict[Tuple[str, ...], PromptEngine] = {}
_RULES: Dict[Tuple[str, float], Rules] = {}
last_known: Optional[set] = None  # Forge's LoRA names when the library was last refreshed


def engine() -> PromptEngine:
    roots = wildcard_dirs()
    found = _ENGINES.get(roots)
    if found is None:
        found = _ENGINES[roots] = PromptEngine(roots)
    else:
        found.refresh()  # picks up edited wildcard files
    return found


def rules(path: str) -> Rules:
    path = path or str(opt("orchestrator_rules_file", "") or "")
    if not path:
        return Rules()
    key = (path, os.path.getmtime(path) if os.path.exists(path) else 0.0)
    if key not in _RULES:
        _RULES[key] = load_rules(path)
    return _RULES[key]
