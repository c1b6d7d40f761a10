"""`python -m lib_orchestrator library …`: the LoRA library on the command line."""
from __future__ import annotations

import argparse
import os
import re
from collections import Counter
from typing import Iterable, List, Optional, TextIO

from .errors import Location, OrchestratorError
from .library import LoraRecord, ScanResult, scan_library
from .library.cache import CacheError, default_cache_path
from .library.record import json_text

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def cache_for(args: argparse.Namespace, folder: str) -> Optional[str]:
    """The cache file a command uses for the LoRA folder: `--cache FILE`, none with `--no-cache`, else the
    default one for that folder (cache.default_cache_path)."""
    if getattr(args, "no_cache", False):
        return None
    return getattr(args, "cache", None) or default_cache_path(folder)


def scan_folder(args: argparse.Namespace, folder: str, err: TextIO, include_hidden: bool = True,
                compute_hashes: bool = False) -> ScanResult:
    """scan_library with the command's cache. A `--cache FILE` that is not our cache stops the command (bad
    input: exit 2) and is left as it is; the default cache's place holding such a file only costs speed."""
    path = cache_for(args, folder)
    try:
        return scan_library(folder, path, include_hidden, compute_hashes)
    except CacheError as exc:
        if getattr(args, "cache", None):
            raise CacheError(exc.message, exc.location,
                             "give --cache a new file name, move this file away yourself, or use --no-cache") from None
        err.write(f"warning: {exc.one_line()}; scanning without a cache\n")
        return scan_library(folder, None, include_hidden, compute_hashes)


def run_library(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    folder = args.dir
    if not os.path.isdir(folder):
        raise OrchestratorError("LoRA folder does not exist", Location(folder, 0, 0), "check the folder path")
    result = scan_folder(args, folder, err, include_hidden=not args.skip_hidden,
                         compute_hashes=getattr(args, "hash", False))
    if args.library_command == "show":
        matches = result.by_name(args.name)
        if not matches:
            raise OrchestratorError(f"no LoRA named {args.name!r} in {folder}",
                                    hint="give the stem, the alias or the relative path; `library scan` lists them")
        for record in matches:
            out.write(json_text(record.to_dict(), indent=2) + "\n")
        return 0
    if args.format == "jsonl":
        _write_lines((record.to_json() for record in result.records), out)
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
    # Nearly every row prints as it is: one check of the whole row, and the cells only of a row that fails.
    rows = [row if _printable(" ".join(row)) else tuple(map(_shown, row)) for row in rows]
    _write_lines(("  ".join((c if len(c) <= 40 else c[:39] + "…").ljust(w) for c, w in zip(row, widths)).rstrip()
                  for row in rows), out)


def _write_lines(lines: Iterable[str], out: TextIO, chunk: int = 4096) -> None:
    """Whole lines, a few thousand to a write: one write per line cost 10,000 writes (and, in the CLI,
    twice as many signal-mask calls) for a 10k library."""
    block: List[str] = []
    for line in lines:
        block.append(line)
        if len(block) == chunk:
            out.write("\n".join(block) + "\n")
            block = []
    if block:
        out.write("\n".join(block) + "\n")


def _shown(cell: str) -> str:
    """A cell a terminal can print on one line: a name that is not UTF-8 or holds a newline (reported as
    bad_name) is shown escaped instead of breaking the table or the output's encoding."""
    return cell if _printable(cell) else ascii(cell)[1:-1]


def _printable(text: str) -> bool:
    return not _CONTROL.search(text) and _encodable(text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _summary(records: List[LoraRecord] | tuple, out: TextIO) -> None:
    loras = [r for r in records if r.is_lora]
    out.write(f"\n{len(loras):,} LoRAs, {len(records) - len(loras):,} other files reported\n")
    for title, counts in (("family", Counter(r.family for r in loras)),
                          ("category", Counter(r.category for r in loras)),
                          ("warning", Counter(code for r in records for code in r.warnings))):
        parts = ", ".join(f"{key} {n:,}" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        out.write(f"by {title}: {parts or 'none'}\n")
