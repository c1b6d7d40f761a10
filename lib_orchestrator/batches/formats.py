"""Batch files: `.json` (complete, versioned, validated on load), `.txt` (one prompt per line) and `.csv`
(one row per image with the main settings). Written atomically; errors say file, place and fix."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import fields
from typing import Any, Dict, List, Optional, Tuple

from ..atomic import write_text_atomic
from ..bounded_json import JsonLimitError, check_bounds
from ..errors import Location, OrchestratorError
from ..json_positions import Path, line_and_column, value_positions
from .model import MAX_IMAGES, MAX_SEED, ORIGINS, SCHEMA, VERSION, Batch, BatchImage, Settings, settings_problem

CSV_COLUMNS = ["index", "seed", "prompt", "negative_prompt", "loras", "checkpoint", "sampler_name", "scheduler",
               "steps", "width", "height", "cfg_scale"]


class BatchFileError(OrchestratorError):
    """A batch file that cannot be used as it is."""


TXT_MARK = "# Orchestrator batch"  # the first line of a .txt we write: a comment to the loader, our mark to us


def save_batch(batch: Batch, path: str) -> None:
    """Write the batch (atomically). A file already there is replaced only if it is a batch of ours: a
    user's own notes.txt or data.json of the same name is never written over."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        text = json.dumps(batch.to_dict(), indent=2, ensure_ascii=False) + "\n"
    elif ext == ".txt":
        text = f"{TXT_MARK} {batch.name}\n" + "".join(" ".join(im.prompt.splitlines()) + "\n" for im in batch.images)
    elif ext == ".csv":
        text = _to_csv(batch)
    else:
        raise BatchFileError(f"unknown batch format {ext!r}", Location(path, 0, 0), "use .json, .txt or .csv")
    if os.path.exists(path) and not _is_ours(path, ext):
        raise BatchFileError("a file of that name is there and it is not an Orchestrator batch", Location(path, 0, 0),
                             "choose another name; nothing was written")
    write_text_atomic(path, text)


def _is_ours(path: str, ext: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    if ext == ".txt":
        return head.startswith(TXT_MARK)
    if ext == ".csv":
        return head.split("\n", 1)[0].strip() == ",".join(CSV_COLUMNS)
    return f'"schema": "{SCHEMA}"' in head


def load_batch(path: str, seed: int = 0) -> Batch:
    """A batch from any of the three formats; a `.txt` of prompts becomes a batch seeded from `seed`."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchFileError(f"cannot read batch file: {exc}", Location(path, 0, 0)) from None
    ext = os.path.splitext(path)[1].lower()
    name = os.path.splitext(os.path.basename(path))[0]
    if ext == ".json":
        return _from_json(text, path)
    if ext == ".txt":
        prompts = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        return Batch(name, "", seed, Settings(), tuple(BatchImage(k, seed + k, p) for k, p in enumerate(prompts)))
    if ext == ".csv":
        return _from_csv(text, path, name)
    raise BatchFileError(f"unknown batch format {ext!r}", Location(path, 0, 0), "use .json, .txt or .csv")


# -- json ---------------------------------------------------------------------------------------------
MAX_JSON_BYTES = 256 * 1024 * 1024  # 100,000 images with long prompts and a few LoRAs each fit in a tenth


def _from_json(text: str, path: str) -> Batch:
    try:
        check_bounds(text, MAX_JSON_BYTES)
    except JsonLimitError as exc:  # before json.loads: it would recurse past the stack, or fill the memory
        line, column = line_and_column(text, len(text.encode("utf-8", "surrogatepass")[:exc.offset].decode(
            "utf-8", "replace"))) if exc.offset is not None else (1, 1)
        raise BatchFileError(f"not a batch: {exc}", Location(path, line, column),
                             "a batch file is a few levels deep: is this the right file?") from None
    except ValueError:
        pass  # brackets that cannot be JSON: json.loads says where
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BatchFileError(f"invalid JSON: {exc.msg}", Location(path, exc.lineno, exc.colno),
                             "fix the JSON (a hand edit left a comma or quote behind?)") from None
    check = _Checker(path, text)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise check.fail(("schema",), f"not an Orchestrator batch (schema should be {SCHEMA!r})")
    if data.get("version") != VERSION:
        raise check.fail(("version",), f"batch version {data.get('version')!r} is not supported (this reads "
                         f"{VERSION})", "save it again with this version")
    settings = _settings(check.mapping(data, ("settings",)), check)
    raw_images = data.get("images")
    if not isinstance(raw_images, list):
        raise check.fail(("images",), "images must be a list")
    if len(raw_images) > MAX_IMAGES:
        raise check.fail(("images",), f"{len(raw_images):,} images: a batch holds at most {MAX_IMAGES:,}",
                         "split it into several batches")
    images = [_image(raw, k, check) for k, raw in enumerate(raw_images)]
    indices = [im.index for im in images]
    if len(set(indices)) != len(indices):
        k = next(k for k, i in enumerate(indices) if indices.index(i) != k)
        raise check.fail(("images", k, "index"), f"images[{k}] has the index {indices[k]} of another image",
                         "give every image its own index")
    origin = check.text(data.get("origin", "template"), ("origin",))
    if origin not in ORIGINS:
        raise check.fail(("origin",), f"origin {origin!r} is not one of {', '.join(ORIGINS)}")
    return Batch(check.text(data.get("name", ""), ("name",)), check.text(data.get("template", ""), ("template",)),
                 check.seed(data.get("seed", 0), ("seed",)), settings, tuple(images),
                 check.text(data.get("negative_template", ""), ("negative_template",)), origin)


def _image(raw: Any, k: int, check: "_Checker") -> BatchImage:
    at = ("images", k)
    if not isinstance(raw, dict):
        raise check.fail(at, f"images[{k}] must be an object")
    raw_loras = raw.get("loras", [])
    if not isinstance(raw_loras, list):
        raise check.fail(at + ("loras",), f"images[{k}].loras must be a list of {{\"name\": …, \"weight\": …}}")
    loras = []
    for j, lora in enumerate(raw_loras):
        where = at + ("loras", j)
        if not isinstance(lora, dict) or not isinstance(lora.get("name"), str) or not lora["name"].strip():
            raise check.fail(where, f"images[{k}].loras[{j}] needs a name", 'write {"name": "…", "weight": 0.8}')
        loras.append((lora["name"], check.number(lora.get("weight", 1.0), where + ("weight",)),
                      str(lora.get("reason", ""))))
    checkpoint = raw.get("checkpoint")
    return BatchImage(index=check.integer(raw.get("index", k), at + ("index",)),
                      seed=check.seed(raw.get("seed"), at + ("seed",)),
                      prompt=check.text(raw.get("prompt"), at + ("prompt",)),
                      negative_prompt=check.text(raw.get("negative_prompt", ""), at + ("negative_prompt",)),
                      loras=tuple(loras),
                      checkpoint=check.text(checkpoint, at + ("checkpoint",)) or None if checkpoint else None)


def _settings(raw: Dict[str, Any], check: "_Checker") -> Settings:
    known = {f.name: f for f in fields(Settings)}
    for key in raw:
        if key not in known:
            raise check.fail(("settings", key), f"unknown setting {key!r}", f"known: {', '.join(sorted(known))}")
    values: Dict[str, Any] = {}
    defaults = Settings()
    for key, value in raw.items():
        default, at = getattr(defaults, key), ("settings", key)
        if value is None:
            values[key] = None if default is None or key in ("checkpoint", "hr_cfg") else default
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise check.fail(at, f"settings.{key} must be true or false")
            values[key] = value
        elif isinstance(default, int):
            values[key] = check.integer(value, at)
        elif isinstance(default, float) or key == "hr_cfg":
            values[key] = check.number(value, at)
        else:
            values[key] = check.text(value, at)
    problem = settings_problem(values)
    if problem:
        raise check.fail(("settings", problem[0]), f"settings.{problem[1]}")
    return Settings(**values)


class _Checker:
    """Type checks whose errors point at the very value (line and column) that is wrong."""

    def __init__(self, path: str, text: str) -> None:
        self.path, self.source = path, text
        self.positions = value_positions(text)

    def fail(self, at: Path, message: str, hint: str = "") -> BatchFileError:
        return BatchFileError(message, self._where(at), hint)

    def _where(self, at: Path) -> Location:
        while at not in self.positions and at:  # a missing value: its parent object
            at = at[:-1]
        offset = self.positions.get(at)
        if offset is None:
            return Location(self.path, 0, 0)
        line, column = line_and_column(self.source, offset)
        start = self.source.rfind("\n", 0, offset) + 1
        end = self.source.find("\n", offset)
        return Location(self.path, line, column, self.source[start:end if end >= 0 else len(self.source)][:200])

    def mapping(self, data: Dict[str, Any], at: Path) -> Dict[str, Any]:
        value = data.get(at[-1], {})
        if not isinstance(value, dict):
            raise self.fail(at, f"{_name(at)} must be an object")
        return value

    def integer(self, value: Any, at: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(at, f"{_name(at)} must be a whole number, not {_shown(value)}")
        return value

    def seed(self, value: Any, at: Path) -> int:
        value = self.integer(value, at)
        if not 0 <= value <= MAX_SEED:
            raise self.fail(at, f"{_name(at)} must be from 0 to {MAX_SEED}, not {value}")
        return value

    def number(self, value: Any, at: Path) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(at, f"{_name(at)} must be a number, not {_shown(value)}")
        return float(value)

    def text(self, value: Any, at: Path) -> str:
        if not isinstance(value, str):
            raise self.fail(at, f"{_name(at)} must be text, not {_shown(value)}")
        return value


def _name(at: Path) -> str:
    """("images", 5, "seed") -> "images[5].seed"."""
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


# -- csv ----------------------------------------------------------------------------------------------
def _to_csv(batch: Batch) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    s = batch.settings
    for im in batch.images:
        writer.writerow([im.index, im.seed, im.prompt, im.negative_prompt,
                         "; ".join(f"{n}:{w:g}:{r}" for n, w, r in im.loras), batch.checkpoint_of(im) or "",
                         s.sampler_name, s.scheduler, s.steps, s.width, s.height, s.cfg_scale])
    return out.getvalue()


def _from_csv(text: str, path: str, name: str) -> Batch:
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error as exc:  # a NUL byte, a cell past csv's size limit: not a batch someone wrote
        raise BatchFileError(f"not a readable CSV: {exc}", Location(path, reader.line_num, 1),
                             "save the batch again, or check that this is the right file") from None
    if len(rows) > MAX_IMAGES + 1:
        raise BatchFileError(f"{len(rows) - 1:,} rows: a batch holds at most {MAX_IMAGES:,} images",
                             Location(path, MAX_IMAGES + 2, 1), "split it into several batches")
    if not rows or [c.strip() for c in rows[0]] != CSV_COLUMNS:
        raise BatchFileError("the header row is not the batch columns", Location(path, 1, 1),
                             f"the first row must be: {','.join(CSV_COLUMNS)}")
    images: List[BatchImage] = []
    settings: Optional[Settings] = None
    for line, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(CSV_COLUMNS):
            raise BatchFileError(f"{len(row)} columns instead of {len(CSV_COLUMNS)}", Location(path, line, 1),
                                 "quote cells that hold commas")
        cell = dict(zip(CSV_COLUMNS, row))
        try:
            image = BatchImage(int(cell["index"]), int(cell["seed"]), cell["prompt"], cell["negative_prompt"],
                               _csv_loras(cell["loras"]), cell["checkpoint"] or None)
            row_settings = Settings(sampler_name=cell["sampler_name"], scheduler=cell["scheduler"],
                                    steps=int(cell["steps"]), width=int(cell["width"]), height=int(cell["height"]),
                                    cfg_scale=float(cell["cfg_scale"]))
            if not 0 <= image.seed <= MAX_SEED:
                raise ValueError(f"seed must be from 0 to {MAX_SEED}, not {image.seed}")
        except ValueError as exc:
            raise BatchFileError(f"bad value: {exc}", Location(path, line, 1),
                                 "index, seed, steps, width, height are whole numbers; cfg_scale a number") from None
        settings = settings or row_settings
        images.append(image)
    return Batch(name, "", images[0].seed if images else 0, settings or Settings(), tuple(images))


def _csv_loras(text: str) -> Tuple[Tuple[str, float, str], ...]:
    out = []
    for part in text.split(";"):
        bits = part.strip().rsplit(":", 2)
        if len(bits) == 3:
            weight = float(bits[1])
            if not math.isfinite(weight):
                raise ValueError(f"LoRA weight {bits[1]!r} is not a number")
            out.append((bits[0], weight, bits[2]))
    return tuple(out)
