"""Analysis engine: what a feature does, as pure functions returning data.

Every function takes a model, SAE(s) and token ids / texts and returns a small frozen
result (:mod:`saekit.analysis.results`) holding a tidy long frame (``.frame``), the
:class:`~saekit.ids.FeatureRef` s it is about (``.refs``) and a text form; in a notebook
it shows itself with its view (imported only then). Nothing here draws or prints.

Example:
    >>> from saekit import analysis
    >>> effects = analysis.logit_effects(model, sae, 123, k=10)
    >>> effects.frame, effects.refs
"""

from saekit.analysis.ablation import ablate_context, ablate_feature
from saekit.analysis.attribution import AttributionCheck, attribute, check_attributions
from saekit.analysis.card import feature_view
from saekit.analysis.geometry import (
    cluster_points,
    match_features,
    max_cosine,
    neighbours,
    umap_coords,
    unit_directions,
    warm_umap,
)
from saekit.analysis.highlight import TokenActivations, token_activations
from saekit.analysis.logits import logit_effects
from saekit.analysis.neurons import NeuronBasis, neuron_basis
from saekit.analysis.results import (
    Attribution,
    ContextEffects,
    FeatureAblation,
    LogitEffects,
    Neighbours,
    Result,
    SplittingTree,
    SteeringResult,
    UmapMap,
)
from saekit.analysis.stats import (
    Example,
    FeatureStats,
    FeatureView,
    QuantileBin,
    feature_stats,
    feature_stats_from_activations,
    top_examples,
)
from saekit.analysis.steering import steer, steering_edit
from saekit.analysis.vocab import vocab_sweep

__all__ = [
    "Attribution",
    "AttributionCheck",
    "ContextEffects",
    "Example",
    "FeatureAblation",
    "FeatureStats",
    "FeatureView",
    "LogitEffects",
    "Neighbours",
    "NeuronBasis",
    "QuantileBin",
    "Result",
    "SplittingTree",
    "SteeringResult",
    "TokenActivations",
    "UmapMap",
    "ablate_context",
    "ablate_feature",
    "attribute",
    "check_attributions",
    "cluster_points",
    "feature_stats",
    "feature_stats_from_activations",
    "feature_view",
    "logit_effects",
    "match_features",
    "max_cosine",
    "neighbours",
    "neuron_basis",
    "steer",
    "steering_edit",
    "token_activations",
    "top_examples",
    "umap_coords",
    "unit_directions",
    "warm_umap",
    "vocab_sweep",
]
