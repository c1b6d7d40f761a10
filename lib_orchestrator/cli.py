"""`python -m lib_orchestrator …`: the core's capabilities on the command line, one subcommand each.

Bad input prints one line, `path:line:col: error: message (hint)`, and exits with status 2.

Start-up is part of every command's time (`prompts` makes 50,000 prompts in well under a second), so this
module imports only what `--help` needs; each subcommand's modules (and the errors, which pull in
dataclasses) are imported when it runs, and `main` builds the arguments of the subcommand given only
(see build_parser).
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import signal
import sys
import threading
from itertools import islice

from . import BUNDLED_WILDCARDS, SAMPLE_LORAS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `--help` reads nothing else of it
if TYPE_CHECKING:
    from typing import Callable, Iterator, List, Optional, Sequence, TextIO

EXIT_OK, EXIT_LINT_ERRORS, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130  # 130: the shell's Ctrl-C
DESCRIPTION = ("Orchestrator on the command line, one subcommand each: wildcard prompts, the LoRA\n"
               "library, LoRA picks, LLM enhancement, stories, batches and the image history.")
EXIT_CODES = f"""exit status:
  {EXIT_OK}    done; also when `enhance` falls back to the original prompt (stderr says
       why) and when the reader of a pipe, such as `head`, stops early
  {EXIT_LINT_ERRORS}    `lint` found errors; an unexpected crash also exits 1, with a traceback
  {EXIT_BAD_INPUT}    bad input: an unknown option or value, or a template, file or folder
       that cannot be used; one line on stderr says where and what to do
  {EXIT_INTERRUPTED}  interrupted with Ctrl-C; every line already printed is whole"""
# Combinatorial mode without --count lists every combination up to this many, as dynamicprompts does
# (its MAX_IMAGES); a larger space says so on stderr. --count N lists up to N.
COMBINATORIAL_DEFAULT_MAX = 1000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The whole command line. With `only`, what parsing a command line needs, for a fraction of the
    start-up (the other subcommands' options, and the modules that add them, are never read): a subcommand's
    name builds just that subcommand, LISTING_ONLY every subcommand without its options, which is all the
    top level's `--help`, `--version` and errors read. Help and errors are those of the whole parser."""
    parser = _Parser(prog=command_name(plain=True), description=DESCRIPTION, epilog=EXIT_CODES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    for name, add in (("prompts", _prompts_parser), ("count", _count_parser), ("lint", _lint_parser),
                      ("demo", _demo_parser), ("compose", _compose_parser), ("enhance", _enhance_parser),
                      ("story", _story_parser), ("batch", _batch_parser), ("library", _library_parser),
                      ("history", _history_parser)):
        if only in (None, name, LISTING_ONLY):
            add(sub, only != LISTING_ONLY)
    return parser


SUBCOMMANDS = ("prompts", "count", "lint", "demo", "compose", "enhance", "story", "batch", "library", "history")
LISTING_ONLY = ""  # build_parser(LISTING_ONLY): the subcommands' names and help lines, not their options


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """A command line that starts with a subcommand is parsed by that subcommand alone. One that names none
    (`--help`, `--version`, a mistyped name, nothing) is never handed to a subcommand: the list of their
    names is all it needs. Any other (`-h prompts`) gets the whole parser."""
    if argv and argv[0] in SUBCOMMANDS:
        return build_parser(argv[0])
    if not any(word in SUBCOMMANDS for word in argv):
        return build_parser(LISTING_ONLY)
    return build_parser()


def _prompts_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    p = sub.add_parser("prompts", help="make prompts from a wildcard template")
    if not arguments:
        return
    _template_args(p)
    _wildcard_args(p)
    p.add_argument("--mode", choices=("random", "combinatorial", "cyclical"), default="random",
                   help="random: each prompt drawn from its image's seed; combinatorial: every combination, in "
                        "order; cyclical: each choice takes its options in turn, from the seed (default: random)")
    p.add_argument("--count", type=_non_negative, metavar="N",
                   help="how many prompts (default: 1; in combinatorial mode every combination, at most "
                        f"{COMBINATORIAL_DEFAULT_MAX:,}, and N is the maximum)")
    p.add_argument("--seed", type=int, metavar="S",
                   help="seed of the first image; prompt k is the prompt of seed S+k "
                        "(default: random in random mode, 0 otherwise)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help='text: one prompt a line; jsonl: {"prompt", "seed", "index"} a line (default: text)')
    p.add_argument("--variables", choices=("image", "batch"), default="image",
                   help="immediate variables ${v=!...}: drawn from each prompt's seed, or once for the whole run "
                        "from the first seed (default: image)")


def _demo_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    sub.add_parser("demo", help="prompts from the bundled wildcards and genre templates")


def _history_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    if not arguments:  # the line history_cli gives it, without importing it (a test keeps the two the same)
        sub.add_parser("history", help="the image history: scan folders, search prompts, rate, compare, LoRA scores")
        return
    from .history_cli import add_history_parser

    add_history_parser(sub, _Parser, _whole_number)


def _count_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    c = sub.add_parser("count", help="how many prompts combinatorial mode makes, without listing them")
    if not arguments:
        return
    _template_args(c)
    _wildcard_args(c)
    c.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help='text: the number with thousands separators; jsonl: {"combinations": N} (default: text)')


def _lint_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    lint = sub.add_parser("lint", help="check wildcard folders and templates")
    if not arguments:
        return
    lint.add_argument("templates", nargs="*", metavar="TEMPLATE|FILE|DIR",
                      help="what to check: template text, a template file, or a wildcard folder (default: the "
                           "--wildcards folders, else the bundled ones)")
    _wildcard_args(lint)
    lint.add_argument("--loras", metavar="DIR", help="a LoRA folder: entries that carry a LoRA it does not have "
                                                     "(<lora:NAME>) are flagged (default: LoRA names not checked)")
    _cache_args(lint)


def _compose_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    comp = sub.add_parser("compose", help="prompts with LoRAs picked from a library for a checkpoint")
    if not arguments:
        return
    from .enhance_cli import add_enhance_args
    from .family_cli import add_checkpoint_args
    from .history_cli import add_feedback_arg
    from .match_cli import add_match_args

    _template_args(comp)
    _wildcard_args(comp)
    comp.add_argument("--loras", required=True, metavar="DIR", help="the LoRA folder (required)")
    add_checkpoint_args(comp, default=None)
    _composition_args(comp)
    _cache_args(comp)
    comp.add_argument("--count", type=_non_negative, default=1, metavar="N",
                      help="how many images' prompts (default: 1)")
    comp.add_argument("--seed", type=int, metavar="S",
                      help="seed of the first image; prompt k is that of seed S+k (default: random)")
    comp.add_argument("--format", choices=("text", "jsonl"), default="text",
                      help="text: one prompt a line; jsonl: the whole record a line, with each LoRA's weight, "
                           "score and reason (default: text)")

    add_match_args(comp)
    add_feedback_arg(comp)
    comp.add_argument("--enhance-url", metavar="URL",
                      help="enhance each prompt with the LLM at URL (or lmstudio, ollama, llamacpp) before LoRA "
                           "picks (default: no enhancement)")
    add_enhance_args(comp, "enhance-")


def _enhance_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    enh = sub.add_parser("enhance", help="one prompt through a local LLM (LM Studio, Ollama, llama.cpp's server)")
    if not arguments:
        return
    from .enhance_cli import add_enhance_args
    from .family_cli import TEMPLATE_HELP, add_checkpoint_args

    enh.add_argument("prompt", help="the prompt (wildcards already expanded)")
    enh.add_argument("--url", default="lmstudio", metavar="URL",
                     help="the server's OpenAI-compatible address, or lmstudio, ollama, llamacpp "
                          "(default: lmstudio, LM Studio's http://localhost:1234/v1)")
    add_checkpoint_args(enh, extra_help=TEMPLATE_HELP)
    enh.add_argument("--seed", type=int, default=0, metavar="S",
                     help="the image's seed; the LLM's derives from it (default: 0)")
    enh.add_argument("--temperature", type=float, metavar="T", help="the LLM's temperature (default: the template's)")
    enh.add_argument("--format", choices=("text", "jsonl"), default="text",
                     help='text: the prompt; jsonl: {"prompt", "original", "status", "reason"} (default: text)')
    add_enhance_args(enh)


def _story_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    story = sub.add_parser("story", help="a story bible into scene prompts in order (and a batch file)")
    if not arguments:
        return
    from .enhance_cli import add_enhance_args
    from .family_cli import TEMPLATE_HELP, add_checkpoint_args

    story.add_argument("bible", metavar="BIBLE", help="the story bible (YAML or JSON)")
    story.add_argument("--scenes", type=_scene_count, default=6, metavar="N",
                       help="how many scenes, 1 to 100 (default: 6)")
    story.add_argument("--url", metavar="URL", help="the LLM that plans the beats, or lmstudio, ollama, llamacpp "
                                                    "(default: none, the outline does)")
    add_checkpoint_args(story, extra_help=TEMPLATE_HELP)
    story.add_argument("--seed", type=int, default=0, metavar="S",
                       help="seed of the first scene; scene k has S+k (default: 0)")
    story.add_argument("--negative", default="", metavar="TEXT",
                       help="the negative prompt of the batch (default: none)")
    story.add_argument("--out", metavar="FILE",
                       help="also save the scenes as a batch, .json, .txt or .csv (default: none, print only)")
    story.add_argument("--format", choices=("text", "jsonl"), default="text",
                       help="text: one prompt a line; jsonl: each scene's prompt, seed, shot, characters, action "
                            "and LoRAs (default: text)")
    add_enhance_args(story)


def _batch_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    batch = sub.add_parser("batch", help="plan a batch of composed images to a file; show one and its run state; "
                                         "make it on several Forge servers")
    if not arguments:
        return
    from .dispatch_cli import add_dispatch_parser
    from .family_cli import add_checkpoint_args
    from .history_cli import add_feedback_arg
    from .match_cli import add_match_args

    batch_sub = batch.add_subparsers(dest="batch_command", required=True, parser_class=_Parser)
    bplan = batch_sub.add_parser("plan", help="compose every image of a batch and write it (.json, .txt or .csv)")
    _template_args(bplan)
    _wildcard_args(bplan)
    bplan.add_argument("--count", type=_non_negative, required=True, metavar="N",
                       help="how many images, up to 100,000 (required)")
    bplan.add_argument("--seed", type=int, default=0, metavar="S",
                       help="seed of the first image; image k has S+k (default: 0)")
    bplan.add_argument("--loras", metavar="DIR", help="pick LoRAs from this folder (default: none, prompts only)")
    add_checkpoint_args(bplan)
    _composition_args(bplan)
    add_match_args(bplan, llm=False)
    add_feedback_arg(bplan)
    _cache_args(bplan)
    bplan.add_argument("--out", required=True, metavar="FILE",
                       help="where to write it: FILE.json (complete), .txt or .csv (required)")
    bshow = batch_sub.add_parser("show", help="a batch file and each image's state (server and attempts when "
                                              "dispatched)")
    bshow.add_argument("file", metavar="FILE", help="the batch file (.json, .txt or .csv)")
    bshow.add_argument("--queue", metavar="URL", help="the queue `batch dispatch` used (default: FILE.queue.sqlite "
                                                      "beside the batch, when it exists)")
    add_dispatch_parser(batch_sub, _positive)


def _library_parser(sub: "argparse._SubParsersAction", arguments: bool) -> None:
    library = sub.add_parser("library", help="the LoRA library: scan a folder, show one LoRA")
    if not arguments:
        return
    from .family_cli import add_checkpoint_args
    from .match_cli import add_match_args

    lib_sub = library.add_subparsers(dest="library_command", required=True, parser_class=_Parser)
    scan = lib_sub.add_parser("scan", help="every LoRA in a folder with what is known and what is wrong")
    scan.add_argument("dir", metavar="DIR", help="the LoRA folder")
    _library_args(scan)
    scan.add_argument("--format", choices=("jsonl", "table"), default="table",
                      help="table: one line a LoRA, for reading; jsonl: every field of each LoRA as JSON, one a "
                           "line (default: table)")
    scan.add_argument("--summary", action="store_true", help="counts by family, category and warning")
    scan.add_argument("--hash", action="store_true", help="compute missing full-file SHA-256s (slow)")
    show = lib_sub.add_parser("show", help="one LoRA in full (by name, alias or relative path)")
    show.add_argument("name", metavar="NAME", help="the LoRA's stem, alias or path relative to DIR")
    show.add_argument("--dir", required=True, metavar="DIR", help="the LoRA folder (required)")
    _library_args(show)
    match = lib_sub.add_parser("match", help="the LoRAs a prompt is about, ranked, with why (what picks start from)")
    match.add_argument("prompt", metavar="PROMPT", help="the prompt (wildcards already expanded)")
    match.add_argument("--loras", required=True, metavar="DIR", help="the LoRA folder (required)")
    add_checkpoint_args(match, default=None)
    add_match_args(match)
    match.add_argument("--rules", metavar="FILE", help="a YAML rules file: its thresholds and match settings "
                                                       "(default: the built-in rules)")
    match.add_argument("--top", type=_non_negative, default=10, metavar="K", help="how many to show (default: 10)")
    match.add_argument("--seed", type=int, default=0, metavar="S", help="the image seed the LLM is asked with "
                                                                        "(default: 0)")
    match.add_argument("--format", choices=("table", "jsonl"), default="table",
                       help="table: one line a LoRA; jsonl: name, path, score, reason, terms (and similarity, "
                            "category, pickable, the LLM's why) a line (default: table)")
    match.add_argument("--llm-cache", metavar="FILE",
                       help="keep the LLM's answers in this file (default: none, every request is sent)")
    _library_args(match)


def _library_args(p: argparse.ArgumentParser) -> None:
    _cache_args(p)
    p.add_argument("--skip-hidden", action="store_true", help="skip folders whose names start with '.'")


def _cache_args(p: argparse.ArgumentParser) -> None:
    """Every command that scans a LoRA folder keeps what it read in a cache, so the next scan only stats
    the files: by default one file per folder in the user's cache folder (library_cli.cache_for)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--cache", metavar="FILE",
                       help="the library cache file (SQLite) to use (default: one for each LoRA folder in "
                            "$XDG_CACHE_HOME/orchestrator/, else ~/.cache/orchestrator/; on Windows "
                            "%%LOCALAPPDATA%%\\orchestrator\\cache)")
    group.add_argument("--no-cache", action="store_true", help="read every file again and write no cache")


def _wildcard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wildcards", action="append", metavar="DIR",
                   help="a wildcard folder; repeat for more, searched in order (default: the bundled one)")
    p.add_argument("--on-missing", choices=("error", "keep"), default="error",
                   help="a wildcard that does not exist: stop with an error, or keep __name__ as text "
                        "(default: error)")


def _template_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("template", nargs="?", help="the template text, e.g. 'a {red|blue} __animal__'")
    p.add_argument("--template-file", metavar="F", help="read the template from file F instead")


def _composition_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", metavar="FILE", help="a YAML rules file (default: the built-in rules)")
    p.add_argument("--negative", default="", metavar="TEXT",
                   help="the negative prompt to start from (default: none)")


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # argparse would name this function ("invalid _non_negative value")
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _non_negative(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is below 0")
    return value


def _positive(text: str) -> int:
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def _scene_count(text: str) -> int:
    value = _whole_number(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{value} is not from 1 to 100")
    return value


class _WholeWrites:
    """`out` for the commands, with Ctrl-C held off while a write is under way. A signal that interrupts a big
    write to a pipe loses part of it (CPython's buffered writer drops bytes on a partial write, even when the
    handler returns), and a KeyboardInterrupt raised inside the write cuts a line in two. Blocked during the
    write, SIGINT arrives right after it: what was printed is whole lines. (Windows has no signal mask; there
    Ctrl-C stops as Python does by default.)"""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self._whole(self.stream.write, text)  # type: ignore[no-any-return]

    def write_bytes(self, data: bytes) -> int:
        """Bytes to the stream's binary buffer (see _block_writer)."""
        return self._whole(self.stream.buffer.write, data)  # type: ignore[no-any-return]

    def _whole(self, write: Callable[[object], object], data: object) -> object:
        if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
            return write(data)
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return write(data)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


def main(argv: Optional[Sequence[str]] = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = _parser_for(sys.argv[1:] if argv is None else argv).parse_args(argv)
    try:
        return _run(args, _WholeWrites(out), err)  # type: ignore[arg-type]
    except KeyboardInterrupt:  # Ctrl-C: what was written stays, whole (files are written whole or not at all)
        try:
            _WholeWrites(out).flush()
        except (BrokenPipeError, OSError):
            pass
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .errors import OrchestratorError

    try:
        if args.command == "prompts":
            return _prompts(args, out, err)
        if args.command == "count":
            return _count(args, out)
        if args.command == "lint":
            return _lint(args, out)
        if args.command == "compose":
            from .compose_cli import run_compose

            return run_compose(args, out, err)
        if args.command == "enhance":
            from .enhance_cli import run_enhance

            return run_enhance(args, out, err)
        if args.command == "story":
            from .story_cli import run_story

            return run_story(args, out, err)
        if args.command == "batch":
            from .batch_cli import run_batch

            return run_batch(args, out, err)
        if args.command == "library" and args.library_command == "match":
            from .match_cli import run_match

            return run_match(args, out, err)
        if args.command == "history":
            from .history_cli import run_history

            return run_history(args, out, err)
        if args.command == "library":
            from .library_cli import run_library

            return run_library(args, out, err)
        return _demo(out)
    except OrchestratorError as exc:
        err.write(exc.one_line() + "\n")
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `| head` closed the pipe: not an error
        sys.stderr.close()
        return EXIT_OK


def _roots(args: argparse.Namespace) -> List[str]:
    from .errors import Location, OrchestratorError

    roots = args.wildcards or [BUNDLED_WILDCARDS]
    for root in roots:
        if not os.path.isdir(root):
            raise OrchestratorError("wildcard folder does not exist", Location(root, 0, 0),
                                    "check the --wildcards path")
    return roots


def _template(args: argparse.Namespace) -> tuple:
    from .errors import OrchestratorError

    if args.template_file:
        if args.template is not None:
            raise OrchestratorError("give the template as text or with --template-file, not both")
        return _read_template_file(args.template_file), args.template_file
    if args.template is None:
        raise OrchestratorError("no template", hint="give it as text or with --template-file F")
    return args.template, "<template>"


MAX_TEMPLATE_FILE = 1024 * 1024  # the engine's own limit on a template


def _read_template_file(path: str) -> str:
    from .errors import Location, OrchestratorError

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_TEMPLATE_FILE + 1)
    except OSError as exc:
        raise OrchestratorError(f"cannot read template file: {exc.strerror or exc}", Location(path, 0, 0)) from None
    if len(raw) > MAX_TEMPLATE_FILE:
        raise OrchestratorError("template file over 1 MiB", Location(path, 0, 0), "is this the right file?")
    if b"\0" in raw:
        raise OrchestratorError("not a text file (it holds NUL bytes)", Location(path, 0, 0),
                                "a template file is text: is this an image or a model?")
    try:
        return raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise OrchestratorError(f"not UTF-8 text (byte {exc.start + 1})", Location(path, 0, 0),
                                "save it as UTF-8") from None


def _engine(args: argparse.Namespace):  # -> PromptEngine
    from .wildcards import PromptEngine

    return PromptEngine(_roots(args), on_missing=args.on_missing)


def _prompts(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    template, source = _template(args)
    engine = _engine(args)
    seed = args.seed
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") if args.mode == "random" else 0
    if args.variables == "batch":  # one run is one batch: every prompt reads the variables of the first seed
        from .wildcards.batch_vars import fix_variables

        fixed = fix_variables(engine, template, seed, args.mode, source)
        template = fixed.text
        for note in fixed.notes:
            err.write(f"warning: {note}\n")
    every_combination = args.mode == "combinatorial" and args.count is None
    count = COMBINATORIAL_DEFAULT_MAX if every_combination else 1 if args.count is None else args.count
    texts = engine.texts(template, args.mode, seed, count, source)
    if args.format == "jsonl":  # formatted by hand: json.dumps per line would cost more than the prompt
        from json.encoder import encode_basestring  # type: ignore[attr-defined]

        texts = (f'{{"prompt": {encode_basestring(text)}, "seed": {seed + k}, "index": {k}}}'
                 for k, text in enumerate(texts))
    _write_lines(texts, out)
    if every_combination:
        total = engine.count(template, source)
        if total > count:
            err.write(f"note: listed the first {count:,} of {total:,} combinations; give --count N for more\n")
    for note in engine.warnings:
        err.write(note + "\n")
    return EXIT_OK


def _write_lines(texts: Iterator[str], out: TextIO, chunk: int = 4096) -> None:
    """One prompt per line; a prompt written over several lines (YAML block entries) is joined
    with spaces, its blank lines dropped. Written a few thousand lines at a time (a few MB at most)."""
    write = _block_writer(out)
    while True:
        batch = list(islice(texts, chunk))
        if not batch:
            return
        batch.append("")  # the last line's newline, without copying the block to add it
        block = "\n".join(batch)
        if block.count("\n") != len(batch) - 1:
            block = "\n".join([_one_line(t) for t in batch[:-1]] + [""])
        write(block)


def _block_writer(out: TextIO) -> Callable[[str], object]:
    """How to write a block of lines to `out`: encoded by us and handed to stdout's binary buffer, when
    `out` is the process's stdout on a system whose lines end in \\n (about a third of the time through
    its text layer, for 20 MB of prompts); else `out.write`."""
    stream = out.stream if isinstance(out, _WholeWrites) else None
    buffer = getattr(stream, "buffer", None)
    if stream is None or stream is not sys.__stdout__ or os.linesep != "\n" \
            or not isinstance(buffer, io.BufferedWriter):
        return out.write
    encoding, errors = stream.encoding, stream.errors
    stream.flush()  # what went through the text layer first comes first

    def write(block: str) -> None:
        out.write_bytes(block.encode(encoding, errors))  # type: ignore[attr-defined]
        if stream.line_buffering:  # a terminal sees each block when it is made, as through the text layer
            buffer.flush()

    return write


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _count(args: argparse.Namespace, out: TextIO) -> int:
    template, source = _template(args)
    total = _engine(args).count(template, source)
    out.write(f'{{"combinations": {total}}}\n' if args.format == "jsonl" else f"{total:,}\n")
    return EXIT_OK


def _lint(args: argparse.Namespace, out: TextIO) -> int:
    """Each argument is a wildcard folder, a template file or template text: a path that exists is read as
    a path (so `lint my.txt` checks the file, not the words "my.txt")."""
    from .errors import Location, OrchestratorError
    from .wildcards.lint import lint

    folders, templates = [], []
    for arg in args.templates:
        if os.path.isdir(arg):
            folders.append(arg)
        elif os.path.isfile(arg):
            templates.append((_read_template_file(arg), arg))
        elif _looks_like_a_file(arg):
            raise OrchestratorError("no such file or folder", Location(arg, 0, 0),
                                    "check the path; template text is not a file name")
        else:
            templates.append(arg)
    roots = (args.wildcards or []) + folders if folders else _roots(args)
    for root in roots:
        if not os.path.isdir(root):
            raise OrchestratorError("wildcard folder does not exist", Location(root, 0, 0), "check the path")
    lora_names = None
    if args.loras:
        from .library_cli import scan_folder
        from .selection import LoraIndex

        if not os.path.isdir(args.loras):
            raise OrchestratorError("LoRA folder does not exist", Location(args.loras, 0, 0), "check --loras")
        lora_names = set(LoraIndex(scan_folder(args, args.loras, sys.stderr).records).by_name)
    findings = lint(roots, templates, lora_names)
    for f in findings:
        out.write(str(f) + "\n")
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    out.write(f"{errors:,} error(s), {warnings:,} warning(s)\n")
    return EXIT_LINT_ERRORS if errors else EXIT_OK


def _looks_like_a_file(arg: str) -> bool:
    return arg.lower().endswith((".txt", ".yaml", ".yml", ".json")) and not any(c in arg for c in "{}[] ") \
        and "__" not in arg


def _demo(out: TextIO) -> int:
    """Prompts from the bundled genre templates, with LoRAs picked from the bundled sample library."""
    from .compose import compose
    from .library import scan_library
    from .selection import LoraIndex, Rules
    from .wildcards import PromptEngine

    engine = PromptEngine([BUNDLED_WILDCARDS])
    index = LoraIndex(scan_library(SAMPLE_LORAS).records)
    names = [n for n in engine.store.names() if n.startswith("templates/")]
    out.write(f"Orchestrator demo: bundled wildcards ({BUNDLED_WILDCARDS}) and {len(index.records):,} sample LoRAs\n"
              f"({SAMPLE_LORAS}), composed for an SDXL checkpoint.\n")
    for name in names:
        template = f"__{name}__"
        out.write(f"\n{name}  ({engine.count(template):,} combinations)\n")
        for seed in (1000, 1001):
            composed = compose(template, engine.prompt(template, seed), seed, index, Rules(), "sdxl", "SDXL 1.0")
            out.write(f"  seed {seed}: {composed.prompt}\n")
            for pick in composed.loras:
                why = f"; matched {', '.join(pick.matched[:3])}" if pick.matched else ""
                out.write(f"      {pick.name} @ {pick.weight:g}  [{pick.category}; {pick.reason}{why}]\n")
    out.write(f"\nTry: {command_name()} compose '__templates/noir__' --loras {_shell_word(_shown_path(SAMPLE_LORAS))} "
              "--family sdxl --count 3 --format jsonl\n")
    return EXIT_OK


CONSOLE_SCRIPT = "orchestrator"


def command_name(plain: bool = False) -> str:
    """The command that runs this CLI, as the user can paste it: `orchestrator` when run as the installed console
    script, else `python -m lib_orchestrator` with the interpreter in use (`python` or `python3` when that name
    on PATH is this interpreter, its full path otherwise: a venv's python is not the one a new shell finds).
    `plain` keeps `python` for the usage line, which should read the same everywhere."""
    script = re.split(r"[\\/]", sys.argv[0] if sys.argv and sys.argv[0] else "")[-1].lower()  # a Windows path too
    if script in (CONSOLE_SCRIPT, CONSOLE_SCRIPT + ".exe", CONSOLE_SCRIPT + "-script.py"):
        return CONSOLE_SCRIPT
    if plain:
        return "python -m lib_orchestrator"
    return f"{_python_command()} -m lib_orchestrator"


def _python_command() -> str:
    here = os.path.normcase(os.path.abspath(sys.executable)) if sys.executable else ""
    for name in ("python", "python3"):
        found = shutil.which(name)
        if found and here and os.path.normcase(os.path.abspath(found)) == here:
            return name
    return _shell_word(sys.executable) if sys.executable else "python"


def _shown_path(path: str) -> str:
    """A path relative to the current folder when it lies inside it, else absolute."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # on another drive (Windows)
        return path
    return path if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative


def _shell_word(text: str) -> str:
    if os.name == "nt":
        return f'"{text}"' if any(c in text for c in ' \t&()^') else text
    import shlex

    return shlex.quote(text)
