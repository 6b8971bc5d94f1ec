"""Analysis engine: what a feature does, as pure functions returning data.

Every function takes a model, SAE(s) and token ids / texts and returns a tidy
``pandas.DataFrame`` (long format) or a small frozen dataclass; nothing here draws,
prints or imports widget code.

Example:
    >>> from saekit import analysis
    >>> analysis.logit_effects(model, sae, 123, k=10)
"""

from saekit.analysis.ablation import ablate_context, ablate_feature
from saekit.analysis.attribution import AttributionCheck, attribute, check_attributions
from saekit.analysis.geometry import (
    match_features,
    max_cosine,
    neighbours,
    umap_coords,
    unit_directions,
    warm_umap,
)
from saekit.analysis.logits import logit_effects
from saekit.analysis.neurons import NeuronBasis, neuron_basis
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
    "AttributionCheck",
    "Example",
    "FeatureStats",
    "FeatureView",
    "NeuronBasis",
    "ablate_context",
    "ablate_feature",
    "attribute",
    "check_attributions",
    "feature_stats",
    "feature_stats_from_activations",
    "logit_effects",
    "match_features",
    "max_cosine",
    "neighbours",
    "neuron_basis",
    "QuantileBin",
    "steer",
    "steering_edit",
    "top_examples",
    "umap_coords",
    "unit_directions",
    "warm_umap",
    "vocab_sweep",
]
