"""The analyses' results: small frozen dataclasses over tidy frames (see :mod:`._result`).

Each holds its frame, the SAE's name (so it knows its :class:`~saekit.ids.FeatureRef` s),
what a view needs beyond the frame (a context's tokens, the special-token mask), and the
computations its view needs (one feature's per-token arrays, a ranking, a subtree), so
views only format. ``View.from_result(result)`` is each view's constructor.

Example:
    >>> r = saekit.analysis.ablate_context(model, sae, "The Eiffel Tower is in", 123)
    >>> r.frame.sort_values("delta").head(3)   # the tidy frame
    >>> r.refs, print(r)                       # identity and text form
    >>> r                                      # in a notebook: the ContextAblation view
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from saekit.analysis._result import Result
from saekit.errors import SaekitError
from saekit.ids import FeatureRef

__all__ = ["Attribution", "ContextEffects", "FeatureAblation", "LogitEffects", "Neighbours",
           "Result", "SplittingTree", "SteeringResult", "UmapMap"]


Pairs = list[tuple[str, float]]


def _fmt(x: float) -> str:
    return f"{x:.3g}"


@dataclass(frozen=True, eq=False, repr=False)
class ContextEffects(Result):
    """:func:`~saekit.analysis.ablate_context`: each context token's effect on the feature
    at the last token. ``frame``: ``feature, pos, token_id, token, activation_full,
    activation_without, delta``; ``tokens``: the whole context (last token included)."""

    _view = "saekit.widgets.context_ablation:ContextAblation"

    frame: pd.DataFrame
    sae: str
    tokens: tuple[str, ...] = ()
    mode: str = "remove"

    def per_token(self, feature: int | FeatureRef | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """``delta [n_tokens]`` (0 where not ablated), ``ablated [n_tokens]`` and the full
        activation at the last token, for one feature."""
        rows = self.rows(feature)
        n = len(self.tokens)
        pos = rows["pos"].to_numpy(np.int64)
        delta, done = np.zeros(n), np.zeros(n, bool)
        delta[pos], done[pos] = rows["delta"].to_numpy(np.float64), True
        return delta, done, float(rows["activation_full"].iloc[0])

    def to_text(self) -> str:
        lines = [f"ContextEffects · {self.sae} · {len(self.tokens)} tokens · mode {self.mode}"]
        for f in self.features:
            rows = self.rows(f).nsmallest(3, "delta")
            most = ", ".join(f"{t!r} {_fmt(d)}" for t, d in zip(rows["token"], rows["delta"], strict=True))
            full = _fmt(float(rows["activation_full"].iloc[0]))
            lines.append(f"  #{f}: activation {full}; most needed: {most}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False, repr=False)
class FeatureAblation(Result):
    """:func:`~saekit.analysis.ablate_feature`: each next-token log-prob change when a
    feature is ablated. ``special``: ``[n_tokens]`` true at special tokens (BOS)."""

    _view = "saekit.widgets.logit_attribution:LogitAttribution"

    frame: pd.DataFrame
    sae: str
    special: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def per_token(self, feature: int | FeatureRef | None = None) -> dict[str, Any]:
        """One feature's ``tokens``, ``acts``, ``effect`` (of ablation on predicting each
        token, made at the previous position) and ``has_effect`` per token."""
        rows = self.rows(feature)
        delta = rows["delta"].to_numpy(np.float64)
        return {
            "feature": int(rows["feature"].iloc[0]), "tokens": rows["token"].astype(str).tolist(),
            "acts": rows["activation"].to_numpy(np.float64),
            "effect": np.concatenate([[0.0], np.nan_to_num(delta[:-1])]),
            "has_effect": np.concatenate([[False], ~np.isnan(delta[:-1])]),
        }

    def to_text(self) -> str:
        lines = [f"FeatureAblation · {self.sae}"]
        for f in self.features:
            rows = self.rows(f).nsmallest(3, "delta")
            pairs = zip(rows["next_token"], rows["delta"], strict=True)
            helped = ", ".join(f"{t!r} {_fmt(d)}" for t, d in pairs)
            lines.append(f"  #{f}: helps predict {helped}")
        return "\n".join(lines)


@dataclass(frozen=True, eq=False, repr=False)
class LogitEffects(Result):
    """:func:`~saekit.analysis.logit_effects`: ``feature, direction, rank, token_id, token, logit``."""

    frame: pd.DataFrame
    sae: str

    def pairs(self, feature: int | FeatureRef | None = None) -> tuple[Pairs, Pairs]:
        """``(top, bottom)`` ``(token, logit)`` pairs of one feature, strongest first."""
        rows = self.rows(feature).sort_values("rank")
        out = {d: [(str(t), float(v)) for t, v in zip(g["token"], g["logit"], strict=True)]
               for d, g in rows.groupby("direction")}
        return out.get("top", []), out.get("bottom", [])

    def to_text(self) -> str:
        lines = [f"LogitEffects · {self.sae}"]
        for f in self.features:
            top, bottom = self.pairs(f)
            lines.append(f"  #{f} top: " + ", ".join(f"{t!r} {_fmt(v)}" for t, v in top))
            lines.append(f"  #{f} bottom: " + ", ".join(f"{t!r} {_fmt(v)}" for t, v in bottom))
        return "\n".join(lines)


@dataclass(frozen=True, eq=False, repr=False)
class Attribution(Result):
    """:func:`~saekit.analysis.attribute`: ``sae, site, pos, token_id, token, feature,
    activation, gradient, attribution`` (largest ``|attribution|`` first).

    ``target`` says what is predicted in words; ``token`` is the predicted token's index
    in the text, or None when it lies past the end. ``sae`` is the first SAE's name.
    """

    frame: pd.DataFrame
    sae: str
    target: str = ""
    token: int | None = None

    @property
    def refs(self) -> tuple[FeatureRef, ...]:
        pairs = zip(self.frame["sae"].astype(str), self.frame["feature"].astype(int), strict=True)
        return tuple(FeatureRef(s, f) for s, f in dict.fromkeys(pairs))

    def ranked(self, sae: str | None = None, top: int = 20) -> pd.DataFrame:
        """Per feature of one SAE (default: ``self.sae``): ``feature, attribution`` (summed
        over positions), ``activation`` (the largest), by ``|attribution|``, at most ``top``."""
        rows = self.frame[self.frame["sae"] == (sae or self.sae)]
        grouped = rows.groupby("feature").agg(attribution=("attribution", "sum"),
                                              activation=("activation", "max"))
        order = np.argsort(-grouped["attribution"].abs().to_numpy(), kind="stable")[:top]
        return grouped.iloc[order].reset_index()

    def to_text(self) -> str:
        ranked = self.ranked(top=8)
        pairs = zip(ranked["feature"], ranked["attribution"], strict=True)
        rows = ", ".join(f"#{f} {v:+.3g}" for f, v in pairs)
        return f"Attribution to {self.target or 'the metric'} · {self.sae}: {rows or 'no active features'}"


@dataclass(frozen=True, eq=False, repr=False)
class Neighbours(Result):
    """:func:`~saekit.analysis.neighbours`: ``feature, rank, neighbour, cosine``."""

    frame: pd.DataFrame
    sae: str

    @property
    def refs(self) -> tuple[FeatureRef, ...]:
        feats = dict.fromkeys(self.features + [int(n) for n in self.frame["neighbour"]])
        return tuple(FeatureRef(self.sae, f) for f in feats)

    def pairs(self, feature: int | FeatureRef | None = None) -> list[tuple[int, float]]:
        """``(neighbour, cosine)`` pairs of one feature, nearest first."""
        rows = self.rows(feature).sort_values("rank")
        return [(int(n), float(c)) for n, c in zip(rows["neighbour"], rows["cosine"], strict=True)]

    def to_text(self) -> str:
        lines = [f"Neighbours · {self.sae}"]
        for f in self.features:
            lines.append(f"  #{f}: " + ", ".join(f"#{n} ({_fmt(c)})" for n, c in self.pairs(f)))
        return "\n".join(lines)


@dataclass(frozen=True, eq=False, repr=False)
class SplittingTree(Result):
    """:func:`~saekit.analysis.match_features`: ``level, parent_sae, parent, child_sae,
    child, cosine, n_children`` (plus co-activation columns when computed).

    Show one parent's subtree with ``tree.view(root=FeatureRef(sae, f))``.
    """

    _view = "saekit.widgets.splitting:FeatureSplitting"

    frame: pd.DataFrame
    sae: str = ""  # the smallest dictionary (the roots')

    @property
    def saes(self) -> list[str]:
        """Dictionary names, smallest first."""
        f = self.frame
        return list(dict.fromkeys([*f["parent_sae"].astype(str), *f["child_sae"].astype(str)]))

    @property
    def refs(self) -> tuple[FeatureRef, ...]:
        f = self.frame
        pairs = [*zip(f["parent_sae"].astype(str), f["parent"].astype(int), strict=True),
                 *zip(f["child_sae"].astype(str), f["child"].astype(int), strict=True)]
        return tuple(FeatureRef(s, x) for s, x in dict.fromkeys(pairs))

    def subtree(self, root: FeatureRef, max_children: int = 6,
                depth: int = 2) -> tuple[list[FeatureRef], list[tuple[int, int, float]]]:
        """Nodes (``root`` first) and ``(parent_node, child_node, cosine)`` edges under
        ``root``: each node's ``max_children`` best-matching children, ``depth`` levels."""
        f = self.frame
        parents = set(f["parent_sae"].astype(str))
        if root.sae not in parents:
            raise SaekitError(
                f"{root.sae!r} is never a parent in this tree (parents: {sorted(parents)}); "
                "the root must come from a dictionary that has a larger one after it."
            )
        nodes, edges, frontier = [root], [], [0]
        for _ in range(depth):
            nxt = []
            for i in frontier:
                node = nodes[i]
                rows = f[(f["parent_sae"] == node.sae) & (f["parent"] == node.feature)]
                for r in rows.sort_values("cosine", ascending=False).head(max_children).itertuples():
                    nodes.append(FeatureRef(str(r.child_sae), int(r.child)))
                    edges.append((i, len(nodes) - 1, float(r.cosine)))
                    nxt.append(len(nodes) - 1)
            frontier = nxt
        return nodes, edges

    def view(self, **kwargs: Any) -> Any:
        if "root" not in kwargs:
            raise SaekitError("A splitting tree shows one parent: tree.view(root=FeatureRef(sae, feature)).")
        return super().view(**kwargs)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {"text/plain": self.to_text()}

    def to_text(self) -> str:
        f = self.frame
        per = f.groupby("child_sae", sort=False).size()
        parts = [f"{c} ({n} children of {p})" for (c, n), p in
                 zip(per.items(), f.drop_duplicates("child_sae")["parent_sae"], strict=True)]
        return f"SplittingTree over {self.saes}: " + ", ".join(parts)


@dataclass(frozen=True, eq=False, repr=False)
class UmapMap(Result):
    """:func:`~saekit.analysis.umap_coords`: ``sae, feature, x, y`` per decoder direction."""

    _view = "saekit.widgets.umap_view:UmapView"

    frame: pd.DataFrame
    sae: str = ""  # the first dictionary

    @property
    def saes(self) -> list[str]:
        return list(dict.fromkeys(self.frame["sae"].astype(str)))

    @property
    def refs(self) -> tuple[FeatureRef, ...]:
        pairs = zip(self.frame["sae"].astype(str), self.frame["feature"].astype(int), strict=True)
        return tuple(FeatureRef(s, f) for s, f in pairs)

    def to_text(self) -> str:
        per = self.frame.groupby("sae", sort=False).size()
        return "UmapMap: " + ", ".join(f"{s} ({n} points)" for s, n in per.items())


@dataclass(frozen=True, eq=False, repr=False)
class SteeringResult(Result):
    """:func:`~saekit.analysis.steer`: ``prompt, baseline, steered, changed`` per prompt.

    ``values`` are the steered features' values in ``mode`` (one of
    :data:`saekit.analysis.steering.MODES`); the generation settings are kept beside them.
    Interactive steering is ``saekit.explore.steering`` (it needs the model).
    """

    frame: pd.DataFrame
    sae: str
    mode: str
    values: dict[int, float]
    site: str
    seed: int = 0
    do_sample: bool = False
    max_new_tokens: int = 32

    @property
    def features(self) -> list[int]:
        return list(self.values)

    def to_text(self) -> str:
        head = ", ".join(f"#{f} {v:g}" for f, v in self.values.items())
        lines = [f"SteeringResult · {self.sae} · {self.mode} {head}"]
        for r in self.frame.itertuples():
            lines += [f"  {r.prompt!r}", f"    baseline: {r.baseline!r}", f"    steered:  {r.steered!r}"]
        return "\n".join(lines)
