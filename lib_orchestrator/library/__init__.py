"""The LoRA library: scan a LoRA folder, read every metadata format users have, resolve what each
LoRA is (base model, family, category, triggers, weight, identity) and what is wrong with it.

The rules are written down in docs/lora-library.md; `scan_library` is the entry point.
"""
from .base_models import compatibility, family_of, is_excluded
from .record import LoraRecord
from .scan import ScanResult, scan_library

__all__ = ["LoraRecord", "ScanResult", "compatibility", "family_of", "is_excluded", "scan_library"]
