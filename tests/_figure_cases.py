"""One small input for every figure builder in :mod:`saekit.plots`, with a chosen label.

``figure_cases(label)`` builds each figure with ``label`` standing in for every user string
the builder draws (SAE names, tokens, group labels, column names, ...). Tests of escaping
(``test_plots``) and of paper geometry (``test_figures``) both walk this table, and both
check that it covers every builder that :mod:`saekit.plots` exports.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

import saekit
from saekit import plots
from saekit.analysis._stats_view import Example, FeatureView, QuantileBin
from saekit.analysis.geometry import max_cosine_to_smallest
from saekit.analysis.results import LogitEffects, UmapMap
from saekit.sae import TopKSAE, init_weights


def feature_view(sae: str = "s") -> FeatureView:
    def ex(tok: str, act: float) -> Example:
        return Example(0, 1, act, ("a", tok, "b"), np.zeros(3), np.array([0, act, 0]), 1)

    bins = (QuantileBin(0, 0, 1, (ex(" cat", 0.5), ex(" dog", 0.7))), QuantileBin(1, 1, 2, ()),
            QuantileBin(2, 2, 3, (ex(" Cat", 2.5), ex("cat", 2.9), ex("cats", 2.1))))
    return FeatureView(sae, 3, 0.1, 3.0, 0.2, 1.0, 5, (), bins, (), np.log10([0.5, 1, 3]), np.array([2, 3]))


def _history(label: str) -> pd.DataFrame:
    rows = [{"step": s, "tokens": 100 * s, "sae": sae, "metric": m, "value": s / 10 + i / 5}
            for i, sae in enumerate((label, "topk-128")) for s in range(1, 4)
            for m in ("explained_variance", "mse", "dead_fraction")]
    return pd.DataFrame(rows)


def _table(label: str) -> pd.DataFrame:
    return pd.DataFrame({"sae": [label, "topk-256"], "d_sae": [64, 256], "explained_variance": [0.6, 0.8],
                         "loss_recovered": [0.9, 0.95], "loss_recovered_mean": [0.8, 0.9],
                         "loss_clean": [3.0, 3.0], "loss_spliced": [3.5, 3.2], "loss_mean": [5.0, 5.0],
                         "loss_zero": [12.0, 12.0]})


def _saes(label: str) -> dict[str, saekit.SAE]:
    cfg = saekit.SAEConfig(d_in=8, d_sae=4, k=2)
    small = init_weights(TopKSAE(cfg), seed=0)
    big = init_weights(TopKSAE(cfg.replace(d_sae=6)), seed=1)
    bigger = init_weights(TopKSAE(cfg.replace(d_sae=8)), seed=2)
    with torch.no_grad():
        big.W_dec[:4] = small.W_dec
    return {label: big, "small": small, "bigger": bigger}  # two comparisons: a legend is drawn


def _attribution():  # type: ignore[no-untyped-def]
    from saekit.analysis.attribution import AttributionCheck

    frame = pd.DataFrame({"feature": [3, 7, 9], "pos": [1, 4, 2], "predicted_change": [-1.0, 0.5, 0.1],
                          "actual_change": [-0.8, 0.7, 0.0]})
    return AttributionCheck(frame, 0.97, 2.0)


def _basis(label: str):  # type: ignore[no-untyped-def]
    from saekit.analysis.neurons import NeuronBasis

    neurons = pd.DataFrame({"neuron": [5, 2, 9], "mass": [0.5, 0.3, 0.2]})
    return NeuronBasis(1, "resid_post.0", label, neurons, pd.DataFrame(), 0.7, 2.6, 1.0, 1, 3, 4.0, 2.0, 0.6)


def _umap(label: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"sae": [label] * 20 + ["topk-128"] * 20, "feature": list(range(20)) * 2,
                         "x": rng.normal(size=40), "y": rng.normal(size=40)})


def figure_cases(label: str) -> dict[str, Callable[[], object]]:
    """``{builder name: () -> Figure}`` with ``label`` as every user string a builder draws.

    Builders that draw no user string (``evaluation_vs_size``, ``attribution_vs_ablation``)
    are built from fixed inputs.
    """
    return {
        "training_curves": lambda: plots.training_curves(_history(label)),
        "density_histogram": lambda: plots.density_histogram(pd.DataFrame(
            {"sae": [label] * 4 + ["b"] * 2, "feature": [0, 1, 2, 3, 0, 1],
             "density": [0.0, 1e-3, 1e-2, 0.1, 0.5, 0.0]})),
        "evaluation_vs_size": lambda: plots.evaluation_vs_size(_table(label)),
        "loss_levels": lambda: plots.loss_levels(_table(label)),
        "max_cosine_histograms": lambda: plots.max_cosine_histograms(
            {label: np.linspace(0.1, 0.9, 30), "other": np.linspace(0.3, 1.0, 30)}),
        "max_cosine_to_smallest": lambda: plots.max_cosine_histograms(max_cosine_to_smallest(_saes(label))),
        "attribution_vs_ablation": lambda: plots.attribution_vs_ablation(_attribution()),
        "neuron_shares": lambda: plots.neuron_shares(_basis(label), n=3),
        "activation_histogram": lambda: plots.activation_histogram(feature_view(label)),
        "logit_effects": lambda: plots.logit_effects(LogitEffects(
            pd.DataFrame({"feature": [3] * 3, "direction": ["top", "bottom", "top"], "rank": [1, 0, 0],
                          "token_id": [5, 6, 7],
                          "token": [label, " down", " more"], "logit": [2.0, -1.0, 3.0]}), "s")),
        "quantile_precision": lambda: plots.quantile_precision(feature_view().quantile_share("cat"), label),
        "umap_scatter": lambda: plots.umap_scatter(UmapMap(_umap(label), label)),
        "steering_sweep": lambda: plots.steering_sweep(
            pd.DataFrame({"clamp": [0, 1, 2], label: [0, 3, 9]}), "clamp", label),
    }


#: builders whose figures draw no user-supplied string
NO_USER_TEXT = {"evaluation_vs_size", "attribution_vs_ablation"}


def figure_builders() -> set[str]:
    """Names in ``plots.__all__`` whose return annotation is a plotly figure."""
    return {name for name in plots.__all__
            if "Figure" in str(inspect.signature(getattr(plots, name)).return_annotation)}
