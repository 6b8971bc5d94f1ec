"""Figure export: paper style, static images through kaleido + chromium, offline HTML."""

from __future__ import annotations

import json
import re
import struct
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from saekit import figures
from saekit.errors import SaekitError

go = pytest.importorskip("plotly.graph_objects")

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"', "</script>"]
EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//",
                      re.I)


def _chromium_or_skip() -> str:
    try:
        return figures.find_chromium()
    except SaekitError as exc:
        pytest.skip(f"no Chromium for static export ({exc})")


def _fig() -> go.Figure:
    x = np.linspace(0, 4, 20)
    return go.Figure([go.Scatter(x=x, y=np.exp(-k * x), name=f"k={k}") for k in (1, 2)])


def test_find_chromium_error_says_how_to_install(monkeypatch) -> None:
    monkeypatch.delenv("SAEKIT_CHROMIUM", raising=False)
    monkeypatch.setattr(figures, "CHROMIUM_CANDIDATES", ("/nonexistent/chromium",))
    monkeypatch.setattr(figures.shutil, "which", lambda name: None)
    with pytest.raises(SaekitError, match="apt-get install chromium"):
        figures.find_chromium()
    monkeypatch.setenv("SAEKIT_CHROMIUM", "/nonexistent/chrome")
    with pytest.raises(SaekitError, match="SAEKIT_CHROMIUM='/nonexistent/chrome' is not"):
        figures.find_chromium()


def test_paper_style_sets_print_geometry_fonts_and_colours() -> None:
    fig = figures.paper_style(_fig(), width="single")
    lay = fig.layout
    assert (lay.width, lay.height) == (312, 234)  # 3.25 in x 96 px/in, height 0.75 x width
    tpl = lay.template.layout
    assert "serif" in tpl.font.family and tpl.font.size == pytest.approx(8 * 96 / 72)
    assert tpl.paper_bgcolor == "white" and tpl.plot_bgcolor == "white"
    assert tpl.colorway[0] == "#440154"  # viridis, dark to light
    assert [c[1] for c in tpl.colorscale.sequential] == figures.VIRIDIS
    assert [s.line.dash for s in lay.template.data.scatter][:2] == ["solid", "dash"]
    double = figures.paper_style(_fig(), width="double", height=2.0)
    assert (double.layout.width, double.layout.height) == (648, 192)
    with pytest.raises(SaekitError, match="'single', 'double' or inches"):
        figures.paper_style(_fig(), width="triple")  # type: ignore[arg-type]


def test_export_static_formats_in_one_batch(tmp_path: Path) -> None:
    _chromium_or_skip()
    import kaleido

    fig = _fig()
    with figures.batch():
        assert kaleido._global_server.is_running()
        svg = figures.export(fig, tmp_path / "f.svg")
        pdf = figures.export(fig, tmp_path / "sub" / "f.pdf")
        png = figures.export(fig, tmp_path / "f.png")
        png2 = figures.export(fig, tmp_path / "wide.png", width="double", height=2.0, dpi=150)
    assert not kaleido._global_server.is_running()
    assert fig.layout.width is None  # the caller's figure is not restyled
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and (root.get("width"), root.get("height")) == ("312", "234")
    head = pdf.read_bytes()
    assert head.startswith(b"%PDF-")
    box = [float(v) for v in re.search(rb"MediaBox\s*\[([^\]]*)\]", head).group(1).split()]
    assert box[2] == pytest.approx(3.25 * 72, abs=1)  # 234 pt wide: a single column
    assert _png_size(png) == (975, 731)  # 3.25 in x 300 dpi; 2.4375 in x 300 dpi
    wide, tall = _png_size(png2)
    assert abs(wide - 6.75 * 150) <= 0.5 and tall == 2 * 150  # 1012.5 px rounds either way
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_export_plotly_html_is_offline(tmp_path: Path) -> None:
    out = figures.export(_fig(), tmp_path / "f.html", style=None)
    html = out.read_text()
    assert "<script" in html and not EXTERNAL.search(html)


def test_export_views_to_standalone_html(tmp_path: Path) -> None:
    from saekit.widgets import FeatureCard, Steering, TokenDoc, TokenHighlight, TrainingMonitor

    th = TokenHighlight([TokenDoc(HOSTILE, np.arange(4.0), label=HOSTILE[1])], feature_ids=[5],
                        feature_labels={5: HOSTILE[0]}, title=HOSTILE[2])
    from saekit.analysis.results import LogitEffects
    from saekit.analysis.stats import Example, FeatureView

    example = Example(0, 3, 3.0, tuple(HOSTILE), np.zeros(4, np.int64), np.arange(4.0), 3)
    logits = LogitEffects(pd.DataFrame({"feature": 3, "direction": ["top"], "rank": [0], "token_id": [1],
                                        "token": [HOSTILE[1]], "logit": [1.0]}), "s")
    card = FeatureCard.from_result(FeatureView("s", 3, 0.1, 3.0, 1.0, 1.5, 4, (example,), (), (),
                                               np.zeros(0), np.zeros(0), HOSTILE[0], logits=logits))
    steer = Steering(lambda p, c: (p, p), [1], prompt=HOSTILE[0])
    steer.wait(5)
    mon = TrainingMonitor(min_interval=0)
    mon.update(1, {HOSTILE[0]: {"l0": 3.0}})
    for view in (th, card, steer, mon):
        out = figures.export(view, tmp_path / f"{type(view).__name__}.html", title=HOSTILE[0])
        html = out.read_text()
        assert not EXTERNAL.search(html), "the page must not load anything from the network"
        csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
        assert unescape(csp).startswith("default-src 'none'; script-src 'sha256-")
        for token in HOSTILE[:2]:
            assert token not in html, f"{token!r} reached the HTML unescaped"
        assert "<title>&lt;script&gt;alert(1)&lt;/script&gt;</title>" in html
        assert html.count("</script>") == 2  # the JSON payload and the module, nothing else
        payload = re.search(r'<script type="application/json" id="saekit-state">(.*?)</script>',
                            html, re.S).group(1)
        state = json.loads(payload)
        assert state["_offline"] is True
        expected, buffers = view.view_state()
        for key, value in expected.items():
            assert state[key] == json.loads(json.dumps(value))
        assert set(buffers) <= {k for k, v in state.items() if isinstance(v, dict) and "$b64" in v}
    with pytest.raises(SaekitError, match="exports to .html"):
        figures.export(th, tmp_path / "x.png")


def test_export_errors(tmp_path: Path) -> None:
    with pytest.raises(SaekitError, match="use one of .png, .svg, .pdf or .html"):
        figures.export(_fig(), tmp_path / "f.jpg")
    with pytest.raises(SaekitError, match="plotly Figure or a saekit view; got list"):
        figures.export([1, 2], tmp_path / "f.png")  # type: ignore[arg-type]
    with pytest.raises(SaekitError, match="Unknown style 'journal'"):
        figures.export(_fig(), tmp_path / "f.svg", style="journal")  # type: ignore[arg-type]


# ----- geometry at one and two columns (#17: the legend took half a single column) -------
MIN_PLOT_SHARE = {"single": 0.70, "double": 0.80}


def _svg_geometry(svg: str) -> tuple[float, float, list[tuple[float, ...]], tuple[float, ...] | None]:
    """Canvas width and height, plot-area rects (x, y, w, h) and the legend's rect, from plotly's SVG."""
    width = float(re.search(r'<svg[^>]*\bwidth="([\d.]+)"', svg).group(1))
    height = float(re.search(r'<svg[^>]*\bheight="([\d.]+)"', svg).group(1))
    num = r"([-\d.e+]+)"
    clips = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in re.finditer(
        rf'<clipPath id="([^"]+)" class="plotclip"><rect width="{num}" height="{num}"', svg)}
    plots = [(float(m.group(1)), float(m.group(2)), *clips[m.group(3)]) for m in re.finditer(
        rf'<g class="[^"]*" transform="translate\({num},{num}\)" clip-path="url\(#([^)]+)\)"', svg)
        if m.group(3) in clips]
    m = re.search(rf'<g class="legend"[^>]*transform="translate\({num},{num}\)"[^>]*>\s*'
                  rf'<rect class="bg"[^>]*width="{num}" height="{num}"', svg)
    legend = tuple(float(v) for v in m.groups()) if m else None
    return width, height, plots, legend


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_paper_style_puts_the_legend_under_the_plot() -> None:
    lay = figures.paper_style(_fig(), width="single").layout.template.layout
    assert (lay.legend.orientation, lay.legend.yref, lay.legend.yanchor) == ("h", "container", "bottom")
    assert lay.xaxis.automargin and lay.yaxis.automargin
    mine = figures.paper_style(_fig().update_layout(legend=dict(x=1, y=1)))
    assert (mine.layout.legend.x, mine.layout.legend.y) == (1, 1)  # a figure's own legend wins


def test_every_plot_gets_most_of_the_width_at_one_and_two_columns(tmp_path: Path) -> None:
    """Plot area >= 70% of a 3.25 in column (80% at 6.75 in); the legend inside the canvas, off the plot."""
    from _figure_cases import figure_cases

    _chromium_or_skip()
    with figures.batch():
        for name, build in figure_cases("topk-4608").items():
            for width, least in MIN_PLOT_SHARE.items():
                svg = figures.export(build(), tmp_path / f"{name}-{width}.svg", width=width).read_text()
                canvas_w, canvas_h, plots, legend = _svg_geometry(svg)
                assert canvas_w == round(figures.COLUMN_INCHES[width] * 96) and plots, name
                share = (max(x + w for x, _, w, _ in plots) - min(x for x, *_ in plots)) / canvas_w
                assert share >= least, f"{name} at {width} column: the plot has {share:.0%} of the width"
                if legend is not None:
                    on_plot = any(_overlaps(legend, p) for p in plots)
                    assert not on_plot, f"{name} ({width}): the legend covers the plot"
                    x, y, w, h = legend
                    assert x >= 0 and y >= 0 and x + w <= canvas_w + 1 and y + h <= canvas_h + 1, name
