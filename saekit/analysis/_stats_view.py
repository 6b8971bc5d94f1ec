"""One feature's slice of :class:`~saekit.analysis.stats.FeatureStats`, for a feature card."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Example:
    """One context window around an activating token.

    Attributes:
        doc: index of the text in the corpus; pos: the token's position in it.
        activation: the feature's activation at that token.
        tokens: token strings of the window; token_ids: ``[W']`` their ids.
        acts: ``[W']`` the feature's activation at every window token.
        max_index: index of the example's own token within the window.
    """

    doc: int
    pos: int
    activation: float
    tokens: tuple[str, ...]
    token_ids: np.ndarray
    acts: np.ndarray
    max_index: int

    def text(self, mark: tuple[str, str] = ("«", "»")) -> str:
        """The window as text, the example's own token wrapped in ``mark``."""
        parts = list(self.tokens)
        if parts:
            parts[self.max_index] = f"{mark[0]}{parts[self.max_index]}{mark[1]}"
        return "".join(parts)

    def card_dict(self) -> dict[str, Any]:
        return {"tokens": list(self.tokens), "acts": self.acts.astype(np.float32)}


@dataclass(frozen=True, eq=False)
class QuantileBin:
    """Examples sampled uniformly from tokens with activation in ``[lo, hi)``."""

    index: int
    lo: float
    hi: float
    examples: tuple[Example, ...]


@dataclass(frozen=True, eq=False)
class FeatureView:
    """Everything the statistics pass knows about one feature.

    ``hist_edges`` are log10 activation edges ``[n + 1]`` for ``hist_counts [n]``
    (nonzero activations only). Build a widget card with
    ``saekit.widgets.FeatureCardData.from_dict(view.card_dict())``.
    """

    sae: str
    feature: int
    density: float
    max_act: float
    mean_act: float
    mean_active_act: float
    n_active: int
    top: tuple[Example, ...]
    quantiles: tuple[QuantileBin, ...]
    random: tuple[Example, ...]
    hist_edges: np.ndarray
    hist_counts: np.ndarray

    def card_dict(self) -> dict[str, Any]:
        """Plain dict of ``FeatureCardData`` fields (no widget import here)."""
        out: dict[str, Any] = {
            "feature_id": self.feature,
            "sae_name": self.sae,
            "density": self.density,
            "max_act": self.max_act,
            "mean_act": None if math.isnan(self.mean_active_act) else self.mean_active_act,
            "top_examples": [e.card_dict() for e in self.top],
            "quantiles": [
                {"label": f"{q.lo:.3g} – {q.hi:.3g}", "examples": [e.card_dict() for e in q.examples]}
                for q in reversed(self.quantiles) if q.examples
            ],
        }
        if self.hist_counts.size:
            out["histogram"] = {"edges": self.hist_edges, "counts": self.hist_counts,
                                "xlabel": "log10 activation"}
        return out

    def __repr__(self) -> str:
        lines = [
            f"Feature {self.feature} of {self.sae}: density {100 * self.density:.4g}% "
            f"({self.n_active} tokens), max {self.max_act:.4g}, mean {self.mean_act:.4g}, "
            f"mean when active {self.mean_active_act:.4g}",
        ]
        lines += ["Top examples:"] + [f"  {e.activation:8.3f}  {e.text()!r}" for e in self.top]
        for q in reversed(self.quantiles):
            if q.examples:
                lines.append(f"Quantile {q.index} [{q.lo:.3g}, {q.hi:.3g}):")
                lines += [f"  {e.activation:8.3f}  {e.text()!r}" for e in q.examples]
        if self.random:
            lines += ["Random active examples:"]
            lines += [f"  {e.activation:8.3f}  {e.text()!r}" for e in self.random]
        return "\n".join(lines)


def coarse_histogram(lo: np.ndarray, hi: np.ndarray, counts: np.ndarray, n_bins: int) -> tuple:
    """Merge adjacent fine bins (sorted, possibly with gaps) into at most ``n_bins``.

    Returns ``(edges [m + 1], counts [m])`` spanning the first to the last nonzero bin.
    """
    if counts.size == 0:
        return np.zeros(0), np.zeros(0)
    width = hi[0] - lo[0]
    first, last = lo.min(), hi.max()
    n_fine = int(round((last - first) / width))
    per = max(1, math.ceil(n_fine / n_bins))
    m = math.ceil(n_fine / per)
    idx = np.round((lo - first) / width).astype(np.int64) // per
    out = np.bincount(idx, weights=counts, minlength=m)[:m]
    edges = first + np.arange(m + 1) * per * width
    return edges, out
