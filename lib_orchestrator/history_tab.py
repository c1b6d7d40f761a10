"""What the History sub-tab does, without Gradio: search the image index, show an image's details, rate it
by key, compare two images blind, and the LoRA leaderboard. Every handler takes and returns plain values,
so it is tested directly; scripts/orchestrator_tab.py only wires these to widgets (and the keys in
javascript/orchestrator.js to the handlers).

The service is the host's HistoryService (lib_orchestrator/history/service.py): `store()` for this thread,
`status()`, `scores(by_weight)`, `score_of(name)`, `embedder()`, `refresh()`, `add_folder(path)`.
"""
from __future__ import annotations

import datetime
import html
import os
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from .library.thumbnails import name_card, thumbnail

# A rating key (javascript/orchestrator.js sends the key itself; the buttons send the same) -> what it does.
RATING_KEYS = {"1": "1 star", "2": "2 stars", "3": "3 stars", "4": "4 stars", "5": "5 stars", "0": "clear",
               "x": "reject (again: un-reject)", "f": "favourite (again: not)"}
OUTCOMES = ("left", "right", "tie", "skip")
SORTS = ("relevance", "newest", "oldest", "stars")
REJECTED = ("hide", "show", "only")
RATED = ("any", "rated", "unrated")
LEADERBOARD_SORTS = ("score", "images", "rated")
COMPARE_SIZE = 1024  # the blind images: a copy under a name that says nothing (a hash), never the file's own name

Item = Tuple[str, str]  # (image file for the gallery, caption)


def signed(value: float) -> str:
    """`+0.8`, `−0.1` (a real minus sign), `+0.0` (never `−0.0`)."""
    value = round(float(value), 1) + 0.0
    return f"{value:+.1f}".replace("-", "−")


def score_text(score: Any) -> str:
    """`+0.8 ★ (−0.1…+1.7)`: the effect in stars against the user's mean, with its 95% interval."""
    return f"{signed(score.score)} ★ ({signed(score.low)}…{signed(score.high)})"


def score_line(score: Any, usage: Optional[int] = None) -> str:
    """The effectiveness line of a LoRA's details: score, interval and counts, or `not rated yet`."""
    if score is None:
        return "not rated yet" + (f" ({usage:,} images)" if usage else "")
    counts = f"{score.images:,} images, {score.rated:,} rated, {score.compared:,} compared"
    if not score.rated and not score.compared:
        return f"not rated yet ({counts})"
    return f"{score_text(score)} · {counts}"


def stars_text(stars: Optional[int]) -> str:
    return "★" * stars + "☆" * (5 - stars) if stars else ""


def rating_marks(row: Any) -> str:
    """What the gallery caption says about a rating: `★4 ♥`, `✕`; "" when unrated."""
    marks = [f"★{row.stars}"] if row.stars else []
    if row.favourite:
        marks.append("♥")
    if row.rejected:
        marks.append("✕")
    return " ".join(marks)


def rating_line(row: Any) -> str:
    """The details panel's line about the image's rating."""
    if row is None:
        return "select an image (click it, or ←/→)"
    parts = [f"{stars_text(row.stars)} {row.stars} star{'s' if row.stars != 1 else ''}"] if row.stars else []
    if row.favourite:
        parts.append("♥ favourite")
    if row.rejected:
        parts.append("✕ rejected")
    return " · ".join(parts) if parts else "not rated: press 1–5, x (reject) or f (favourite)"


def lora_label(use: Any) -> str:
    return use.name if use.weight is None else f"{use.name}:{use.weight:g}"


def caption(row: Any) -> str:
    """A gallery caption: the rating marks, then the LoRAs (at most three) or the seed."""
    marks = rating_marks(row)
    loras = [lora_label(u) for u in row.loras]
    what = ", ".join(loras[:3]) + (f" +{len(loras) - 3}" if len(loras) > 3 else "") if loras else \
        (f"seed {row.seed}" if row.seed is not None else os.path.basename(row.path))
    return f"{marks} · {what}" if marks else what


LEADERBOARD_ROWS = 300


@dataclass
class HistoryModel:
    service: Any  # a HistoryService
    thumbs_dir: str
    per_page: int = 48
    seed: Optional[int] = None  # Compare's pairs: None = from the clock (the order left/right is blind)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(time.time_ns() if self.seed is None else self.seed)

    # -- status -------------------------------------------------------------------------------------------
    def status(self) -> str:
        return self.service.status()

    def rescan(self) -> str:
        self.service.refresh()
        return "rescanning your image folders in the background; search again in a moment"

    def add_folder(self, path: str) -> str:
        path = (path or "").strip().strip('"')
        if not path:
            return "error: write the folder's path first"
        if not os.path.isdir(path):
            return f"error: {path} is not a folder"
        return self.service.add_folder(path)

    # -- browse -------------------------------------------------------------------------------------------
    def search(self, text: str, checkpoint: str = "", lora: str = "", min_stars: Any = 0, rated: str = "any",
               rejected: str = "hide", favourites: bool = False, sort: str = "relevance",
               page: Any = 0) -> Tuple[List[Item], str, List[int]]:
        """(gallery items, summary line, the ids of the items in order)."""
        from .history.search import SearchQuery, search

        page = max(0, int(page or 0))
        query = SearchQuery(
            text=text or "", checkpoint=(checkpoint or "").strip(), lora=(lora or "").strip(),
            min_stars=max(0, min(5, int(min_stars or 0))), favourite=bool(favourites),
            rejected=rejected if rejected in REJECTED else "hide", rated="" if rated not in ("rated", "unrated")
            else rated, sort=sort if sort in SORTS else "relevance", page=page, per_page=self.per_page)
        store = self.service.store()
        found = search(store, query, embedder=self.service.embedder())
        pages = max(1, -(-found.total // self.per_page))
        if found.total and page >= pages:  # past the end (the filters narrowed it): the last page
            page = pages - 1
            found = search(store, replace(query, page=page), embedder=self.service.embedder())
        rows = [hit.image for hit in found.hits]
        summary = (f"{found.total:,} image{'' if found.total == 1 else 's'} · page {page + 1} of {pages}" if found.total
                   else "no image matches" + ("" if text or checkpoint or lora else
                                              ": rescan, or add a folder of your images above"))
        if found.note:
            summary += f" · {found.note}"
        return self._items(rows), summary, [row.id for row in rows]

    def _items(self, rows: Iterable[Any]) -> List[Item]:
        items = []
        for row in rows:
            thumb = thumbnail(row.path, self.thumbs_dir)
            if thumb is None:  # unreadable: a card that says which file and why, never a hole in the grid
                thumb = name_card(self.thumbs_dir, os.path.basename(row.path), row.problem or "cannot be shown")
            items.append((thumb or row.path, caption(row)))
        return items

    def gallery(self, ids: Sequence[int]) -> List[Item]:
        """The page's items again (after a rating: its caption changes; the page stays as it was)."""
        return self._items(self.service.store().images([int(i) for i in ids or []]))

    def details(self, image_id: Any) -> Tuple[Optional[str], str, str, str]:
        """(the image file, details HTML, its parameters as infotext text, rating line)."""
        row = self.service.store().image(int(image_id)) if image_id not in (None, "") else None
        if row is None:
            return None, "", "", rating_line(None)
        shown = row.path if row.present and os.path.exists(row.path) else None
        return shown, self.details_html(row), row.parameters or "", rating_line(row)

    def details_html(self, row: Any) -> str:
        made = datetime.datetime.fromtimestamp(row.created).strftime("%Y-%m-%d %H:%M") if row.created else ""
        size = f"{row.width}×{row.height}" if row.width and row.height else ""
        rows = [("file", row.path + ("" if row.present else " (gone)")), ("made", made),
                ("size", " ".join(x for x in (size, row.format) if x)),
                ("checkpoint", row.checkpoint + (f" [{row.checkpoint_hash}]" if row.checkpoint_hash else "")),
                ("seed", "" if row.seed is None else str(row.seed)), ("template", row.template),
                ("batch", row.batch), ("swatch", row.swatch), ("problem", row.problem)]
        table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows if v)
        loras = "".join(
            f"<tr><td>{html.escape(u.name)}</td><td>{'' if u.weight is None else f'{u.weight:g}'}</td>"
            f"<td>{html.escape(u.reason or u.source)}</td>"
            f"<td>{html.escape(score_line(self.service.score_of(u.name)))}</td></tr>" for u in row.loras)
        loras = ("<table class='orch-history-loras'><tr><th>LoRA</th><th>weight</th><th>reason</th>"
                 f"<th>effectiveness</th></tr>{loras}</table>") if loras else "<p>no LoRAs</p>"
        return f"<table class='orch-details'>{table}</table>{loras}"

    def rate(self, key: str, image_id: Any, ids: Optional[Sequence[int]] = None) -> Tuple[str, Any, Optional[str]]:
        """A rating key on the selected image: (rating line, the page's gallery items with the new caption, the
        details HTML with the LoRAs' new scores); None for what did not change."""
        key = (key or "").strip().lower()
        if key not in RATING_KEYS:
            return f"unknown key {key!r}: {', '.join(RATING_KEYS)}", None, None
        if image_id in (None, ""):
            return "select an image first (click it, or ←/→)", None, None
        store = self.service.store()
        row = store.image(int(image_id))
        if row is None:
            return "that image is no longer in the index: search again", None, None
        if key == "0":
            row = store.rate(row.id, clear=True)
        elif key == "x":
            row = store.rate(row.id, rejected=not row.rejected)
        elif key == "f":
            row = store.rate(row.id, favourite=not row.favourite)
        else:  # stars say what the image is worth: a rejected one given stars is no longer rejected
            row = store.rate(row.id, stars=int(key), rejected=False)
        return rating_line(row), (self.gallery(ids) if ids else None), self.details_html(row)

    def rate_at(self, key: str, index: Any, ids: Optional[Sequence[int]]) -> Tuple[str, Any, Optional[str]]:
        """A rating key on the gallery's image at `index` (where the page's selection was when the key was pressed:
        a key pressed right after ← / → rates the image moved to even before its details have come back)."""
        try:
            at = int(index)
        except (TypeError, ValueError):
            at = -1
        chosen = ids[at] if ids and 0 <= at < len(ids) else None
        return self.rate(key, chosen, ids)

    # -- compare ------------------------------------------------------------------------------------------
    def next_pair(self, lora: str = "") -> Tuple[Optional[str], Optional[str], Optional[List[int]], str]:
        """(left image, right image, [left id, right id], note): two images of one prompt and seed whose LoRAs
        differ, in an order drawn at random; the files are shown under names that say nothing."""
        pair = self.service.store().next_pair(self._rng, lora=(lora or "").strip())
        if pair is None:
            return None, None, None, ("no pair to compare" + (f" with {lora.strip()}" if (lora or "").strip()
                                      else "") + ": pairs are images of one prompt and seed with other LoRAs "
                                      "or weights (a swatch, a batch by LoRA)")
        left, right = pair
        return self._blind(left), self._blind(right), [left.id, right.id], "which is better? ← left · → right"

    def _blind(self, row: Any) -> Optional[str]:
        return thumbnail(row.path, os.path.join(self.thumbs_dir, "compare"), size=COMPARE_SIZE)

    def judge(self, outcome: str, pair: Optional[Sequence[int]], lora: str = "",
              made: Any = 0) -> Tuple[Optional[str], Optional[str], Optional[List[int]], str, str, int]:
        """Record the judgement of the pair as shown, then the next pair: (left image, right image, pair, note,
        what the judged two were, judgements made in this session)."""
        made = int(made or 0)
        if outcome not in OUTCOMES:  # never from our keys or buttons: say so, keep the pair on screen
            left, right = self._shown(pair)
            return left, right, list(pair) if pair else None, f"unknown judgement {outcome!r}", "", made
        if not pair:
            left, right, nxt, note = self.next_pair(lora)
            return left, right, nxt, note, "", made
        store = self.service.store()
        store.compare(int(pair[0]), int(pair[1]), outcome)
        reveal = self.reveal(store.image(int(pair[0])), store.image(int(pair[1])), outcome)
        left, right, nxt, note = self.next_pair(lora)
        return left, right, nxt, note, reveal, made + 1

    def _shown(self, pair: Optional[Sequence[int]]) -> Tuple[Optional[str], Optional[str]]:
        store = self.service.store()
        rows = [store.image(int(i)) for i in pair] if pair else [None, None]
        left, right = (self._blind(r) if r is not None else None for r in rows)
        return left, right

    @staticmethod
    def reveal(left: Any, right: Any, outcome: str) -> str:
        """After the judgement, what each image was (HTML): LoRAs with weights, the file's name."""
        def side(row: Any, label: str, won: bool) -> str:
            if row is None:
                return f"<li>{label}: (gone)</li>"
            loras = ", ".join(lora_label(u) for u in row.loras) or "no LoRA (baseline)"
            mark = " <b>won</b>" if won else ""
            return (f"<li>{label}{mark}: {html.escape(loras)} <small>{html.escape(os.path.basename(row.path))}"
                    "</small></li>")

        said = {"left": "you chose the left", "right": "you chose the right", "tie": "a tie",
                "skip": "skipped"}[outcome]
        return (f"<div class='orch-history-reveal'>Last pair, {said}:<ul>{side(left, 'left', outcome == 'left')}"
                f"{side(right, 'right', outcome == 'right')}</ul></div>")

    def counter(self, made: Any) -> str:
        """Judgements made in this session (skips too), and comparisons with a result in the whole index."""
        made = int(made or 0)
        done = self.service.store().count_comparisons()
        return f"{made:,} judged in this session · {done:,} comparison{'' if done == 1 else 's'} in all"

    # -- leaderboard --------------------------------------------------------------------------------------
    def leaderboard(self, sort: str = "score", rated_only: bool = False, by_weight: bool = False) -> str:
        """The LoRAs by effectiveness, as an HTML table (names escaped)."""
        scores = list(self.service.scores(by_weight=bool(by_weight)))
        if rated_only:
            scores = [s for s in scores if s.rated or s.compared]
        if sort == "images":
            scores.sort(key=lambda s: (-s.images, -s.score))
        elif sort == "rated":
            scores.sort(key=lambda s: (-s.rated, -s.compared, -s.score))
        else:  # a LoRA nobody judged has the mean's score (0): after every judged one, not among them
            scores.sort(key=lambda s: (not (s.rated or s.compared), -s.score, -s.rated, -s.images))
        if not scores:
            return ("<p class='orch-history-empty'>no LoRA "
                    f"{'rated' if rated_only else 'in the indexed images'} yet</p>")
        more = len(scores) - LEADERBOARD_ROWS
        scores = scores[:LEADERBOARD_ROWS]  # a page the browser can draw at once, for a library of 10,000 LoRAs
        weight = "<th>weights</th>" if by_weight else ""
        rows = "".join(
            f"<tr><td>{k}</td><td>{html.escape(s.name)}</td>" + (f"<td>{html.escape(s.bucket or 'all')}</td>"
                                                                  if by_weight else "")
            + f"<td class='orch-score'>{score_text(s) if s.rated or s.compared else 'not rated yet'}</td>"
            f"<td>{s.images:,}</td><td>{s.rated:,}</td><td>{s.compared:,}</td></tr>"
            for k, s in enumerate(scores, 1))
        return ("<table class='orch-leaderboard'><tr><th>#</th><th>LoRA</th>" + weight
                + "<th>score (95% interval)</th><th>images</th><th>rated</th><th>compared</th></tr>"
                + rows + "</table>" + (f"<p class='orch-history-empty'>and {more:,} more</p>" if more > 0 else ""))
