"""A batch's run state: one line per image event, appended and flushed as each image completes, so a
batch stopped by a crash, an interrupt or a restart resumes where it stopped.

`started` is written before an image is generated and `done` (with the saved file) after it is saved; an
image started but not done is generated again. A torn last line (a crash mid-write) is ignored.
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, List, Optional

from .model import Batch, BatchImage


class RunState:
    def __init__(self, batch_path: str) -> None:
        self.path = batch_path + ".state.jsonl"

    def events(self) -> List[Dict]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a torn line from a crash
            if isinstance(event, dict) and isinstance(event.get("index"), int):
                out.append(event)
        return out

    def done(self) -> Dict[int, Optional[str]]:
        """Image index -> saved file, for the images that are finished."""
        return {e["index"]: e.get("file") for e in self.events() if e.get("status") == "done"}

    def remaining(self, batch: Batch) -> List[BatchImage]:
        finished = self.done()
        return [im for im in batch.run_order() if im.index not in finished]

    def record(self, index: int, status: str, file: Optional[str] = None) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        line = json.dumps({"index": index, "status": status, "file": file, "time": round(time.time(), 3)})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def summary(self, batch: Batch) -> str:
        finished, total = len(self.done()), len(batch.images)
        return f"{finished:,}/{total:,} images done" + (", finished" if finished >= total else "")
