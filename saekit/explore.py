"""The controller: the one place that knows the model, the analysis functions and the views.

Each function runs the analyses a view needs, builds the view, and wires its clicks and
sliders back into the model (views never import the model themselves).

Example:
    >>> from saekit import explore
    >>> explore.highlight(model, sae, ["The cat sat on the mat."])
    >>> explore.context_ablation(model, sae, "The Eiffel Tower is in", 123)
    >>> card = explore.feature_card(stats, sae, 123, model=model)   # neighbours open in place
    >>> explore.steering(model, sae, {123: 8.0}, "I went to")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from saekit._explore import (
    CardSource,
    card_source,
    example_snippet,
    feature_frames,
    highlight_one,
    ranking,
    site_of,
    special_mask,
    stats_density,
    stats_labels,
    target_ranking,
)
from saekit.ids import name_saes
from saekit.sae.base import SAE

if TYPE_CHECKING:
    import ipywidgets
    import pandas as pd

    from saekit.analysis.stats import FeatureStats
    from saekit.model import Model
    from saekit.widgets import (
        ContextAblation,
        FeatureCard,
        FeatureSplitting,
        LogitAttribution,
        SaekitView,
        Steering,
        TokenHighlight,
        UmapView,
    )

__all__ = ["context_ablation", "feature_card", "follow", "highlight", "logit_attribution",
           "splitting", "steering", "umap", "view"]

SAEs = SAE | Sequence[SAE] | Mapping[str, SAE]


# ----- feature cards --------------------------------------------------------------------
def feature_card(
    stats: FeatureStats,
    sae: SAE | str | int,
    feature: int,
    *,
    model: Model | None = None,
    saes: Mapping[str, SAE] | None = None,
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

    source = card_source(stats, sae, saes, model, n_logits, n_neighbours)
    card = FeatureCard(source.card_data(feature))
    card.on_feature_click(lambda f: card.update(source.card_data(f)))
    return card


def follow(
    view: SaekitView,
    stats: FeatureStats,
    *,
    sae: SAE | str | int | None = None,
    model: Model | None = None,
    saes: Mapping[str, SAE] | None = None,
    feature: int | None = None,
) -> FeatureCard:
    """A feature card that shows whichever feature is clicked in ``view``.

    Multi-dictionary views (UMAP, splitting) say which dictionary was clicked; for the
    others ``sae`` names it. Display the card next to the view.

    Example:
        >>> u = explore.umap(saes, stats=stats); u
        >>> explore.follow(u, stats, model=model, saes=saes)
    """
    from saekit.widgets import FeatureCard

    default = sae if sae is not None else 0
    sources: dict[str, CardSource] = {}

    def source_for(name: str | int) -> CardSource:
        key = str(name)
        if key not in sources:
            sources[key] = card_source(stats, name if not isinstance(sae, SAE) else sae, saes, model, 8, 8)
        return sources[key]

    def current_sae() -> str | int:
        requested = getattr(view, "requested_sae", "")
        return requested if requested and not isinstance(sae, SAE) else default

    start = feature if feature is not None else _initial_feature(view)
    card = FeatureCard(source_for(current_sae()).card_data(start))
    view.on_feature_click(lambda f: card.update(source_for(current_sae()).card_data(f)))
    card.on_feature_click(lambda f: card.update(source_for(current_sae()).card_data(f)))
    return card


def _initial_feature(view: SaekitView) -> int:
    for name in ("requested_feature", "feature_id", "selected_feature"):
        value = getattr(view, name, None)
        if isinstance(value, int):
            return value
    nodes = getattr(view, "nodes", None)
    if nodes:
        return int(nodes[0]["feature"])
    return 0


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
        A :class:`~saekit.widgets.TokenHighlight` (an ``ipywidgets.Tab`` of them for
        several SAEs). Activations are ``sae.encode`` of the model's activations at
        ``sae.cfg.site``; special tokens (BOS) are masked.

    Example:
        >>> explore.highlight(model, sae, ["The cat sat.", "A dog ran."], features=[12, 40])
    """
    named = name_saes(sae)
    views = {}
    for name, s in named.items():
        feats = features.get(name) if isinstance(features, Mapping) else features
        views[name] = highlight_one(model, s, texts, feats, top_k=top_k, n_features=n_features,
                                    labels=labels, title=name)
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

    Runs :func:`saekit.analysis.ablate_context` and shows it: red tokens lower the
    activation when removed, blue ones raise it; the last token is outlined.

    Example:
        >>> explore.context_ablation(model, sae, "The Eiffel Tower is in", 123)
    """
    from saekit.analysis import ablate_context
    from saekit.widgets import ContextAblation

    frame = ablate_context(model, sae, text, feature, mode=mode, replacement=replacement, progress=False)
    tokens = model.to_strings(model.to_tokens(text))
    return ContextAblation.from_frame(frame, tokens, sae_name=site_of(sae), label=label, mode=mode)


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

    ids = torch.tensor(model.to_tokens(text), dtype=torch.long)  # [T]
    tokens = model.to_strings(ids)
    mask = special_mask(model, ids).numpy()

    def rank(token: int) -> Any:
        return ranking(model, sae, ids, tokens, token, top=top)

    ablation, logits = feature_frames(model, sae, ids, feature, n_logits)
    first = None if target is None else target_ranking(model, sae, ids, tokens, target, top)
    view = LogitAttribution.from_frames(ablation, logits, mask=mask, ranking=first, attribution_fn=rank,
                                        sae_name=site_of(sae), feature_labels=labels,
                                        label=(labels or {}).get(feature, ""))

    def show(f: int) -> None:
        abl, lg = feature_frames(model, sae, ids, f, n_logits)
        view.set_frames(abl, lg, mask=mask, label=(labels or {}).get(f, ""))

    view.on_feature_click(show)
    return view


# ----- geometry views -------------------------------------------------------------------
def umap(
    saes: SAEs,
    stats: FeatureStats | None = None,
    *,
    coords: pd.DataFrame | None = None,
    color_by: str = "sae",
    clusters: int | None = None,
    n_label_tokens: int = 5,
    **umap_kwargs: Any,
) -> UmapView:
    """UMAP of decoder directions of one or more dictionaries.

    Args:
        saes: An SAE, a list or ``{name: sae}`` (names as in ``stats``).
        stats: Adds hover labels (each feature's top-activating tokens) and density colour.
        coords: Precomputed ``umap_coords`` (otherwise computed, with its disk cache).
        color_by: ``"sae"``, ``"density"`` or ``"cluster"``.
        clusters: Number of k-means clusters of the 2-D points, for ``color_by="cluster"``.
        n_label_tokens: Distinct top tokens in each label.
        **umap_kwargs: Passed to :func:`saekit.analysis.geometry.umap_coords`.

    Example:
        >>> u = explore.umap({"4k": sae_4k, "16k": sae_16k}, stats=stats, color_by="density")
    """
    from saekit.widgets import UmapView

    named = name_saes(saes)
    if coords is None:
        from saekit.analysis.geometry import umap_coords

        coords = umap_coords(named, **umap_kwargs)
    keys = list(zip(coords["sae"].astype(str), coords["feature"].astype(int), strict=True))
    labels = stats_labels(stats, n_label_tokens) if stats is not None else None
    density = stats_density(stats, keys) if stats is not None else None
    cluster = _kmeans(coords, clusters) if clusters else None
    return UmapView(coords, labels=labels, density=density, cluster=cluster, color_by=color_by)


def _kmeans(coords: pd.DataFrame, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    xy = coords[["x", "y"]].to_numpy(np.float64)
    return KMeans(n_clusters=min(int(k), len(xy)), n_init=4, random_state=0).fit_predict(xy)


def splitting(
    saes: SAEs,
    parent_feature: int,
    stats: FeatureStats | None = None,
    *,
    parent_sae: str | None = None,
    tree: pd.DataFrame | None = None,
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
        tree: A precomputed :func:`~saekit.analysis.geometry.match_features` tree.
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
    if tree is None:
        from saekit.analysis.geometry import match_features

        tree = match_features(named, acts=acts)
    root = parent_sae or min(named, key=lambda n: named[n].d_sae)
    labels = stats_labels(stats, 4) if stats is not None else {}

    def describe(sae: str, f: int) -> SplitNode:
        if stats is None or sae not in stats.sae_names:
            return SplitNode(sae, f)
        view = stats.feature(sae, f)
        snippets = [example_snippet(e) for e in view.top[:n_examples]]
        return SplitNode(sae, f, labels.get((sae, f), ""), snippets, max_act=view.max_act,
                         density=view.density)

    split = FeatureSplitting.from_tree(tree, (root, int(parent_feature)), describe=describe,
                                       max_children=max_children, depth=min(2, len(named) - 1))
    if umap_view is not None:
        split.link(umap_view)
    return split


# ----- steering -------------------------------------------------------------------------
def steering(
    model: Model,
    sae: SAE,
    features: Sequence[int] | Mapping[int, float] | Sequence[Any],
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
    adds ``sae_edit(sae, clamp=...)`` (``mode="clamp"``) or ``scale=...``
    (``mode="multiply"``) at ``sae.cfg.site``, error term kept. The baseline is computed
    once per prompt, so a slider move costs one generation. "Copy as code" shows the
    equivalent ``saekit.analysis.steer`` / ``model.generate(..., edits=...)`` call.

    Args:
        features: Feature ids, ``{feature: start value}``, or :class:`SteerSlider` specs.
        value_range: Slider range for features given by id or dict.

    Example:
        >>> explore.steering(model, sae, {123: 8.0}, "I think that", max_new_tokens=24)
    """
    from saekit._explore import steering_parts
    from saekit.widgets import Steering

    sliders, generate, code = steering_parts(model, sae, features, mode=mode, max_new_tokens=max_new_tokens,
                                             seed=seed, do_sample=do_sample, value_range=value_range,
                                             labels=labels or {})
    shown = "multiply" if mode in ("multiply", "scale") else "clamp"
    return Steering(generate, sliders, prompt=prompt, mode=shown, code_fn=code)


# ----- results display themselves --------------------------------------------------------
def view(result: Any, **kwargs: Any) -> SaekitView:
    """The view of an analysis result (what its ``_repr_mimebundle_`` would show).

    Supported: a :class:`~saekit.analysis.stats.FeatureView` (feature card), and the
    DataFrames of ``ablate_context`` (context ablation; pass ``tokens=``),
    ``ablate_feature`` (logit attribution), ``umap_coords`` (UMAP) and
    ``match_features`` (splitting; pass ``root=(sae, feature)``). ``kwargs`` go to the
    view's builder.

    Example:
        >>> explore.view(stats.feature("resid_post.15", 7))
    """
    from saekit._explore import view_of

    return view_of(result, **kwargs)
