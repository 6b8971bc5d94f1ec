"""Geometry: neighbours and MCS against numpy, a known splitting tree, UMAP caching."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

from saekit.activations import Activations
from saekit.analysis import _umap, geometry
from saekit.analysis.geometry import match_features, max_cosine, neighbours, umap_coords, warm_umap
from saekit.errors import CompatibilityError, SaekitError
from saekit.sae import ReLUSAE, SAEConfig


def unit(w: np.ndarray) -> np.ndarray:
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def dec(n: int, d: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


def relu_from(w_dec: np.ndarray, threshold: float, site: str = "resid_post.3") -> ReLUSAE:
    """A ReLU SAE with decoder rows ``w_dec``, encoder = decoder.T, bias ``-threshold``."""
    n, d = w_dec.shape
    sae = ReLUSAE(SAEConfig(d_in=d, d_sae=n, site=site))
    with torch.no_grad():
        sae.W_dec.copy_(torch.from_numpy(w_dec))
        sae.W_enc.copy_(torch.from_numpy(w_dec.T))
        sae.b_enc.fill_(-threshold)
    return sae


# ----- neighbours and MCS ------------------------------------------------------------------
@pytest.mark.parametrize("features", [[0, 5, 19], None, 7])
def test_neighbours_equal_numpy(features, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(geometry, "_BLOCK", 40)  # two rows per chunk: exercises chunking
    w = dec(20)
    got = neighbours(w * torch.linspace(0.5, 3, 20)[:, None], features, k=4).frame  # norms do not matter
    feats = list(range(20)) if features is None else np.atleast_1d(features).tolist()
    sim = unit(w.numpy()) @ unit(w.numpy()).T
    np.fill_diagonal(sim, -np.inf)
    assert got["feature"].tolist() == [f for f in feats for _ in range(4)]
    for f in feats:
        mine = got[got["feature"] == f]
        order = np.argsort(-sim[f])[:4]
        assert mine["neighbour"].tolist() == order.tolist() and mine["rank"].tolist() == [0, 1, 2, 3]
        np.testing.assert_allclose(mine["cosine"], sim[f, order], rtol=1e-5)


def test_neighbours_accepts_an_sae_and_checks_features() -> None:
    sae = relu_from(unit(dec(10).numpy()), 0.0)
    assert len(neighbours(sae, 3, k=50).frame) == 9  # capped at d_sae - 1
    with pytest.raises(SaekitError, match=r"out of range .* \[0, 9\]"):
        neighbours(sae, [2, 10])


def test_max_cosine_both_directions_equal_numpy(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(geometry, "_BLOCK", 100)  # 2 rows of A per chunk
    a, b = dec(30, seed=1), dec(45, seed=2)
    got = max_cosine(a, b, names=("small", "big"))
    sim = unit(a.numpy()) @ unit(b.numpy()).T  # [30, 45]
    small, big = got[got["sae"] == "small"], got[got["sae"] == "big"]
    assert len(small) == 30 and len(big) == 45 and set(small["other"]) == {"big"}
    assert small["match"].tolist() == sim.argmax(1).tolist()
    assert big["match"].tolist() == sim.argmax(0).tolist()
    np.testing.assert_allclose(small["max_cosine"], sim.max(1), rtol=1e-5)
    np.testing.assert_allclose(big["max_cosine"], sim.max(0), rtol=1e-5)
    same = max_cosine(a, a)
    np.testing.assert_allclose(same["max_cosine"], 1.0, rtol=1e-5)
    assert same.query("sae == 'a'")["match"].tolist() == list(range(30))


def test_max_cosine_rejects_different_widths() -> None:
    with pytest.raises(CompatibilityError, match="widths differ"):
        max_cosine(dec(4, d=8), dec(4, d=9))


# ----- splitting tree --------------------------------------------------------------------
def split_family(delta: float = 0.6) -> tuple[list[np.ndarray], list[list[int]]]:
    """4 orthogonal parents; each splits in 2 (mid), each of those in 2 again (large).

    A child is ``normalize(parent + delta * e)`` with a fresh orthonormal ``e``. Returns
    the three decoders (mid and large shuffled) and the true parent of each mid / large.
    """
    basis = np.linalg.qr(np.random.default_rng(0).standard_normal((32, 32)))[0].T  # orthonormal
    small = basis[:4]
    mid = unit(np.stack([small[i // 2] + delta * basis[4 + i] for i in range(8)]))
    large = unit(np.stack([mid[i // 2] + delta * basis[12 + i] for i in range(16)]))
    perm_mid, perm_large = np.array([3, 0, 6, 1, 7, 2, 5, 4]), np.arange(16)[::-1].copy()
    mid, large = mid[perm_mid], large[perm_large]  # so that indices do not give it away
    inv_mid = np.argsort(perm_mid)
    parent_mid = [int(perm_mid[i] // 2) for i in range(8)]
    parent_large = [int(inv_mid[perm_large[j] // 2]) for j in range(16)]
    decoders = [small.astype(np.float32), mid.astype(np.float32), large.astype(np.float32)]
    return decoders, [parent_mid, parent_large]


def test_match_features_recovers_a_known_splitting_tree() -> None:
    (small, mid, large), (p_mid, p_large) = split_family()
    saes = {"s": relu_from(small, 0), "l": relu_from(large, 0), "m": relu_from(mid, 0)}  # any order
    tree = match_features(saes).frame
    columns = ["level", "parent_sae", "parent", "child_sae", "child", "cosine", "n_children"]
    assert list(tree.columns) == columns
    lvl0, lvl1 = tree[tree["level"] == 0], tree[tree["level"] == 1]
    assert set(lvl0["parent_sae"]) == {"s"} and set(lvl0["child_sae"]) == {"m"}
    assert set(lvl1["parent_sae"]) == {"m"} and set(lvl1["child_sae"]) == {"l"}
    assert lvl0["parent"].tolist() == p_mid and lvl1["parent"].tolist() == p_large
    assert (tree["n_children"] == 2).all()
    np.testing.assert_allclose(lvl0["cosine"], (mid * small[p_mid]).sum(1), rtol=1e-5)
    np.testing.assert_allclose(lvl0["cosine"], 1 / np.sqrt(1 + 0.36), rtol=1e-5)
    assert len(match_features(saes, min_cosine=0.9).frame) == 0


def test_match_features_coactivation_equals_brute_force() -> None:
    (small, mid, _), (p_mid, _) = split_family()
    rng = np.random.default_rng(1)
    which = rng.integers(0, 8, 400)  # each token is one mid feature, random strength
    x = (mid[which] * rng.uniform(0.9, 1.1, (400, 1))).astype(np.float32)
    x[:50] = 0.3 * rng.standard_normal((50, 32))  # and some noise tokens
    # a child fires on its own tokens (projection >= 0.9), not a sibling's (<= 0.81)
    parents, children = relu_from(small, 0.3), relu_from(mid, 0.85)
    acts = Activations({"resid_post.3": torch.from_numpy(x)}, torch.zeros(400, dtype=torch.long),
                       torch.zeros(400, dtype=torch.long), torch.arange(400))
    tree = match_features([parents, children], acts=acts, batch_size=64).frame
    with torch.no_grad():
        p = parents.encode(torch.from_numpy(x)).numpy()[:, p_mid]  # [400, 8] parent of each child
        c = children.encode(torch.from_numpy(x)).numpy()
    both = ((p > 0) & (c > 0)).sum(0)
    assert tree["both_active"].tolist() == both.tolist()
    np.testing.assert_allclose(tree["p_child_given_parent"], both / (p > 0).sum(0))
    np.testing.assert_allclose(tree["p_parent_given_child"], both / (c > 0).sum(0))
    corr = [np.corrcoef(p[:, i], c[:, i])[0, 1] for i in range(8)]
    np.testing.assert_allclose(tree["corr"], corr, rtol=1e-6)
    assert (tree["p_parent_given_child"] == 1).all()  # a child never fires without its parent
    assert tree["p_child_given_parent"].between(0.2, 0.8).all()  # it takes its share


def test_match_features_needs_two_dictionaries() -> None:
    with pytest.raises(SaekitError, match="2 or more"):
        match_features([relu_from(unit(dec(4).numpy()), 0)])


# ----- UMAP --------------------------------------------------------------------------------
def fake_fit(calls: list):  # type: ignore[no-untyped-def]
    def fit(points: np.ndarray, k: int, min_dist: float, seed: int) -> np.ndarray:
        calls.append((points.shape, k, min_dist, seed))
        return np.stack([points[:, 0], points[:, 1]], 1).astype(np.float32)
    return fit


def test_umap_coords_cache_keyed_by_weights(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list = []
    monkeypatch.setattr(_umap, "_fit", fake_fit(calls))
    a, b = dec(10, seed=3), dec(6, seed=4)
    first = umap_coords({"a": a, "b": b}, cache_dir=tmp_path, progress=False).frame
    assert first["sae"].tolist() == ["a"] * 10 + ["b"] * 6
    assert first["feature"].tolist() == [*range(10), *range(6)]
    both = np.concatenate([unit(a.numpy()), unit(b.numpy())])
    np.testing.assert_allclose(first["x"], both[:, 0], rtol=1e-6)
    assert calls == [((16, 8), 15, 0.1, 0)]
    again = umap_coords({"A": a, "B": b}, cache_dir=tmp_path, progress=False).frame  # names: not in the key
    assert len(calls) == 1 and again["sae"].iloc[0] == "A"
    pd.testing.assert_frame_equal(again[["x", "y"]], first[["x", "y"]])
    umap_coords({"a": a, "b": b * 2 + 1}, cache_dir=tmp_path, progress=False)  # other weights: refit
    umap_coords({"a": a, "b": b}, cache_dir=tmp_path, seed=1, progress=False)  # other seed: refit
    umap_coords({"a": a, "b": b}, cache_dir=False, progress=False)  # no cache
    assert len(calls) == 4
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 3 and all(f.startswith("umap-") and (tmp_path / f / "xy.npy").is_file()
                                   for f in files)  # one folder (array + manifest) per entry


def test_umap_missing_package_says_how_to_install(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap -> ImportError
    with pytest.raises(SaekitError, match=r"pip install 'saekit\[umap\]'"):
        umap_coords(dec(10), cache_dir=False, progress=False)
    with pytest.raises(SaekitError, match="at least 4 features"):
        umap_coords(dec(3), cache_dir=False, progress=False)


@pytest.mark.slow  # the first UMAP fit in a process compiles numba code (~20-30 s here)
def test_umap_real_fit_is_deterministic_and_cached(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seconds = warm_umap()
    assert seconds >= 0 and _umap._warm
    saes = {"a": dec(30, seed=5), "b": dec(20, seed=6)}
    one = umap_coords(saes, n_neighbors=5, cache_dir=False, progress=False).frame
    two = umap_coords(saes, n_neighbors=5, cache_dir=False, progress=False).frame
    assert one.shape == (50, 4) and np.isfinite(one[["x", "y"]].to_numpy()).all()
    pd.testing.assert_frame_equal(one, two)
    cached = umap_coords(saes, n_neighbors=5, cache_dir=tmp_path, progress=False).frame
    pd.testing.assert_frame_equal(cached, one)
    assert len(list(tmp_path.glob("umap-*/xy.npy"))) == 1
