"""A real UMAP fit (umap-learn, no stand-in) keeps planted clusters of decoder directions apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saekit.analysis.geometry import umap_coords

pytest.importorskip("umap", reason="umap-learn is an optional extra: pip install 'saekit[umap]'")
# The fit itself takes ~0.2 s; the first UMAP fit in a process compiles numba code (~15-30 s).
pytestmark = pytest.mark.slow

N_CLUSTERS, PER_CLUSTER, D = 3, 20, 16


def _planted(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Decoder rows ``[60, 16]``: three tight cones around random directions, shuffled."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(N_CLUSTERS, D, generator=g)
    labels = torch.arange(N_CLUSTERS).repeat_interleave(PER_CLUSTER)
    rows = centres[labels] / centres[labels].norm(dim=-1, keepdim=True)
    rows = rows + 0.15 * torch.randn(len(labels), D, generator=g) / D**0.5
    order = torch.randperm(len(labels), generator=g)
    return rows[order] * 3.0, labels[order].numpy()  # row norms do not matter (unit directions)


def test_real_umap_keeps_planted_clusters_apart() -> None:
    dec, labels = _planted()
    # the clusters are well separated in cosine before UMAP: a precondition, not the test
    unit = torch.nn.functional.normalize(dec, dim=-1)
    cos = unit @ unit.T
    same = labels[:, None] == labels[None, :]
    assert cos[torch.from_numpy(same)].min() > cos[torch.from_numpy(~same)].max()

    coords = umap_coords(dec, n_neighbors=8, cache_dir=False, progress=False).frame
    assert len(coords) == len(labels) and coords["feature"].tolist() == list(range(len(labels)))
    xy = coords[["x", "y"]].to_numpy()
    assert np.isfinite(xy).all()
    dist = np.linalg.norm(xy[:, None] - xy[None, :], axis=-1)
    off_diag = ~np.eye(len(labels), dtype=bool)
    within, between = dist[same & off_diag], dist[~same]
    # every pair across clusters is farther apart than every pair inside one
    assert between.min() > within.max(), (between.min(), within.max())
    centroids = np.stack([xy[labels == c].mean(0) for c in range(N_CLUSTERS)])
    nearest = np.linalg.norm(xy[:, None] - centroids[None], axis=-1).argmin(1)
    assert (nearest == labels).all()


def test_joint_umap_puts_the_same_cluster_of_two_dictionaries_together() -> None:
    dec, labels = _planted(1)
    a, b = dec[:30], dec[30:]
    coords = umap_coords({"a": a, "b": b}, n_neighbors=8, cache_dir=False, progress=False).frame
    assert coords["sae"].tolist() == ["a"] * 30 + ["b"] * 30
    assert coords["feature"].tolist() == list(range(30)) * 2
    xy = coords[["x", "y"]].to_numpy()
    la, lb = labels[:30], labels[30:]
    assert set(la) == set(lb) == {0, 1, 2}
    centroids_b = np.stack([xy[30:][lb == c].mean(0) for c in range(N_CLUSTERS)])
    nearest = np.linalg.norm(xy[:30, None] - centroids_b[None], axis=-1).argmin(1)
    assert (nearest == la).all()  # dictionary a's features sit by b's features of the same cluster
