"""UMAP of decoder directions, jointly across dictionaries, cached on disk.

umap-learn is an optional extra (``pip install 'saekit[umap]'``) imported on first use.
Its first fit in a new process compiles numba code (~30 s on 2 cores, less once
numba's on-disk cache is filled): :func:`warm_umap` pays that cost up front on a tiny
input and says so, and :func:`umap_coords` shows a progress bar naming the cause.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from saekit import _storage
from saekit.analysis.results import UmapMap
from saekit.errors import FormatError, SaekitError

log = logging.getLogger("saekit")
_warm = False
_XY = "xy.npy"


def _import_umap() -> Any:
    try:
        import umap
    except ImportError:
        raise SaekitError(
            "UMAP needs the optional package umap-learn. Install it with "
            "pip install 'saekit[umap]' (or pip install umap-learn)."
        ) from None
    return umap


def _fit(points: np.ndarray, n_neighbors: int, min_dist: float, seed: int) -> np.ndarray:
    umap = _import_umap()
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine",
                        n_components=2, random_state=seed, n_jobs=1)
    with warnings.catch_warnings():  # random_state forces n_jobs=1, and umap says so
        warnings.simplefilter("ignore", UserWarning)
        return np.asarray(reducer.fit_transform(points), dtype=np.float32)


def warm_umap() -> float:
    """Compile UMAP's numba code now, on a tiny input; returns the seconds it took.

    Call it at the top of a notebook so a later :func:`umap_coords` does not stall
    silently. Logs how long it took on the ``"saekit"`` logger.

    Example:
        >>> seconds = warm_umap()      # ~30 s the first time in a process, ~0 after
    """
    global _warm
    start = time.perf_counter()
    points = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    _fit(points, n_neighbors=5, min_dist=0.1, seed=0)
    _warm = True
    seconds = time.perf_counter() - start
    log.info("UMAP warmed up (numba compilation) in %.1f s", seconds)
    return seconds


def _named_dirs(saes: Any) -> list[tuple[str, np.ndarray]]:
    """``(name, unit directions)``: SAEs named by :func:`saekit.ids.name_saes`, bare
    decoder matrices ``"W_dec"``, ``"W_dec-2"``..."""
    from saekit.analysis.geometry import unit_directions
    from saekit.ids import name_saes
    from saekit.sae.base import SAE

    if isinstance(saes, (SAE, torch.Tensor)):
        saes = [saes]
    if isinstance(saes, Mapping) or all(isinstance(s, SAE) for s in saes):
        items = list(name_saes(saes).items()) if not isinstance(saes, Mapping) else list(saes.items())
    else:
        items = [(f"W_dec-{i + 1}" if i else "W_dec", s) for i, s in enumerate(saes)]
    return [(str(n), unit_directions(s).cpu().numpy()) for n, s in items]


def _cache_key(dirs: Sequence[np.ndarray], params: tuple) -> str:
    h = hashlib.sha256(repr(params).encode())
    h.update(_import_umap().__version__.encode())
    for d in dirs:
        h.update(repr(d.shape).encode())
        h.update(np.ascontiguousarray(d, dtype=np.float32).tobytes())
    return h.hexdigest()[:32]


def _cache_entry(cache_dir: str | os.PathLike[str] | None | Literal[False], key: str) -> Path | None:
    """The cache entry's folder (``umap-<key>/xy.npy`` + manifest), or ``None`` for no cache."""
    if cache_dir is False:
        return None
    if cache_dir is None:
        from saekit._loading import cache_dir as saekit_cache

        cache_dir = saekit_cache() / "umap"
    return Path(cache_dir) / f"umap-{key}"


def _load_xy(entry: Path, n: int) -> np.ndarray:
    """The cached ``[n, 2]`` coordinates, checked against the entry's manifest."""
    _storage.verify(entry)
    with _storage.reading(entry / _XY, "cached UMAP coordinates"):
        xy = np.load(entry / _XY, allow_pickle=False)
    if xy.shape != (n, 2) or xy.dtype != np.float32:
        raise FormatError(f"{entry / _XY} holds {xy.dtype} {xy.shape}; expected float32 ({n}, 2).")
    return xy


def _save_xy(entry: Path, xy: np.ndarray) -> None:
    buf = io.BytesIO()  # np.save to a file reports a full disk as a short write, without errno
    np.save(buf, xy, allow_pickle=False)
    _storage.write_folder(entry, {_XY: lambda p: p.write_bytes(buf.getvalue())}, keep_others=False)


def umap_coords(
    saes: Any,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None | Literal[False] = None,
    progress: bool = True,
) -> UmapMap:
    """2-D UMAP of decoder directions, fitted jointly over all dictionaries given.

    Args:
        saes: an SAE, a list of SAEs, or ``{name: sae}`` (decoder matrices work too).
        n_neighbors, min_dist: UMAP settings (cosine metric); ``n_neighbors`` is
            capped at the number of features minus one.
        seed: UMAP's random state (same seed and weights -> same coordinates).
        cache_dir: folder of cached results, keyed by a hash of the weights and
            settings; ``None`` = ``<saekit cache>/umap``; ``False`` = no cache.
        progress: show a progress bar while fitting.

    Returns:
        A :class:`~saekit.analysis.results.UmapMap`; its ``frame`` is ``sae, feature, x, y``.

    Example:
        >>> warm_umap()
        >>> coords = umap_coords({"4k": sae_4k, "16k": sae_16k})
    """
    named = _named_dirs(saes)
    dirs = [d for _, d in named]
    n = sum(len(d) for d in dirs)
    if n < 4:
        raise SaekitError(f"UMAP needs at least 4 features in all; got {n}.")
    if len({d.shape[1] for d in dirs}) > 1:
        raise SaekitError("All dictionaries must have the same decoder width for a joint UMAP.")
    k = max(2, min(n_neighbors, n - 1))
    entry = _cache_entry(cache_dir, _cache_key(dirs, ("v1", k, float(min_dist), int(seed))))
    fit = lambda: _fit_with_progress(np.concatenate(dirs), k, min_dist, seed, progress)  # noqa: E731
    if entry is None:
        xy = fit()
    else:  # a broken entry is fitted again, with a one-line note
        xy = _storage.load_or_rebuild(entry, lambda e: _load_xy(e, n), lambda e: _save_xy(e, fit()),
                                      "cached UMAP coordinates")
    frame = pd.DataFrame({
        "sae": np.concatenate([[name] * len(d) for name, d in named]),
        "feature": np.concatenate([np.arange(len(d)) for d in dirs]),
        "x": xy[:, 0].astype(np.float64),
        "y": xy[:, 1].astype(np.float64),
    })
    return UmapMap(frame, named[0][0])


def _fit_with_progress(points: np.ndarray, k: int, min_dist: float, seed: int, progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    global _warm
    desc = "UMAP" if _warm else "UMAP (first fit in this process compiles numba code, ~30 s)"
    with tqdm(total=1, desc=desc, disable=not progress) as bar:
        xy = _fit(points, k, min_dist, seed)
        bar.update(1)
    _warm = True
    return xy
