"""`%{prefix ... suffix$$inner}`: the wrapper's first ellipsis marks where the inner text goes."""
from __future__ import annotations

import re

_MARKER = re.compile("[\u1801\u2026\u22ee\u22ef\u22f0\u22f1\ufe19]+|\\.{3,}")


def wrap_text(wrapper: str, inner: str) -> str:
    m = _MARKER.search(wrapper)
    if m is None:  # dynamicprompts appends the inner text when there is no marker
        return wrapper + inner
    return wrapper[:m.start()] + inner + wrapper[m.end():]
