"""Geometry of dictionaries: decoder-cosine neighbours, MCS, splitting trees, UMAP.

All functions take SAEs (or decoder matrices ``W_dec [d_sae, d_in]``) and return tidy
DataFrames. Large products are chunked so that two 32768-wide dictionaries compare in
a few hundred MB.

Example:
    >>> from saekit.analysis.geometry import max_cosine, neighbours
    >>> neighbours(sae, 123, k=5).frame            # feature, rank, neighbour, cosine
    >>> mcs = max_cosine(sae_a, sae_b)             # both directions
    >>> mcs.groupby("sae")["max_cosine"].mean()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from saekit import _boundary
from saekit.analysis._umap import umap_coords, warm_umap
from saekit.analysis.results import Neighbours, SplittingTree, UmapMap
from saekit.errors import CompatibilityError, SaekitError
from saekit.ids import name_saes, sae_name
from saekit.sae.base import SAE

__all__ = ["cluster_points", "max_cosine", "max_cosine_to_smallest", "match_features", "neighbours",
           "umap_coords", "unit_directions", "warm_umap"]

Dictionary = SAE | Tensor
_BLOCK = 2**24  # elements of the largest temporary similarity block (64 MB in float32)


def unit_directions(sae: Dictionary) -> Tensor:
    """Decoder rows scaled to unit norm, ``[d_sae, d_in]`` float32 (zero rows stay zero)."""
    w = sae.W_dec.detach() if isinstance(sae, SAE) else torch.as_tensor(sae).detach()
    if w.ndim != 2:
        raise SaekitError(f"Expected an SAE or a decoder matrix [d_sae, d_in]; got shape {tuple(w.shape)}.")
    w = w.float()
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _feature_list(features: int | Sequence[int] | None, d_sae: int) -> Tensor:
    if features is None:
        return torch.arange(d_sae)
    feats = torch.as_tensor(_boundary.feature_ids(features), dtype=torch.long)
    bad = feats[(feats < 0) | (feats >= d_sae)] if feats.numel() else feats
    if feats.numel() == 0 or bad.numel():
        raise SaekitError(
            f"Features {bad.tolist() or '[]'} are out of range for a dictionary of {d_sae} features; "
            f"pass indices in [0, {d_sae - 1}]."
        )
    return feats.long()


def neighbours(sae: Dictionary, features: int | Sequence[int] | None = None, k: int = 10) -> Neighbours:
    """Nearest features by decoder cosine similarity (the feature itself excluded).

    Args:
        sae: an SAE or a decoder matrix ``[d_sae, d_in]``.
        features: one index, a list, or None for every feature.
        k: neighbours per feature (at most ``d_sae - 1``).

    Returns:
        :class:`~saekit.analysis.results.Neighbours`; its ``frame`` is ``feature, rank,
        neighbour, cosine`` (rank 0 = most similar). A bare matrix is named ``"W_dec"``.

    Example:
        >>> neighbours(sae, [3, 7], k=2)
    """
    w = unit_directions(sae)
    d_sae = w.shape[0]
    feats = _feature_list(features, d_sae)
    k = min(k, d_sae - 1)
    if k < 1:
        raise SaekitError(f"k must be >= 1 and the dictionary needs 2+ features; got k={k}, d_sae={d_sae}.")
    step = max(1, _BLOCK // d_sae)
    vals, idx = [], []
    for chunk in feats.split(step):
        sim = w[chunk] @ w.T  # [c, d_sae]
        sim[torch.arange(len(chunk)), chunk] = -float("inf")
        v, i = sim.topk(k, dim=1)
        vals.append(v)
        idx.append(i)
    v, i = torch.cat(vals), torch.cat(idx)  # [n, k]
    frame = pd.DataFrame({
        "feature": feats.repeat_interleave(k).numpy(),
        "rank": np.tile(np.arange(k), len(feats)),
        "neighbour": i.reshape(-1).numpy(),
        "cosine": v.reshape(-1).numpy().astype(np.float64),
    })
    return Neighbours(frame, sae_name(sae) if isinstance(sae, SAE) else "W_dec")


def _max_both(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Row-wise max cosine of unit rows ``a [m, d]`` vs ``b [n, d]`` and of ``b`` vs ``a``."""
    step = max(1, _BLOCK // max(b.shape[0], 1))
    a_val, a_idx = [], []
    b_val = torch.full((b.shape[0],), -float("inf"))
    b_idx = torch.zeros(b.shape[0], dtype=torch.long)
    for start in range(0, a.shape[0], step):
        sim = a[start : start + step] @ b.T  # [c, n]
        v, i = sim.max(dim=1)
        a_val.append(v)
        a_idx.append(i)
        cv, ci = sim.max(dim=0)  # [n]
        better = cv > b_val
        b_val = torch.where(better, cv, b_val)
        b_idx = torch.where(better, ci + start, b_idx)
    return torch.cat(a_val), torch.cat(a_idx), b_val, b_idx


def _check_same_width(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise CompatibilityError(
            f"{what}: decoder widths differ ({a.shape[1]} vs {b.shape[1]}); compare dictionaries "
            "trained on the same site of the same model."
        )


def max_cosine(sae_a: Dictionary, sae_b: Dictionary, names: tuple[str, str] = ("a", "b")) -> pd.DataFrame:
    """Max cosine similarity (MCS) between two dictionaries, in both directions.

    For every feature of A, the highest decoder cosine to any feature of B and which
    one; and the same for B against A. A feature with high MCS is learnt by both
    dictionaries (Sharkey et al.'s check that a feature is "real").

    Returns:
        DataFrame ``sae, feature, other, match, max_cosine``: ``sae`` is the feature's
        dictionary (``names[0]`` or ``names[1]``), ``match`` its best feature in ``other``.

    Example:
        >>> mcs = max_cosine(sae_seed0, sae_seed1, names=("seed0", "seed1"))
        >>> (mcs.query("sae == 'seed0'").max_cosine > 0.9).mean()
    """
    a, b = unit_directions(sae_a), unit_directions(sae_b)
    _check_same_width(a, b, "max_cosine")
    a_val, a_idx, b_val, b_idx = _max_both(a, b)
    return pd.concat([
        _mcs_frame(names[0], names[1], a_val, a_idx),
        _mcs_frame(names[1], names[0], b_val, b_idx),
    ], ignore_index=True)


def _mcs_frame(name: str, other: str, val: Tensor, idx: Tensor) -> pd.DataFrame:
    return pd.DataFrame({
        "sae": name, "feature": np.arange(len(val)), "other": other,
        "match": idx.numpy(), "max_cosine": val.numpy().astype(np.float64),
    })


def _named(saes: Mapping[str, SAE] | Sequence[SAE]) -> list[tuple[str, SAE]]:
    items = list(name_saes(saes).items())  # the one naming rule
    if len(items) < 2:
        raise SaekitError("match_features needs 2 or more SAEs of increasing size.")
    return sorted(items, key=lambda kv: kv[1].d_sae)


def match_features(
    saes: Mapping[str, SAE] | Sequence[SAE],
    acts: Any = None,
    *,
    min_cosine: float | None = None,
    batch_size: int = 1024,
) -> SplittingTree:
    """Splitting tree across dictionary sizes: each feature's parent in the next smaller one.

    Dictionaries are ordered by ``d_sae``. Every feature of a larger dictionary is
    attached to the feature of the next smaller dictionary with the highest decoder
    cosine, so a parent's children are the features it "split into" (Bricken et al.
    2023; Bussmann et al. 2024).

    Args:
        saes: ``{name: sae}`` or a list (named by :func:`saekit.ids.sae_name`), 2 or more.
        acts: optional activations at the SAEs' site, ``[n_tokens, d_in]`` or a
            :class:`saekit.Activations`; adds co-activation columns that check the match.
        min_cosine: drop edges below this decoder cosine.
        batch_size: tokens encoded at a time for co-activation.

    Returns:
        :class:`~saekit.analysis.results.SplittingTree`; its ``frame`` is ``level,
        parent_sae, parent, child_sae, child, cosine, n_children``,
        plus with ``acts``: ``parent_active, child_active, both_active``
        (token counts), ``p_child_given_parent``, ``p_parent_given_child`` and
        ``corr`` (Pearson correlation of the two activations over tokens).

    Example:
        >>> tree = match_features({"1k": s1, "4k": s4, "16k": s16}, acts=acts)
        >>> tree.frame.query("parent_sae == '1k' and parent == 12")
    """
    items = _named(saes)
    frames = []
    for level, ((p_name, p_sae), (c_name, c_sae)) in enumerate(zip(items[:-1], items[1:], strict=True)):
        p_w, c_w = unit_directions(p_sae), unit_directions(c_sae)
        _check_same_width(p_w, c_w, f"match_features ({p_name} vs {c_name})")
        _, _, cos, parent = _max_both(p_w, c_w)  # best parent of each child
        frame = pd.DataFrame({
            "level": level, "parent_sae": p_name, "parent": parent.numpy(), "child_sae": c_name,
            "child": np.arange(c_sae.d_sae), "cosine": cos.numpy().astype(np.float64),
        })
        if min_cosine is not None:
            frame = frame[frame["cosine"] >= min_cosine]
        frame["n_children"] = frame.groupby("parent")["child"].transform("size")
        if acts is not None:
            x = _acts_for(acts, p_sae)
            frame = frame.assign(**_coactivation(p_sae, c_sae, x, frame, batch_size))
        frames.append(frame.reset_index(drop=True))
    return SplittingTree(pd.concat(frames, ignore_index=True), items[0][0])


def _acts_for(acts: Any, sae: SAE) -> Tensor:
    from saekit.activations import Activations

    if isinstance(acts, Activations):
        site = sae.cfg.site if sae.cfg.site in acts.acts else (acts.sites[0] if len(acts.sites) == 1 else "")
        return acts[site]
    return torch.as_tensor(acts)


@torch.no_grad()
def _coactivation(p_sae: SAE, c_sae: SAE, x: Tensor, edges: pd.DataFrame, batch_size: int) -> dict:
    parent = torch.tensor(edges["parent"].to_numpy(), dtype=torch.long)
    child = torch.tensor(edges["child"].to_numpy(), dtype=torch.long)
    sums = torch.zeros(7, len(edges), dtype=torch.float64)  # n_p, n_c, n_pc, sx, sy, sxx, syy
    sxy = torch.zeros(len(edges), dtype=torch.float64)
    for chunk in x.split(batch_size):
        p = p_sae.encode(chunk.to(p_sae.device)).cpu().double()[:, parent]  # [t, E]
        c = c_sae.encode(chunk.to(c_sae.device)).cpu().double()[:, child]
        pa, ca = p > 0, c > 0
        sums += torch.stack([pa.sum(0), ca.sum(0), (pa & ca).sum(0), p.sum(0), c.sum(0),
                             (p * p).sum(0), (c * c).sum(0)]).double()
        sxy += (p * c).sum(0)
    n_p, n_c, n_pc, sx, sy, sxx, syy = sums.numpy()
    n = float(x.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (n * sxy.numpy() - sx * sy) / np.sqrt((n * sxx - sx**2) * (n * syy - sy**2))
        return {
            "parent_active": n_p.astype(np.int64), "child_active": n_c.astype(np.int64),
            "both_active": n_pc.astype(np.int64),
            "p_child_given_parent": np.where(n_p > 0, n_pc / np.maximum(n_p, 1), np.nan),
            "p_parent_given_child": np.where(n_c > 0, n_pc / np.maximum(n_c, 1), np.nan),
            "corr": corr,
        }


def cluster_points(points: UmapMap, k: int, seed: int = 0) -> np.ndarray:
    """``[n_points]`` k-means cluster ids of a UMAP's 2-D points (scikit-learn)."""
    from sklearn.cluster import KMeans

    xy = points.frame[["x", "y"]].to_numpy(np.float64)
    return KMeans(n_clusters=min(int(k), len(xy)), n_init=4, random_state=seed).fit_predict(xy)


def max_cosine_to_smallest(saes: Mapping[str, SAE] | Sequence[SAE]) -> dict[str, pd.Series]:
    """Max cosine of each larger dictionary's decoder directions to the smallest one's.

    Returns ``{"<larger> vs <smallest>": max_cosine per feature of <larger>}`` (for
    :func:`saekit.plots.max_cosine_histograms`).
    """
    items = sorted(name_saes(saes).items(), key=lambda kv: kv[1].d_sae)
    if len(items) < 2:
        raise SaekitError(f"Need two SAEs or more to compare; got {len(items)}.")
    base_name, base = items[0]
    groups = {}
    for name, sae in items[1:]:
        mcs = max_cosine(sae, base, names=(name, base_name))
        groups[f"{name} vs {base_name}"] = mcs.loc[mcs["sae"] == name, "max_cosine"]
    return groups
