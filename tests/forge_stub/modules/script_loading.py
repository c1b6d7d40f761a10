"""modules.script_loading stand-in: a script file becomes a module object built from its path, named after
its file name and never entered in sys.modules (so two extensions may both have a `scripts/main.py`)."""
from __future__ import annotations

import importlib.util
import os

loaded_scripts: dict = {}


def load_module(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded_scripts[path] = module
    return module
