"""Batch files: `.json` (complete, versioned, validated on load), `.txt` (one prompt per line) and `.csv`
(one row per image with the main settings). Written atomically; errors say file, place and fix."""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import fields
from typing import Any, Dict, List, Optional, Tuple

from ..atomic import write_text_atomic
from ..errors import Location, OrchestratorError
from .model import SCHEMA, VERSION, Batch, BatchImage, Settings

CSV_COLUMNS = ["index", "seed", "prompt", "negative_prompt", "loras", "checkpoint", "sampler_name", "scheduler",
               "steps", "width", "height", "cfg_scale"]


class BatchFileError(OrchestratorError):
    """A batch file that cannot be used as it is."""


def save_batch(batch: Batch, path: str) -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        text = json.dumps(batch.to_dict(), indent=2, ensure_ascii=False) + "\n"
    elif ext == ".txt":
        text = "".join(" ".join(im.prompt.splitlines()) + "\n" for im in batch.images)
    elif ext == ".csv":
        text = _to_csv(batch)
    else:
        raise BatchFileError(f"unknown batch format {ext!r}", Location(path, 0, 0), "use .json, .txt or .csv")
    write_text_atomic(path, text)


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
def _from_json(text: str, path: str) -> Batch:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BatchFileError(f"invalid JSON: {exc.msg}", Location(path, exc.lineno, exc.colno),
                             "fix the JSON (a hand edit left a comma or quote behind?)") from None
    check = _Checker(path, text)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise check.fail("schema", f"not an Orchestrator batch (schema should be {SCHEMA!r})")
    if data.get("version") != VERSION:
        raise check.fail("version", f"batch version {data.get('version')!r} is not supported (this reads {VERSION})",
                         "save it again with this version")
    settings = _settings(check.mapping(data, "settings"), check)
    images = []
    raw_images = data.get("images")
    if not isinstance(raw_images, list):
        raise check.fail("images", "images must be a list")
    for k, raw in enumerate(raw_images):
        where = f"images[{k}]"
        if not isinstance(raw, dict):
            raise check.fail("images", f"{where} must be an object")
        loras = []
        for j, lora in enumerate(raw.get("loras", [])):
            if not isinstance(lora, dict) or not isinstance(lora.get("name"), str):
                raise check.fail("loras", f"{where}.loras[{j}] needs a name")
            loras.append((lora["name"], check.number(lora.get("weight", 1.0), f"{where}.loras[{j}].weight"),
                          str(lora.get("reason", ""))))
        images.append(BatchImage(
            index=check.integer(raw.get("index", k), f"{where}.index"),
            seed=check.integer(raw.get("seed"), f"{where}.seed"),
            prompt=check.text(raw.get("prompt"), f"{where}.prompt"),
            negative_prompt=check.text(raw.get("negative_prompt", ""), f"{where}.negative_prompt"),
            loras=tuple(loras), checkpoint=raw.get("checkpoint") or None))
    indices = [im.index for im in images]
    if len(set(indices)) != len(indices):
        raise check.fail("index", "two images share an index", "give every image its own index")
    return Batch(check.text(data.get("name", ""), "name"), check.text(data.get("template", ""), "template"),
                 check.integer(data.get("seed", 0), "seed"), settings, tuple(images),
                 check.text(data.get("negative_template", ""), "negative_template"))


def _settings(raw: Dict[str, Any], check: "_Checker") -> Settings:
    known = {f.name: f for f in fields(Settings)}
    for key in raw:
        if key not in known:
            raise check.fail(key, f"unknown setting {key!r}", f"known: {', '.join(sorted(known))}")
    values: Dict[str, Any] = {}
    defaults = Settings()
    for key, value in raw.items():
        default = getattr(defaults, key)
        if value is None:
            values[key] = None if default is None or key in ("checkpoint", "hr_cfg") else default
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise check.fail(key, f"settings.{key} must be true or false")
            values[key] = value
        elif isinstance(default, int):
            values[key] = check.integer(value, f"settings.{key}")
        elif isinstance(default, float) or key == "hr_cfg":
            values[key] = check.number(value, f"settings.{key}")
        else:
            values[key] = check.text(value, f"settings.{key}")
    return Settings(**values)


class _Checker:
    def __init__(self, path: str, text: str) -> None:
        self.path, self.source = path, text

    def fail(self, key: str, message: str, hint: str = "") -> BatchFileError:
        return BatchFileError(message, self._where(key), hint)

    def _where(self, key: str) -> Location:
        found = self.source.find(f'"{key}"')
        if found < 0:
            return Location(self.path, 0, 0)
        line = self.source.count("\n", 0, found) + 1
        return Location(self.path, line, found - self.source.rfind("\n", 0, found))

    def mapping(self, data: Dict[str, Any], key: str) -> Dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"{key} must be an object")
        return value

    def integer(self, value: Any, what: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(what.rsplit(".", 1)[-1].split("[")[0], f"{what} must be a whole number, not {value!r}")
        return value

    def number(self, value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(what.rsplit(".", 1)[-1].split("[")[0], f"{what} must be a number, not {value!r}")
        return float(value)

    def text(self, value: Any, what: str) -> str:
        if not isinstance(value, str):
            raise self.fail(what.rsplit(".", 1)[-1].split("[")[0], f"{what} must be text, not {value!r}")
        return value


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
    rows = list(csv.reader(io.StringIO(text)))
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
            out.append((bits[0], float(bits[1]), bits[2]))
    return tuple(out)
