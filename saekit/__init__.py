"""saekit: look inside language models with sparse autoencoders, from a notebook.

Example:
    >>> import saekit
    >>> model = saekit.load_model()                    # SmolLM2-135M-Instruct, offline
    >>> acts = model.activations(saekit.default_corpus(8), ["resid_post.15"])
"""

from saekit._cache import ActivationCache, cache_activations
from saekit._loading import cache_dir
from saekit.activations import Activations
from saekit.analysis.stats import (
    FeatureStats,
    feature_stats,
    feature_stats_from_activations,
    top_examples,
)
from saekit.corpus import default_corpus, pydoc_texts, shakespeare_texts
from saekit.errors import (
    CompatibilityError,
    FormatError,
    ModelLoadError,
    SaekitError,
    SiteError,
)
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
from saekit.train import TrainConfig, TrainResult, TrainStep, train_saes

__version__ = "0.1.0"

__all__ = [
    "SAE",
    "ActivationCache",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "Activations",
    "FeatureStats",
    "CompatibilityError",
    "FormatError",
    "Model",
    "ModelLoadError",
    "RunResult",
    "SAEConfig",
    "SaekitError",
    "SiteError",
    "TopKSAE",
    "cache_activations",
    "cache_dir",
    "default_corpus",
    "feature_stats",
    "feature_stats_from_activations",
    "init_weights",
    "load_model",
    "load_sae",
    "pydoc_texts",
    "save_sae",
    "shakespeare_texts",
    "top_examples",
    "TrainConfig",
    "TrainResult",
    "TrainStep",
    "train_saes",
]
