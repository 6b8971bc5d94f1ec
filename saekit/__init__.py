"""saekit: look inside language models with sparse autoencoders, from a notebook.

Example:
    >>> import saekit
    >>> model = saekit.load_model()                    # SmolLM2-135M-Instruct, offline
    >>> acts = model.activations(saekit.default_corpus(8), ["resid_post.15"])

Importing saekit loads no widget or plotting code: views live in
:mod:`saekit.widgets` and :mod:`saekit.explore`, figure builders in :mod:`saekit.plots`,
export in :mod:`saekit.figures`.
"""

from saekit import analysis
from saekit._cache import ActivationCache, cache_activations
from saekit._loading import cache_dir
from saekit.activations import Activations
from saekit.analysis import (
    FeatureStats,
    ablate_context,
    ablate_feature,
    attribute,
    check_attributions,
    feature_stats,
    feature_stats_from_activations,
    logit_effects,
    neuron_basis,
    steer,
    top_examples,
    vocab_sweep,
)
from saekit.corpus import default_corpus, pydoc_texts, shakespeare_texts
from saekit.errors import (
    CompatibilityError,
    FormatError,
    ModelLoadError,
    SaekitError,
    SaekitWarning,
    SiteError,
)
from saekit.evaluate import evaluate
from saekit.ids import FeatureRef, name_saes, sae_name
from saekit.model import Model, RunResult, load_model
from saekit.sae import (
    SAE,
    BatchTopKSAE,
    JumpReLUSAE,
    ReLUSAE,
    SAEConfig,
    TopKSAE,
    init_weights,
    load_sae,
    save_sae,
)
from saekit.splice import mean_ablation_edit, reconstruction_edit, sae_edit, zero_ablation_edit
from saekit.train import TrainConfig, TrainResult, TrainStep, train_saes

__version__ = "0.1.0"

__all__ = [
    "SAE",
    "ActivationCache",
    "Activations",
    "BatchTopKSAE",
    "CompatibilityError",
    "FeatureRef",
    "FeatureStats",
    "FormatError",
    "JumpReLUSAE",
    "Model",
    "ModelLoadError",
    "ReLUSAE",
    "RunResult",
    "SAEConfig",
    "SaekitError",
    "SaekitWarning",
    "SiteError",
    "TopKSAE",
    "TrainConfig",
    "TrainResult",
    "TrainStep",
    "ablate_context",
    "ablate_feature",
    "analysis",
    "attribute",
    "cache_activations",
    "cache_dir",
    "check_attributions",
    "default_corpus",
    "evaluate",
    "feature_stats",
    "feature_stats_from_activations",
    "init_weights",
    "load_model",
    "load_sae",
    "logit_effects",
    "name_saes",
    "mean_ablation_edit",
    "neuron_basis",
    "pydoc_texts",
    "reconstruction_edit",
    "sae_edit",
    "sae_name",
    "save_sae",
    "shakespeare_texts",
    "steer",
    "top_examples",
    "train_saes",
    "vocab_sweep",
    "zero_ablation_edit",
]
