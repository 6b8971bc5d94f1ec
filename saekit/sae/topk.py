"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

Keeps the ``k`` largest pre-activations of each vector (after a ReLU) and zeroes the
rest. Training adds the AuxK loss (:meth:`TopKSAE.auxk_loss`): the ``k_aux`` largest
*dead* latents are asked to reconstruct the residual the live ones left, which brings
dead latents back to life.

Example:
    >>> import torch
    >>> from saekit.sae import SAEConfig, TopKSAE
    >>> sae = TopKSAE(SAEConfig(d_in=8, d_sae=32, k=4))
    >>> int((sae.encode(torch.randn(2, 8)) > 0).sum(-1).max()) <= 4
    True
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from saekit.errors import CompatibilityError
from saekit.sae.base import SAE, SAEConfig


def check_k(cfg: SAEConfig, name: str) -> None:
    """Raise :class:`CompatibilityError` unless ``0 < cfg.k <= cfg.d_sae``."""
    if cfg.k is None or not 0 < cfg.k <= cfg.d_sae:
        raise CompatibilityError(
            f"{name} needs 0 < k <= d_sae, got k={cfg.k}, d_sae={cfg.d_sae}. "
            "Pass SAEConfig(..., k=32) with k at most the number of features."
        )


class TopKSAE(SAE):
    """Sparse autoencoder with a hard top-k activation."""

    architecture: ClassVar[str] = "topk"
    default_decoder_norm: ClassVar[float] = 1.0

    def __init__(self, cfg: SAEConfig) -> None:
        check_k(cfg, type(self).__name__)
        super().__init__(cfg)

    @property
    def k(self) -> int:
        assert self.cfg.k is not None
        return self.cfg.k

    def encode(self, x: Tensor) -> Tensor:
        pre = torch.relu(self.pre_acts(x))
        vals, idx = pre.topk(self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, idx, vals)

    def encode_sparse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The k active latents as ``(values [..., k], indices [..., k])``.

        Cheaper to decode with :meth:`decode_sparse` than a dense ``[..., d_sae]`` code.
        """
        pre = torch.relu(self.pre_acts(x))
        vals, idx = pre.topk(self.k, dim=-1, sorted=False)
        return vals, idx

    def auxk_reconstruction(self, pre_acts: Tensor, dead_mask: Tensor, k_aux: int) -> Tensor:
        """Reconstruction (no ``b_dec``) from the ``k_aux`` largest dead latents.

        Args:
            pre_acts: encoder pre-activations ``[..., d_sae]`` (:meth:`pre_acts`).
            dead_mask: bool ``[d_sae]``, True for latents that have not fired lately.
            k_aux: how many dead latents to use (Gao et al. use ``d_in // 2``); capped
                at the number of dead latents.

        Returns:
            ``[..., d_in]``; zeros when no latent is dead.
        """
        n_dead = int(dead_mask.sum())
        if n_dead == 0 or k_aux <= 0:
            return pre_acts.new_zeros(*pre_acts.shape[:-1], self.d_in)
        masked = torch.where(dead_mask, torch.relu(pre_acts), torch.full_like(pre_acts, -1.0))
        vals, idx = masked.topk(min(k_aux, n_dead), dim=-1, sorted=False)
        return self.sparse_matmul(vals.clamp_min(0.0), idx)

    def auxk_loss(
        self, residual: Tensor, pre_acts: Tensor, dead_mask: Tensor, k_aux: int
    ) -> Tensor:
        """AuxK loss: how well the dead latents predict ``residual = x - x_hat``.

        Normalised as in OpenAI's implementation: squared error divided by the
        residual's variance around its batch mean, so the loss is scale-free. Pass the
        residual detached (``(x - x_hat).detach()``). Returns 0 when no latent is dead.

        Args:
            residual: ``[batch, d_in]``.
            pre_acts: ``[batch, d_sae]``.
            dead_mask: bool ``[d_sae]``.
            k_aux: dead latents per vector.
        """
        if int(dead_mask.sum()) == 0:
            return residual.new_zeros(())
        recon = self.auxk_reconstruction(pre_acts, dead_mask, k_aux)
        err = (recon.float() - residual.float()).pow(2).sum(-1).mean()
        denom = (residual.float() - residual.float().mean(0)).pow(2).sum(-1).mean()
        return (err / denom.clamp_min(1e-12)).to(residual.dtype)
