"""modules.extensions stand-in: the installed extensions and the script files each one offers.

Forge finds extensions as folders under extensions/; here a test installs one with
`stub_control.install_extension(path)` (stub-only). Order: by folder name, as Forge lists them."""
from __future__ import annotations

import os

from modules import scripts

extensions: list = []


class Extension:
    def __init__(self, name, path, enabled=True, is_builtin=False):
        self.name = name
        self.canonical_name = name.lower()
        self.path = path
        self.enabled = enabled
        self.is_builtin = is_builtin

    def list_files(self, subdir, extension):
        """The files of `subdir` (not its subfolders) ending in `extension`, sorted by name, each a ScriptFile
        whose basedir is the extension's root folder."""
        dirpath = os.path.join(self.path, subdir)
        if not os.path.isdir(dirpath):
            return []
        found = [scripts.ScriptFile(self.path, filename, os.path.join(dirpath, filename))
                 for filename in sorted(os.listdir(dirpath))]
        return [f for f in found if os.path.splitext(f.path)[1].lower() == extension and os.path.isfile(f.path)]


def active():
    return [x for x in extensions if x.enabled]
