"""The statistics pass: top, quantile and random examples and summary stats for every feature.

:func:`feature_stats` runs the model once over a corpus (all SAEs' sites read in the
same forward pass; SAEs on one site share its activations) and keeps, for every
feature of every SAE, bounded running state: memory is fixed by ``d_sae`` and the
settings and never grows with the corpus (no tokens x features matrix is kept; a
batch x features block is the largest temporary).

Context windows are cut from each batch while it is in memory: when a token enters a
feature's top-k, quantile or random selection, the token ids around it and that
feature's activation at each of them are copied into the selection's slot. No second
model pass is needed, and windows show exactly the activations the pass saw. A window
stops at the edge of its batch of texts, at the document's end, and at dropped
special tokens.

Example:
    >>> import saekit
    >>> model = saekit.load_model()
    >>> stats = saekit.feature_stats(model, sae, saekit.default_corpus(200))
    >>> stats.summary.sort_values("density").tail(3)
    >>> stats.feature("resid_post.15", 123)          # everything for a feature card
    >>> stats.save("stats/"); stats = saekit.FeatureStats.load("stats/")
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from saekit import _boundary
from saekit._html import visible_token
from saekit.analysis._assemble import KIND_DTYPE
from saekit.analysis._stats_io import load_parts, save_parts
from saekit.analysis._stats_pass import SAEs, check_model_saes, run_pass, settings_from
from saekit.analysis._stats_view import Example, FeatureView, QuantileBin, coarse_histogram, peak_label
from saekit.errors import FormatError, SaekitError
from saekit.ids import FeatureRef, name_saes, sae_name
from saekit.sae.base import SAE

__all__ = ["FeatureStats", "FeatureView", "Example", "QuantileBin", "feature_stats",
           "feature_stats_from_activations", "top_examples"]


@dataclass(frozen=True, eq=False)
class FeatureStats:
    """Result of the statistics pass over one corpus, for one or more SAEs.

    Attributes:
        summary: one row per (sae, feature): ``density`` (fraction of tokens with
            activation > 0), ``max_act``, ``mean_act`` (over all tokens),
            ``mean_active_act`` (over active tokens; NaN if never active), ``n_active``.
        examples: one row per kept example: ``sae, feature, kind`` (``top`` /
            ``quantile`` / ``random``), ``bin`` (quantile bin, -1 otherwise), ``rank``
            (by activation within its kind and bin), ``example`` (row of the window
            arrays), ``doc, pos, activation``.
        histograms: nonzero counts of nonzero activations on a fixed log10 grid
            (20 bins per decade over [1e-4, 1e4], outliers in the end bins):
            ``sae, feature, bin, log10_lo, log10_hi, count``.
        window_tokens: ``[n_examples, left + 1 + right]`` token ids, -1 where the
            window has no token; column ``left`` is the example's own token.
        window_acts: same shape, the feature's activation at each window token.
        vocab: token id -> string for every id in the windows.
        info: ``n_tokens``, ``n_texts``, ``context``, settings and per-SAE metadata.
    """

    summary: pd.DataFrame
    examples: pd.DataFrame
    histograms: pd.DataFrame
    window_tokens: np.ndarray
    window_acts: np.ndarray
    vocab: dict[int, str]
    info: dict[str, Any]

    # ----- description ---------------------------------------------------------------
    @property
    def sae_names(self) -> list[str]:
        return list(self.info["saes"])

    @property
    def context(self) -> tuple[int, int]:
        left, right = self.info["context"]
        return int(left), int(right)

    @property
    def n_tokens(self) -> int:
        return int(self.info["n_tokens"])

    def __repr__(self) -> str:
        left, right = self.context
        lines = [f"FeatureStats over {self.n_tokens:,} tokens from {self.info['n_texts']:,} texts "
                 f"(context {left} left, {right} right)"]
        for name in self.sae_names:
            s = self.summary[self.summary["sae"] == name]
            dead = int((s["n_active"] == 0).sum())
            n_ex = int((self.examples["sae"] == name).sum())
            lines.append(f"  {name}: {len(s)} features, {dead} never active, median density "
                         f"{100 * float(s['density'].median()):.3g}%, {n_ex:,} examples")
        return "\n".join(lines)

    # ----- lookups -------------------------------------------------------------------
    def _name(self, sae: str | int | SAE) -> str:
        """The stats' key for ``sae``: a name, an index, or an SAE (its :func:`sae_name`)."""
        names = self.sae_names
        if isinstance(sae, SAE):
            sae = sae_name(sae)
            if sae not in names:
                raise SaekitError(f"No SAE {sae!r} in these stats; they hold {names}. Pass the SAE's name "
                                  "there, or saes={name: sae} (or name it: sae.cfg.replace(name=...)).")
        if isinstance(sae, int) and not isinstance(sae, bool) and -len(names) <= sae < len(names):
            return names[sae]
        if isinstance(sae, str) and sae in names:
            return sae
        raise SaekitError(f"No SAE {sae!r} in these stats. Use one of {names} (or its index).")

    def _check_feature(self, name: str, feature: int) -> int:
        d_sae = int(self.info["saes"][name]["d_sae"])
        return _boundary.feature_id(feature, d_sae, sae=name)  # ints, numpy ints, refs to this SAE

    def _rows(self, name: str, feature: int) -> pd.DataFrame:
        ex = self.examples
        return ex[(ex["sae"] == name) & (ex["feature"] == feature)]

    def example(self, example: int) -> Example:
        """The window of one example id (a row of ``examples``)."""
        row = self.examples.iloc[int(example)]
        tok = self.window_tokens[int(example)]
        keep = tok >= 0
        ids = tok[keep]
        return Example(
            doc=int(row["doc"]), pos=int(row["pos"]), activation=float(row["activation"]),
            tokens=tuple(self.vocab[int(i)] for i in ids), token_ids=ids.astype(np.int64),
            acts=self.window_acts[int(example)][keep], max_index=int(keep[: self.context[0]].sum()),
        )

    def top_examples(self, sae: str | int, feature: int, n: int | None = None) -> pd.DataFrame:
        """Top activating examples of a feature, highest first.

        Returns:
            DataFrame with ``rank, doc, pos, activation, example, text`` (``text`` is
            the context window with the example's token wrapped in ``«»``).

        Example:
            >>> stats.top_examples("resid_post.15", 7, n=3)
        """
        name = self._name(sae)
        rows = self._rows(name, self._check_feature(name, feature))
        rows = rows[rows["kind"] == "top"].head(n)
        out = rows[["rank", "doc", "pos", "activation", "example"]].reset_index(drop=True)
        out["text"] = [self.example(e).text() for e in out["example"]]
        return out

    def feature(self, sae: str | int | SAE | FeatureRef, feature: int | None = None,
                hist_bins: int = 30) -> FeatureView:
        """Everything about one feature: a :class:`FeatureView` (shows itself as a feature card).

        Example:
            >>> stats.feature("topk-1152", 7) ; stats.feature(FeatureRef("topk-1152", 7))
        """
        if isinstance(sae, FeatureRef):
            feature = sae.feature
            sae = sae.sae
        if feature is None:
            raise SaekitError("Which feature? Pass stats.feature(sae, 12) or "
                              "stats.feature(FeatureRef(sae, 12)).")
        name = self._name(sae)
        f = self._check_feature(name, feature)
        s = self.summary[(self.summary["sae"] == name) & (self.summary["feature"] == f)].iloc[0]
        rows = self._rows(name, f)
        pick = functools.partial(_examples_of, self, rows)
        top = pick("top", -1)
        n_q = int(self.info["settings"]["n_quantiles"])
        width = float(s["max_act"]) / n_q
        quantiles = tuple(
            QuantileBin(b, b * width, (b + 1) * width, pick("quantile", b)) for b in range(n_q)
        )
        h = self.histograms
        h = h[(h["sae"] == name) & (h["feature"] == f)]
        edges, counts = coarse_histogram(h["log10_lo"].to_numpy(), h["log10_hi"].to_numpy(),
                                         h["count"].to_numpy(), hist_bins)
        return FeatureView(
            sae=name, feature=f, density=float(s["density"]), max_act=float(s["max_act"]),
            mean_act=float(s["mean_act"]), mean_active_act=float(s["mean_active_act"]),
            n_active=int(s["n_active"]), top=top, quantiles=quantiles,
            random=pick("random", -1), hist_edges=edges, hist_counts=counts,
            label=peak_label(top, 4),
        )

    def labels(self, n: int = 4) -> dict[FeatureRef, str]:
        """Each feature's label: the ``n`` tokens its top examples peak on most often."""
        ex = self.examples
        top = ex[ex["kind"] == "top"].sort_values(["sae", "feature", "rank"])
        ids = self.window_tokens[top["example"].to_numpy(), self.context[0]]
        groups: dict[FeatureRef, list[str]] = {}
        keys = zip(top["sae"].astype(str), top["feature"].astype(int), strict=True)
        for (sae, f), i in zip(keys, ids, strict=True):
            groups.setdefault(FeatureRef(sae, f), []).append(self.vocab.get(int(i), "?"))
        return {k: " · ".join(repr(visible_token(t)) for t, _ in Counter(v).most_common(n))
                for k, v in groups.items()}

    def densities(self, refs: Sequence[FeatureRef]) -> np.ndarray:
        """``[len(refs)]`` firing density of each feature (0 where these stats lack it)."""
        summary = self.summary.assign(sae=self.summary["sae"].astype(str))
        lookup = summary.set_index(["sae", "feature"])["density"]
        return np.array([float(lookup.get((r.sae, r.feature), 0.0)) for r in refs], dtype=np.float64)

    def peak_tokens(self, sae: str | int, kind: str = "top") -> pd.DataFrame:
        """Per feature, the token its ``kind`` examples most often peak on.

        A feature whose top examples agree on one word is a token-level feature, the
        easiest kind to check (quantile share, vocabulary sweep). Tokens are compared
        stripped and lower-cased (``" The"`` and ``"the"`` agree).

        Returns:
            DataFrame indexed by ``feature`` with ``token`` (the most common peak token),
            ``share`` (of the examples peaking on it), ``n`` (examples) and ``density``;
            features with no examples of that kind are left out.

        Example:
            >>> stats.peak_tokens("topk-1152").query("n >= 20").nlargest(5, "share")
        """
        name = self._name(sae)
        ex = self.examples[(self.examples["sae"] == name) & (self.examples["kind"] == kind)]
        ids = self.window_tokens[ex["example"].to_numpy(), self.context[0]]  # [n_examples]
        words = pd.Series([self.vocab[int(i)].strip().lower() for i in ids], index=ex.index)
        grouped = words.groupby(ex["feature"].to_numpy())
        top = grouped.agg(lambda w: w.value_counts().index[0])
        out = pd.DataFrame({"token": top, "share": grouped.agg(lambda w: w.value_counts().iloc[0] / len(w)),
                            "n": grouped.size()})
        out.index.name = "feature"
        density = self.summary[self.summary["sae"] == name].set_index("feature")["density"]
        return out.join(density)

    def density_histogram(self, sae: str | int, n_bins: int = 40) -> pd.DataFrame:
        """Histogram of log10 density over the SAE's features that were ever active.

        Returns:
            DataFrame ``log10_lo, log10_hi, count``; never-active features are left
            out (their count is ``(stats.summary.n_active == 0).sum()`` for the SAE).
        """
        name = self._name(sae)
        d = self.summary.loc[self.summary["sae"] == name, "density"].to_numpy()
        d = np.log10(d[d > 0])
        counts, edges = np.histogram(d, bins=n_bins) if d.size else (np.zeros(0), np.zeros(1))
        return pd.DataFrame({"log10_lo": edges[:-1], "log10_hi": edges[1:], "count": counts.astype(np.int64)})

    @functools.cached_property
    def example_tokens(self) -> pd.DataFrame:
        """Long form of the windows: ``example, offset, token_id, token, activation, is_max``.

        ``offset`` is relative to the example's own token (``is_max`` where it is 0).
        Built on first access (it has ``n_examples x window`` rows).
        """
        ex, col = np.nonzero(self.window_tokens >= 0)
        ids = self.window_tokens[ex, col].astype(np.int64)
        vocab_ids = np.array(sorted(self.vocab), dtype=np.int64)
        strings = np.array([self.vocab[int(i)] for i in vocab_ids], dtype=object)
        categories, code_of = np.unique(strings, return_inverse=True)  # strings may repeat
        token = pd.Categorical.from_codes(code_of[np.searchsorted(vocab_ids, ids)], categories=categories)
        offset = col - self.context[0]
        return pd.DataFrame({
            "example": ex.astype(np.int64), "offset": offset.astype(np.int64),
            "token_id": ids.astype(np.int64), "token": token, "activation": self.window_acts[ex, col],
            "is_max": offset == 0,
        })

    # ----- files ---------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write to a folder (parquet frames, safetensors windows, JSON manifest), atomically."""
        frames = {"summary": self.summary, "examples": self.examples, "histograms": self.histograms}
        windows = {"tokens": self.window_tokens, "acts": self.window_acts}
        manifest = {"info": self.info, "vocab": {str(k): v for k, v in self.vocab.items()}}
        return save_parts(path, frames, windows, manifest)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureStats:
        """Read a folder written by :meth:`save` (no pickle involved)."""
        frames, windows, manifest = load_parts(path)
        examples = frames["examples"]
        examples["kind"] = examples["kind"].astype(KIND_DTYPE)
        tokens, acts = windows.get("tokens"), windows.get("acts")
        if tokens is None or acts is None or tokens.shape != acts.shape or len(tokens) != len(examples):
            raise FormatError(f"Windows in {path} do not match its examples table; save it again.")
        vocab = {int(k): str(v) for k, v in manifest["vocab"].items()}
        return cls(frames["summary"], examples, frames["histograms"], tokens, acts, vocab, manifest["info"])


def _examples_of(stats: FeatureStats, rows: pd.DataFrame, kind: str, b: int) -> tuple[Example, ...]:
    chosen = rows[(rows["kind"] == kind) & (rows["bin"] == b)]
    return tuple(stats.example(e) for e in chosen["example"])


def top_examples(stats: FeatureStats, sae: str | int, feature: int, n: int | None = None) -> pd.DataFrame:
    """Top activating examples of ``feature`` (see :meth:`FeatureStats.top_examples`)."""
    return stats.top_examples(sae, feature, n)


def feature_stats(
    model: Any,
    saes: SAEs,
    corpus: str | Sequence[str],
    *,
    k: int = 20,
    n_quantiles: int = 10,
    examples_per_quantile: int = 5,
    n_random: int = 10,
    context: tuple[int, int] = (24, 8),
    batch_size: int = 16,
    max_length: int | None = None,
    keep_special: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> FeatureStats:
    """One pass over ``corpus`` collecting examples and statistics for every feature.

    Args:
        model: a :class:`saekit.Model`.
        saes: an SAE, a list of SAEs, or ``{name: sae}``. Each SAE's ``cfg.site``
            names the site it reads. Default names: :func:`saekit.ids.sae_name`
            (``cfg.name``, else ``"topk-4608@resid_post.15"``; ``"-2"`` for repeats).
        corpus: texts (longer ones are chunked into rows of ``max_length`` tokens).
        k: top activating examples kept per feature.
        n_quantiles: activation intervals, linear in ``[0, max]`` per feature;
            ``examples_per_quantile`` examples are sampled uniformly from each (see
            ``saekit/analysis/_accumulate.py`` for how the running max is handled).
        n_random: uniformly random active examples per feature.
        context: tokens shown ``(left, right)`` of each example's token.
        batch_size, max_length: batching of the model pass.
        keep_special: include BOS and other special tokens in the statistics.
        seed: seeds the reservoir sampling (same inputs and seed -> same examples).
        progress: show a progress bar.

    Returns:
        :class:`FeatureStats`.

    Memory: the running state is fixed by the SAE sizes, not the corpus: about
    ``d_sae * (k + n_quantiles * examples_per_quantile + n_random) * (left + right + 1)
    * 8`` bytes for the kept windows (107 MB for 4608 features with the defaults),
    plus one ``batch tokens x d_sae`` block of codes at a time.

    Example:
        >>> stats = saekit.feature_stats(model, {"l15": sae}, saekit.default_corpus(100))
        >>> stats.top_examples("l15", 42, n=5)
    """
    named = name_saes(saes)
    check_model_saes(model, named)
    corpus = _boundary.texts(corpus, "corpus")
    settings = settings_from(k, n_quantiles, examples_per_quantile, n_random, context)
    sites = list(dict.fromkeys(s.cfg.site for s in named.values()))
    stream = model.iter_activations(corpus, sites, batch_size=batch_size, max_length=max_length,
                                    keep_special=keep_special, progress=progress)
    extra = {"model": getattr(model, "name", ""), "keep_special": keep_special,
             "n_texts": len(corpus)}
    return FeatureStats(**run_pass(stream, named, settings, seed, model.to_strings, extra))


def feature_stats_from_activations(
    batches: Any,
    saes: SAEs,
    *,
    token_strings: Callable[[list[int]], Sequence[str]] | None = None,
    k: int = 20,
    n_quantiles: int = 10,
    examples_per_quantile: int = 5,
    n_random: int = 10,
    context: tuple[int, int] = (24, 8),
    seed: int = 0,
) -> FeatureStats:
    """The statistics pass over activations you already have.

    Args:
        batches: one :class:`saekit.Activations` or an iterable of them, in stream
            order (tokens of a document contiguous, as ``Model.iter_activations``
            yields them). An SAE without ``cfg.site`` reads the only site present.
        saes: as in :func:`feature_stats`.
        token_strings: ids -> strings (e.g. ``model.to_strings``); default ``"<id>"``.
        k, n_quantiles, examples_per_quantile, n_random, context, seed: as in
            :func:`feature_stats`.

    Example:
        >>> acts = model.activations(texts, ["resid_post.15"])
        >>> stats = saekit.feature_stats_from_activations(acts, sae, token_strings=model.to_strings)
    """
    from saekit.activations import Activations

    stream: Iterable[Activations] = [batches] if isinstance(batches, Activations) else batches
    named = name_saes(saes)
    settings = settings_from(k, n_quantiles, examples_per_quantile, n_random, context)
    return FeatureStats(**run_pass(stream, named, settings, seed, token_strings, {}))

