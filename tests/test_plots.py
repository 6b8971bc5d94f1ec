"""saekit.plots: each builder's traces against its input, and the paper restyling."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import torch

import saekit
from saekit import figures, plots
from saekit.analysis._stats_view import Example, FeatureView, QuantileBin
from saekit.analysis.geometry import max_cosine_to_smallest
from saekit.analysis.results import LogitEffects, UmapMap
from saekit.errors import SaekitError
from saekit.sae import TopKSAE, init_weights

pytest.importorskip("plotly")


def _history() -> pd.DataFrame:
    rows = []
    for sae in ("topk-64", "topk-128"):
        for step in range(1, 4):
            for metric in ("explained_variance", "mse", "dead_fraction", "l0"):
                rows.append({"step": step, "tokens": 100 * step, "sae": sae, "metric": metric,
                             "value": step / 10})
    return pd.DataFrame(rows)


def test_training_curves_one_panel_per_metric_one_colour_per_sae() -> None:
    fig = plots.training_curves(_history())
    assert [a.text for a in fig.layout.annotations] == ["explained variance", "mse", "dead fraction"]
    assert len(fig.data) == 2 * 3
    by_sae = {}
    for t in fig.data:
        by_sae.setdefault(t.name, set()).add(t.line.color)
        assert list(t.x) == [100, 200, 300]
    assert all(len(c) == 1 for c in by_sae.values()) and len(set.union(*by_sae.values())) == 2
    assert sum(t.showlegend for t in fig.data) == 2  # one legend entry per SAE
    styled = figures.paper_style(fig, width="double")
    per_sae = {name: {(t.line.color, t.line.dash) for t in styled.data if t.name == name} for name in by_sae}
    assert [len(v) for v in per_sae.values()] == [1, 1]
    assert {c for v in per_sae.values() for c, _ in v} == set(figures.COLORWAY[:2])
    with pytest.raises(SaekitError, match="None of the requested metrics were logged"):
        plots.training_curves(_history(), metrics=["kl"])


def test_density_histogram_reports_never_fired_share() -> None:
    density = pd.DataFrame({"sae": ["a"] * 4 + ["b"] * 2, "feature": [0, 1, 2, 3, 0, 1],
                            "density": [0.0, 1e-3, 1e-2, 0.1, 0.5, 0.0]})
    fig = plots.density_histogram(density)
    assert [t.name for t in fig.data] == ["a (25% never fired)", "b (50% never fired)"]
    np.testing.assert_allclose(fig.data[0].x, [-3, -2, -1])
    with pytest.raises(SaekitError, match="lacks \\['density'\\]"):
        plots.density_histogram(density.drop(columns="density"))


def test_evaluation_and_loss_figures_read_the_table() -> None:
    table = pd.DataFrame({"sae": ["big", "small"], "d_sae": [256, 64], "explained_variance": [0.8, 0.6],
                          "loss_recovered": [0.95, 0.9], "loss_recovered_mean": [0.9, 0.8],
                          "loss_clean": [3.0, 3.0], "loss_spliced": [3.2, 3.5], "loss_mean": [5.0, 5.0],
                          "loss_zero": [12.0, 12.0]})
    fig = plots.evaluation_vs_size(table)
    assert [list(t.x) for t in fig.data] == [[64, 256]] * 3  # sorted by size
    assert list(fig.data[0].y) == [0.6, 0.8]
    fig = plots.loss_levels(table)
    assert list(fig.data[0].y) == [3.2, 3.5]
    assert sorted(s.y0 for s in fig.layout.shapes) == [3.0, 5.0, 12.0]


def test_max_cosine_vs_smallest_compares_each_larger_sae() -> None:
    cfg = saekit.SAEConfig(d_in=8, d_sae=4, k=2)
    small = init_weights(TopKSAE(cfg), seed=0)
    big = init_weights(TopKSAE(cfg.replace(d_sae=6)), seed=1)
    with torch.no_grad():
        big.W_dec[:4] = small.W_dec  # four copies of the small dictionary's directions
    groups = max_cosine_to_smallest({"big": big, "small": small})  # the analysis computes
    fig = plots.max_cosine_histograms(groups)  # the plot draws
    assert [t.name for t in fig.data] == ["big vs small"]
    assert len(fig.data[0].x) == 6 and np.isclose(np.sort(fig.data[0].x)[-4:], 1).all()
    with pytest.raises(SaekitError, match="Need two SAEs"):
        max_cosine_to_smallest({"small": small})


def _view() -> FeatureView:
    def ex(tok: str, act: float) -> Example:
        return Example(0, 1, act, ("a", tok, "b"), np.zeros(3), np.array([0, act, 0]), 1)

    bins = (QuantileBin(0, 0, 1, (ex(" cat", 0.5), ex(" dog", 0.7))), QuantileBin(1, 1, 2, ()),
            QuantileBin(2, 2, 3, (ex(" Cat", 2.5), ex("cat", 2.9), ex("cats", 2.1))))
    return FeatureView("s", 3, 0.1, 3.0, 0.2, 1.0, 5, (), bins, (), np.log10([0.5, 1, 3]), np.array([2, 3]))


def test_quantile_share_per_bin_and_plot() -> None:
    shares = _view().quantile_share("cat")
    assert shares[["bin", "n"]].values.tolist() == [[0, 2], [2, 3]]  # the empty bin is left out
    np.testing.assert_allclose(shares["share"], [0.5, 2 / 3])
    custom = _view().quantile_share(lambda t: t.startswith("cat"))
    np.testing.assert_allclose(custom["share"], [0.0, 2 / 3])
    fig = plots.quantile_precision(shares, "on 'cat'")
    assert list(fig.data[0].x) == ["0–1", "2–3"] and list(fig.data[0].text) == ["n=2", "n=3"]


def test_activation_histogram_uses_log_bins() -> None:
    fig = plots.activation_histogram(_view())
    np.testing.assert_allclose(fig.data[0].x, [np.sqrt(0.5), np.sqrt(3)])
    np.testing.assert_allclose(fig.data[0].width, [0.5, 2])
    assert fig.layout.xaxis.type == "log"


def test_logit_effects_colours_by_sign_in_screen_and_paper() -> None:
    frame = pd.DataFrame({"feature": 0, "token": [" up", " down", " more"], "logit": [2.0, -1.0, 3.0]})
    effects = LogitEffects(frame, "s")
    fig = plots.logit_effects(effects)
    assert list(fig.data[0].y) == ["' down'", "' up'", "' more'"]  # sorted by effect
    assert fig.data[0].marker.color[0] != fig.data[0].marker.color[1]
    styled = figures.paper_style(fig)
    c = figures.COLORWAY
    assert list(styled.data[0].marker.color) == [c[1], c[0], c[0]]


def test_paper_style_keeps_explicit_non_palette_colours() -> None:
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(y=[1, 2]), go.Scatter(y=[0, 1], line=dict(color="grey", dash="dot"))])
    figures.paper_style(fig)
    assert (fig.data[0].line.color, fig.data[0].line.dash) == (figures.COLORWAY[0], figures.DASHES[0])
    assert (fig.data[1].line.color, fig.data[1].line.dash) == ("grey", "dot")


def test_attribution_and_neuron_figures() -> None:
    from saekit.analysis.attribution import AttributionCheck
    from saekit.analysis.neurons import NeuronBasis

    frame = pd.DataFrame({"feature": [3, 7], "pos": [1, 4], "predicted_change": [-1.0, 0.5],
                          "actual_change": [-0.8, 0.7]})
    fig = plots.attribution_vs_ablation(AttributionCheck(frame, 0.97, 2.0), labels=1)
    assert list(fig.data[0].text) == ["#3@1", ""]  # only the largest change is labelled
    assert fig.layout.title.text == "r = 0.97"
    assert list(fig.data[0].hovertext) == ["#3@1", "#7@4"]
    assert list(fig.data[1].x) == [-1.0, 0.7]  # the y = x line spans both axes' values
    neurons = pd.DataFrame({"neuron": [5, 2, 9], "mass": [0.5, 0.3, 0.2]})
    basis = NeuronBasis(1, "resid_post.0", "mlp_neurons.0", neurons, pd.DataFrame(), 0.7, 2.6, 1.0,
                        1, 3, 4.0, 2.0, 0.6)
    fig = plots.neuron_shares(basis, n=2)
    assert list(fig.data[0].x) == ["n5", "n2"] and list(fig.data[0].y) == [0.5, 0.3]


def test_umap_scatter_and_steering_sweep() -> None:
    coords = UmapMap(pd.DataFrame({"sae": ["a", "a", "b"], "feature": [0, 1, 0], "x": [0.0, 1, 2],
                                   "y": [1.0, 0, 1]}))
    fig = plots.umap_scatter(coords)
    assert [(t.name, len(t.x)) for t in fig.data] == [("a", 2), ("b", 1)]
    sweep = pd.DataFrame({"clamp": [0, 1, 2], "score": [0, 3, 9]})
    fig = plots.steering_sweep(sweep, "clamp", "score")
    assert list(fig.data[0].y) == [0, 3, 9] and fig.layout.xaxis.title.text == "clamp"
    with pytest.raises(SaekitError, match="umap_scatter needs columns"):
        plots.umap_scatter(UmapMap(coords.frame.drop(columns="x")))


SVG_NS = "{http://www.w3.org/2000/svg}"


# ----- user strings reach plotly escaped (#17: a token `<b>` must not print bold) ---------
HOSTILE_LABELS = ["<b>x</b>", "&amp;", "a<br>b", "$y$", "line\nbreak"]


def _figure_strings(fig) -> list[str]:  # type: ignore[no-untyped-def]
    found: list[str] = []

    def walk(obj: object) -> None:
        if isinstance(obj, str):
            found.append(obj)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                if key not in ("template", "legendgroup"):  # ids, never drawn
                    walk(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                walk(value)
        elif isinstance(obj, np.ndarray) and obj.dtype == object:
            walk(obj.tolist())

    walk(fig.to_plotly_json())
    return found


def test_every_figure_builder_is_in_the_case_table() -> None:
    from _figure_cases import figure_builders, figure_cases

    assert figure_builders() <= set(figure_cases("x")), "add new plot builders to tests/_figure_cases.py"


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_user_strings_reach_plotly_escaped(label: str) -> None:
    import html
    import re

    from _figure_cases import NO_USER_TEXT, figure_cases

    from saekit._html import plotly_text

    bare_amp = re.compile(r"&(?!amp;|lt;|gt;|#36;)")
    for name, build in figure_cases(label).items():
        strings = _figure_strings(build())
        assert not [s for s in strings if "<" in s or ">" in s or "\n" in s], name
        assert not [s for s in strings if bare_amp.search(s) or "$" in s], name
        if name not in NO_USER_TEXT:
            text = repr(label) if name == "logit_effects" else label  # tokens are drawn as repr
            assert any(plotly_text(text) in s for s in strings), f"{name} does not draw {text!r}"
            assert any(text.replace("\n", "↵") in html.unescape(s) for s in strings), name


def test_exported_svg_prints_user_strings_literally(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from _figure_cases import NO_USER_TEXT, figure_cases

    try:
        figures.find_chromium()
    except SaekitError as exc:
        pytest.skip(f"no Chromium for static export ({exc})")
    label = "<b>x</b> &amp; a<br>b"
    with figures.batch():
        for name, build in figure_cases(label).items():
            svg = figures.export(build(), tmp_path / f"{name}.svg").read_text()
            assert "font-weight:bold" not in svg.replace(" ", ""), f"{name}: a tag was rendered as bold"
            assert 'class="line"' not in svg, f"{name}: <br> was rendered as a line break"
            texts = ["".join(el.itertext()) for el in ET.fromstring(svg).iter(f"{SVG_NS}text")]
            if name not in NO_USER_TEXT:  # the SVG spells it &#60;b&#62;x&#60;/b&#62; &amp;amp; ...
                assert any(label in t for t in texts), f"{name}: the label is not printed literally: {texts}"
