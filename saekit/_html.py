"""Escaping and plain-text rendering helpers shared by views and figure export.

Everything that puts a string into HTML goes through :func:`escape` (for markup) or
:func:`json_for_script` (for data inside a ``<script>`` element). The text helpers give
every view a plain-text form for terminals and tests.

Example:
    >>> escape('<img src=x onerror="alert(1)">')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
    >>> visible_token("\\n")
    '↵'
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "escape",
    "fmt_value",
    "json_for_script",
    "plotly_text",
    "spark_bar",
    "text_table",
    "visible_token",
]

# Characters that would end or confuse a <script> element, or that JavaScript parsers
# before ES2019 treat as line terminators inside string literals.
_SCRIPT_UNSAFE = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def escape(text: object) -> str:
    """Escape ``text`` for HTML element content and quoted attribute values.

    Args:
        text: Any object; it is converted with ``str`` first.

    Returns:
        The string with ``& < > " '`` replaced by entities.

    Example:
        >>> escape('"<b>"')
        '&quot;&lt;b&gt;&quot;'
    """
    return html.escape(str(text), quote=True)


def json_for_script(obj: Any) -> str:
    """Serialise ``obj`` as JSON that is safe to place inside a ``<script>`` element.

    ``<``, ``>``, ``&`` and the Unicode line separators are written as ``\\uXXXX``
    escapes, so a string such as ``"</script><script>alert(1)"`` cannot end the element.
    The result is still valid JSON and parses back to ``obj``.

    Example:
        >>> json_for_script({"t": "</script>"})
        '{"t": "\\\\u003c/script\\\\u003e"}'
    """
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    for char, repl in _SCRIPT_UNSAFE.items():
        text = text.replace(char, repl)
    return text


# plotly renders label strings (tick labels, trace names, hover text, annotations,
# titles) as a small HTML subset: tags such as <b>/<br>/<a>, entities such as &amp;,
# and $...$ as LaTeX where MathJax is loaded. Newlines collapse to spaces.
_PLOTLY_UNSAFE = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "$": "&#36;"}
_PLOTLY_BREAKS = {"\r\n": "↵", "\r": "↵", "\n": "↵", "\t": "⇥"}
_PLOTLY_RE = re.compile("|".join(re.escape(k) for k in (*_PLOTLY_BREAKS, *_PLOTLY_UNSAFE)))


def plotly_text(text: object) -> str:
    """A string that plotly prints literally (as a label, name, hover text or title).

    ``& < > $`` become entities (plotly decodes them back when it draws), so a token
    ``<b>`` is not drawn bold, ``&amp;`` is not shown as ``&`` and ``$x$`` is not typeset.
    Newlines become ``↵`` and tabs ``⇥`` (plotly would show them as spaces).

    Example:
        >>> plotly_text("<b>x</b> &amp; $y$\\n")
        '&lt;b&gt;x&lt;/b&gt; &amp;amp; &#36;y&#36;↵'
    """
    table = {**_PLOTLY_BREAKS, **_PLOTLY_UNSAFE}
    return _PLOTLY_RE.sub(lambda m: table[m.group(0)], str(text))


def visible_token(token: str) -> str:
    """Return a one-line, visible form of a token string for text output.

    Newlines become ``↵``, tabs ``⇥``, carriage returns are dropped and an empty
    token is shown as ``∅``. Leading spaces are kept. Invisible and bidirectional
    control characters are shown as ``⟨U+202E⟩`` (as the views' front end does), so a
    token cannot reorder or hide the text after it.

    Example:
        >>> visible_token(" cat\\n"), visible_token("a\\u202eb")
        (' cat↵', 'a⟨U+202E⟩b')
    """
    if token == "":
        return "∅"
    token = token.replace("\r", "").replace("\n", "↵").replace("\t", "⇥")
    return _HIDDEN.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", token)


# The characters _common.js shows as ⟨U+XXXX⟩: C0/C1 controls, Arabic letter mark,
# zero-width space, LRM/RLM, line/paragraph separators, bidi embeddings/overrides/isolates,
# word joiner, BOM.
_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f"
                     "\u2028-\u202e\u2060-\u2069\ufeff]")


def fmt_value(value: float, digits: int = 3) -> str:
    """Format a number with ``digits`` significant digits (no exponent for ordinary sizes).

    Example:
        >>> fmt_value(0.012345), fmt_value(1234.56), fmt_value(2e-7), fmt_value(float("nan"))
        ('0.0123', '1235', '2.00e-07', 'nan')
    """
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if size == 0:
        return "0"
    if 1e3 <= size < 1e6:
        return f"{value:.0f}"
    if size < 1e-3 or size >= 1e6:
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def spark_bar(value: float, vmax: float, width: int = 20) -> str:
    """A horizontal bar of block characters, ``width`` cells for ``value == vmax``.

    Example:
        >>> spark_bar(5, 10, width=4)
        '██'
    """
    if vmax <= 0 or not math.isfinite(value) or value <= 0:
        return ""
    cells = max(0.0, min(1.0, value / vmax)) * width
    full = int(cells)
    eighths = int(round((cells - full) * 8))
    if eighths == 8:
        full, eighths = full + 1, 0
    partial = " ▏▎▍▌▋▊▉"[eighths] if eighths else ""
    return "█" * full + partial


def text_table(rows: Iterable[Sequence[object]], headers: Sequence[str]) -> str:
    """Render rows as a plain-text table with aligned columns.

    Numbers are right-aligned and formatted with :func:`fmt_value`; other cells are
    left-aligned.

    Example:
        >>> print(text_table([("a", 1.5), ("bb", 10)], ["name", "value"]))
        name  value
        ----  -----
        a       1.5
        bb       10
    """
    cells: list[list[str]] = [list(headers)]
    numeric: list[list[bool]] = [[False] * len(headers)]
    for row in rows:
        cells.append([_cell_text(c) for c in row])
        numeric.append([isinstance(c, (int, float)) and not isinstance(c, bool) for c in row])
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r, (row, nums) in enumerate(zip(cells, numeric, strict=True)):
        parts = [c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, nums, strict=True)]
        lines.append("  ".join(parts).rstrip())
        if r == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell_text(cell: object) -> str:
    if isinstance(cell, float):
        return fmt_value(cell)
    return str(cell)
