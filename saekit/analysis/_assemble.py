"""Turning the accumulators' state into tidy frames and window arrays."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from saekit.analysis._accumulate import HIST_BINS, HIST_HI, HIST_LO, SAEAccumulator
from saekit.analysis._kept import KeptSet

KINDS = ("top", "quantile", "random")
KIND_DTYPE = pd.CategoricalDtype(list(KINDS), ordered=True)


@dataclass(frozen=True)
class Assembled:
    """Everything :class:`~saekit.analysis.stats.FeatureStats` holds, before wrapping."""

    summary: pd.DataFrame
    examples: pd.DataFrame
    histograms: pd.DataFrame
    window_tokens: np.ndarray  # [n_examples, W] int32, -1 = no token
    window_acts: np.ndarray  # [n_examples, W] float32
    vocab: dict[int, str]


def assemble(
    accs: Mapping[str, SAEAccumulator], to_strings: Callable[[list[int]], Sequence[str]] | None
) -> Assembled:
    """Frames over all SAEs, in the order given; example ids count from 0."""
    summaries, examples, hists, toks, acts = [], [], [], [], []
    offset = 0
    for name, acc in accs.items():
        summaries.append(_summary(name, acc))
        ex, tok, act = _examples(name, acc, offset)
        examples.append(ex)
        toks.append(tok)
        acts.append(act)
        hists.append(_histograms(name, acc))
        offset += len(ex)
    window_tokens = np.concatenate(toks)
    ids = sorted(int(i) for i in np.unique(window_tokens) if i >= 0)
    strings = to_strings(ids) if to_strings is not None else [f"<{i}>" for i in ids]
    return Assembled(
        summary=pd.concat(summaries, ignore_index=True),
        examples=pd.concat(examples, ignore_index=True),
        histograms=pd.concat(hists, ignore_index=True),
        window_tokens=window_tokens,
        window_acts=np.concatenate(acts),
        vocab=dict(zip(ids, (str(s) for s in strings), strict=True)),
    )


def _summary(name: str, acc: SAEAccumulator) -> pd.DataFrame:
    n_active = acc.n_active.cpu().numpy()
    total = acc.sum_act.cpu().numpy()
    n = max(acc.n_tokens, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_active = np.where(n_active > 0, total / np.maximum(n_active, 1), np.nan)
    return pd.DataFrame({
        "sae": name,
        "feature": np.arange(acc.d_sae),
        "density": n_active / n,
        "max_act": acc.max_act.cpu().numpy().astype(np.float64),
        "mean_act": total / n,
        "mean_active_act": mean_active,
        "n_active": n_active,
    })


def _kept_arrays(kept: KeptSet, n_bins: int | None) -> dict[str, np.ndarray]:
    """Filled slots as arrays; groups are ``feature * n_bins + bin`` (bin -1 if None)."""
    g, s = kept.filled()
    out = {name: kept.fields[name][g, s].cpu().numpy() for name in kept.fields}
    g_np = g.cpu().numpy()
    out["feature"] = g_np // (n_bins or 1)
    out["bin"] = g_np % n_bins if n_bins else np.full_like(g_np, -1)
    return out


def _examples(name: str, acc: SAEAccumulator, offset: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    parts = [
        _kept_arrays(acc.top, None),
        _kept_arrays(acc.quantile, acc.settings.n_quantiles),
        _kept_arrays(acc.random, None),
    ]
    kind = np.concatenate([np.full(len(p["act"]), i, np.int8) for i, p in enumerate(parts)])
    cols = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    order = np.lexsort((-cols["act"], cols["bin"], kind, cols["feature"]))
    kind, cols = kind[order], {c: v[order] for c, v in cols.items()}
    frame = pd.DataFrame({
        "sae": name,
        "feature": cols["feature"].astype(np.int64),
        "kind": pd.Categorical.from_codes(kind, dtype=KIND_DTYPE),
        "bin": cols["bin"].astype(np.int64),
        "rank": _rank_within(cols["feature"], kind, cols["bin"]),
        "example": offset + np.arange(len(order), dtype=np.int64),
        "doc": cols["doc"].astype(np.int64),
        "pos": cols["pos"].astype(np.int64),
        "activation": cols["act"].astype(np.float32),
    })
    return frame, cols["win_tok"].astype(np.int32), cols["win_act"].astype(np.float32)


def _rank_within(*keys: np.ndarray) -> np.ndarray:
    """Position of each row within its run of equal keys (rows already sorted)."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64)
    change = np.zeros(n, bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(change)
    run = np.cumsum(change) - 1
    return np.arange(n) - starts[run]


def _histograms(name: str, acc: SAEAccumulator) -> pd.DataFrame:
    counts = acc.hist.view(acc.d_sae, HIST_BINS).cpu().numpy()
    feature, b = np.nonzero(counts)
    width = (HIST_HI - HIST_LO) / HIST_BINS
    return pd.DataFrame({
        "sae": name,
        "feature": feature.astype(np.int64),
        "bin": b.astype(np.int64),
        "log10_lo": HIST_LO + b * width,
        "log10_hi": HIST_LO + (b + 1) * width,
        "count": counts[feature, b].astype(np.int64),
    })
