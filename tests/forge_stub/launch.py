"""`launch` stand-in for install.py tests: is_installed, run_pip (recorded, never run), run, args."""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util

args = argparse.Namespace(skip_install=False, skip_prepare_environment=False, reinstall_torch=False)
pip_calls: list = []  # stub-only: [(command, desc)]
run_calls: list = []  # stub-only


def is_installed(package):
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return importlib.util.find_spec(package) is not None
    except ModuleNotFoundError:
        return False


def run_pip(command, desc=None, live=False):
    if args.skip_install:
        return None
    pip_calls.append((command, desc))
    return ""


def run(command, desc=None, errdesc=None, custom_env=None, live=False):
    run_calls.append((command, desc))
    return ""
