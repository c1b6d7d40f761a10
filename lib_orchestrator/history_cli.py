"""`python -m lib_orchestrator history …`: the image history on the command line (scan, search, rate,
compare, the LoRA leaderboard), and the feedback `compose --history` and `batch plan --history` pick with."""
from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, TextIO

from .errors import Location, OrchestratorError

if TYPE_CHECKING:
    from .history.store import HistoryStore

DB_NAME = "history.sqlite"


def default_db(environ: Optional[Dict[str, str]] = None) -> str:
    """The index Forge keeps, `<extension>/data/history.sqlite`, when this package runs from the extension's
    folder (so the command line sees the same ratings); installed as a wheel, the user's data folder:
    `$XDG_DATA_HOME/orchestrator/`, else `~/.local/share/orchestrator/` (on Windows `%APPDATA%\\orchestrator`)."""
    from . import _PACKAGE_DIR, EXTENSION_DIR

    if not os.path.isdir(os.path.join(_PACKAGE_DIR, "_bundled")):
        return os.path.join(EXTENSION_DIR, "data", DB_NAME)
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME", "")
    if base and os.path.isabs(base):
        folder = os.path.join(base, "orchestrator")
    elif os.name == "nt" and env.get("APPDATA"):
        folder = os.path.join(env["APPDATA"], "orchestrator")
    else:
        folder = os.path.join(os.path.expanduser("~"), ".local", "share", "orchestrator")
    return os.path.join(folder, DB_NAME)


def add_history_parser(sub: "argparse._SubParsersAction", parser_class: type,
                       whole_number: Callable[[str], int]) -> None:
    def in_range(lo: int, hi: int) -> Callable[[str], int]:
        def check(text: str) -> int:
            value = whole_number(text)
            if not lo <= value <= hi:
                raise argparse.ArgumentTypeError(f"{value} is not from {lo} to {hi}")
            return value
        return check

    history = sub.add_parser("history", help="the image history: scan folders, search prompts, rate, compare, "
                                             "LoRA scores")
    hist = history.add_subparsers(dest="history_command", required=True, parser_class=parser_class)

    scan = hist.add_parser("scan", help="index the images in folders (only new or changed files are read)")
    scan.add_argument("dirs", nargs="+", metavar="DIR", help="a folder of images (PNG, JPEG, WebP), searched "
                                                             "recursively; it is kept for later scans")
    _db_arg(scan)

    search = hist.add_parser("search", help="find images by prompt, negative, template, LoRA or checkpoint")
    search.add_argument("query", metavar="QUERY",
                        help='words (all must match), word* (prefix), "a phrase", -word (not), a OR b, and '
                             'lora:NAME, model:NAME, seed:N, batch:NAME as filters')
    search.add_argument("--top", type=in_range(0, 10**6), default=20, metavar="K", help="how many (default: 20)")
    search.add_argument("--sort", choices=("relevance", "newest", "oldest", "stars"), default="relevance",
                        help="the order (default: relevance; newest without words)")
    search.add_argument("--min-stars", type=in_range(0, 5), default=0, metavar="N",
                        help="only images rated N stars or more (default: 0, any)")
    search.add_argument("--rejected", choices=("hide", "only", "show"), default="hide",
                        help="images rated as rejects: hide, only or show them (default: hide)")
    search.add_argument("--no-meaning", action="store_true",
                        help="words only: do not use the prompts' vectors (default: used when the builtin "
                             "embedder is installed and the prompts are embedded)")
    search.add_argument("--format", choices=("table", "jsonl"), default="table",
                        help="table: one line an image; jsonl: path, prompt, seed, checkpoint, loras, stars, "
                             "score a line (default: table)")
    _db_arg(search)

    rate = hist.add_parser("rate", help="rate an image: 1 to 5 stars, reject, favourite")
    rate.add_argument("path", metavar="PATH", help="the image file (indexed now if it is not yet)")
    rate.add_argument("--stars", type=in_range(1, 5), metavar="N", help="1 to 5 (default: the stars stay as they are)")
    rate.add_argument("--reject", action="store_true", help="a reject: it counts against its LoRAs")
    rate.add_argument("--favourite", action="store_true", help="a favourite")
    rate.add_argument("--clear", action="store_true", help="forget the image's rating first")
    _db_arg(rate)

    compare = hist.add_parser("compare", help="record that one image beat another (or a tie)")
    compare.add_argument("winner", metavar="WINNER", help="the better image")
    compare.add_argument("loser", metavar="LOSER", help="the other")
    compare.add_argument("--tie", action="store_true", help="neither was better")
    _db_arg(compare)

    loras = hist.add_parser("loras", help="every LoRA's score from your ratings and comparisons, best first")
    loras.add_argument("--by-weight", action="store_true", help="one row per LoRA and weight range")
    loras.add_argument("--format", choices=("table", "jsonl"), default="table",
                       help="table: one line a LoRA; jsonl: name, images, rated, score, low, high (and bucket "
                            "with --by-weight) a line (default: table)")
    _db_arg(loras)


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="FILE", help=f"the history index (SQLite; default: {_shown_default()})")


def _shown_default() -> str:
    return default_db().replace("%", "%%")  # argparse formats help with %


def add_feedback_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", metavar="FILE",
                   help="pick with the feedback of this history index (its LoRA scores), as Forge does; the "
                        "rules' feedback sets how much (default: no history, no feedback)")


def run_history(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    command = args.history_command
    store = _open(args.db or default_db(), create=command in ("scan", "rate", "compare"))
    try:
        if command == "scan":
            return _scan(store, args.dirs, out, err)
        if command == "search":
            return _search(store, args, out)
        if command == "rate":
            return _rate(store, args, out)
        if command == "compare":
            return _compare(store, args, out)
        return _loras(store, args, out)
    finally:
        store.close()


def _open(path: str, create: bool) -> "HistoryStore":
    from .history.store import HistoryStore

    if not create and not os.path.exists(path):
        raise OrchestratorError("there is no history index here yet", Location(path, 0, 0),
                                "index images first: history scan DIR…, or give --db")
    return HistoryStore(path)


def _scan(store: "HistoryStore", dirs: List[str], out: TextIO, err: TextIO) -> int:
    for d in dirs:
        if not os.path.isdir(d):
            raise OrchestratorError("folder does not exist", Location(d, 0, 0), "check the path")
    stats = store.scan(dirs)  # kept as folders of the index, for later scans
    out.write(f"{stats.seen:,} images in {len(dirs)} folder(s): {stats.added:,} added, {stats.updated:,} updated, "
              f"{stats.unchanged:,} unchanged, {stats.gone:,} gone, {stats.problems:,} without readable "
              f"parameters ({stats.seconds:.1f} s)\n")
    return 0


def _search(store: "HistoryStore", args: argparse.Namespace, out: TextIO) -> int:
    from .history.search import SearchQuery, search

    embedder = None if args.no_meaning else _builtin_embedder()
    query = SearchQuery(text=args.query, sort=args.sort, min_stars=args.min_stars, rejected=args.rejected,
                        per_page=max(args.top, 1), semantic=embedder is not None)
    page = search(store, query, embedder)
    for hit in page.hits[:args.top]:
        row = hit.image
        names = [u.name for u in row.loras]
        if args.format == "jsonl":
            out.write(json.dumps({"path": row.path, "prompt": row.prompt, "seed": row.seed,
                                  "checkpoint": row.checkpoint, "loras": names, "stars": row.stars,
                                  "score": round(hit.score, 4)}, ensure_ascii=False) + "\n")
        else:
            stars = "x" if row.rejected else ("*" * row.stars if row.stars else "-")
            prompt = " ".join(row.prompt.split())
            out.write(f"{stars:<5} {hit.score:7.3f}  {row.path}\n      seed {row.seed} · {row.checkpoint or '?'}"
                      f" · {', '.join(names) or 'no LoRAs'}\n      {prompt[:150]}\n")
    if args.format == "table":
        out.write(f"{min(len(page.hits), args.top):,} of {page.total:,} shown" + (f" ({page.note})" if page.note
                                                                                  else "") + "\n")
    return 0


def _builtin_embedder():  # -> Optional[Embedder]
    from .embeddings.base import EmbedError
    from .embeddings.builtin import builtin_embedder

    try:
        return builtin_embedder()
    except EmbedError:
        return None


def _rate(store: "HistoryStore", args: argparse.Namespace, out: TextIO) -> int:
    if args.stars is None and not (args.reject or args.favourite or args.clear):
        raise OrchestratorError("say how: --stars N, --reject, --favourite or --clear")
    ref = _indexed(store, args.path)
    row = store.rate(ref, stars=args.stars, rejected=True if args.reject else None,
                     favourite=True if args.favourite else None, clear=args.clear)
    out.write(f"{row.path}: {_rating_text(row)}\n")
    return 0


def _compare(store: "HistoryStore", args: argparse.Namespace, out: TextIO) -> int:
    winner, loser = _indexed(store, args.winner), _indexed(store, args.loser)
    store.compare(winner, loser, "tie" if args.tie else "left")
    out.write(("tie: " if args.tie else "better: ") + f"{winner}\n" + ("tie: " if args.tie else "worse:  ")
              + f"{loser}\n")
    return 0


def _indexed(store: "HistoryStore", path: str) -> str:
    """The image's path as the index keys it, indexing it first if it is new."""
    found = store.image(path)
    if found is None:
        if not os.path.isfile(path):
            raise OrchestratorError("no such image file", Location(path, 0, 0), "check the path")
        if store.add_file(path) is None:
            raise OrchestratorError("not an image the history reads", Location(path, 0, 0),
                                    "give a .png, .jpg, .jpeg or .webp file")
        found = store.image(path)
    assert found is not None
    return found.path


def _rating_text(row) -> str:  # -> str, for an ImageRow
    parts = [f"{row.stars} star{'s' if row.stars != 1 else ''}"] if row.stars else []
    if row.rejected:
        parts.append("rejected")
    if row.favourite:
        parts.append("favourite")
    return ", ".join(parts) or "not rated"


def _loras(store: "HistoryStore", args: argparse.Namespace, out: TextIO) -> int:
    from .history.effect import lora_scores

    scores = lora_scores(store.lora_usage(), store.rated(), store.comparisons(), by_weight=args.by_weight)
    for s in scores:
        if args.format == "jsonl":
            record = {"name": s.name, "images": s.images, "rated": s.rated, "score": round(s.score, 4),
                      "low": round(s.low, 4), "high": round(s.high, 4)}
            if args.by_weight:
                record["bucket"] = s.bucket
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            label = f"{s.name} @ {s.bucket}" if args.by_weight else s.name
            out.write(f"{s.score:+6.2f}  [{s.low:+6.2f} … {s.high:+6.2f}]  {s.images:6,} images  {s.rated:5,} rated  "
                      f"{s.compared:5,} compared  {label}\n")
    if args.format == "table" and not scores:
        out.write("no LoRA in the index yet: scan images made with LoRAs (history scan DIR…)\n")
    return 0


def feedback_scores(path: Optional[str]) -> Dict[str, float]:
    """LoRA name -> score from the history index at `path`, for picks (`--history`); {} without one."""
    if not path:
        return {}
    if not os.path.isfile(path):
        raise OrchestratorError("no history index here", Location(path, 0, 0),
                                "give the file history scan made (its --db), e.g. Forge's extensions/…/data/"
                                f"{DB_NAME}")
    from .history.effect import lora_scores

    store = _open(path, create=False)
    try:
        return {s.name: s.score for s in lora_scores(store.lora_usage(), store.rated(), store.comparisons())}
    finally:
        store.close()
