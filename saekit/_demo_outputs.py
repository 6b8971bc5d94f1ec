"""The main job's outputs: paper figures and a standalone offline HTML explorer."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from saekit.analysis import FeatureStats
from saekit.analysis.geometry import match_features, max_cosine
from saekit.model import Model
from saekit.sae.base import SAE


def training_figure(history: pd.DataFrame):  # type: ignore[no-untyped-def]
    """Explained variance, L0 and dead fraction against training tokens, one line per SAE."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = [m for m in ("explained_variance", "mse", "dead_fraction") if m in set(history["metric"])]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics, horizontal_spacing=0.12)
    for col, metric in enumerate(metrics, start=1):
        for sae, part in history[history["metric"] == metric].groupby("sae", sort=False):
            fig.add_trace(go.Scatter(x=part["tokens"], y=part["value"], name=str(sae), mode="lines",
                                     legendgroup=str(sae), showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="training tokens", row=1, col=col)
    return fig


def density_figure(density: pd.DataFrame):  # type: ignore[no-untyped-def]
    """Histogram of log10 feature density per SAE (dead features counted at the left)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for sae, part in density.groupby("sae", sort=False):
        d = part["density"].to_numpy()
        fig.add_trace(go.Histogram(x=np.log10(np.clip(d, 1e-6, None)), name=str(sae), opacity=0.6,
                                   nbinsx=40))
    fig.update_layout(barmode="overlay", xaxis_title="log10 feature density", yaxis_title="features")
    return fig


def evaluation_figure(table: pd.DataFrame):  # type: ignore[no-untyped-def]
    """Explained variance and loss recovered against dictionary size."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for col in ("explained_variance", "loss_recovered", "loss_recovered_mean"):
        fig.add_trace(go.Scatter(x=table["d_sae"], y=table[col], name=col, mode="lines+markers"))
    fig.update_layout(xaxis_title="dictionary size", xaxis_type="log", yaxis_title="fraction")
    return fig


def mcs_figure(saes: Mapping[str, SAE]):  # type: ignore[no-untyped-def]
    """Max cosine similarity of each larger dictionary's features to the smallest one."""
    import plotly.graph_objects as go

    items = sorted(saes.items(), key=lambda kv: kv[1].d_sae)
    fig = go.Figure()
    base_name, base = items[0]
    for name, sae in items[1:]:
        mcs = max_cosine(sae, base, names=(name, base_name))
        vals = mcs[mcs["sae"] == name]["max_cosine"]
        fig.add_trace(go.Histogram(x=vals, name=f"{name} vs {base_name}", opacity=0.6, nbinsx=40))
    fig.update_layout(barmode="overlay", xaxis_title="max cosine similarity", yaxis_title="features")
    return fig


def interesting_features(stats: FeatureStats, sae: str, n: int, seed: int = 0) -> list[int]:
    """A seeded sample of typical features: active on 0.05%-2% of tokens (neither rare nor dense)."""
    s = stats.summary[(stats.summary["sae"] == sae)]
    s = s[(s["density"] > 5e-4) & (s["density"] < 0.02)]
    if len(s) == 0:
        s = stats.summary[(stats.summary["sae"] == sae) & (stats.summary["density"] > 0)]
    picked = s.sample(n=min(n, len(s)), random_state=seed).sort_values("density", ascending=False)
    return [int(f) for f in picked["feature"]]


def write_explorer(out: Path, model: Model, saes: Mapping[str, SAE], stats: FeatureStats,
                   texts: list[str], n_cards: int = 24) -> Path:
    """Offline HTML explorer: UMAP, splitting tree, highlighted text and feature cards."""
    from saekit import explore
    from saekit.figures import export

    out.mkdir(parents=True, exist_ok=True)
    (out / "cards").mkdir(exist_ok=True)
    largest = max(saes, key=lambda n: saes[n].d_sae)
    smallest = min(saes, key=lambda n: saes[n].d_sae)
    features = interesting_features(stats, largest, n_cards)
    pages: list[tuple[str, str]] = []
    umap_view = explore.umap(saes, stats, clusters=12)
    pages.append(("umap.html", "UMAP of decoder directions, all dictionaries"))
    export(umap_view, out / "umap.html", title="saekit: UMAP of decoder directions")
    parent = interesting_features(stats, smallest, 1)
    tree = match_features(saes)
    split = explore.splitting(saes, parent[0], stats, parent_sae=smallest, tree=tree, umap_view=umap_view)
    export(split, out / "splitting.html", title=f"saekit: splitting of {smallest} #{parent[0]}")
    pages.append(("splitting.html", f"How {smallest} feature #{parent[0]} splits in larger dictionaries"))
    hl = explore.highlight(model, saes[largest], texts[:4], features[:8])
    export(hl, out / "highlight.html", title="saekit: token highlighting")
    pages.append(("highlight.html", f"Held-out text highlighted by {largest} features"))
    rows = []
    for f in features:
        card = explore.feature_card(stats, saes[largest], f, model=model, saes=dict(saes))
        export(card, out / "cards" / f"{largest}_{f}.html", title=f"{largest} feature {f}")
        top = stats.top_examples(largest, f, n=1)
        snippet = str(top["text"].iloc[0]) if len(top) else ""
        rows.append((f"cards/{largest}_{f}.html", f, snippet))
    index = out / "index.html"
    index.write_text(_index_html(pages, rows, largest), encoding="utf-8")
    return index


def _index_html(pages: list[tuple[str, str]], rows: list[tuple[str, int, str]], sae: str) -> str:
    e = html.escape
    links = "".join(f'<li><a href="{e(href)}">{e(text)}</a></li>' for href, text in pages)
    cards = "".join(
        f'<tr><td><a href="{e(href)}">#{f}</a></td><td><code>{e(snip)}</code></td></tr>'
        for href, f, snip in rows
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'self' 'unsafe-inline' data:">
<title>saekit explorer</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}}
td{{padding:.2em .6em;vertical-align:top}} code{{white-space:pre-wrap;font-size:13px}}</style></head>
<body><h1>saekit explorer</h1><p>Offline pages written by <code>make demo</code>.</p>
<ul>{links}</ul><h2>Feature cards ({e(sae)})</h2>
<table><tr><th>feature</th><th>top example</th></tr>{cards}</table></body></html>"""
