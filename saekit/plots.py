"""Figure builders: the plots of the notebooks and the demo, from saekit's results.

Each builder takes what a saekit function returns (a training history, an evaluation
table, a :class:`~saekit.analysis.stats.FeatureView`, ...) and returns a plotly
``Figure`` sized for the screen. The same figure goes into a paper with
:func:`saekit.figures.export`, which restyles a copy (fonts in points, column width,
greyscale-safe colours). Traces that stand for one thing in several panels share a
``legendgroup``; the paper style gives each group one colour and one dash.

Example:
    >>> from saekit import figures, plots
    >>> fig = plots.evaluation_vs_size(saekit.evaluate(model, saes, texts))
    >>> figures.export(fig, "evaluation.pdf", width="single")     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from saekit._html import plotly_text as _t
from saekit.errors import SaekitError
from saekit.figures import SCREEN_COLORWAY

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from saekit.analysis.attribution import AttributionCheck
    from saekit.analysis.neurons import NeuronBasis
    from saekit.analysis.results import LogitEffects, UmapMap
    from saekit.analysis.stats import FeatureView

__all__ = [
    "activation_histogram",
    "attribution_vs_ablation",
    "density_histogram",
    "evaluation_vs_size",
    "logit_effects",
    "loss_levels",
    "max_cosine_histograms",
    "neuron_shares",
    "quantile_precision",
    "steering_sweep",
    "training_curves",
    "umap_scatter",
]

_PALETTE = SCREEN_COLORWAY


def _go():  # type: ignore[no-untyped-def]
    import plotly.graph_objects as go

    return go


def _need(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SaekitError(f"{what} needs columns {list(columns)}; this frame lacks {missing}.")


def training_curves(history: pd.DataFrame, metrics: Sequence[str] | None = None) -> go.Figure:
    """One panel per metric against training tokens, one line per SAE (same colour in all panels).

    Args:
        history: ``TrainResult.history`` (long form: ``step, tokens, sae, metric, value``).
        metrics: panels to draw; default explained variance, MSE and dead fraction (those logged).
    """
    from plotly.subplots import make_subplots

    _need(history, ["tokens", "sae", "metric", "value"], "training_curves")
    logged = set(history["metric"])
    metrics = [m for m in (metrics or ("explained_variance", "mse", "dead_fraction")) if m in logged]
    if not metrics:
        raise SaekitError(f"None of the requested metrics were logged; the history has {sorted(logged)}.")
    go = _go()
    fig = make_subplots(rows=1, cols=len(metrics), horizontal_spacing=0.1,
                        subplot_titles=[_t(m.replace("_", " ")) for m in metrics])
    names = list(dict.fromkeys(history["sae"].astype(str)))
    for col, metric in enumerate(metrics, start=1):
        part = history[history["metric"] == metric]
        for i, name in enumerate(names):
            line = part[part["sae"].astype(str) == name]
            fig.add_trace(go.Scatter(x=line["tokens"], y=line["value"], name=_t(name), mode="lines",
                                     legendgroup=name, showlegend=col == 1,
                                     line=dict(color=_PALETTE[i % len(_PALETTE)])), row=1, col=col)
        fig.update_xaxes(title_text="training tokens", row=1, col=col)
    return fig


def density_histogram(density: pd.DataFrame) -> go.Figure:
    """Overlaid histograms of log10 feature density, one per SAE.

    Args:
        density: ``evaluate(...).attrs["density"]`` (``sae, feature, density``). Features
            that never fired cannot sit on a log axis; the legend gives their share.
    """
    _need(density, ["sae", "density"], "density_histogram")
    go = _go()
    fig = go.Figure()
    for name, part in density.groupby("sae", sort=False):
        d = part["density"].to_numpy()
        fig.add_trace(go.Histogram(x=np.log10(d[d > 0]),
                                   name=_t(f"{name} ({(d == 0).mean():.0%} never fired)"), opacity=0.6,
                                   xbins=dict(start=-6, end=0, size=0.1)))
    fig.update_layout(barmode="overlay", xaxis_title="log10 fraction of tokens where the feature fires",
                      yaxis_title="features")
    return fig


def evaluation_vs_size(table: pd.DataFrame) -> go.Figure:
    """Explained variance and loss recovered (vs zero and mean ablation) against dictionary size."""
    _need(table, ["d_sae", "explained_variance", "loss_recovered"], "evaluation_vs_size")
    go = _go()
    table = table.sort_values("d_sae")
    fig = go.Figure()
    labels = {"explained_variance": "explained variance", "loss_recovered": "loss recovered (vs zero)",
              "loss_recovered_mean": "loss recovered (vs mean)"}
    for col, label in labels.items():
        if col in table:
            fig.add_trace(go.Scatter(x=table["d_sae"], y=table[col], name=label, mode="lines+markers"))
    fig.update_layout(xaxis_title="dictionary size (features)", xaxis_type="log", yaxis_title="fraction",
                      xaxis_tickvals=list(table["d_sae"]))
    return fig


def loss_levels(table: pd.DataFrame) -> go.Figure:
    """Next-token loss with each SAE spliced in, against clean, mean- and zero-ablated levels."""
    _need(table, ["sae", "loss_spliced", "loss_clean", "loss_zero"], "loss_levels")
    go = _go()
    fig = go.Figure(go.Bar(x=[_t(n) for n in table["sae"].astype(str)], y=table["loss_spliced"],
                           name="SAE spliced in", marker_color=_PALETTE[0]))
    first = table.iloc[0]
    levels = [("clean", "loss_clean", "solid"), ("mean-ablated", "loss_mean", "dash"),
              ("zero-ablated", "loss_zero", "dot")]
    for name, col, dash in levels:
        if col in table:
            fig.add_hline(y=float(first[col]), line_dash=dash, line_color="black", line_width=1,
                          annotation_text=name, annotation_position="top left")
    fig.update_layout(yaxis_title="next-token loss (nats per token)", showlegend=False)
    return fig


def max_cosine_histograms(groups: Mapping[str, Sequence[float] | np.ndarray | pd.Series]) -> go.Figure:
    """Overlaid histograms of max cosine similarities on [0, 1], one per labelled group.

    Example:
        >>> mcs = max_cosine(a, b, names=("a", "b"))
        >>> plots.max_cosine_histograms({"b vs a": mcs.query("sae == 'b'")["max_cosine"]})
    """
    if not groups:
        raise SaekitError("max_cosine_histograms needs at least one group of values.")
    go = _go()
    fig = go.Figure()
    for label, values in groups.items():
        fig.add_trace(go.Histogram(x=np.asarray(values, dtype=float), name=_t(label), opacity=0.6,
                                   xbins=dict(start=0, end=1, size=0.02)))
    fig.update_layout(barmode="overlay", xaxis_title="max cosine similarity", yaxis_title="features",
                      xaxis_range=[0, 1])
    return fig


def attribution_vs_ablation(check: AttributionCheck, labels: int = 4) -> go.Figure:
    """Predicted (attribution) against actual (ablation) change of the target logit, with y = x.

    Args:
        check: ``check_attributions(...)`` output.
        labels: label the points of this many largest actual changes ``#feature@pos``
            (all labels overlap at column width; hover shows every point's).
    """
    frame = check.frame
    go = _go()
    names = [f"#{f}@{p}" for f, p in zip(frame["feature"], frame["pos"])]
    loudest = set(frame["actual_change"].abs().nlargest(labels).index)
    text = [n if i in loudest else "" for i, n in zip(frame.index, names)]
    fig = go.Figure(go.Scatter(x=frame["predicted_change"], y=frame["actual_change"], mode="markers+text",
                               text=text, hovertext=names, textposition="middle right",
                               marker_color=_PALETTE[0], name="feature"))
    both = np.concatenate([frame["predicted_change"].to_numpy(), frame["actual_change"].to_numpy()])
    lo, hi = float(both.min()), float(both.max())
    pad = 0.15 * (hi - lo or 1.0)
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dot", color="grey"),
                             name="y = x"))
    fig.update_layout(xaxis_title="predicted change of the logit (−attribution)",
                      yaxis_title="actual change when ablated", showlegend=False,
                      title=f"r = {check.correlation:.2f}", xaxis_range=[lo - pad, hi + 2 * pad])
    return fig


def neuron_shares(basis: NeuronBasis, n: int = 20) -> go.Figure:
    """The share of a feature's squared decoder direction on each of its top ``n`` MLP neurons."""
    go = _go()
    top = basis.neurons.head(n)
    fig = go.Figure(go.Bar(x=[f"n{i}" for i in top["neuron"]], y=top["mass"], marker_color=_PALETTE[0]))
    fig.update_layout(xaxis_title=_t(f"MLP neuron ({basis.neuron_site})"),
                      yaxis_title="share of squared cosine", xaxis_type="category")
    return fig


def activation_histogram(view: FeatureView) -> go.Figure:
    """A feature's non-zero activations on log-spaced bins (from the statistics pass)."""
    go = _go()
    edges = 10 ** np.asarray(view.hist_edges, dtype=float)
    centres = np.sqrt(edges[:-1] * edges[1:])
    fig = go.Figure(go.Bar(x=centres, y=view.hist_counts, width=edges[1:] - edges[:-1],
                           marker_color=_PALETTE[0]))
    fig.update_layout(xaxis_type="log", xaxis_title=_t(f"activation of {view.sae} #{view.feature}"),
                      yaxis_title="tokens", bargap=0)
    return fig


def logit_effects(effects: LogitEffects) -> go.Figure:
    """Horizontal bars of a feature's direct logit effects (``saekit.logit_effects`` output)."""
    go = _go()
    e = effects.frame.sort_values("logit")
    fig = go.Figure(go.Bar(x=e["logit"], y=[_t(repr(t)) for t in e["token"]], orientation="h",
                           marker_color=[_PALETTE[0] if v > 0 else _PALETTE[1] for v in e["logit"]]))
    fig.update_layout(xaxis_title="direct logit effect", yaxis_tickfont_family="monospace",
                      yaxis_type="category")
    return fig


def quantile_precision(shares: pd.DataFrame, label: str = "matching") -> go.Figure:
    """Bars of ``FeatureView.quantile_share``: the share of examples that match, per activation interval."""
    _need(shares, ["lo", "hi", "n", "share"], "quantile_precision")
    go = _go()
    fig = go.Figure(go.Bar(x=[f"{lo:.0f}–{hi:.0f}" for lo, hi in zip(shares["lo"], shares["hi"])],
                           y=shares["share"], text=[f"n={n}" for n in shares["n"]], marker_color=_PALETTE[0]))
    fig.update_layout(xaxis_title="activation interval", yaxis_title=_t(f"share {label}"), yaxis_range=[0, 1],
                      xaxis_type="category")
    return fig


def umap_scatter(points: UmapMap, color: str = "sae") -> go.Figure:
    """A static map of decoder directions (``umap_coords`` output), one trace per ``color`` value."""
    coords = points.frame
    _need(coords, ["x", "y", color], "umap_scatter")
    go = _go()
    fig = go.Figure()
    for value, part in coords.groupby(color, sort=False):  # one legend entry per value
        fig.add_trace(go.Scatter(x=part["x"], y=part["y"], mode="markers", name=_t(value),
                                   marker=dict(size=3, opacity=0.6)))
    fig.update_layout(xaxis_title="UMAP 1", yaxis_title="UMAP 2", xaxis_showticklabels=False,
                      yaxis_showticklabels=False)
    return fig


def steering_sweep(sweep: pd.DataFrame, x: str, y: str) -> go.Figure:
    """A dose-response line: a score of the steered text (``y``) against the clamp (``x``)."""
    _need(sweep, [x, y], "steering_sweep")
    go = _go()
    fig = go.Figure(go.Scatter(x=sweep[x], y=sweep[y], mode="lines+markers", marker_color=_PALETTE[0]))
    fig.update_layout(xaxis_title=_t(x), yaxis_title=_t(y))
    return fig
