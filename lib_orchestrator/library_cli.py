"""`python -m lib_orchestrator library …`: the LoRA library on the command line."""
from __future__ import annotations

import argparse
import json
import os
import re
from collections import Counter
from typing import Iterable, List, TextIO

from .errors import Location, OrchestratorError
from .library import LoraRecord, scan_library

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def run_library(args: argparse.Namespace, out: TextIO) -> int:
    folder = args.dir
    if not os.path.isdir(folder):
        raise OrchestratorError("LoRA folder does not exist", Location(folder, 0, 0), "check the folder path")
    result = scan_library(folder, args.cache, include_hidden=not args.skip_hidden,
                          compute_hashes=getattr(args, "hash", False))
    if args.library_command == "show":
        matches = result.by_name(args.name)
        if not matches:
            raise OrchestratorError(f"no LoRA named {args.name!r} in {folder}",
                                    hint="give the stem, the alias or the relative path; `library scan` lists them")
        for record in matches:
            text = json.dumps(record.to_dict(), ensure_ascii=False, indent=2)
            out.write((text if _encodable(text) else json.dumps(record.to_dict(), indent=2)) + "\n")
        return 0
    if args.format == "jsonl":
        for record in result.records:
            out.write(record.to_json() + "\n")
    else:
        _table(result.records, out)
    if args.summary:
        _summary(result.records, out)
    return 0


def _table(records: Iterable[LoraRecord], out: TextIO) -> None:
    rows = [("NAME", "FAMILY", "BASE MODEL", "CATEGORY", "TRIGGER", "WARNINGS")]
    for r in records:
        rows.append((r.name, r.family, r.base_model, r.category if r.is_lora else "-",
                     r.trigger_words[0] if r.trigger_words else "", ",".join(r.warnings)))
    widths = [min(max(len(row[i]) for row in rows), 40) for i in range(len(rows[0]))]
    rows = [tuple(map(_shown, row)) for row in rows]
    for row in rows:
        cells = [cell if len(cell) <= 40 else cell[:39] + "…" for cell in row]
        out.write("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() + "\n")


def _shown(cell: str) -> str:
    """A cell a terminal can print on one line: a name that is not UTF-8 or holds a newline (reported as
    bad_name) is shown escaped instead of breaking the table or the output's encoding."""
    if _CONTROL.search(cell) or not _encodable(cell):
        return ascii(cell)[1:-1]
    return cell


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _summary(records: List[LoraRecord] | tuple, out: TextIO) -> None:
    loras = [r for r in records if r.is_lora]
    out.write(f"\n{len(loras)} LoRAs, {len(records) - len(loras)} other files reported\n")
    for title, counts in (("family", Counter(r.family for r in loras)),
                          ("category", Counter(r.category for r in loras)),
                          ("warning", Counter(code for r in records for code in r.warnings))):
        parts = ", ".join(f"{key} {n}" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        out.write(f"by {title}: {parts or 'none'}\n")
