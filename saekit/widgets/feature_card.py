"""Feature card: one feature's dashboard (stats, examples, histogram, logits, neighbours).

Built from the analysis' :class:`~saekit.analysis.stats.FeatureView` (``stats.feature``,
plus ``with_parts(logits=..., neighbours=...)``); the card only formats it.

Example:
    >>> card = FeatureCard.from_result(stats.feature("topk-1152", 7))     # doctest: +SKIP
    >>> card.on_feature_click(lambda ref: card.update(stats.feature(ref)))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets as t

from saekit._html import fmt_value, spark_bar, visible_token
from saekit.errors import SaekitError
from saekit.widgets._base import SaekitView, _to_numpy, as_bytes, from_bytes
from saekit.widgets._bundle import bundle

if TYPE_CHECKING:
    from saekit.analysis.stats import Example, FeatureView

__all__ = ["FeatureCard"]


class FeatureCard(SaekitView):
    """A feature's dashboard, built from a :class:`~saekit.analysis.stats.FeatureView`.

    Synced state: ``feature_id``, ``label``, ``sae_name``, ``stats`` (``[name, value,
    kind]`` rows), ``groups`` (example section titles), ``ex_tokens`` /
    ``ex_group`` (one entry per example), ``ex_acts`` / ``ex_mask`` (float32 / uint8
    buffers over all example tokens), ``scale_max``, ``hist_edges`` / ``hist_counts``
    (float64 buffers), ``hist_xlabel``, ``top_logits`` / ``bottom_logits``,
    ``neighbours``. Clicking a neighbour id calls the :meth:`on_feature_click`
    handlers with its :class:`~saekit.ids.FeatureRef`; :meth:`update` shows another feature.
    """

    _esm = bundle("feature_card.js")

    feature_id = t.Int(0).tag(sync=True)
    label = t.Unicode("").tag(sync=True)
    sae_name = t.Unicode("").tag(sync=True)
    stats = t.List(t.List()).tag(sync=True)
    groups = t.List(t.Unicode()).tag(sync=True)
    ex_tokens = t.List(t.List(t.Unicode())).tag(sync=True)
    ex_group = t.List(t.Int()).tag(sync=True)
    ex_acts = t.Bytes(b"").tag(sync=True)
    ex_mask = t.Bytes(b"").tag(sync=True)
    scale_max = t.Float(0.0).tag(sync=True)
    hist_edges = t.Bytes(b"").tag(sync=True)
    hist_counts = t.Bytes(b"").tag(sync=True)
    hist_xlabel = t.Unicode("").tag(sync=True)
    top_logits = t.List(t.List()).tag(sync=True)
    bottom_logits = t.List(t.List()).tag(sync=True)
    neighbours = t.List(t.List()).tag(sync=True)

    def __init__(self, view: FeatureView) -> None:
        super().__init__(**_card_state(view))

    @classmethod
    def from_result(cls, view: FeatureView) -> FeatureCard:
        """The card of a :class:`~saekit.analysis.stats.FeatureView`."""
        return cls(view)

    def update(self, view: FeatureView) -> None:
        """Show another feature (one round trip: all traits change together)."""
        state = _card_state(view)
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)

    def _own_sae(self) -> str:
        return self.sae_name or "sae"

    def examples(self) -> list[tuple[str, list[str], np.ndarray]]:
        """``(section title, tokens, acts)`` for every example, in display order."""
        acts = from_bytes(self.ex_acts, "f4")
        out, pos = [], 0
        for tokens, g in zip(self.ex_tokens, self.ex_group, strict=True):
            out.append((self.groups[g], tokens, acts[pos : pos + len(tokens)]))
            pos += len(tokens)
        return out

    def to_text(self) -> str:
        head = f"Feature #{self.feature_id}"
        if self.sae_name:
            head += f" · {self.sae_name}"
        if self.label:
            head += f" · {self.label}"
        lines = [head, " · ".join(_stat_text(*row) for row in self.stats) or "(no stats)"]
        lines += _examples_text(self.examples(), from_bytes(self.ex_mask, "u1").astype(bool))
        lines += _histogram_text(self)
        lines += _pairs_text("Top logits", self.top_logits)
        lines += _pairs_text("Bottom logits", self.bottom_logits)
        if self.neighbours:
            pairs = ", ".join(f"#{f} ({fmt_value(c)})" for f, c in self.neighbours)
            lines.append(f"Neighbours: {pairs}")
        return "\n".join(lines)


def _card_state(view: FeatureView) -> dict[str, Any]:
    from saekit.analysis.stats import FeatureView

    if not isinstance(view, FeatureView):
        raise SaekitError(
            f"FeatureCard shows a FeatureView (stats.feature(sae, id)); got {type(view).__name__}.")
    sections = [("Top activations", list(view.top))]
    quantiles = [q for q in reversed(view.quantiles) if q.examples]
    sections += [(f"{q.lo:.3g} – {q.hi:.3g}", list(q.examples)) for q in quantiles]
    groups, ex_tokens, ex_group, acts = [], [], [], []
    for title, examples in sections:
        groups.append(title)
        for i, ex in enumerate(examples):
            acts.append(example_acts(ex, f"{title!r} example {i}"))
            ex_tokens.append([str(tok) for tok in ex.tokens])
            ex_group.append(len(groups) - 1)
    all_acts = np.concatenate(acts) if acts else np.zeros(0, np.float32)
    edges, counts = _histogram_arrays(view.hist_edges, view.hist_counts)
    top, bottom = view.logit_pairs()
    return {
        "feature_id": int(view.feature), "label": str(view.label), "sae_name": str(view.sae),
        "stats": _stats_rows(view), "groups": groups, "ex_tokens": ex_tokens, "ex_group": ex_group,
        "ex_acts": as_bytes(all_acts, "f4", name="example acts"),
        "ex_mask": as_bytes(np.zeros(all_acts.size, np.uint8), "u1", name="example mask"),
        "scale_max": _scale_max(view, all_acts),
        "hist_edges": as_bytes(edges, "f8", name="histogram edges"),
        "hist_counts": as_bytes(counts, "f8", name="histogram counts"),
        "hist_xlabel": "log10 activation" if counts.size else "",
        "top_logits": [[str(tok), float(v)] for tok, v in top],
        "bottom_logits": [[str(tok), float(v)] for tok, v in bottom],
        "neighbours": [[int(f), float(c)] for f, c in view.neighbour_pairs()],
    }


def example_acts(ex: Example, where: str) -> np.ndarray:
    """``[n_tokens]`` float32 activations of an example, one per token."""
    acts = _to_numpy(ex.acts).astype(np.float32).reshape(-1)
    if acts.shape != (len(ex.tokens),):
        raise SaekitError(
            f"{where}: acts must have one value per token ({len(ex.tokens)}); "
            f"got shape {tuple(_to_numpy(ex.acts).shape)}."
        )
    return acts


def _histogram_arrays(edges: Any, counts: Any) -> tuple[np.ndarray, np.ndarray]:
    e = _to_numpy(edges).astype(np.float64).reshape(-1)
    c = _to_numpy(counts).astype(np.float64).reshape(-1)
    if c.size == 0:
        return np.zeros(0), np.zeros(0)
    if e.size != c.size + 1:
        raise SaekitError(f"Histogram needs n_bins + 1 edges for n_bins counts; got {e.size} and {c.size}.")
    return e, c


def _stats_rows(view: FeatureView) -> list[list[Any]]:
    rows: list[list[Any]] = [["density", float(view.density), "pct"], ["max", float(view.max_act), "num"]]
    if not math.isnan(view.mean_active_act):
        rows.append(["mean", float(view.mean_active_act), "num"])
    return rows


def _scale_max(view: FeatureView, acts: np.ndarray) -> float:
    if view.max_act > 0:
        return float(view.max_act)
    return float(acts.max()) if acts.size and acts.max() > 0 else 0.0


def _stat_text(name: str, value: float, kind: str) -> str:
    if kind == "pct":
        return f"{name} {fmt_value(100 * value)}%"
    return f"{name} {fmt_value(value)}"


def _examples_text(examples: list[tuple[str, list[str], np.ndarray]], mask: np.ndarray) -> list:
    lines, current, pos = [], None, 0
    for title, tokens, acts in examples:
        if title != current:
            lines.append(f"{title}:")
            current = title
        ex_mask = mask[pos : pos + len(tokens)]
        rows = zip(tokens, acts, ex_mask, strict=True)
        parts = [_example_token(tok, float(a), bool(m)) for tok, a, m in rows]
        shown = acts[~ex_mask]
        peak = fmt_value(float(shown.max())) if shown.size else "-"
        lines.append(f"  {peak:>6}  " + "".join(parts))
        pos += len(tokens)
    return lines


def _example_token(token: str, act: float, masked: bool) -> str:
    text = visible_token(token)
    if masked:
        return f"⟦{text}⟧"
    return f"[{text}:{fmt_value(act)}]" if act > 0 else text


def _histogram_text(card: FeatureCard) -> list[str]:
    edges = from_bytes(card.hist_edges, "f8")
    counts = from_bytes(card.hist_counts, "f8")
    if counts.size == 0:
        return []
    lines = [f"Histogram ({card.hist_xlabel}):"]
    top = float(counts.max())
    for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True):
        lines.append(f"  {fmt_value(float(lo)):>8} – {fmt_value(float(hi)):<8} "
                     f"{spark_bar(float(c), top, 24):<24} {fmt_value(float(c))}")
    return lines


def _pairs_text(title: str, pairs: list[list[Any]]) -> list[str]:
    if not pairs:
        return []
    return [f"{title}: " + ", ".join(f"{visible_token(tok)!r} {fmt_value(v)}" for tok, v in pairs)]
