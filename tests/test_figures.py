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
