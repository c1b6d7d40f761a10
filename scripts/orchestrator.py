"""Forge entry point of Orchestrator. The AlwaysOn script arrives with the Forge integration issue;
for now this only makes sure the extension's core package is importable inside Forge.

Forge puts each extension's root on sys.path before loading its scripts, so `lib_orchestrator`
imports from here without path tricks.
"""
import lib_orchestrator  # noqa: F401  (fail at load time, visibly, if the core is broken)
