"""Finding past images by what their prompts say: by words (SQLite FTS5 ranked by BM25) and, when an embedder is
given, by meaning (prompt vectors), the two lists fused by reciprocal rank.

The query text is the user's, typed into a search box or a command line, so no text is an error: it is read
into terms and filters first and only then written as an FTS5 expression, each term a quoted FTS string.

- `red hair` both words (anywhere: prompt, negative, template, LoRA names, checkpoint); `"red hair"` the phrase
  (unicode61 splits `red_hair` into `red` `hair`, so the phrase finds the tag); `dress*` a prefix;
  `-blurry` or `NOT blurry` not; `kimono OR yukata` either (OR binds its neighbours: `a OR b c` is (a or b)
  and c); `AND` is the default and ignored.
- `lora:NAME` (`lora:detail*` a prefix), `model:NAME` (or `checkpoint:`; the exact name if an image has it,
  else a prefix), `seed:N`, `batch:NAME`: filters, each negatable (`-lora:NAME`), a value with spaces quoted
  (`lora:"my lora"`). Case never matters.
- Punctuation is only separation: `(masterpiece:1.2)`, `<lora:x:0.8>`, `1girl,` are their words. A term with
  no word in it (`,`, `(((`), an unbalanced quote, an OR or NOT with nothing beside it: read as plain words or
  dropped, never an error.

Ranking: BM25 with column weights (WEIGHTS). When more than WINDOW images match, only the WINDOW most recently
indexed of them are ranked (BM25 costs one to two microseconds a row: ranking all 100k matches of a word every
prompt has took 60-100 ms), and `note` says so. The other sorts are exact however many match
(they walk the created index); `total` stops at WINDOW. Only images whose file is present are found.

Meaning: each image's prompt as words (embeddings.texts.prompt_text) has a vector in `prompt_vectors`, made by
embed_prompts() (in chunks, resumable), one row per image for one embedder (kind + model): rows of another
embedder are ignored by search and replaced by embed_prompts. Search embeds the query's words and takes the
images above a similarity floor (MEANING_FLOOR, and MEANING_LEAD above the median of all images for this
query: static embeddings put every text somewhat near every other), best MEANING_TOP after the filters.
The vectors are kept in memory per index file and embedder as float32, 100 MB at 100k x 256 (converting the
float16 rows per search cost 35 ms at 100k; the float32 product takes 3 ms), read again only when embed_prompts
has written.
"""
from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from ..embeddings.base import EmbedError
from ..embeddings.texts import prompt_text
from ..errors import Location
from .scan import normal_folder, write_transaction
from .store import HistoryError, ImageRow

if TYPE_CHECKING:
    import numpy

    from ..embeddings.base import Embedder
    from .store import HistoryStore

__all__ = ["RATED", "REJECTED", "SORTS", "Hit", "SearchPage", "SearchQuery", "embed_prompts", "search"]

SORTS = ("relevance", "newest", "oldest", "stars")
REJECTED = ("hide", "only", "show")
RATED = ("", "rated", "unrated")

# BM25 column weights, in the FTS table's column order. A LoRA's name is what the user searches by most often
# and is a few words long, so its match counts double; the prompt is the text itself; the template names what
# the image was made from (less exact than the prompt it gave); a checkpoint name matches many images; a word
# found only in the negative is about what the image does *not* show, so it counts a fifth (still found:
# `blurry` finds images made with it in the negative, after those with it in the prompt).
WEIGHTS = (("prompt", 1.0), ("negative", 0.2), ("template", 0.6), ("lora_names", 2.0), ("checkpoint", 0.5))
WINDOW = 5_000  # text matches ranked (the most recently indexed); more are counted as "more than WINDOW". At
#                100k images under load, p95 over the benchmark's queries: 17 ms with 5,000, 34 ms with 10,000
MAX_TERMS = 64  # words of a query used (a whole prompt pasted in is about 60)
RRF_K = 60  # reciprocal rank fusion: 1 / (RRF_K + rank) from each list (Cormack et al.'s constant)
MEANING_TOP = 200  # images found by meaning, at most (after the filters)
MEANING_FLOOR = 0.35  # cosine an image needs (built-in embedder over 10k generated prompts: nonsense peaked at
#                       0.27, synonyms of a tag reached 0.40-0.55)
MEANING_LEAD = 0.25  # ... and this far above the median image, for embedders whose unrelated texts sit higher
MEANING_CHECKED = 5_000  # images above the floor checked against the filters, at most
EMBED_CHUNK = 512  # prompts embedded and committed at a time
VECTOR_KEY = "prompt_vectors"  # meta key raised with every chunk embed_prompts writes: the vector cache's version
FLOAT32_LIMIT = 256 * 2 ** 20  # vectors kept as float32 up to this size; beyond it float16, converted per chunk


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""  # words, "a phrase", word*, -word, a OR b, lora:/model:/seed:/batch: filters (module doc)
    checkpoint: str = ""  # the exact name if an image has it, else a prefix; case-insensitive
    lora: str = ""  # a LoRA the image used (case-insensitive; `name*` a prefix)
    batch: str = ""  # `Orchestrator batch` name (any index), or "name #3" exactly
    folder: str = ""  # images under this folder (and its subfolders)
    min_stars: int = 0  # stars at least this (a favourite without stars counts as 5, as in the LoRA scores)
    favourite: bool = False  # favourites only
    rejected: str = "hide"  # hide | only | show
    rated: str = ""  # "" | "rated" (stars, reject or favourite) | "unrated"
    since: Optional[float] = None  # created (the file's mtime) at or after, epoch seconds
    until: Optional[float] = None  # ... and before (exclusive)
    sort: str = "relevance"  # relevance | newest | oldest | stars (then newest); relevance without text: newest
    page: int = 0  # 0-based
    per_page: int = 48
    semantic: bool = True  # use prompt vectors when an embedder is given


@dataclass(frozen=True)
class Hit:
    image: ImageRow
    score: float  # higher is better. Relevance: -BM25 when only words found images, the fused 1/(61+rank) sum
    #               when words and meaning did, the cosine when only meaning did. Other sorts: -BM25 of a text
    #               hit, the cosine of a meaning-only one. 0.0 without words.
    reason: str  # "text" | "meaning" | "text+meaning" | "" (no text)


@dataclass(frozen=True)
class SearchPage:
    hits: Tuple[Hit, ...]
    total: int  # images that match; at most WINDOW (+ those found by meaning), `note` then says more match
    note: str  # "" or what the list leaves out and why (more than WINDOW match, meaning not used and why)


# -- reading the query text ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Term:
    text: str  # what goes inside the FTS string (the words as typed)
    prefix: bool = False


@dataclass
class _Parsed:
    groups: List[List[_Term]] = field(default_factory=list)  # every group must match; one term of a group
    excluded: List[_Term] = field(default_factory=list)
    filters: List[Tuple[str, str, bool]] = field(default_factory=list)  # (key, value, negated)
    dropped: int = 0  # terms beyond MAX_TERMS

    def meaning_text(self) -> str:
        """The words to compare by meaning: every whole word or phrase asked for (prefixes are word pieces)."""
        words = [t.text for g in self.groups for t in g if not t.prefix]
        return prompt_text(" ".join(words)) if words else ""


_FILTER_KEYS = {"lora": "lora", "model": "checkpoint", "checkpoint": "checkpoint", "seed": "seed", "batch": "batch"}
_LEX = re.compile(r'''(?P<neg>-?)(?:
      (?P<key>lora|model|checkpoint|seed|batch):(?:"(?P<quoted>[^"]*)"|(?P<value>[^\s"]+))
    | "(?P<phrase>[^"]*)"(?P<star>\*?)
    | (?P<word>\S+)
)''', re.X | re.I)


def _parse(text: str) -> _Parsed:
    """Terms and filters of the query text; never raises (module doc)."""
    parsed = _Parsed()
    items: List[Any] = []  # "OR", "NOT", "AND", (negated, _Term)
    for m in _LEX.finditer(_plain(text)):
        negated = bool(m.group("neg"))
        if m.group("key") is not None:
            value = m.group("quoted") if m.group("quoted") is not None else m.group("value")
            key = _FILTER_KEYS[m.group("key").lower()]
            if key == "seed" and not re.fullmatch(r"\d{1,19}", value.strip()):
                items.append((negated, _Term(f"{m.group('key')} {value}")))  # `seed:abc`: plain words
            elif value.strip().strip("*"):
                parsed.filters.append((key, value.strip(), negated))
            else:
                items.append((negated, _Term(m.group("key"))))
            continue
        if m.group("phrase") is not None:
            items.append((negated, _Term(m.group("phrase"), prefix=bool(m.group("star")))))
            continue
        word = m.group("word")
        if not negated and word in ("OR", "AND", "NOT"):
            items.append(word)
            continue
        prefix = word.endswith("*")
        items.append((negated, _Term(word.rstrip("*").replace('"', " "), prefix=prefix)))
    # NOT x is -x; AND is the default; OR joins the positive terms either side of it. An operator with nothing
    # to act on (`red OR` typed halfway, `a OR -b`) is dropped; a query of operators only is read as words.
    if all(isinstance(item, str) for item in items):
        items = [(False, _Term(item)) for item in items]
    terms: List[Tuple[bool, _Term, bool]] = []  # (negated, term, joined to the previous one by OR)
    pending_or = pending_not = False
    for n, item in enumerate(items):
        if isinstance(item, str):
            nxt = items[n + 1] if n + 1 < len(items) else None
            positive_next = isinstance(nxt, tuple) and not nxt[0]
            if item == "NOT" and positive_next:
                pending_not = True
            elif item == "OR" and positive_next and terms and not terms[-1][0] and not pending_not:
                pending_or = True
            continue
        negated, term = item
        negated = negated or pending_not
        pending_not = False
        if not _has_token(term.text):  # `a OR , b`: the OR waits for the next word
            continue
        terms.append((negated, term, pending_or and not negated))
        pending_or = False
    for n, (negated, term, joined) in enumerate(terms):
        if n >= MAX_TERMS:
            parsed.dropped += 1
            continue
        if negated:
            parsed.excluded.append(term)
        elif joined and parsed.groups:
            parsed.groups[-1].append(term)
        else:
            parsed.groups.append([term])
    return parsed


def _plain(text: object) -> str:
    """Text SQLite and FTS5 take: a str, no NUL (FTS5 reads its expression as a C string), no lone surrogates."""
    text = text if isinstance(text, str) else str(text or "")
    text = text.replace("\x00", " ")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


_probe = threading.local()


def _has_token(text: str) -> bool:
    """Whether FTS5's unicode61 tokenizer finds a word in `text`: an FTS string without one is a phrase that matches
    nothing (and ANDed, makes the whole query match nothing). Asked of SQLite itself, in a table of one row:
    Python's Unicode tables are not SQLite's (combining marks count as word characters there, some letters
    Python knows are unassigned there)."""
    if text.isascii():  # the common case, exactly: ASCII letters and digits are unicode61's ASCII word characters
        return any(c.isalnum() for c in text)
    db = getattr(_probe, "db", None)
    if db is None:
        db = _probe.db = sqlite3.connect(":memory:")
        db.execute("CREATE VIRTUAL TABLE probe USING fts5(t)")
    db.execute("DELETE FROM probe")
    db.execute("INSERT INTO probe (rowid, t) VALUES (1, ?)", (text,))
    return db.execute("SELECT 1 FROM probe WHERE probe MATCH ?", (_fts_string(text),)).fetchone() is not None


def _fts_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _fts_term(term: _Term) -> str:
    return _fts_string(term.text) + ("*" if term.prefix else "")


def _fts_match(parsed: _Parsed) -> str:
    """The FTS5 expression of the positive terms ("" when there are none), excluded terms NOT'ed from it."""
    if not parsed.groups:
        return ""
    expr = " AND ".join("(" + " OR ".join(_fts_term(t) for t in group) + ")" for group in parsed.groups)
    if parsed.excluded:
        expr = f"({expr}) NOT ({_fts_excluded(parsed)})"
    return expr


def _fts_excluded(parsed: _Parsed) -> str:
    return " OR ".join(_fts_term(t) for t in parsed.excluded)


# -- the filters as SQL --------------------------------------------------------------------------------------------

def _like(value: str) -> str:
    """`value` as a LIKE pattern that matches itself only (ESCAPE '\\')."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Where:
    """Conditions on an image: `sets` on its id alone (`{id} IN (SELECT ...)` over an index), which the text query
    checks on the FTS row before it reads the image's row (1-2 us a row: the rows hold whole infotexts), each with
    the same test on the image's row where there is one (`{i}column`: cheaper when a listing walks the images
    newest first anyway); `rows` only on the images row."""

    def __init__(self, db: sqlite3.Connection, query: SearchQuery, parsed: _Parsed) -> None:
        self.sets: List[Tuple[str, str]] = []  # (on the id, on the row or "")
        self.rows: List[str] = []
        self.params: Dict[str, Any] = {}
        self.empty = False  # a filter no image can pass (since after until, a seed no image can have)
        self._db = db
        if _present_index(db):  # the few gone ids, through the index: no row read for the check
            self._set("{id} NOT IN (SELECT id FROM images WHERE present = 0)", "{i}present = 1")
        else:
            self.rows.append("{i}present = 1")
        for key, value, negated in [("checkpoint", query.checkpoint, False), ("lora", query.lora, False),
                                    ("batch", query.batch, False), *parsed.filters]:
            if value.strip():
                getattr(self, "_" + key)(value.strip(), negated)
        if query.folder.strip():
            self._folder(query.folder.strip())
        self._ratings(query)
        if query.since is not None or query.until is not None:  # through the created index
            since = float("-inf") if query.since is None else float(query.since)
            until = float("inf") if query.until is None else float(query.until)
            test = f"created >= {self._param(since)} AND created < {self._param(until)}"
            self._set(f"{{id}} IN (SELECT id FROM images WHERE {test})", _on_row(test))
            self.empty = self.empty or since >= until
        if parsed.excluded and not parsed.groups:  # only NOTs: no words to match, the NOT is a filter
            self._set(f"{{id}} NOT IN (SELECT rowid FROM images_fts WHERE images_fts MATCH "
                      f"{self._param(_fts_excluded(parsed))})")

    def _param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name

    def _set(self, on_id: str, on_row: str = "") -> None:
        self.sets.append((on_id, on_row))

    def _listed(self, table: str, test: str, negated: bool = False) -> None:
        """The images `table` (ratings, image_loras) lists with `test`: a set, or one lookup of the row's id."""
        self._set(f"{{id}} {'NOT IN' if negated else 'IN'} (SELECT image_id FROM {table} WHERE {test})",
                  f"{'NOT ' if negated else ''}EXISTS (SELECT 1 FROM {table} WHERE image_id = {{i}}id AND {test})")

    def sql(self, image_id: str, indexed: bool = True) -> str:
        """The conditions with `image_id` for the id. `indexed` False: each test on the image's own row where it
        can be, no other index used (`+`): for a walk over the images in created order, or a list of candidates."""
        if indexed:
            parts = [on_id.format(id=image_id) for on_id, _ in self.sets] + [r.format(i="i.") for r in self.rows]
        else:
            parts = [on_row.format(i="+i.") if on_row else on_id.format(id="+" + image_id.lstrip("+"))
                     for on_id, on_row in self.sets] + [r.format(i="+i.") for r in self.rows]
        return " AND ".join(parts) if parts else "1"

    def _lora(self, value: str, negated: bool) -> None:
        if value.endswith("*"):
            test = f"name LIKE {self._param(_like(value.rstrip('*')) + '%')} ESCAPE '\\'"
        else:
            test = f"name = {self._param(value)}"  # the column is NOCASE: any case, through its index
        self._listed("image_loras", test, negated)

    def _checkpoint(self, value: str, negated: bool) -> None:
        """The exact name when an image has it, else the names it starts; through the NOCASE index (LIKE too)."""
        value = value.rstrip("*") or value
        exact = self._db.execute("SELECT 1 FROM images WHERE checkpoint = ? COLLATE NOCASE LIMIT 1",
                                 (value,)).fetchone() is not None
        if exact:
            test = f"checkpoint = {self._param(value)} COLLATE NOCASE"
        else:
            test = f"checkpoint LIKE {self._param(_like(value) + '%')} ESCAPE '\\'"
        self._set(f"{{id}} {'NOT IN' if negated else 'IN'} (SELECT id FROM images WHERE {test})",
                  f"{'NOT ' if negated else ''}({_on_row(test)})")

    def _batch(self, value: str, negated: bool) -> None:
        test = (f"({{i}}batch = {self._param(value)} COLLATE NOCASE "
                f"OR {{i}}batch LIKE {self._param(_like(value) + ' #%')} ESCAPE '\\')")
        self.rows.append(f"NOT {test}" if negated else test)

    def _seed(self, value: str, negated: bool) -> None:
        seed = int(value)
        if seed >= 2 ** 63:  # no image has it (SQLite's INTEGER)
            self.empty = self.empty or not negated
            return
        self.rows.append(f"{{i}}seed {'IS NOT' if negated else '='} {self._param(seed)}")

    def _folder(self, folder: str) -> None:
        """The images under `folder` (at any depth), keyed as the index keys folders (real path), through the path
        index."""
        root = normal_folder(folder)
        prefix = root if root.endswith(os.sep) else root + os.sep
        low, high = self._param(prefix), self._param(prefix[:-1] + chr(ord(os.sep) + 1))
        test = f"path >= {low} AND path < {high}"
        self._set(f"{{id}} IN (SELECT id FROM images WHERE {test})", _on_row(test))

    def _ratings(self, query: SearchQuery) -> None:
        min_stars = max(0, min(5, int(query.min_stars or 0)))
        if min_stars:
            self._listed("ratings", f"{_VALUE} >= {min_stars}")
        if query.favourite:
            self._listed("ratings", "favourite = 1")
        if query.rejected == "hide":
            self._listed("ratings", "rejected = 1", negated=True)
        elif query.rejected == "only":
            self._listed("ratings", "rejected = 1")
        said = "stars IS NOT NULL OR rejected = 1 OR favourite = 1"
        if query.rated == "rated":
            self._listed("ratings", f"({said})")
        elif query.rated == "unrated":
            self._listed("ratings", f"({said})", negated=True)


def _on_row(test: str) -> str:
    """A test on images' columns, on the row of alias i: `created >= :p1` -> `{i}created >= :p1`."""
    return re.sub(r"\b(created|path|checkpoint)\b", r"{i}\1", test)


_VALUE = "COALESCE(stars, CASE WHEN favourite = 1 THEN 5 END)"  # a favourite without stars counts as 5 (effect.py)


def _present_index(db: sqlite3.Connection) -> bool:
    """Whether an index of images starts with `present` (then the gone ids are a cheap set)."""
    for _, name, *_ in db.execute("PRAGMA index_list(images)"):
        first = db.execute(f"PRAGMA index_info({_sql_string(name)})").fetchone()
        if first is not None and first[2] == "present":
            return True
    return False


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# -- search --------------------------------------------------------------------------------------------------------

def search(store: "HistoryStore", query: SearchQuery, embedder: Optional["Embedder"] = None) -> SearchPage:
    """A page of the images that match `query`, present files only. Never raises on any text (module doc);
    HistoryError for a sort, rejected or rated value that is not one of those named (a caller's mistake), or for
    an index SQLite cannot read (locked past its timeout, damaged)."""
    _check(query)
    try:
        return _search(store, query, embedder)
    except sqlite3.Error as exc:
        raise _index_error(store, "searched", exc) from exc


def _index_error(store: "HistoryStore", done: str, exc: sqlite3.Error) -> HistoryError:
    busy = "locked" in str(exc) or "busy" in str(exc)
    return HistoryError(f"the history index could not be {done}: {exc}", Location(str(store.path), 0, 0),
                        "another program holds it: try again when its scan is done" if busy else
                        "check the file; move it away if it keeps failing (a new index is made in its place)")


def _search(store: "HistoryStore", query: SearchQuery, embedder: Optional["Embedder"]) -> SearchPage:
    db = store.db
    parsed = _parse(query.text)
    where = _Where(db, query, parsed)
    notes: List[str] = []
    if parsed.dropped:
        notes.append(f"only the first {MAX_TERMS} words were searched")
    per_page, page = max(1, int(query.per_page)), max(0, int(query.page))
    if where.empty:
        return SearchPage((), 0, "; ".join(notes))
    match = _fts_match(parsed)
    if not match:
        if _plain(query.text).strip() and not parsed.groups and not parsed.excluded and not parsed.filters:
            notes.append("no words in the search text: every image is shown")
        ids, total, capped = _sorted_page(db, query.sort, query.rejected, where, "", [], per_page, page)
        if capped:
            notes.insert(0, f"more than {WINDOW:,} images")
        return SearchPage(tuple(Hit(row, 0.0, "") for row in store.images(ids)), total, "; ".join(notes))

    meaning: List[int] = []
    sims: Dict[int, float] = {}
    meaning_text = parsed.meaning_text() if query.semantic else ""
    if meaning_text and embedder is not None:
        meaning, sims, why = _meaning(store, embedder, meaning_text, where, parsed)
        if why:
            notes.append(why)
    elif query.semantic and embedder is None and meaning_text:
        notes.append("searched by words only: no embedder (install the built-in one for search by meaning)")
    if query.sort != "relevance":
        text_too = _text_among(db, match, meaning)  # meaning's images the words match too
        ids, total, capped = _sorted_page(db, query.sort, query.rejected, where, match,
                                          [i for i in meaning if i not in text_too], per_page, page)
        if capped:
            notes.insert(0, f"more than {WINDOW:,} images match; add words or filters to narrow it")
        bm25 = _text_among(db, match, ids)
        return SearchPage(tuple(Hit(row, -bm25[row.id] if row.id in bm25 else sims.get(row.id, 0.0),
                                    _reason(row.id in bm25, row.id in sims))
                                for row in store.images(ids)), total, "; ".join(notes))

    text, capped = _text_matches(db, match, where)  # (bm25, -id, id) in BM25 order
    if capped:
        notes.insert(0, f"more than {WINDOW:,} images match: the {WINDOW:,} most recently indexed were ranked; "
                        "add words or filters to narrow it")
    if not meaning or not text:  # one list: its own order and score
        window = slice(page * per_page, (page + 1) * per_page)
        chosen = [(-bm25, image_id) for bm25, _, image_id in text[window]] or [(sims[i], i) for i in meaning[window]]
        score = dict((image_id, s) for s, image_id in chosen)
        rows = store.images([image_id for _, image_id in chosen])
        return SearchPage(tuple(Hit(row, score[row.id], "text" if text else "meaning") for row in rows),
                          len(text) or len(meaning), "; ".join(notes))
    # Both: reciprocal rank fusion. Ties (one prompt over many seeds): found by words first, then the most
    # recently indexed. A text-only image's score falls with its rank, so none ranked past the end of this page
    # can reach it: only those before, and the images meaning found, are scored.
    text_rank = {image_id: rank for rank, (_, _, image_id) in enumerate(text)}
    meaning_rank = {image_id: rank for rank, image_id in enumerate(meaning)}
    end = (page + 1) * per_page
    scored = [image_id for _, _, image_id in text[:end]] + [i for i in meaning if text_rank.get(i, end) >= end]

    def fused(image_id: int) -> float:
        return sum(1 / (RRF_K + 1 + ranks[image_id]) for ranks in (text_rank, meaning_rank) if image_id in ranks)

    order = sorted(scored, key=lambda i: (-fused(i), i not in text_rank, -i))
    rows = store.images(order[page * per_page:end])
    return SearchPage(tuple(Hit(row, fused(row.id), _reason(row.id in text_rank, row.id in meaning_rank))
                            for row in rows), len(text) + sum(i not in text_rank for i in meaning), "; ".join(notes))


def _reason(text: bool, meaning: bool) -> str:
    return "text+meaning" if text and meaning else ("text" if text else ("meaning" if meaning else ""))


def _check(query: SearchQuery) -> None:
    for name, value, allowed in (("sort", query.sort, SORTS), ("rejected", query.rejected, REJECTED),
                                 ("rated", query.rated, RATED)):
        if value not in allowed:
            shown = ", ".join(repr(a) for a in allowed)
            raise HistoryError(f"search {name} {value!r} is not one of {shown}", hint=f"use one of {shown}")


_WEIGHTS_SQL = ", ".join(str(w) for _, w in WEIGHTS)


def _text_matches(db: sqlite3.Connection, match: str, where: _Where) -> Tuple[List[Tuple[float, int, int]], bool]:
    """The images the words match, (bm25, -id, id) in BM25 order (at most WINDOW of them: the most recently
    indexed), and whether more match. One pass over the FTS matches newest first: the id-set filters are checked
    on the FTS row (`+f.rowid`: a filter FTS5 saw on the rowid would make it look up each id alone, 0.1 ms
    each); the image's row is read only for a filter on it."""
    join = " JOIN images i ON i.id = f.rowid" if where.rows else ""
    sql = (f"SELECT bm25(images_fts, {_WEIGHTS_SQL}), -f.rowid, f.rowid FROM images_fts f{join} "
           f"WHERE images_fts MATCH :match AND {where.sql('+f.rowid')} ORDER BY f.rowid DESC LIMIT {WINDOW + 1}")
    rows = _fts_rows(db, sql, {**where.params, "match": match})
    capped = len(rows) > WINDOW
    rows = rows[:WINDOW]
    rows.sort()  # BM25 is negative, best first; ties: the most recently indexed first (-id)
    return rows, capped


def _fts_rows(db: sqlite3.Connection, sql: str, params: Dict[str, Any]) -> List[Any]:
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc).lower() or "syntax" in str(exc).lower():  # not expected: every term is quoted
            raise HistoryError(f"search could not read its own expression: {exc}",
                               hint="report it with the search text") from exc
        raise


def _text_among(db: sqlite3.Connection, match: str, ids: Sequence[int]) -> Dict[int, float]:
    """The BM25 of each image of `ids` that the words match. The FTS matches are walked (`+rowid`): FTS5 looking
    up rowids one by one costs 0.4 ms each."""
    if not ids:
        return {}
    return {image_id: score for image_id, score in _fts_rows(
        db, f"SELECT rowid, bm25(images_fts, {_WEIGHTS_SQL}) FROM images_fts WHERE images_fts MATCH :match "
            f"AND +rowid IN ({_numbers(ids)})", {"match": match})}


def _numbers(ids: Iterable[int]) -> str:
    """Image ids written into the SQL as numbers (ints, so nothing else can get in): no limit on host parameters
    (999 before SQLite 3.32) applies to a page of any length."""
    return ",".join(str(int(i)) for i in ids)


# The sorts other than relevance, as segments shown one after the other, each in its own order: stars puts the
# images with a value (stars, or a favourite's 5) first, best first, then the images without, newest first, then
# the rejected. Each segment walks an index (ratings are few; created is indexed), so no sort reads every image.
_RATED_IDS = f"SELECT image_id FROM ratings WHERE rejected = 0 AND {_VALUE} IS NOT NULL"
_R_VALUE = "COALESCE(r.stars, CASE WHEN r.favourite = 1 THEN 5 END)"
_BY_VALUE = f"{_R_VALUE} DESC, r.favourite DESC, i.created DESC, i.id DESC"
_SEGMENTS: Dict[str, Tuple[Tuple[str, str, bool, str], ...]] = {  # (condition, order, ratings joined, skipped when)
    "newest": (("", "i.created DESC, i.id DESC", False, ""),),
    "oldest": (("", "i.created ASC, i.id ASC", False, ""),),
    "stars": ((f"{{id}} IN ({_RATED_IDS})", _BY_VALUE, True, "only"),
              (f"{{id}} NOT IN ({_RATED_IDS} UNION ALL SELECT image_id FROM ratings WHERE rejected = 1)",
               "i.created DESC, i.id DESC", False, "only"),
              ("{id} IN (SELECT image_id FROM ratings WHERE rejected = 1)",
               f"{_R_VALUE} IS NULL, {_BY_VALUE}",
               True, "hide")),
}
_SEGMENTS["relevance"] = _SEGMENTS["newest"]  # without words


def _sorted_page(db: sqlite3.Connection, sort: str, rejected: str, where: _Where, match: str,
                 meaning_only: List[int], per_page: int, page: int) -> Tuple[List[int], int, bool]:
    """The ids of a page of the images that pass `where` (and, when there are words, that they match or that
    meaning found: `meaning_only` holds those the words do not match, filters passed), in `sort` order; how
    many there are (at most WINDOW); whether more than WINDOW are."""
    params = dict(where.params, match=match)
    meaning_in = f"{{id}} IN ({_numbers(meaning_only)})"
    found = "{id} IN (SELECT rowid FROM images_fts WHERE images_fts MATCH :match)" if match else ""
    if meaning_only:
        found = f"({found} OR {meaning_in})"
    offset, wanted, total, capped = page * per_page, per_page, 0, False
    ids: List[int] = []
    for condition, order, ratings, skipped in _SEGMENTS[sort]:
        if rejected == skipped:
            continue
        # How many: the words' matches counted on the FTS rows (as in _text_matches), meaning's apart.
        if match:
            join = " JOIN images i ON i.id = f.rowid" if where.rows else ""
            extra = " AND " + condition.format(id="+f.rowid") if condition else ""
            count = _fts_rows(db, f"SELECT count(*) FROM (SELECT 1 FROM images_fts f{join} WHERE images_fts MATCH "
                                  f":match AND {where.sql('+f.rowid')}{extra} LIMIT {WINDOW + 1})", params)[0][0]
            many = count > WINDOW
            if meaning_only:
                extra = " AND " + condition.format(id="i.id") if condition else ""
                count += db.execute(f"SELECT count(*) FROM images i WHERE {meaning_in.format(id='i.id')} AND "
                                    f"{where.sql('i.id', indexed=False)}{extra}", params).fetchone()[0]
        else:
            extra = " AND " + condition.format(id="i.id") if condition else ""
            count = db.execute(f"SELECT count(*) FROM (SELECT 1 FROM images i WHERE {where.sql('i.id')}{extra} "
                               f"LIMIT {WINDOW + 1})", params).fetchone()[0]
            many = count > WINDOW
        capped = capped or many
        total += min(count, WINDOW)
        if wanted and offset < count:
            # Many pass: walking created newest first finds a page soonest, so no condition may use its own
            # index (`+`), which would read and sort every image that passes. Few: found through their index.
            image_id = "+i.id" if many else "i.id"
            conditions = "".join(" AND " + c.format(id=image_id) for c in (found, condition) if c)
            sql = (f"SELECT i.id FROM images i{' JOIN ratings r ON r.image_id = i.id' if ratings else ''} WHERE "
                   f"{where.sql(image_id, indexed=not many)}{conditions} ORDER BY {order} LIMIT {wanted} "
                   f"OFFSET {offset}")
            got = [r[0] for r in _fts_rows(db, sql, params)]
            ids += got
            wanted -= len(got)
        offset = max(0, offset - count)
    return ids, min(total, WINDOW), capped or total > WINDOW


# -- meaning -------------------------------------------------------------------------------------------------------

def _meaning(store: "HistoryStore", embedder: "Embedder", text: str, where: _Where,
             parsed: _Parsed) -> Tuple[List[int], Dict[int, float], str]:
    """The images closest in meaning to `text` that pass the filters, best first, their similarities, and a note
    when meaning could not be used. A failing embedder costs the meaning, never the search."""
    import numpy as np

    try:
        query_vector = np.asarray(embedder.embed([text]), dtype=np.float32)
    except EmbedError as exc:
        return [], {}, f"searched by words only: {exc.message}"
    if query_vector.ndim != 2 or query_vector.shape[0] != 1 or not np.isfinite(query_vector).all():
        return [], {}, "searched by words only: the embedder's answer was not one vector"
    query_vector = query_vector[0]
    if not float(np.abs(query_vector).sum()):
        return [], {}, ""  # no word the embedder knows: nothing to compare
    vectors = _vectors(store, embedder.kind, embedder.model)
    if vectors is None:
        return [], {}, "searched by words only: no prompt vectors yet (they are made after each scan)"
    if vectors.dim != query_vector.shape[0]:
        return [], {}, "searched by words only: the prompt vectors are of another size than the embedder's"
    sims = vectors.similarities(query_vector)
    floor = max(MEANING_FLOOR, float(np.median(sims[:: max(1, sims.size // 4096)])) + MEANING_LEAD)
    above = np.flatnonzero(sims >= floor)
    if above.size > MEANING_CHECKED:
        above = above[np.argpartition(-sims[above], MEANING_CHECKED - 1)[:MEANING_CHECKED]]
    order = above[np.argsort(-sims[above], kind="stable")]
    params = dict(where.params)
    excluded = ""
    if parsed.excluded and parsed.groups:  # (with no words, the NOTs are among the filters already)
        excluded = " AND i.id NOT IN (SELECT rowid FROM images_fts WHERE images_fts MATCH :excluded)"
        params["excluded"] = _fts_excluded(parsed)
    found: List[int] = []
    similarity: Dict[int, float] = {}
    # The best MEANING_TOP first (usually enough pass the filters), then the rest in one query.
    for part in (order[:MEANING_TOP], order[MEANING_TOP:]):
        if not part.size or len(found) >= MEANING_TOP:
            break
        ids = [int(i) for i in vectors.ids[part]]
        sql = (f"SELECT i.id FROM images i WHERE i.id IN ({_numbers(ids)}) AND {where.sql('i.id', indexed=False)}"
               f"{excluded}")  # each candidate's row tested: a filter's whole set would cost more than a few rows
        passed = {r[0] for r in _fts_rows(store.db, sql, params)}
        for k, image_id in zip(part, ids):
            if image_id in passed and len(found) < MEANING_TOP:
                found.append(image_id)
                similarity[image_id] = float(sims[k])
    return found, similarity, ""


class _Vectors:
    """The prompt vectors of one embedder in one index: image ids and one row each (rows equal by value kept
    once: a swatch or a batch repeats one prompt over many images)."""

    def __init__(self, ids: "numpy.ndarray", unique: "numpy.ndarray", inverse: "numpy.ndarray") -> None:
        self.ids, self.unique, self.inverse = ids, unique, inverse
        self.dim = int(unique.shape[1]) if unique.ndim == 2 else 0

    def similarities(self, query: "numpy.ndarray") -> "numpy.ndarray":
        import numpy as np

        if self.unique.dtype == np.float32:
            sims = self.unique @ query
        else:  # too big for float32: converted a chunk at a time
            sims = np.empty(self.unique.shape[0], np.float32)
            for s in range(0, self.unique.shape[0], 16_384):
                sims[s:s + 16_384] = self.unique[s:s + 16_384].astype(np.float32) @ query
        return sims[self.inverse]


_cache_lock = threading.Lock()
_cache: "OrderedDict[Tuple[str, str, str], Tuple[Tuple[Any, ...], _Vectors]]" = OrderedDict()
_CACHE_KEPT = 2  # index files x embedders kept in memory (one of each is the usual)


def _vectors(store: "HistoryStore", kind: str, model: str) -> Optional[_Vectors]:
    """The vectors of (kind, model), from memory unless embed_prompts wrote since they were read."""
    import numpy as np

    db = store.db
    path = _db_file(db)
    key = (path, kind, model)
    version = (db.execute("SELECT value FROM meta WHERE key = ?", (VECTOR_KEY,)).fetchone(),
               db.execute("SELECT max(image_id) FROM prompt_vectors").fetchone()[0])
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == version and path:
            _cache.move_to_end(key)
            return cached[1]
    rows = db.execute("SELECT image_id, vec FROM prompt_vectors WHERE kind = ? AND model = ? ORDER BY image_id",
                      (kind, model)).fetchall()
    if not rows:
        return None
    size = max((len(v) for _, v in rows[:64]), default=0)  # one size per embedder; another is a damaged row
    rows = [(i, v) for i, v in rows if len(v) == size and size and size % 2 == 0]
    ids = np.fromiter((i for i, _ in rows), np.int64, len(rows))
    first: Dict[bytes, int] = {}  # each distinct vector once (np.unique over rows sorts them: 20x slower)
    inverse = np.fromiter((first.setdefault(v, len(first)) for _, v in rows), np.int64, len(rows))
    unique = np.frombuffer(b"".join(first), dtype="<f2").reshape(len(first), size // 2)
    if unique.size * 4 <= FLOAT32_LIMIT:
        unique = unique.astype(np.float32)
    else:
        unique = unique.copy()
    unique[~np.isfinite(unique).all(axis=1)] = 0
    vectors = _Vectors(ids, unique, inverse)
    if path:
        with _cache_lock:
            _cache[key] = (version, vectors)
            _cache.move_to_end(key)
            while len(_cache) > _CACHE_KEPT:
                _cache.popitem(last=False)
    return vectors


def _db_file(db: sqlite3.Connection) -> str:
    """The file of the connection's main database ("" in memory: nothing cached)."""
    for _, name, file in db.execute("PRAGMA database_list"):
        if name == "main":
            return file or ""
    return ""


def embed_prompts(store: "HistoryStore", embedder: "Embedder", should_stop: Callable[[], bool] = lambda: False
                  ) -> int:
    """Vectors for the present images with a prompt that have none of this embedder (kind + model; one of
    another embedder is replaced), EMBED_CHUNK at a time, each chunk committed: stopping (should_stop, checked
    between chunks) or a crash loses only the chunk under way. Returns how many were made. Raises EmbedError
    from the embedder, HistoryError when the index cannot be written."""
    try:
        return _embed_prompts(store, embedder, should_stop)
    except sqlite3.Error as exc:
        raise _index_error(store, "written", exc) from exc


def _embed_prompts(store: "HistoryStore", embedder: "Embedder", should_stop: Callable[[], bool]) -> int:
    import numpy as np

    db = store.db
    done = 0
    after = 0
    while not should_stop():
        if not embedder.model:  # a remote embedder learns its model on its first request: ask one text first
            embedder.embed(["a"])
        rows = db.execute(
            "SELECT i.id, i.prompt FROM images i WHERE i.id > ? AND i.present = 1 AND i.prompt != '' AND NOT EXISTS "
            "(SELECT 1 FROM prompt_vectors v WHERE v.image_id = i.id AND v.kind = ? AND v.model = ?) "
            f"ORDER BY i.id LIMIT {EMBED_CHUNK}", (after, embedder.kind, embedder.model)).fetchall()
        if not rows:
            break
        texts = [prompt_text(p) for _, p in rows]
        unique = list(dict.fromkeys(texts))
        matrix = np.asarray(embedder.embed(unique), dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(unique):
            raise EmbedError(f"the embedder gave {matrix.shape[0] if matrix.ndim else 0} vectors for "
                             f"{len(unique)} texts", hint="check the embedding server")
        matrix[~np.isfinite(matrix).all(axis=1)] = 0
        blobs = {t: matrix[n].astype("<f2").tobytes() for n, t in enumerate(unique)}
        with write_transaction(db):
            db.executemany("INSERT OR REPLACE INTO prompt_vectors (image_id, kind, model, vec) VALUES (?, ?, ?, ?)",
                           [(i, embedder.kind, embedder.model, blobs[t]) for (i, _), t in zip(rows, texts)])
            db.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
                       "SET value = CAST(value AS INTEGER) + 1", (VECTOR_KEY,))
        done += len(rows)
        after = rows[-1][0]
    return done
