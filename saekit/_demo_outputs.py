"""The main job's outputs: paper figures and a standalone offline HTML explorer."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

from saekit._storage import safe_name, write_text
from saekit.analysis import FeatureStats
from saekit.analysis.geometry import match_features
from saekit.model import Model
from saekit.sae.base import SAE


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
        card_file = f"{safe_name(largest)}_{f}.html"  # an SAE name is a user string
        export(card, out / "cards" / card_file, title=f"{largest} feature {f}")
        top = stats.top_examples(largest, f, n=1)
        snippet = str(top["text"].iloc[0]) if len(top) else ""
        rows.append((f"cards/{card_file}", f, snippet))
    return write_text(out / "index.html", _index_html(pages, rows, largest))


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
