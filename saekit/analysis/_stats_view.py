"""One feature's slice of :class:`~saekit.analysis.stats.FeatureStats`, for a feature card."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from saekit._html import visible_token
from saekit.analysis._result import Result
from saekit.ids import FeatureRef

if TYPE_CHECKING:
    from saekit.analysis.results import LogitEffects, Neighbours


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

    def snippet(self, left: int = 8, right: int = 3) -> Example:
        """A shorter window: ``left`` tokens before the example's own token, ``right`` after."""
        lo, hi = max(0, self.max_index - left), self.max_index + right + 1
        return dataclasses.replace(self, tokens=self.tokens[lo:hi], token_ids=self.token_ids[lo:hi],
                                   acts=self.acts[lo:hi], max_index=self.max_index - lo)


def peak_label(examples: Sequence[Example], n: int = 4) -> str:
    """The distinct tokens the examples peak on most, e.g. ``"' Paris' · ' France'"``."""
    counts = Counter(e.tokens[e.max_index] for e in examples if e.tokens)
    return " · ".join(repr(visible_token(t)) for t, _ in counts.most_common(n))


@dataclass(frozen=True, eq=False)
class QuantileBin:
    """Examples sampled uniformly from tokens with activation in ``[lo, hi)``."""

    index: int
    lo: float
    hi: float
    examples: tuple[Example, ...]


@dataclass(frozen=True, eq=False, repr=False)
class FeatureView(Result):
    """Everything known about one feature: what a feature card shows.

    ``hist_edges`` are log10 activation edges ``[n + 1]`` for ``hist_counts [n]``
    (nonzero activations only). ``label`` defaults to the tokens its top examples peak
    on; :meth:`with_parts` adds the logit effects and decoder neighbours. In a notebook
    it shows itself as a :class:`~saekit.widgets.FeatureCard`.
    """

    _view = "saekit.widgets.feature_card:FeatureCard"

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
    label: str = ""
    logits: LogitEffects | None = None
    neighbours: Neighbours | None = None

    @property
    def ref(self) -> FeatureRef:
        return FeatureRef(self.sae, self.feature)

    @property
    def features(self) -> list[int]:
        return [self.feature]

    @property
    def refs(self) -> tuple[FeatureRef, ...]:
        """This feature, then its neighbours."""
        near = [FeatureRef(self.sae, f) for f, _ in self.neighbour_pairs()]
        return (self.ref, *near)

    @property
    def frame(self) -> pd.DataFrame:
        """Its examples, long: ``kind, bin, rank, doc, pos, activation, text``."""
        rows = [("top", -1, i, e) for i, e in enumerate(self.top)]
        rows += [("quantile", q.index, i, e) for q in self.quantiles for i, e in enumerate(q.examples)]
        rows += [("random", -1, i, e) for i, e in enumerate(self.random)]
        return pd.DataFrame([{"kind": k, "bin": b, "rank": i, "doc": e.doc, "pos": e.pos,
                              "activation": e.activation, "text": e.text()} for k, b, i, e in rows],
                            columns=["kind", "bin", "rank", "doc", "pos", "activation", "text"])

    def with_parts(self, *, logits: LogitEffects | None = None, neighbours: Neighbours | None = None,
                   label: str | None = None) -> FeatureView:
        """A copy with logit effects, neighbours and/or a label added."""
        return dataclasses.replace(self, logits=logits if logits is not None else self.logits,
                                   neighbours=neighbours if neighbours is not None else self.neighbours,
                                   label=self.label if label is None else label)

    def quantile_share(self, match: str | Callable[[str], bool]) -> pd.DataFrame:
        """Per activation interval, the share of sampled examples whose peak token matches.

        The specificity check of Anthropic's *Towards Monosemanticity*: a feature for a
        concept should fire on it across its whole range, not only at its maximum.

        Args:
            match: a word (compared stripped and lower-cased) or a predicate on the token string.

        Returns:
            DataFrame ``bin, lo, hi, n, share`` (bins without examples are left out).
        """
        test = match if callable(match) else (lambda tok, w=match.strip().lower(): tok.strip().lower() == w)
        rows = []
        for q in self.quantiles:
            hits = [bool(test(e.tokens[e.max_index])) for e in q.examples]
            if hits:
                share = float(np.mean(hits))
                rows.append({"bin": q.index, "lo": q.lo, "hi": q.hi, "n": len(hits), "share": share})
        return pd.DataFrame(rows, columns=["bin", "lo", "hi", "n", "share"])

    def logit_pairs(self) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """``(top, bottom)`` ``(token, logit)`` pairs (empty without logit effects)."""
        return self.logits.pairs(self.feature) if self.logits is not None else ([], [])

    def neighbour_pairs(self) -> list[tuple[int, float]]:
        """``(feature, cosine)`` of its nearest decoder directions (empty without them)."""
        return self.neighbours.pairs(self.feature) if self.neighbours is not None else []

    def to_text(self) -> str:
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
        top, bottom = self.logit_pairs()
        if top or bottom:
            lines.append("Top logits: " + ", ".join(f"{t!r} {v:.3g}" for t, v in top))
            lines.append("Bottom logits: " + ", ".join(f"{t!r} {v:.3g}" for t, v in bottom))
        if self.neighbours is not None:
            lines.append("Neighbours: " + ", ".join(f"#{f} ({c:.3g})" for f, c in self.neighbour_pairs()))
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
