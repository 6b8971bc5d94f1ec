"""Figures for papers: plotly figures to PNG/SVG/PDF, views to standalone offline HTML.

Static images come from kaleido 1.x driving a local Chromium (Debian's ``chromium``
package); nothing is fetched from the network. One Chromium stays alive for a whole
:func:`batch`, which brings an export from ~2 s to ~0.2 s.

Sizes follow print: ``width="single"`` is a 3.25 in column, ``"double"`` a 6.75 in
page width; fonts are given in points; PNGs are rendered at ``dpi`` (300 by default),
so a single-column PNG is 975 pixels wide.

Example:
    >>> import plotly.graph_objects as go
    >>> from saekit import figures
    >>> fig = go.Figure(go.Scatter(y=[3, 1, 2]))
    >>> with figures.batch():                                    # doctest: +SKIP
    ...     figures.export(fig, "out/fig1.pdf", width="single")
    ...     figures.export(fig, "out/fig1.png", width="double")
    >>> figures.export(view, "out/card.html")                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from saekit.errors import SaekitError

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from saekit.widgets import SaekitView
    from saekit.widgets._standalone import PageLinks

__all__ = ["COLUMN_INCHES", "batch", "export", "find_chromium", "paper_style"]

COLUMN_INCHES = {"single": 3.25, "double": 6.75}
CSS_PX_PER_INCH = 96  # plotly sizes are CSS pixels; Chromium prints 96 of them per inch
PT = CSS_PX_PER_INCH / 72  # one typographic point in CSS pixels
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
SERIF = "Times New Roman, Times, Nimbus Roman, Liberation Serif, DejaVu Serif, serif"
# viridis, dark to light: distinct in colour and in grey.
VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
COLORWAY = ["#440154", "#31688e", "#35b779", "#90d743", "#443a83", "#21918c", "#fde725"]
SCREEN_COLORWAY = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692"]
"""plotly's default colours, set explicitly by :mod:`saekit.plots`; the paper style maps them to COLORWAY."""
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
STATIC_FORMATS = ("png", "svg", "pdf")

Width = Literal["single", "double"] | float

_server_lock = threading.Lock()
_server_depth = 0


def find_chromium() -> str:
    """Path of the Chromium that renders static figures.

    Looks at ``$SAEKIT_CHROMIUM``, then ``/usr/bin/chromium`` (Debian's package) and
    other usual names on ``PATH``.

    Raises:
        SaekitError: If none is found, with the command that installs it.
    """
    override = os.environ.get("SAEKIT_CHROMIUM")
    if override:
        if os.access(override, os.X_OK):
            return override
        raise SaekitError(f"SAEKIT_CHROMIUM={override!r} is not an executable file.")
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SaekitError(
        "Static figure export (PNG/SVG/PDF) needs a Chromium browser and none was found "
        f"(looked at {', '.join(CHROMIUM_CANDIDATES)} and PATH). Install it with "
        "`apt-get install chromium` (Debian/Ubuntu), or set SAEKIT_CHROMIUM to a Chrome or "
        "Chromium binary. Views can still be exported to .html without it."
    )


@contextlib.contextmanager
def batch() -> Iterator[None]:
    """Keep one Chromium (kaleido server) alive for every export inside the block.

    Nested blocks share the server; it stops when the outermost block exits.
    """
    global _server_depth
    import kaleido

    with _server_lock:
        if _server_depth == 0 and not kaleido._global_server.is_running():
            kaleido.start_sync_server(path=find_chromium(), mathjax=False, silence_warnings=True)
            started = True
        else:
            started = False
        _server_depth += 1
    try:
        yield
    finally:
        with _server_lock:
            _server_depth -= 1
            if _server_depth == 0 and started:
                kaleido.stop_sync_server(silence_warnings=True)


def paper_style(
    fig: go.Figure,
    *,
    width: Width = "single",
    height: float | None = None,
    font_size: float = 8.0,
) -> go.Figure:
    """Apply the paper preset to ``fig`` in place and return it (like ``update_layout``).

    Serif fonts in points, a print-sized canvas (``width`` of ``"single"`` = 3.25 in,
    ``"double"`` = 6.75 in, or inches), white background, thin black axes, viridis
    colours (distinct in greyscale) and a different dash per line. Traces sharing a
    ``legendgroup`` (one SAE drawn in several panels) get one colour and one dash;
    colours from plotly's default palette become the matching viridis colour, other
    explicit colours (a grey reference line) are kept. The legend is one horizontal row
    (wrapping when needed) under the plot, so a single column keeps ~85% of its width
    for the plot; margins are small and grow to fit tick labels and axis titles.
    Layout set on the figure itself (e.g. its own legend position) wins over the preset.

    Args:
        fig: A plotly figure.
        width: Column width name or inches.
        height: Inches; default 0.75 x the width for single, 0.45 x for double.
        font_size: Base font size in points (tick labels are one point smaller).
    """
    import plotly.graph_objects as go

    inches = _inches(width)
    tall = height if height is not None else inches * (0.75 if inches <= 4 else 0.45)
    axis = dict(
        showline=True, linecolor="black", linewidth=0.75, mirror=False, ticks="outside",
        ticklen=3, tickwidth=0.75, tickcolor="black", showgrid=True, gridcolor="#e6e6e6",
        gridwidth=0.5, zeroline=False, title_standoff=4, automargin=True,
        tickfont=dict(size=(font_size - 1) * PT), title_font=dict(size=font_size * PT),
    )
    template = go.layout.Template()
    template.layout = go.Layout(
        font=dict(family=SERIF, size=font_size * PT, color="black"),
        paper_bgcolor="white", plot_bgcolor="white", colorway=COLORWAY,
        colorscale=dict(sequential=_scale(VIRIDIS), sequentialminus=_scale(VIRIDIS),
                        diverging=_scale(VIRIDIS)),
        coloraxis=dict(colorscale=_scale(VIRIDIS), colorbar=dict(thickness=8, outlinewidth=0)),
        xaxis=axis, yaxis=axis,
        legend=dict(font=dict(size=(font_size - 1) * PT), bgcolor="rgba(255,255,255,0.8)",
                    orientation="h", yref="container", y=0, yanchor="bottom", x=0.5, xanchor="center"),
        title=dict(font=dict(size=(font_size + 1) * PT), x=0.5, xanchor="center"),
        # small fixed margins: the axes grow them (automargin) to fit their tick labels and titles
        margin=dict(l=round(4 * PT), r=round(6 * PT), t=round(14 * PT), b=round(4 * PT)),
    )
    template.data.scatter = [go.Scatter(line=dict(dash=d, width=1.25)) for d in DASHES]
    template.data.heatmap = [go.Heatmap(colorscale=_scale(VIRIDIS))]
    fig.update_layout(template=template, width=round(inches * CSS_PX_PER_INCH),
                      height=round(tall * CSS_PX_PER_INCH), autosize=False)
    _recolour(fig)
    _annotation_fonts(fig, font_size)
    return fig


def _annotation_fonts(fig: go.Figure, font_size: float) -> None:
    """Subplot titles (plotly gives them 16 px) at the base size in points."""
    for note in fig.layout.annotations:
        if note.font.size in (None, 16):
            note.font.size = font_size * PT


def _recolour(fig: go.Figure) -> None:
    """One viridis colour (and dash) per legend group; palette colours mapped to viridis."""
    screen = {c.lower(): i for i, c in enumerate(SCREEN_COLORWAY)}

    def paper(colour: Any, default: str) -> Any:
        if colour is None:
            return default
        if isinstance(colour, str):
            i = screen.get(colour.lower())
            return colour if i is None else COLORWAY[i % len(COLORWAY)]
        if isinstance(colour, (list, tuple)):
            return [paper(c, c) for c in colour]
        return colour

    groups: dict[str, int] = {}
    for n, trace in enumerate(fig.data):
        key = trace.legendgroup or f"#{n}"
        g = groups.setdefault(key, len(groups))
        colour, dash = COLORWAY[g % len(COLORWAY)], DASHES[g % len(DASHES)]
        if trace.type == "scatter":
            own = trace.line.color is not None and str(trace.line.color).lower() not in screen  # e.g. grey
            trace.line.color = paper(trace.line.color, colour)
            if not own and trace.line.dash is None:
                trace.line.dash = dash
        marker = getattr(trace, "marker", None)
        if marker is not None:
            trace.marker.color = paper(marker.color, colour)


def export(
    obj: go.Figure | SaekitView,
    path: str | os.PathLike[str],
    *,
    style: Literal["paper"] | None = "paper",
    width: Width = "single",
    height: float | None = None,
    dpi: int = 300,
    title: str | None = None,
    links: PageLinks | None = None,
) -> Path:
    """Write a plotly figure (``.png``/``.svg``/``.pdf``/``.html``) or a view (``.html``).

    Args:
        obj: A plotly ``Figure`` or a saekit view.
        path: Output file; its suffix picks the format. Written atomically.
        style: ``"paper"`` applies :func:`paper_style` to a copy (``None``: as is).
        width: ``"single"`` (3.25 in), ``"double"`` (6.75 in) or inches.
        height: Inches (default from the width).
        dpi: Pixels per inch of PNG output.
        title: Page title of an HTML export.
        links: For a view: the export's pages that its feature clicks open, and links
            shown above it (:class:`saekit.widgets._standalone.PageLinks`).

    Returns:
        The path written.
    """
    out = Path(path)
    fmt = out.suffix.lower().lstrip(".")
    if _is_view(obj):
        if fmt != "html":
            raise SaekitError(
                f"A view exports to .html (a standalone offline page), not .{fmt}; "
                "for a static image export a plotly figure."
            )
        from saekit.widgets._standalone import standalone_html

        _write_atomic(out, standalone_html(obj, title=title, links=links).encode("utf-8"))
        return out
    fig = _as_figure(obj)
    if style == "paper":
        paper_style(fig, width=width, height=height)
    elif style is not None:
        raise SaekitError(f"Unknown style {style!r}; use 'paper' or None.")
    if fmt == "html":
        html = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False})
        _write_atomic(out, html.encode("utf-8"))
        return out
    if fmt not in STATIC_FORMATS:
        raise SaekitError(
            f"Cannot export to {out.name!r}: use one of .png, .svg, .pdf or .html."
        )
    _write_atomic(out, _render(fig, fmt, dpi))
    return out


def _render(fig: go.Figure, fmt: str, dpi: int) -> bytes:
    import kaleido

    width = fig.layout.width or 700
    height = fig.layout.height or 500
    opts = {"format": fmt, "width": width, "height": height}
    if fmt == "png":
        opts["scale"] = dpi / CSS_PX_PER_INCH
    with batch():
        return kaleido.calc_fig_sync(fig, opts=opts)


def _as_figure(obj: Any) -> go.Figure:
    import plotly.graph_objects as go

    if isinstance(obj, go.Figure):
        return copy.deepcopy(obj)
    if isinstance(obj, dict) and "data" in obj:
        return go.Figure(obj)
    raise SaekitError(
        f"export() takes a plotly Figure or a saekit view; got {type(obj).__name__}."
    )


def _is_view(obj: Any) -> bool:
    base = sys.modules.get("saekit.widgets._base")  # no view exists unless it was imported
    return base is not None and isinstance(obj, base.SaekitView)


def _inches(width: Width) -> float:
    if isinstance(width, str):
        if width not in COLUMN_INCHES:
            raise SaekitError(f"width must be 'single', 'double' or inches; got {width!r}.")
        return COLUMN_INCHES[width]
    if not 0 < float(width) <= 20:
        raise SaekitError(f"width in inches must be in (0, 20]; got {width}.")
    return float(width)


def _scale(colours: list[str]) -> list[list[Any]]:
    n = len(colours) - 1
    return [[i / n, c] for i, c in enumerate(colours)]


def _write_atomic(path: Path, data: bytes) -> None:
    from saekit import _storage

    _storage.write_bytes(path, data)
