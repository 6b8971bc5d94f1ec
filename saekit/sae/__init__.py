"""Sparse autoencoders: architectures, initialisation and file formats.

Example:
    >>> import torch
    >>> from saekit.sae import SAEConfig, TopKSAE, init_weights
    >>> sae = init_weights(TopKSAE(SAEConfig(d_in=8, d_sae=32, k=4)), seed=0)
    >>> sae(torch.randn(2, 8)).shape
    torch.Size([2, 8])
"""

from saekit.sae.base import SAE, SAEConfig
from saekit.sae.batchtopk import BatchTopKSAE
from saekit.sae.formats._build import ARCHITECTURES
from saekit.sae.initialization import data_center, geometric_median, init_weights
from saekit.sae.io import load_sae, save_sae
from saekit.sae.jumprelu import JumpReLUSAE
from saekit.sae.relu import ReLUSAE
from saekit.sae.topk import TopKSAE

__all__ = [
    "ARCHITECTURES",
    "SAE",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "SAEConfig",
    "TopKSAE",
    "data_center",
    "geometric_median",
    "init_weights",
    "load_sae",
    "save_sae",
]
