"""The main job's outputs: paper figures and a standalone offline HTML explorer."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from saekit._storage import safe_name, write_text
from saekit.analysis import FeatureStats
from saekit.analysis.geometry import match_features
from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.model import Model
from saekit.sae.base import SAE

if TYPE_CHECKING:
    from saekit.widgets._standalone import PageLinks


def interesting_features(stats: FeatureStats, sae: str, n: int, seed: int = 0) -> list[int]:
    """A seeded sample of typical features: active on 0.05%-2% of tokens (neither rare nor dense)."""
    s = stats.summary[(stats.summary["sae"] == sae)]
    s = s[(s["density"] > 5e-4) & (s["density"] < 0.02)]
    if len(s) == 0:
        s = stats.summary[(stats.summary["sae"] == sae) & (stats.summary["density"] > 0)]
    picked = s.sample(n=min(n, len(s)), random_state=seed).sort_values("density", ascending=False)
    return [int(f) for f in picked["feature"]]


def write_explorer(out: Path, model: Model, saes: Mapping[str, SAE], stats: FeatureStats,
                   texts: list[str], n_cards: int = 24, *, features: Sequence[int] | None = None,
                   parent: int | None = None, split_cards: int = 8) -> Path:
    """Offline HTML explorer: UMAP, splitting tree, highlighted text and feature cards.

    Every feature click in the pages leads somewhere: to the feature's card when the
    explorer has one (``n_cards`` sampled features of the largest dictionary, or
    ``features``, plus the first ``split_cards`` nodes of the splitting tree), otherwise to
    a note in the page that says how to open it in a notebook. Card files are named from
    the SAE name by :func:`saekit._storage.safe_name`, so they stay inside ``out/cards``.

    Args:
        parent: The smallest dictionary's feature whose splitting is shown (default: sampled).
    """
    from saekit import explore
    from saekit.figures import export

    out.mkdir(parents=True, exist_ok=True)
    (out / "cards").mkdir(exist_ok=True)
    largest = max(saes, key=lambda n: saes[n].d_sae)
    smallest = min(saes, key=lambda n: saes[n].d_sae)
    features = list(features) if features is not None else interesting_features(stats, largest, n_cards)
    root = parent if parent is not None else interesting_features(stats, smallest, 1)[0]
    umap_view = explore.umap(saes, stats, clusters=12)
    tree = match_features(saes)
    split = explore.splitting(saes, root, stats, parent_sae=smallest, tree=tree, umap_view=umap_view)
    refs = list(dict.fromkeys([FeatureRef(largest, f) for f in features]
                              + [FeatureRef(s, f) for s, f in split.features()[:split_cards]]))
    cards = {ref: out / "cards" / card_file(ref) for ref in refs}
    pages = [("umap.html", "UMAP of decoder directions, all dictionaries"),
             ("splitting.html", f"How {smallest} feature #{root} splits in larger dictionaries"),
             ("highlight.html", f"Held-out text highlighted by {largest} features")]
    export(umap_view, out / "umap.html", title="saekit: UMAP of decoder directions",
           links=_links(out, out / "umap.html", cards))
    export(split, out / "splitting.html", title=f"saekit: splitting of {smallest} #{root}",
           links=_links(out, out / "splitting.html", cards))
    hl = explore.highlight(model, saes[largest], texts[:4], features[:8])
    export(hl, out / "highlight.html", title="saekit: token highlighting",
           links=_links(out, out / "highlight.html", cards, sae=largest))
    rows = []
    for ref, path in cards.items():
        card = explore.feature_card(stats, saes[ref.sae], ref.feature, model=model, saes=dict(saes))
        export(card, path, title=f"{ref.sae} feature {ref.feature}",
               links=_links(out, path, cards, sae=ref.sae))
        top = stats.top_examples(ref.sae, ref.feature, n=1)
        snippet = str(top["text"].iloc[0]) if len(top) else ""
        rows.append((_href(path, out), ref, snippet))
    return write_text(out / "index.html", _index_html(pages, rows))


def card_file(ref: FeatureRef) -> str:
    """The card's file name in ``cards/``: a safe form of the SAE name, then the feature.

    Example:
        >>> card_file(FeatureRef("topk-4608", 7))
        'topk-4608-7.html'
        >>> "/" in card_file(FeatureRef("../../etc", 7))
        False
    """
    return f"{safe_name(ref.sae)}-{ref.feature}.html"


def _href(target: Path, page_dir: Path) -> str:
    """``target`` relative to ``page_dir`` as a URL path (both inside the explorer)."""
    rel = Path(os.path.relpath(target, page_dir)).as_posix()
    return "/".join(quote(part) for part in rel.split("/"))


def _links(out: Path, page: Path, cards: Mapping[FeatureRef, Path], sae: str = "") -> PageLinks:
    from saekit.widgets._standalone import PageLinks

    here = page.parent
    for path in (page, *cards.values()):
        if not path.resolve().is_relative_to(out.resolve()):
            raise SaekitError(f"Explorer page {path} would be written outside {out}.")
    nav = [(_href(out / "index.html", here), "← explorer index")]
    nav += [(_href(out / name, here), text) for name, text in _PAGES if out / name != page]
    return PageLinks({ref: _href(path, here) for ref, path in cards.items()}, sae=sae, nav=nav)


_PAGES = [("umap.html", "UMAP"), ("splitting.html", "splitting"), ("highlight.html", "highlighted text")]


def _index_html(pages: list[tuple[str, str]], rows: list[tuple[str, FeatureRef, str]]) -> str:
    e = html.escape
    links = "".join(f'<li><a href="{e(href)}">{e(text)}</a></li>' for href, text in pages)
    cards = "".join(
        f'<tr><td><a href="{e(href)}">{e(str(ref))}</a></td><td><code>{e(snip)}</code></td></tr>'
        for href, ref, snip in rows
    )
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'self' 'unsafe-inline' data:">
<title>saekit explorer</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}}
td{{padding:.2em .6em;vertical-align:top}} code{{white-space:pre-wrap;font-size:13px}}</style></head>
<body><h1>saekit explorer</h1><p>Offline pages written by <code>make demo</code>. A click on a feature
in a page opens its card when this explorer has one (listed below); otherwise the page says how to
open it in a notebook.</p>
<ul>{links}</ul><h2>Feature cards ({len(rows)})</h2>
<table><tr><th>feature</th><th>top example</th></tr>{cards}</table></body></html>"""
