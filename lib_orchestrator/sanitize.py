"""Civitai descriptions are HTML written by strangers: keep the formatting, drop everything active.

An allow-list, not a block-list: only plain formatting tags survive, with no attributes except a link's
`href`, and only when it is http(s). Scripts, styles, frames, forms, images and every other element that
could run code or load something from elsewhere are removed with their content. Nothing of the input's
markup is copied: each kept tag is written anew and all text is escaped, so the output is safe however
broken the input is.

Broken HTML is read the way browsers read it, so that one odd tag does not swallow the text after it:
void elements (`<img>`, `<source>`, `<br>` without a slash…) never hold content, an end tag also closes
what was left open inside its element, a `<p>` ends where the next block starts, and an element dropped
with its content that is never closed drops only its own tag. The tokenizer is our own, in one linear
pass: the standard library's parser takes quadratic time on some inputs (`"<a " * 16000` ran 13 s).
"""
from __future__ import annotations

import html
import re
from typing import Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlparse

ALLOWED = {"p", "br", "b", "strong", "i", "em", "u", "s", "ul", "ol", "li", "code", "pre", "blockquote",
           "h1", "h2", "h3", "h4", "h5", "h6", "a", "span", "div", "hr", "sub", "sup"}
# Elements that never have content or an end tag, whatever the markup says (HTML's list).
VOID = {"area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input", "keygen",
        "link", "meta", "param", "source", "track", "wbr"}
# Dropped with everything inside them (the void ones: just dropped).
DROPPED = {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript", "noembed",
           "noframes", "xmp", "template", "svg", "math", "form", "textarea", "select", "button", "input", "link",
           "meta", "base", "head", "title", "img", "picture", "video", "audio", "source", "track", "canvas"}
# Their content is text to the browser, not markup: it ends only at their own end tag.
RAW = {"script", "style", "iframe", "noscript", "noembed", "noframes", "xmp", "textarea", "title"}
# An end tag inside these never closes an element outside them.
_BOUNDARY = {"template", "object", "applet"}
# A start tag of these ends an open paragraph.
_CLOSES_P = {"address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div", "dl",
             "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
             "hgroup", "hr", "li", "main", "menu", "nav", "ol", "p", "pre", "section", "summary", "table", "ul"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


def sanitise_html(text: Optional[str]) -> str:
    if not text:
        return ""
    tree = _Tree()
    for kind, name, href in _tokens(text):
        if kind == "start":
            tree.start(name, href)
        elif kind == "end":
            tree.end(name)
        else:
            tree.text(name)
    return tree.result()


_WRITTEN_TAG = re.compile(r"<[^>]*>")  # only tags sanitise_html wrote itself: attribute values are escaped


def html_text(text: Optional[str]) -> str:
    """The text of HTML by strangers (a Civitai description), for a model to read: what sanitise_html keeps
    (scripts and styles go with their content, broken markup is read as a browser reads it), its tags as
    spaces, its entities decoded. Whitespace is left as it is."""
    return html.unescape(_WRITTEN_TAG.sub(" ", sanitise_html(text)))


def safe_href(url: str) -> Optional[str]:
    # Control characters and spaces inside a scheme (`java\tscript:`) are how filters get fooled.
    cleaned = "".join(ch for ch in html.unescape(url) if ch.isprintable() and not ch.isspace())
    try:
        parsed = urlparse(cleaned)
    except ValueError:  # e.g. an unbalanced `[` in the host
        return None
    if parsed.scheme.lower() in ("http", "https") and parsed.netloc:
        return cleaned
    return None


# -- tokens -----------------------------------------------------------------------------------------
_SPACE = "\t\n\f\r "
_NAME = re.compile(r"[^\t\n\f\r />]+")  # a tag or attribute name runs to whitespace, '/' or '>'
_ATTR_NAME = re.compile(r"[^\t\n\f\r />][^\t\n\f\r />=]*")
_UNQUOTED = re.compile(r"[^\t\n\f\r >]*")
_SPACES = re.compile(r"[\t\n\f\r ]*")
Token = Tuple[str, str, Optional[str]]  # ("start", name, href) / ("end", name, None) / ("text", text, None)


def _tokens(text: str) -> Iterator[Token]:
    """HTML's tokenizer, as far as a sanitiser needs it: text (entities decoded), tags with their `href`,
    comments and declarations skipped, the content of raw-text elements as one text."""
    n, pos = len(text), 0
    while pos < n:
        lt = text.find("<", pos)
        if lt < 0:
            yield "text", html.unescape(text[pos:]), None
            return
        if lt > pos:
            yield "text", html.unescape(text[pos:lt]), None
        after = text[lt + 1:lt + 2]
        if text.startswith("<!--", lt):
            for empty in ("<!-->", "<!--->"):  # empty comments, in HTML's reading
                if text.startswith(empty, lt):
                    pos = lt + len(empty)
                    break
            else:
                end = text.find("-->", lt + 4)
                pos = n if end < 0 else end + 3
        elif after in ("!", "?") or (after == "/" and not _letter(text[lt + 2:lt + 3])):
            end = text.find(">", lt + 2)  # a declaration, or bogus comment: up to the next '>'
            pos = n if end < 0 else end + 1
        elif _letter(after) or after == "/":
            closing = after == "/"
            tag = _tag(text, lt + (2 if closing else 1))
            if tag is None:  # cut off by the end of the text: no tag, as in a browser
                return
            name, href, empty, pos = tag
            yield ("end" if closing else "start"), name, (None if closing else href)
            if name in RAW and not closing:  # raw text up to `</name`, or to the end
                found = re.compile(rf"</{re.escape(name)}[{_SPACE}/>]", re.I).search(text, pos)
                if not found and empty:  # `<iframe … />` and no end tag: written as an empty element, so
                    yield "end", name, None  # read as one (a browser would hide all the rest)
                    continue
                end = found.start() if found else n
                if end > pos:
                    yield "text", text[pos:end], None
                pos = end
        else:
            yield "text", "<", None
            pos = lt + 1


def _letter(char: str) -> bool:
    return char.isascii() and char.isalpha()


def _tag(text: str, pos: int) -> Optional[Tuple[str, Optional[str], bool, int]]:
    """(lowercase name, the href attribute's value, whether it ends with `/>`, the position after '>') of a
    tag whose name starts at `pos` (a letter), or None when the text ends inside it. Quoted values may
    hold '>'."""
    n = len(text)
    match = _NAME.match(text, pos)
    assert match is not None  # the name starts with a letter
    name, pos = match.group().lower(), match.end()
    href: Optional[str] = None
    slash = -1  # where a '/' outside any value was
    while True:
        pos = _SPACES.match(text, pos).end()
        if pos >= n:
            return None
        if text[pos] == ">":
            return name, href, slash == pos - 1, pos + 1
        if text[pos] == "/":
            slash = pos
            pos += 1
            continue
        attr = _ATTR_NAME.match(text, pos)
        assert attr is not None  # the character here is no space, '/' or '>'
        key = attr.group().lower()
        pos = _SPACES.match(text, attr.end()).end()
        value = ""
        if text.startswith("=", pos):
            pos = _SPACES.match(text, pos + 1).end()
            if pos < n and text[pos] in "\"'":
                close = text.find(text[pos], pos + 1)
                if close < 0:
                    return None
                value, pos = text[pos + 1:close], close + 1
            else:
                unquoted = _UNQUOTED.match(text, pos)
                value, pos = unquoted.group(), unquoted.end()
        if key == "href" and href is None:  # HTML keeps an attribute's first value
            href = value


# -- the tree ---------------------------------------------------------------------------------------
class _Tree:
    """The open elements and the output so far. Content is written as it comes; an element dropped with
    its content takes back what was written inside it when it closes (one cut, so deep nesting stays
    linear)."""

    def __init__(self) -> None:
        self.out: List[str] = []
        self.open: List[Tuple[str, bool, int]] = []  # (name, kept, where its content starts in out)
        self.at: Dict[str, List[int]] = {}  # name -> where in `open` (an end tag finds its element at once)

    def start(self, name: str, href: Optional[str]) -> None:
        if self._raw():
            return
        top = self.open[-1][0] if self.open else ""
        if name == "li":  # a new item ends the open one, as far up as its list
            for k in reversed(range(len(self.open))):
                if self.open[k][0] == "li":
                    self._close(k)
                    break
                if self.open[k][0] in ("ul", "ol") or not self.open[k][1]:
                    break
            top = self.open[-1][0] if self.open else ""
        if name in _CLOSES_P and top == "p" or name in _HEADINGS and top in _HEADINGS:
            self._close(len(self.open) - 1)
        if name in VOID:
            if name in ALLOWED:
                self.out.append(f"<{name}>")
            return
        if name in DROPPED:
            self._push(name, False)
        elif name in ALLOWED:
            if name == "a":
                safe = safe_href(href) if href else None
                self.out.append(f'<a href="{html.escape(safe, quote=True)}" rel="noopener noreferrer nofollow" '
                                f'target="_blank">' if safe else "<a>")
            else:
                self.out.append(f"<{name}>")
            self._push(name, True)
        # any other element: its tag goes, its content stays

    def end(self, name: str) -> None:
        if self._raw():
            if name == self.open[-1][0]:
                self._close(len(self.open) - 1)
            return
        if name == "br":  # `</br>` is a line break to browsers
            self.out.append("<br>")
            return
        if not self.at.get(name):
            return
        k = self.at[name][-1]
        if any(self.at.get(b) and self.at[b][-1] > k for b in _BOUNDARY):
            return  # it cannot reach past a boundary opened inside its element
        self._close(k)

    def text(self, data: str) -> None:
        if not self._raw():
            self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        # at the end of the text, an element dropped with its content that was never closed drops only its
        # tag (a raw one's content was never kept)
        while self.open:
            name, kept, _ = self._pop()
            if kept:
                self.out.append(f"</{name}>")
        return "".join(self.out)

    def _raw(self) -> bool:
        return bool(self.open) and self.open[-1][0] in RAW

    def _close(self, k: int) -> None:
        """Close open element k and every element opened inside it."""
        while len(self.open) > k:
            name, kept, start = self._pop()
            if kept:
                self.out.append(f"</{name}>")
            else:
                del self.out[start:]

    def _push(self, name: str, kept: bool) -> None:
        self.at.setdefault(name, []).append(len(self.open))
        self.open.append((name, kept, len(self.out)))

    def _pop(self) -> Tuple[str, bool, int]:
        entry = self.open.pop()
        self.at[entry[0]].pop()
        return entry
