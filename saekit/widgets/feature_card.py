"""Feature card: one feature's dashboard (stats, examples, histogram, logits, neighbours).

Example:
    >>> from saekit.widgets import CardExample, FeatureCard, FeatureCardData
    >>> data = FeatureCardData(
    ...     feature_id=7, density=0.0125, max_act=3.0, mean_act=1.2,
    ...     top_examples=[CardExample(["The", " cat", " sat"], [0.0, 3.0, 0.5])],
    ...     top_logits=[(" cats", 0.9)], neighbours=[(12, 0.71)],
    ... )
    >>> card = FeatureCard(data)
    >>> card.on_feature_click(lambda f: print("open", f))
    >>> print(card.to_text().splitlines()[1])
    density 1.25% · max 3 · mean 1.2
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import traitlets as t

from saekit._html import fmt_value, spark_bar, visible_token
from saekit.errors import SaekitError
from saekit.widgets._base import SaekitView, _to_numpy, as_bytes, from_bytes
from saekit.widgets._bundle import bundle

__all__ = ["CardExample", "FeatureCard", "FeatureCardData", "Histogram", "QuantileGroup"]


@dataclass(frozen=True, eq=False)
class CardExample:
    """One text example: token strings and this feature's activation at each, ``[n_tokens]``."""

    tokens: Sequence[str]
    acts: Any
    mask: Any = None


@dataclass(frozen=True)
class QuantileGroup:
    """Examples sampled from one activation interval, e.g. ``label="0.40 – 0.60 of max"``."""

    label: str
    examples: Sequence[CardExample]


@dataclass(frozen=True, eq=False)
class Histogram:
    """Bin edges ``[n_bins + 1]`` and counts ``[n_bins]`` with an x-axis label."""

    edges: Any
    counts: Any
    xlabel: str = "activation"


@dataclass(frozen=True, eq=False)
class FeatureCardData:
    """Everything a feature card shows; every part but ``feature_id`` is optional.

    Attributes:
        feature_id: The feature's index in its SAE.
        density: Fraction of tokens where the feature is active (0..1).
        max_act: Largest activation seen; also the top of the colour scale.
        mean_act: Mean activation over the tokens where it is active.
        label: A short human description.
        sae_name: Which dictionary the feature belongs to.
        top_examples: Highest-activating examples.
        quantiles: Examples sampled from activation intervals.
        histogram: Activation (or log10 density) histogram.
        top_logits: ``(token, value)`` pairs the feature promotes most.
        bottom_logits: ``(token, value)`` pairs it suppresses most.
        neighbours: ``(feature_id, cosine)`` pairs of the nearest decoder directions.
        extra_stats: More named numbers to show beside the summary stats.
    """

    feature_id: int
    density: float | None = None
    max_act: float | None = None
    mean_act: float | None = None
    label: str = ""
    sae_name: str = ""
    top_examples: Sequence[CardExample] = ()
    quantiles: Sequence[QuantileGroup] = ()
    histogram: Histogram | None = None
    top_logits: Sequence[tuple[str, float]] = ()
    bottom_logits: Sequence[tuple[str, float]] = ()
    neighbours: Sequence[tuple[int, float]] = ()
    extra_stats: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> FeatureCardData:
        """Build from plain dicts/lists (examples as ``{"tokens", "acts"}`` or pairs)."""
        known = {f.name for f in fields(cls)}
        unknown = set(payload) - known
        if unknown:
            raise SaekitError(
                f"Unknown feature-card fields {sorted(unknown)}; expected some of {sorted(known)}."
            )
        data = dict(payload)
        data["top_examples"] = [_example(e) for e in data.get("top_examples", ())]
        data["quantiles"] = [_group(g) for g in data.get("quantiles", ())]
        hist = data.get("histogram")
        if isinstance(hist, Mapping):
            data["histogram"] = Histogram(**hist)
        return cls(**data)


def _example(item: Any) -> CardExample:
    if isinstance(item, CardExample):
        return item
    if isinstance(item, Mapping):
        return CardExample(**item)
    return CardExample(*item)


def _group(item: Any) -> QuantileGroup:
    if isinstance(item, QuantileGroup):
        return item
    if isinstance(item, Mapping):
        return QuantileGroup(item["label"], [_example(e) for e in item["examples"]])
    label, examples = item
    return QuantileGroup(label, [_example(e) for e in examples])


class FeatureCard(SaekitView):
    """A feature's dashboard, built from :class:`FeatureCardData` (or the same as a dict).

    Synced state: ``feature_id``, ``label``, ``sae_name``, ``stats`` (``[name, value,
    kind]`` rows), ``groups`` (example section titles), ``ex_tokens`` /
    ``ex_group`` (one entry per example), ``ex_acts`` / ``ex_mask`` (float32 / uint8
    buffers over all example tokens), ``scale_max``, ``hist_edges`` / ``hist_counts``
    (float64 buffers), ``hist_xlabel``, ``top_logits`` / ``bottom_logits``,
    ``neighbours``. Clicking a neighbour id calls the :meth:`on_feature_click`
    handlers (and sets ``requested_feature``); :meth:`update` shows another feature.
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

    def __init__(self, data: FeatureCardData | Mapping[str, Any]) -> None:
        super().__init__(**_card_state(_as_data(data)))

    def update(self, data: FeatureCardData | Mapping[str, Any]) -> None:
        """Show another feature (one round trip: all traits change together)."""
        state = _card_state(_as_data(data))
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)

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


def _as_data(data: FeatureCardData | Mapping[str, Any]) -> FeatureCardData:
    if isinstance(data, FeatureCardData):
        return data
    if isinstance(data, Mapping):
        return FeatureCardData.from_dict(data)
    raise SaekitError(
        f"FeatureCard needs a FeatureCardData or a dict of its fields; got {type(data).__name__}."
    )


def _card_state(data: FeatureCardData) -> dict[str, Any]:
    sections = [("Top activations", list(data.top_examples))]
    sections += [(g.label, list(g.examples)) for g in data.quantiles]
    groups, ex_tokens, ex_group, acts, masks = [], [], [], [], []
    for title, examples in sections:
        groups.append(title)
        for i, ex in enumerate(examples):
            a, m = _example_arrays(ex, f"{title!r} example {i}")
            ex_tokens.append([str(tok) for tok in ex.tokens])
            ex_group.append(len(groups) - 1)
            acts.append(a)
            masks.append(m)
    all_acts = np.concatenate(acts) if acts else np.zeros(0, np.float32)
    all_mask = np.concatenate(masks) if masks else np.zeros(0, np.uint8)
    edges, counts, xlabel = _histogram_arrays(data.histogram)
    return {
        "feature_id": int(data.feature_id),
        "label": str(data.label),
        "sae_name": str(data.sae_name),
        "stats": _stats_rows(data),
        "groups": groups,
        "ex_tokens": ex_tokens,
        "ex_group": ex_group,
        "ex_acts": as_bytes(all_acts, "f4", name="example acts"),
        "ex_mask": as_bytes(all_mask, "u1", name="example mask"),
        "scale_max": _scale_max(data, all_acts[all_mask == 0]),
        "hist_edges": as_bytes(edges, "f8", name="histogram edges"),
        "hist_counts": as_bytes(counts, "f8", name="histogram counts"),
        "hist_xlabel": xlabel,
        "top_logits": [[str(tok), float(v)] for tok, v in data.top_logits],
        "bottom_logits": [[str(tok), float(v)] for tok, v in data.bottom_logits],
        "neighbours": [[int(f), float(c)] for f, c in data.neighbours],
    }


def _example_arrays(ex: CardExample, where: str) -> tuple[np.ndarray, np.ndarray]:
    acts = _to_numpy(ex.acts).astype(np.float32).reshape(-1)
    if acts.shape != (len(ex.tokens),):
        raise SaekitError(
            f"{where}: acts must have one value per token ({len(ex.tokens)}); "
            f"got shape {tuple(_to_numpy(ex.acts).shape)}."
        )
    mask = np.zeros(len(ex.tokens), np.uint8) if ex.mask is None else _to_numpy(ex.mask)
    if mask.shape != acts.shape:
        raise SaekitError(f"{where}: mask must have shape {acts.shape}; got {mask.shape}.")
    return acts, mask.astype(np.uint8)


def _histogram_arrays(hist: Histogram | None) -> tuple[np.ndarray, np.ndarray, str]:
    if hist is None:
        return np.zeros(0), np.zeros(0), ""
    edges = _to_numpy(hist.edges).astype(np.float64).reshape(-1)
    counts = _to_numpy(hist.counts).astype(np.float64).reshape(-1)
    if edges.size != counts.size + 1 or counts.size == 0:
        raise SaekitError(
            f"Histogram needs n_bins + 1 edges for n_bins counts; got {edges.size} edges and "
            f"{counts.size} counts (numpy.histogram returns them in that form)."
        )
    if np.any(np.diff(edges) <= 0):
        raise SaekitError("Histogram edges must increase strictly.")
    return edges, counts, str(hist.xlabel)


def _stats_rows(data: FeatureCardData) -> list[list[Any]]:
    rows: list[list[Any]] = []
    if data.density is not None:
        rows.append(["density", float(data.density), "pct"])
    if data.max_act is not None:
        rows.append(["max", float(data.max_act), "num"])
    if data.mean_act is not None:
        rows.append(["mean", float(data.mean_act), "num"])
    rows += [[str(k), float(v), "num"] for k, v in data.extra_stats.items()]
    return rows


def _scale_max(data: FeatureCardData, acts: np.ndarray) -> float:
    if data.max_act is not None and data.max_act > 0:
        return float(data.max_act)
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
