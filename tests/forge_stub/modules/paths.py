"""modules.paths stand-in: the same folders as modules.shared (Forge's paths_internal values)."""
from modules import shared

script_path = shared.script_path
data_path = shared.data_path
models_path = shared.models_path
extensions_dir = shared.script_path + "/extensions"
extensions_builtin_dir = shared.script_path + "/extensions-builtin"
