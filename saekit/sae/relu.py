"""ReLU SAE trained with an L1 penalty (SAELens's "standard" architecture).

``encode(x) = relu((x - b_dec) @ W_enc + b_enc)``. Training follows Anthropic's April
2024 update: the decoder rows are not constrained to unit norm; instead the sparsity
penalty weights each activation by its decoder row's norm, ``sum_i f_i * ||W_dec[i]||``,
so the penalty cannot be dodged by shrinking codes and growing decoder rows.

Example:
    >>> import torch
    >>> from saekit.sae import ReLUSAE, SAEConfig, init_weights
    >>> sae = init_weights(ReLUSAE(SAEConfig(d_in=8, d_sae=32)), seed=0)
    >>> codes = sae.encode(torch.randn(5, 8))
    >>> bool((codes >= 0).all()), sae.l1_penalty(codes).shape
    (True, torch.Size([]))
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from saekit.sae.base import SAE


class ReLUSAE(SAE):
    """Sparse autoencoder with a ReLU activation (L1-trained)."""

    architecture: ClassVar[str] = "relu"
    default_decoder_norm: ClassVar[float] = 0.1  # Anthropic April 2024 update

    def encode(self, x: Tensor) -> Tensor:
        """Feature activations ``relu(pre_acts(x))``; ``[..., d_in] -> [..., d_sae]``."""
        return torch.relu(self.pre_acts(x))

    def l1_penalty(self, codes: Tensor) -> Tensor:
        """Decoder-norm-weighted L1 penalty, ``sum_i f_i * ||W_dec[i]||``, batch-averaged.

        Args:
            codes: feature activations ``[..., d_sae]`` (from :meth:`encode`).

        Returns:
            A scalar: the per-vector penalty averaged over all leading dimensions.
            Multiply by the L1 coefficient and add to the reconstruction loss.
        """
        weighted = codes * self.W_dec.norm(dim=-1)  # [..., d_sae]
        return weighted.sum(-1).mean()
