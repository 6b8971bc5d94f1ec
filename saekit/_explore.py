"""Adapters between analysis results and views, for :mod:`saekit.explore` (private).

Nothing here imports widget code at module level: views are built lazily, so that an
analysis result can show itself (``view_of``) without importing anywidget up front.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from saekit._html import visible_token
from saekit.errors import SaekitError
from saekit.ids import sae_name
from saekit.sae.base import SAE

if TYPE_CHECKING:
    import pandas as pd

    from saekit.analysis.stats import Example, FeatureStats
    from saekit.model import Model
    from saekit.widgets import (
        AttributionRanking,
        CardExample,
        FeatureCardData,
        SaekitView,
        SteerSlider,
        TokenHighlight,
    )


# ----- naming ---------------------------------------------------------------------------
def stats_name(stats: FeatureStats, sae: SAE | str | int, saes: Mapping[str, SAE] | None = None) -> str:
    """The name under which ``stats`` holds ``sae``: a name, an index, or an SAE (the key it
    has in ``saes`` if given there, else its :func:`saekit.ids.sae_name`)."""
    if isinstance(sae, SAE):
        given = [n for n, s in (saes or {}).items() if s is sae]
        return stats._name(given[0] if given else sae_name(sae))
    return stats._name(sae)


# ----- feature cards --------------------------------------------------------------------
@dataclass(frozen=True)
class CardSource:
    """Where a feature card's parts come from: stats (always), the SAE and model (optional)."""

    stats: FeatureStats
    name: str
    sae: SAE | None
    model: Model | None
    n_logits: int = 8
    n_neighbours: int = 8

    def card_data(self, feature: int) -> FeatureCardData:
        from saekit.widgets import FeatureCardData

        view = self.stats.feature(self.name, int(feature))
        data = view.card_dict()
        data["label"] = top_tokens_label(view.top, 4)
        if self.sae is not None and self.model is not None:
            data["top_logits"], data["bottom_logits"] = self._logits(int(feature))
        if self.sae is not None and self.sae.d_sae > 1 and self.n_neighbours > 0:
            from saekit.analysis.geometry import neighbours

            nb = neighbours(self.sae, int(feature), k=self.n_neighbours)
            pairs = zip(nb["neighbour"], nb["cosine"], strict=True)
            data["neighbours"] = [(int(f), float(c)) for f, c in pairs]
        return FeatureCardData.from_dict(data)

    def _logits(self, feature: int) -> tuple[list, list]:
        from saekit.analysis import logit_effects

        assert self.sae is not None and self.model is not None
        df = logit_effects(self.model, self.sae, feature, k=self.n_logits).sort_values("rank")
        pairs = {d: [(str(t), float(v)) for t, v in zip(g["token"], g["logit"], strict=True)]
                 for d, g in df.groupby("direction")}
        return pairs.get("top", []), pairs.get("bottom", [])


def card_source(stats: FeatureStats, sae: SAE | str | int, saes: Mapping[str, SAE] | None,
                model: Model | None, n_logits: int, n_neighbours: int) -> CardSource:
    name = stats_name(stats, sae, saes)
    obj = sae if isinstance(sae, SAE) else (saes or {}).get(name)
    return CardSource(stats, name, obj, model, n_logits, n_neighbours)


def top_tokens_label(examples: Sequence[Example], n: int) -> str:
    """The distinct tokens the feature fires on most, e.g. ``"' Paris' · ' France'"``."""
    counts = Counter(e.tokens[e.max_index] for e in examples if e.tokens)
    return " · ".join(repr(visible_token(t)) for t, _ in counts.most_common(n))


def stats_labels(stats: FeatureStats, n: int) -> dict[tuple[str, int], str]:
    """``(sae, feature) -> label`` of each feature's most frequent top-example tokens."""
    ex = stats.examples
    top = ex[ex["kind"] == "top"].sort_values(["sae", "feature", "rank"])
    if top.empty:
        return {}
    ids = stats.window_tokens[top["example"].to_numpy(), stats.context[0]]
    strings = [stats.vocab.get(int(i), "?") for i in ids]
    groups: dict[tuple[str, int], list[str]] = {}
    keys = zip(top["sae"].astype(str), top["feature"].astype(int), strict=True)
    for key, tok in zip(keys, strings, strict=True):
        groups.setdefault(key, []).append(tok)
    return {k: " · ".join(repr(visible_token(t)) for t, _ in Counter(v).most_common(n))
            for k, v in groups.items()}


def stats_density(stats: FeatureStats, keys: Sequence[tuple[str, int]]) -> np.ndarray:
    """Density of each ``(sae, feature)`` (0 where the stats do not cover it)."""
    summary = stats.summary.assign(sae=stats.summary["sae"].astype(str))
    lookup = summary.set_index(["sae", "feature"])["density"]
    return np.array([float(lookup.get(k, 0.0)) for k in keys], dtype=np.float64)


def example_snippet(example: Example, left: int = 8, right: int = 3) -> CardExample:
    """A short window of an example around its own token, for compact displays."""
    from saekit.widgets import CardExample

    lo, hi = max(0, example.max_index - left), example.max_index + right + 1
    return CardExample(list(example.tokens[lo:hi]), np.asarray(example.acts[lo:hi], np.float32))


# ----- steering -------------------------------------------------------------------------
_MODES = {"clamp": "clamp", "multiply": "scale", "scale": "scale"}


def steering_parts(
    model: Model, sae: SAE, features: Any, *, mode: str, max_new_tokens: int, seed: int,
    do_sample: bool, value_range: tuple[float, float], labels: Mapping[int, str],
) -> tuple[list[SteerSlider], Callable[[str, dict[int, float]], tuple[str, str]], Callable[..., str]]:
    """Sliders, ``generate_fn`` and ``code_fn`` for a :class:`~saekit.widgets.Steering` view."""
    from saekit.analysis import steering_edit

    if mode not in _MODES:
        raise SaekitError(f"mode must be 'clamp' or 'multiply' (alias 'scale'); got {mode!r}.")
    how = _MODES[mode]
    site = sae.cfg.site
    kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "seed": seed, "do_sample": do_sample}
    baselines: dict[str, str] = {}

    def generate(prompt: str, clamps: dict[int, float]) -> tuple[str, str]:
        if prompt not in baselines:  # one baseline per prompt: a slider move costs one generation
            baselines.clear()
            baselines[prompt] = model.generate(prompt, **kw)[0]
        base = baselines[prompt]
        if not clamps:
            return base, base
        return base, model.generate(prompt, edits={site: steering_edit(sae, clamps, how)}, **kw)[0]

    def code(prompt: str, clamps: dict[int, float]) -> str:
        extra = f", max_new_tokens={max_new_tokens}" + (f", do_sample=True, seed={seed}" if do_sample else "")
        if not clamps:
            return f"model.generate({prompt!r}{extra})"
        return "\n".join([
            "from saekit.analysis import steer",
            f"steer(model, sae, {prompt!r}, {clamps!r}, mode={how!r}{extra})",
            "# the same through the model layer:",
            "from saekit.splice import sae_edit",
            f"model.generate({prompt!r}, edits={{{site!r}: sae_edit(sae, {how}={clamps!r})}}{extra})",
        ])

    return _sliders(features, how, value_range, labels), generate, code


def _sliders(features: Any, how: str, value_range: tuple[float, float],
             labels: Mapping[int, str]) -> list[SteerSlider]:
    from saekit.widgets import SteerSlider

    lo, hi = value_range
    start = 1.0 if how == "scale" else 0.0
    if isinstance(features, Mapping):
        items = [(int(f), float(v)) for f, v in features.items()]
    elif isinstance(features, int):
        items = [(features, start)]
    else:
        specs = list(features)
        if all(isinstance(f, SteerSlider) for f in specs):
            return specs
        items = [(int(f), start) for f in specs]
    return [SteerSlider(f, labels.get(f, ""), value=v, min=min(lo, v), max=max(hi, v)) for f, v in items]


# ----- results display themselves --------------------------------------------------------
def view_of(result: Any, **kwargs: Any) -> SaekitView:
    """The view of an analysis result (see :func:`saekit.explore.view`)."""
    from saekit.analysis.stats import FeatureView

    if isinstance(result, FeatureView):
        from saekit.widgets import FeatureCard, FeatureCardData

        data = {**result.card_dict(), "label": top_tokens_label(result.top, 4), **kwargs}
        return FeatureCard(FeatureCardData.from_dict(data))
    columns = set(getattr(result, "columns", ()))
    if {"activation_full", "activation_without"} <= columns:
        from saekit.widgets import ContextAblation

        return ContextAblation.from_frame(result, **kwargs)
    if {"logprob_clean", "logprob_ablated"} <= columns:
        from saekit.widgets import LogitAttribution

        return LogitAttribution.from_frames(result, **kwargs)
    if {"sae", "feature", "x", "y"} <= columns:
        from saekit.widgets import UmapView

        return UmapView(result, **kwargs)
    if {"parent_sae", "child_sae"} <= columns:
        from saekit.widgets import FeatureSplitting

        if "root" not in kwargs:
            raise SaekitError("A splitting tree needs root=(sae, feature) to show.")
        return FeatureSplitting.from_tree(result, **kwargs)
    raise SaekitError(
        f"No view for a {type(result).__name__}"
        + (f" with columns {sorted(columns)}" if columns else "")
        + ". Views exist for FeatureView and the frames of ablate_context, ablate_feature, "
        "umap_coords and match_features."
    )


# ----- model runs for views ---------------------------------------------------------------
def site_of(sae: SAE) -> str:
    if not sae.cfg.site:
        raise SaekitError("This SAE does not say which site it reads (sae.cfg.site is empty); "
                          "set it with sae.cfg = sae.cfg.replace(site='resid_post.15').")
    return sae.cfg.site


def special_mask(model: Model, ids: torch.Tensor) -> torch.Tensor:
    """``[T]`` bool, true at the tokenizer's special tokens (BOS...)."""
    return torch.isin(ids, torch.tensor(sorted(model.special_ids), dtype=torch.long))


@torch.no_grad()
def text_codes(model: Model, sae: SAE, text: str) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Token strings, codes ``[T, d_sae]`` (``sae.encode`` of the site) and special mask ``[T]``."""
    ids = torch.tensor(model.to_tokens(text), dtype=torch.long)
    site = site_of(sae)
    acts = model.run(ids[None], read=[site], logits=False).acts[site][0]  # [T, d_in]
    codes = sae.encode(acts.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
    return model.to_strings(ids), codes, special_mask(model, ids)


def highlight_one(model: Model, sae: SAE, texts: str | Sequence[str], features: Sequence[int] | None,
                  *, top_k: int, n_features: int, labels: Mapping[int, str] | None,
                  title: str) -> TokenHighlight:
    """One :class:`~saekit.widgets.TokenHighlight` of ``texts`` for one SAE."""
    from saekit.widgets import TokenDoc, TokenHighlight

    runs = [text_codes(model, sae, t) for t in ([texts] if isinstance(texts, str) else list(texts))]
    if not runs:
        raise SaekitError("highlight() needs at least one text.")
    if features is None:
        peaks = [c[~m].max(0).values if (~m).any() else c.new_zeros(c.shape[1]) for _, c, m in runs]
        features = torch.stack(peaks).max(0).values.topk(min(n_features, sae.d_sae)).indices.tolist()
    feats = [int(f) for f in features]
    docs = []
    for tokens, codes, mask in runs:
        vals, ids = codes.topk(min(top_k, sae.d_sae), dim=1)  # [T, k]
        ids = torch.where(vals > 0, ids, -1)
        docs.append(TokenDoc(tokens, codes[:, feats], top_ids=ids, top_values=vals.clamp_min(0), mask=mask))
    return TokenHighlight(docs, feature_ids=feats, feature_labels=labels, title=title)


def feature_frames(model: Model, sae: SAE, ids: torch.Tensor, feature: int,
                   n_logits: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``ablate_feature`` and ``logit_effects`` frames of one feature on one text."""
    from saekit.analysis import ablate_feature, logit_effects

    return ablate_feature(model, sae, ids, feature), logit_effects(model, sae, feature, k=n_logits)


def target_ranking(model: Model, sae: SAE, ids: torch.Tensor, tokens: list[str], target: int | str,
                   top: int) -> AttributionRanking:
    """The ranking for ``target``: a token index in the text, or a token string after it."""
    if isinstance(target, str):
        return ranking(model, sae, ids, tokens, None, after=target, top=top)
    t = int(target) % len(tokens)
    if t == 0:
        raise SaekitError("target=0 is the first token, which nothing predicts; pick 1..n-1 or -1.")
    return ranking(model, sae, ids, tokens, t, top=top)


def ranking(model: Model, sae: SAE, ids: torch.Tensor, tokens: list[str], token: int | None, *,
            after: str | None = None, top: int = 15) -> AttributionRanking:
    """Features ranked by attribution to ``tokens[token]`` (or to ``after`` past the end)."""
    from saekit.analysis import attribute
    from saekit.widgets import AttributionRanking

    site = site_of(sae)
    if token is None:
        frame = attribute(model, sae, ids, after, pos=-1)
        return AttributionRanking.from_frame(frame, f"{after!r} after the text", site=site, top=top)
    frame = attribute(model, sae, ids, int(ids[token]), pos=token - 1)
    return AttributionRanking.from_frame(frame, f"{tokens[token]!r} at position {token}", token=token,
                                         site=site, top=top)
