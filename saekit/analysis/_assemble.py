"""Turning the accumulators' state into tidy frames and window arrays."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

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
    present = window_tokens[window_tokens >= 0]
    ids = np.flatnonzero(np.bincount(present)).tolist() if present.size else []
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


def _kept_tensors(kept: KeptSet, n_bins: int | None, kind: int) -> dict[str, Tensor]:
    """Filled slots, highest activation first within each group, as flat tensors.

    Groups are ``feature * n_bins + bin`` (``bin`` -1 when ``n_bins`` is None).
    """
    act = kept.fields["act"]
    by_act = torch.where(torch.isfinite(kept.key), -act, torch.inf).argsort(dim=1, stable=True)
    full = torch.isfinite(torch.gather(kept.key, 1, by_act))  # [G, cap], filled slots first
    g, rank = full.nonzero(as_tuple=True)
    slot = by_act[g, rank]
    out = {name: field[g, slot] for name, field in kept.fields.items()}
    out["feature"] = g // (n_bins or 1)
    out["bin"] = g % n_bins if n_bins else torch.full_like(g, -1)
    out["rank"], out["kind"] = rank, torch.full_like(g, kind)
    return out


def _examples(name: str, acc: SAEAccumulator, offset: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    q = acc.settings.n_quantiles
    parts = [_kept_tensors(acc.top, None, 0), _kept_tensors(acc.quantile, q, 1),
             _kept_tensors(acc.random, None, 2)]
    cols = {c: torch.cat([p[c] for p in parts]) for c in parts[0]}
    # each part is in (feature, bin, rank) order: a stable sort interleaves them by feature
    block = (cols["feature"] * len(KINDS) + cols["kind"]) * (q + 1) + cols["bin"] + 1
    order = torch.argsort(block, stable=True)
    arr = {c: v.index_select(0, order).cpu().numpy() for c, v in cols.items()}
    frame = pd.DataFrame({
        "sae": name,
        "feature": arr["feature"],
        "kind": pd.Categorical.from_codes(arr["kind"].astype(np.int8), dtype=KIND_DTYPE),
        "bin": arr["bin"],
        "rank": arr["rank"],
        "example": offset + np.arange(len(order), dtype=np.int64),
        "doc": arr["doc"],
        "pos": arr["pos"],
        "activation": arr["act"],
    })
    return frame, arr["win_tok"], arr["win_act"]


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
