"""The controller: runs the analyses a view needs, builds the view, wires its callbacks.

Views never import the model; clicks arrive here as :class:`~saekit.ids.FeatureRef` s and
are answered with new analysis results pushed to the view. All computation lives in
:mod:`saekit.analysis`; every view is built by ``View.from_result(result)``.

Example:
    >>> from saekit import explore
    >>> explore.highlight(model, sae, ["The cat sat on the mat."])
    >>> explore.context_ablation(model, sae, "The Eiffel Tower is in", 123)
    >>> card = explore.feature_card(stats, sae, 123, model=model)   # neighbours open in place
    >>> explore.steering(model, sae, {123: 8.0}, "I went to")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from saekit import _boundary, analysis
from saekit.analysis.steering import MODES
from saekit.errors import SaekitError
from saekit.ids import FeatureRef, name_saes
from saekit.sae.base import SAE

if TYPE_CHECKING:
    import ipywidgets

    from saekit.analysis import FeatureStats, FeatureView, Result
    from saekit.model import Model
    from saekit.widgets import (
        ContextAblation,
        FeatureCard,
        FeatureSplitting,
        LogitAttribution,
        SaekitView,
        Steering,
        SteerSlider,
        TokenHighlight,
        UmapView,
    )

__all__ = ["context_ablation", "feature_card", "follow", "highlight", "logit_attribution",
           "splitting", "steering", "umap", "view"]

SAEs = SAE | Sequence[SAE] | Mapping[str, SAE]


# ----- feature cards --------------------------------------------------------------------
def _card_fn(stats: FeatureStats, saes: Mapping[str, SAE], model: Model | None,
             n_logits: int = 8, n_neighbours: int = 8) -> Callable[[FeatureRef], FeatureView]:
    """``ref -> FeatureView`` with logits and neighbours where the ref's SAE is known."""
    def card(ref: FeatureRef) -> FeatureView:
        return analysis.feature_view(stats, ref, sae=saes.get(ref.sae), model=model,
                                     n_logits=n_logits, n_neighbours=n_neighbours)
    return card


def _named(stats: FeatureStats, sae: SAE | str | int | None, saes: SAEs | None) -> tuple[str, dict[str, SAE]]:
    """The stats' name of ``sae`` and ``{name: sae}`` of every SAE object given."""
    named = dict(name_saes(saes)) if saes is not None else {}
    if isinstance(sae, SAE):
        given = [n for n, s in named.items() if s is sae]
        name = given[0] if given else stats._name(sae)
        named.setdefault(name, sae)
        return name, named
    return stats._name(sae if sae is not None else 0), named


def feature_card(
    stats: FeatureStats,
    sae: SAE | str | int,
    feature: int,
    *,
    model: Model | None = None,
    saes: SAEs | None = None,
    n_logits: int = 8,
    n_neighbours: int = 8,
) -> FeatureCard:
    """A feature's card from the statistics pass, plus logit effects and decoder neighbours.

    Args:
        stats: :func:`saekit.feature_stats` output.
        sae: The SAE (needed for neighbours and logits), or its name / index in ``stats``.
        feature: The feature.
        model: Adds the top/bottom logit effects (needs the SAE object).
        saes: ``{name: sae}`` when ``sae`` is given by name.
        n_logits, n_neighbours: Rows of logit effects and neighbours.

    Clicking a neighbour shows that feature in the same card.

    Example:
        >>> card = explore.feature_card(stats, sae, 42, model=model)
    """
    from saekit.widgets import FeatureCard

    name, named = _named(stats, sae, saes)
    card_of = _card_fn(stats, named, model, n_logits, n_neighbours)
    card = FeatureCard.from_result(card_of(FeatureRef(name, _boundary.feature_id(feature, sae=name))))
    card.on_feature_click(lambda ref: card.update(card_of(ref)))
    return card


def follow(
    view: SaekitView,
    stats: FeatureStats,
    *,
    sae: SAE | str | int | None = None,
    model: Model | None = None,
    saes: SAEs | None = None,
    feature: int | FeatureRef | None = None,
) -> FeatureCard:
    """A feature card that shows whichever feature is clicked in ``view`` (or in the card).

    Clicks carry a :class:`~saekit.ids.FeatureRef`, so views of several dictionaries
    (UMAP, splitting) open the right one. ``sae`` and ``feature`` pick the first feature
    shown (default: feature 0 of the stats' first SAE).

    Example:
        >>> u = explore.umap(saes, stats=stats); u
        >>> explore.follow(u, stats, model=model, saes=saes)
    """
    from saekit.widgets import FeatureCard

    name, named = _named(stats, sae, saes)
    card_of = _card_fn(stats, named, model)
    start = FeatureRef(name, 0) if feature is None else (
        feature if isinstance(feature, FeatureRef) else FeatureRef(name, _boundary.feature_id(feature)))
    card = FeatureCard.from_result(card_of(start))
    view.on_feature_click(lambda ref: card.update(card_of(ref)))
    card.on_feature_click(lambda ref: card.update(card_of(ref)))
    return card


# ----- token highlighting ---------------------------------------------------------------
def highlight(
    model: Model,
    sae: SAEs,
    texts: str | Sequence[str],
    features: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
    *,
    top_k: int = 5,
    n_features: int = 5,
    labels: Mapping[int, str] | None = None,
) -> TokenHighlight | ipywidgets.Tab:
    """Texts coloured by SAE features, with each token's top features on hover.

    Args:
        model: The model.
        sae: One SAE, or several (one tab per SAE, titled by name).
        texts: One text or several (one row each).
        features: Feature columns to show (default: the ``n_features`` with the largest
            activation on these texts); a dict gives them per SAE name.
        top_k: Top features listed per token on hover.
        labels: Feature descriptions shown beside ids.

    Returns:
        A :class:`~saekit.widgets.TokenHighlight` of
        :func:`saekit.analysis.token_activations` (an ``ipywidgets.Tab`` of them for
        several SAEs). Special tokens (BOS) are masked.

    Example:
        >>> explore.highlight(model, sae, ["The cat sat.", "A dog ran."], features=[12, 40])
    """
    from saekit.widgets import TokenHighlight

    texts = _boundary.texts(texts)
    views = {}
    for name, s in name_saes(sae).items():
        feats = features.get(name) if isinstance(features, Mapping) else features
        feats = None if feats is None else _boundary.feature_ids(feats, s.d_sae)
        result = analysis.token_activations(model, s, texts, feats, top_k=top_k, n_features=n_features)
        views[name] = TokenHighlight.from_result(result, labels=labels, title=name)
    if len(views) == 1:
        return next(iter(views.values()))
    import ipywidgets

    tab = ipywidgets.Tab(children=list(views.values()))
    for i, name in enumerate(views):
        tab.set_title(i, name)
    return tab


# ----- ablation views -------------------------------------------------------------------
def context_ablation(
    model: Model,
    sae: SAE,
    text: str,
    feature: int,
    *,
    mode: str = "remove",
    replacement: int | str | None = None,
    label: str = "",
) -> ContextAblation:
    """Which context tokens the feature's activation at the last token needs.

    Shows :func:`saekit.analysis.ablate_context`: red tokens lower the activation when
    removed, blue ones raise it; the last token is outlined.

    Example:
        >>> explore.context_ablation(model, sae, "The Eiffel Tower is in", 123)
    """
    from saekit.widgets import ContextAblation

    result = analysis.ablate_context(model, sae, _boundary.text(text), feature, mode=mode,
                                     replacement=replacement, progress=False)
    return ContextAblation.from_result(result, label=label)


def logit_attribution(
    model: Model,
    sae: SAE,
    text: str,
    feature: int,
    *,
    target: int | str | None = None,
    n_logits: int = 8,
    top: int = 15,
    labels: Mapping[int, str] | None = None,
) -> LogitAttribution:
    """A feature on a text: activation, ablation effect per token, logit effects, attribution.

    Args:
        model, sae, text, feature: What to show.
        target: The prediction to rank features for: a token index in the text (its
            prediction from the previous position), or a single-token string predicted
            after the text. ``None``: none until a token is clicked.
        n_logits: Top / bottom logit-effect tokens.
        top: Features listed in the attribution ranking.
        labels: Feature descriptions for the ranking.

    Clicking a token ranks the features for predicting it; clicking a ranked feature
    shows that feature in the view.

    Example:
        >>> explore.logit_attribution(model, sae, "The capital of France is Paris", 123, target=-1)
    """
    from saekit.widgets import LogitAttribution

    feature = _boundary.feature_id(feature, sae.d_sae)
    ids = torch.tensor(model.to_tokens(_boundary.text(text)), dtype=torch.long)  # [T]
    labels = labels or {}

    def rank(token: int) -> analysis.Attribution:
        return analysis.attribute(model, sae, ids, int(ids[token]), pos=token - 1)

    def parts(f: int) -> tuple[analysis.FeatureAblation, analysis.LogitEffects]:
        return analysis.ablate_feature(model, sae, ids, f), analysis.logit_effects(model, sae, f, k=n_logits)

    first = None if target is None else _target_ranking(model, sae, ids, target, rank)
    view = LogitAttribution.from_result(*parts(feature), ranking=first, attribution_fn=rank,
                                        feature_labels=labels, label=labels.get(feature, ""), n_ranked=top)
    view.on_feature_click(lambda ref: view.show(*parts(ref.feature), label=labels.get(ref.feature, "")))
    return view


def _target_ranking(model: Model, sae: SAE, ids: torch.Tensor, target: int | str,
                    rank: Callable[[int], analysis.Attribution]) -> analysis.Attribution:
    """The attribution for ``target``: a token index in the text, or a token string after it."""
    if isinstance(target, str):
        return analysis.attribute(model, sae, ids, target, pos=-1)
    t = int(target) % ids.numel()
    if t == 0:
        raise SaekitError("target=0 is the first token, which nothing predicts; pick 1..n-1 or -1.")
    return rank(t)


# ----- geometry views -------------------------------------------------------------------
def umap(
    saes: SAEs,
    stats: FeatureStats | None = None,
    *,
    coords: analysis.UmapMap | None = None,
    color_by: str = "sae",
    clusters: int | None = None,
    n_label_tokens: int = 5,
    **umap_kwargs: Any,
) -> UmapView:
    """UMAP of decoder directions of one or more dictionaries.

    Args:
        saes: An SAE, a list or ``{name: sae}`` (names as in ``stats``).
        stats: Adds hover labels (each feature's top-activating tokens) and density colour.
        coords: A precomputed :func:`~saekit.analysis.umap_coords` (otherwise computed,
            with its disk cache).
        color_by: ``"sae"``, ``"density"`` or ``"cluster"``.
        clusters: Number of k-means clusters of the 2-D points, for ``color_by="cluster"``.
        n_label_tokens: Distinct top tokens in each label.
        **umap_kwargs: Passed to :func:`saekit.analysis.geometry.umap_coords`.

    Example:
        >>> u = explore.umap({"4k": sae_4k, "16k": sae_16k}, stats=stats, color_by="density")
    """
    from saekit.widgets import UmapView

    points = coords if coords is not None else analysis.umap_coords(name_saes(saes), **umap_kwargs)
    labels = stats.labels(n_label_tokens) if stats is not None else None
    density = stats.densities(points.refs) if stats is not None else None
    cluster = analysis.cluster_points(points, clusters) if clusters else None
    return UmapView.from_result(points, labels=labels, density=density, cluster=cluster, color_by=color_by)


def splitting(
    saes: SAEs,
    parent_feature: int,
    stats: FeatureStats | None = None,
    *,
    parent_sae: str | None = None,
    tree: analysis.SplittingTree | None = None,
    umap_view: UmapView | None = None,
    max_children: int = 6,
    n_examples: int = 2,
    acts: Any = None,
) -> FeatureSplitting:
    """A feature of a small dictionary and the features it splits into in larger ones.

    Args:
        saes: 2-3 dictionaries of increasing size on one site (``{name: sae}``).
        parent_feature: The feature in the parent dictionary.
        stats: Adds labels (top tokens), densities and top-example snippets per node.
        parent_sae: The parent's dictionary (default: the smallest).
        tree: A precomputed :func:`~saekit.analysis.match_features` tree.
        umap_view: Link to this UMAP view (the tree is highlighted there).
        max_children: Children shown per node.
        n_examples: Example snippets per node.
        acts: Activations for ``match_features`` co-activation columns.

    Example:
        >>> u = explore.umap(saes, stats=stats); u
        >>> explore.splitting(saes, 12, stats=stats, umap_view=u)
    """
    from saekit.widgets import FeatureSplitting, SplitNode

    named = name_saes(saes)
    tree = tree if tree is not None else analysis.match_features(named, acts=acts)
    labels = stats.labels(4) if stats is not None else {}

    def describe(sae: str, f: int) -> SplitNode:
        if stats is None or sae not in stats.sae_names:
            return SplitNode(sae, f)
        view = stats.feature(sae, f)
        snippets = [e.snippet() for e in view.top[:n_examples]]
        return SplitNode(sae, f, labels.get(FeatureRef(sae, f), ""), snippets, max_act=view.max_act,
                         density=view.density)

    root = FeatureRef(parent_sae or tree.saes[0], _boundary.feature_id(parent_feature, sae=parent_sae))
    split = FeatureSplitting.from_result(tree, root, describe=describe, max_children=max_children,
                                         depth=min(2, len(tree.saes) - 1))
    if umap_view is not None:
        split.link(umap_view)
    return split


# ----- steering -------------------------------------------------------------------------
def steering(
    model: Model,
    sae: SAE,
    features: Sequence[int] | Mapping[int, float] | Sequence[SteerSlider],
    prompt: str,
    *,
    max_new_tokens: int = 32,
    mode: str = "clamp",
    seed: int = 0,
    do_sample: bool = False,
    value_range: tuple[float, float] = (-10.0, 10.0),
    labels: Mapping[int, str] | None = None,
) -> Steering:
    """Sliders per feature; baseline and steered generations of the prompt side by side.

    Both generations call :meth:`Model.generate` with the same ``seed``; the steered one
    adds :func:`saekit.analysis.steering_edit` with ``mode`` (one of
    :data:`saekit.analysis.steering.MODES`: ``"clamp"``, ``"scale"``, ``"add"``) at
    ``sae.cfg.site``, error term kept. The baseline is computed once per prompt, so a
    slider move costs one generation. The view holds the model while it generates
    (``model.exclusive``): a cell that uses the model meanwhile waits, and the view shows
    "waiting for the model" while a cell holds it. "Copy as code" shows the equivalent
    ``saekit.analysis.steer`` call.

    Args:
        features: Feature ids, ``{feature: start value}``, or :class:`SteerSlider` specs.
        value_range: Slider range for features given by id or dict.

    Example:
        >>> explore.steering(model, sae, {123: 8.0}, "I think that", max_new_tokens=24)
    """
    from saekit.widgets import Steering

    if mode not in MODES:
        raise SaekitError(f"mode must be one of {MODES}; got {mode!r}.")
    kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "seed": seed, "do_sample": do_sample}
    baselines: dict[str, str] = {}

    def generate(text: str, values: dict[int, float]) -> tuple[str, str]:
        if text not in baselines:  # one baseline per prompt: a slider move costs one generation
            baselines.clear()
            baselines[text] = model.generate(text, **kw)[0]
        if not values:
            return baselines[text], baselines[text]
        edit = analysis.steering_edit(sae, values, mode)
        return baselines[text], model.generate(text, edits={sae.cfg.site: edit}, **kw)[0]

    def code(text: str, values: dict[int, float]) -> str:
        extra = f", max_new_tokens={max_new_tokens}" + (f", do_sample=True, seed={seed}" if do_sample else "")
        if not values:
            return f"model.generate({text!r}{extra})"
        call = f"steer(model, sae, {text!r}, {values!r}, mode={mode!r}{extra})"
        return f"from saekit.analysis import steer\n{call}"

    ids = torch.tensor(model.to_tokens(_boundary.text(prompt, "prompt")))
    _boundary.within_context(ids, model.context_length, truncate=False, new_tokens=max_new_tokens,
                             fix="Pass a shorter prompt, or fewer max_new_tokens.")
    sliders = _sliders(_steering_features(sae, features), mode, value_range, labels or {})
    return Steering(generate, sliders, prompt=prompt, mode=mode, code_fn=code, hold=model.exclusive)


def _steering_features(sae: SAE, features: Any) -> Any:
    """Feature ids and start values through the boundary (slider specs pass as they are)."""
    from saekit.widgets import SteerSlider

    if isinstance(features, Mapping):
        return _boundary.feature_values(features, "Steering start value", sae.d_sae)
    if isinstance(features, Sequence) and features and all(isinstance(f, SteerSlider) for f in features):
        _boundary.feature_ids([f.feature_id for f in features], sae.d_sae)
        return list(features)
    return _boundary.feature_ids(features, sae.d_sae)


def _sliders(features: Any, mode: str, value_range: tuple[float, float],
             labels: Mapping[int, str]) -> list[SteerSlider]:
    from saekit.widgets import SteerSlider

    lo, hi = value_range
    start = 1.0 if mode == "scale" else 0.0
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
def view(result: Result, **kwargs: Any) -> SaekitView:
    """The view of an analysis result: ``result.view(**kwargs)`` (what it shows in a notebook).

    Example:
        >>> explore.view(stats.feature("topk-1152", 7))
        >>> explore.view(tree, root=FeatureRef("topk-576", 12))
    """
    return result.view(**kwargs)
