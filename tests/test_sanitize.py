"""Sanitising Civitai descriptions: formatting kept, nothing active survives, and broken markup does not
swallow the text after it."""
from __future__ import annotations

import pytest

from lib_orchestrator.sanitize import html_text, safe_href, sanitise_html

HOSTILE = [
    '<script>alert(1)</script>',
    '<img src=x onerror="alert(1)">',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="java&#x09;script:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<p onclick="alert(1)" style="background:url(javascript:alert(1))">x</p>',
    '<iframe src="https://evil.example"></iframe>',
    '<svg onload=alert(1)><circle/></svg>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<style>body{background:url("https://evil.example/x.png")}</style>',
    '<link rel=stylesheet href="https://evil.example/x.css">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<object data="https://evil.example/x.swf"></object><embed src="https://evil.example/x">',
    '<form action="https://evil.example"><input name=a><button>go</button></form>',
    '<img src="https://tracker.example/pixel.gif">',
    '<video src="https://evil.example/v.mp4"></video>',
    '<scr<script>ipt>alert(1)</script>',
    '<div><script>alert(1)</div>',
    '<base href="https://evil.example/">',
    '<a href="//evil.example/x">protocol-relative</a>',
    '<!-- <script>alert(1)</script> -->',
    '<p>a</p><script src="https://evil.example/x.js"></script>',
    '<noscript><img src=x onerror=alert(1)></noscript>',
    '<template><script>alert(1)</script></template>',
    '<a href="https://ok.example" onmouseover="alert(1)">ok</a>',
]
ACTIVE = ["<script", "onerror", "onclick", "onload", "onmouseover", "javascript:", "vbscript:", "data:", "<iframe",
          "<svg", "<math", "<style", "<link", "<meta", "<object", "<embed", "<form", "<img", "<video", "<base",
          "evil.example", "tracker.example"]  # (inert text such as an escaped "alert(1)" may remain)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_nothing_active_survives(hostile):
    out = sanitise_html(hostile).lower()
    for fragment in ACTIVE:
        assert fragment not in out, (hostile, out)


def test_formatting_and_safe_links_are_kept():
    text = ('<p>Use <b>0.8</b> weight.<br>Trigger: <code>frieren</code></p><ul><li>one</li></ul>'
            '<a href="https://civitai.com/models/1">page</a>')
    out = sanitise_html(text)
    assert "<p>Use <b>0.8</b> weight.<br>Trigger: <code>frieren</code></p><ul><li>one</li></ul>" in out
    assert '<a href="https://civitai.com/models/1" rel="noopener noreferrer nofollow" target="_blank">page</a>' in out


def test_text_is_escaped_and_unclosed_tags_are_closed():
    assert sanitise_html("a < b & c") == "a &lt; b &amp; c"
    assert sanitise_html("<p><b>open") == "<p><b>open</b></p>"
    assert sanitise_html(None) == "" and sanitise_html("") == ""


def test_safe_href():
    assert safe_href("https://example.com/x") == "https://example.com/x"
    assert safe_href("java\nscript:alert(1)") is None and safe_href("/relative") is None


@pytest.mark.parametrize("broken, expected", [
    # void elements hold nothing, with or without a slash, wherever they are
    ('<video controls><source src="https://x.example/v.mp4">a clip</video><p>after</p>', "<p>after</p>"),
    ('<picture><source srcset="a.webp"><img src="a.png"></picture>after', "after"),
    ('<noscript><img src="https://x.example/p.gif"></noscript>after', "after"),
    ("<p>one<img src=x>two<br>three<hr>four</p>", "<p>onetwo<br>three</p><hr>four"),  # hr ends a paragraph
    ('<p>text<embed src=x><wbr>after', "<p>textafter</p>"),
    # an unclosed paragraph or item ends where the next one starts
    ("<p>one<p>two", "<p>one</p><p>two</p>"),
    ("<ul><li>a<li>b</ul>after", "<ul><li>a</li><li>b</li></ul>after"),
    ("<p>intro<ul><li>x</li></ul>end", "<p>intro</p><ul><li>x</li></ul>end"),
    # an element dropped with its content ends with the element around it, or, never closed, drops only its tag
    ("<p>a<video>fallback</p>after", "<p>a</p>after"),
    ("<b>a<audio>fallback</b>after", "<b>a</b>after"),
    ("<video src=x>never closed, <b>still here</b>", "never closed, <b>still here</b>"),
    ("<iframe src=x />after", "after"),  # written empty: read empty (no </iframe> follows)
    # a quoted '>' does not end a tag; an end tag closes what was left open inside it
    ('<a title=">" href="https://civitai.com/x">page</a>',
     '<a href="https://civitai.com/x" rel="noopener noreferrer nofollow" target="_blank">page</a>'),
    ("<div><b>bold<i>both</div>after", "<div><b>bold<i>both</i></b></div>after"),
    ('<a href="http://[broken">link</a>', "<a>link</a>"),
])
def test_void_and_unclosed_elements_do_not_swallow_what_follows(broken, expected):
    assert sanitise_html(broken) == expected


def test_raw_text_elements_end_only_at_their_own_end_tag():
    out = sanitise_html('<noscript><p title="</noscript><img src=x onerror=alert(1)>">after')
    assert "<img" not in out and "onerror" not in out and out.endswith("after")
    assert sanitise_html("<script>if (a</b) x()</script>text") == "text"
    assert sanitise_html("<textarea><b>typed</b></textarea>after") == "after"


def test_html_text_is_what_a_reader_sees_without_scripts_tags_or_entities():
    assert html_text('<p>Silk&nbsp;<b>dress</b> &amp; slits</p><script>steal()</script><img src=x onerror=y>') \
        .split() == ["Silk", "dress", "&", "slits"]
    assert html_text("") == "" and html_text(None) == ""
