"""Civitai descriptions are HTML written by strangers: keep the formatting, drop everything active.

An allow-list, not a block-list: only plain formatting tags survive, with no attributes except a link's
`href`, and only when it is http(s). Scripts, styles, frames, forms, images and every other element that
could run code or load something from elsewhere are removed with their content.
"""
from __future__ import annotations

import html
from html.parser import HTMLParser
from typing import List, Optional, Tuple
from urllib.parse import urlparse

ALLOWED = {"p", "br", "b", "strong", "i", "em", "u", "s", "ul", "ol", "li", "code", "pre", "blockquote",
           "h1", "h2", "h3", "h4", "h5", "h6", "a", "span", "div", "hr", "sub", "sup"}
VOID = {"br", "hr"}
# Dropped with everything inside them.
DROPPED = {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript", "template",
           "svg", "math", "form", "textarea", "select", "button", "input", "link", "meta", "base", "head", "title",
           "img", "picture", "video", "audio", "source", "track", "canvas"}


def sanitise_html(text: Optional[str]) -> str:
    if not text:
        return ""
    parser = _Sanitiser()
    parser.feed(text)
    parser.close()
    return parser.result()


def safe_href(url: str) -> Optional[str]:
    # Control characters and spaces inside a scheme (`java\tscript:`) are how filters get fooled.
    cleaned = "".join(ch for ch in html.unescape(url) if ch.isprintable() and not ch.isspace())
    parsed = urlparse(cleaned)
    if parsed.scheme.lower() in ("http", "https") and parsed.netloc:
        return cleaned
    return None


class _Sanitiser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: List[str] = []
        self.open: List[str] = []
        self.skipping: List[str] = []

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        tag = tag.lower()
        if self.skipping:
            if tag == self.skipping[-1] or tag in DROPPED - VOID:
                self.skipping.append(tag)
            return
        if tag in DROPPED:
            if tag not in ("img", "source", "track", "input", "link", "meta", "base", "embed"):
                self.skipping.append(tag)
            return
        if tag not in ALLOWED:
            return
        if tag == "a":
            href = next((safe_href(v) for k, v in attrs if k.lower() == "href" and v), None)
            self.out.append(f'<a href="{html.escape(href, quote=True)}" rel="noopener noreferrer nofollow" '
                            f'target="_blank">' if href else "<a>")
        else:
            self.out.append(f"<{tag}>")
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        tag = tag.lower()
        if not self.skipping and tag in VOID:
            self.out.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if self.skipping:
            if tag == self.skipping[-1]:
                self.skipping.pop()
            return
        if tag in self.open:
            while self.open:
                last = self.open.pop()
                self.out.append(f"</{last}>")
                if last == tag:
                    break

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        return "".join(self.out) + "".join(f"</{t}>" for t in reversed(self.open))
