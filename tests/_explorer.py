"""A small offline explorer (``write_explorer``) from a tiny Llama and two tiny SAEs.

The UMAP step is replaced by a grid (no numba JIT, and a test knows where each point is
drawn); everything else is what ``make demo`` runs. The features that get cards are chosen
so that every kind of link has a target with a card and one without.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import _tiny
import numpy as np
import pandas as pd
import pytest

import saekit
from saekit.analysis import geometry
from saekit.analysis.results import UmapMap
from saekit.ids import FeatureRef
from saekit.sae import SAEConfig, TopKSAE, init_weights

SITE = "resid_post.1"
GRID = 10  # points per row of the fake UMAP


@dataclass(frozen=True)
class Explorer:
    out: Path
    index: Path
    small: str
    large: str
    coords: pd.DataFrame  # sae, feature, x, y of the UMAP points, in drawing order
    carded: FeatureRef  # a large feature with a card, whose first neighbour has one too
    neighbour: int  # that neighbour (large)
    bare_neighbour: int  # a neighbour of ``carded`` without a card
    parent: int  # the splitting root (small), the only splitting node with a card
    cards: frozenset[FeatureRef]


def _sae(d_sae: int, seed: int) -> TopKSAE:
    return init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=d_sae, k=8, site=SITE)), seed=seed)


def grid_coords(named, **_kwargs) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    rows = [(n, f) for n, s in named.items() for f in range(s.d_sae)]
    i = np.arange(len(rows))
    return pd.DataFrame({"sae": [r[0] for r in rows], "feature": [r[1] for r in rows],
                         "x": (i % GRID).astype(float), "y": (i // GRID).astype(float)})


def build_explorer(out: Path, model: saekit.Model, small: str = "small", large: str = "large") -> Explorer:
    """Write the explorer into ``out`` (SAE names as given: they may be hostile)."""
    saes = {small: _sae(16, 0), large: _sae(64, 1)}
    stats = saekit.feature_stats(model, saes, _tiny.CORPUS, k=4, context=(5, 2), progress=False)
    tree = geometry.match_features(saes).frame
    counts = tree[tree.parent_sae == small].groupby("parent").size()
    parent = int(counts[counts >= 2].index[0])  # a root with two children at least
    children = set(tree[(tree.parent_sae == small) & (tree.parent == parent)].child.astype(int))
    carded = next(f for f in range(64) if f not in children)
    nb = geometry.neighbours(saes[large], carded, k=8).frame["neighbour"].astype(int).tolist()
    neighbour = next(f for f in nb if f not in children)
    bare = next(f for f in nb if f not in children and f != neighbour)
    from saekit._demo_outputs import write_explorer

    with pytest.MonkeyPatch.context() as mp:
        fake = lambda named, **kw: UmapMap(grid_coords(named), next(iter(named)))  # noqa: E731
        mp.setattr(geometry, "umap_coords", fake)
        mp.setattr(saekit.analysis, "umap_coords", fake)
        index = write_explorer(out, model, saes, stats, list(_tiny.CORPUS), features=[carded, neighbour],
                               parent=parent, split_cards=1)
    cards = frozenset({FeatureRef(large, carded), FeatureRef(large, neighbour), FeatureRef(small, parent)})
    return Explorer(out, index, small, large, grid_coords(saes), FeatureRef(large, carded), neighbour, bare,
                    parent, cards)
