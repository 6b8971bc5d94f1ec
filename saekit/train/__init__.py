"""Training SAEs: a family of sizes from one pass over activations.

Example:
    >>> import torch
    >>> from saekit.train import TrainConfig, train_saes
    >>> result = train_saes(torch.randn(2048, 16), [32, 64],
    ...                     TrainConfig(batch_size=256, k=4), progress=False)
    >>> result.names
    ('topk-32', 'topk-64')
"""

from saekit.train._source import ActivationSource
from saekit.train.config import TrainConfig
from saekit.train.distributed import DataParallel, init_from_env
from saekit.train.results import TrainResult, TrainStep
from saekit.train.trainer import train_saes

__all__ = [
    "ActivationSource",
    "DataParallel",
    "TrainConfig",
    "TrainResult",
    "TrainStep",
    "init_from_env",
    "train_saes",
]
