"""Initial weights for training an SAE.

- :func:`init_weights`: decoder rows in random directions with a fixed norm (unit norm
  for TopK / BatchTopK / JumpReLU, 0.1 for ReLU + L1 as in Anthropic's April 2024
  update), encoder ``W_enc = W_dec.T``, zero biases. Seeded and device-independent.
- :func:`geometric_median` / :func:`data_center`: a starting ``b_dec`` from data
  (``SAE.init_b_dec_from`` calls it).

Example:
    >>> import torch
    >>> from saekit.sae import SAEConfig, TopKSAE, init_weights
    >>> sae = init_weights(TopKSAE(SAEConfig(d_in=8, d_sae=32, k=4)), seed=0)
    >>> bool(torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(32)))
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor

from saekit.errors import SaekitError

if TYPE_CHECKING:
    from saekit.sae.base import SAE

S = TypeVar("S", bound="SAE")


@torch.no_grad()
def init_weights(sae: S, seed: int = 0, decoder_norm: float | None = None) -> S:
    """Initialise ``sae`` for training, in place; returns it.

    Args:
        sae: any saekit SAE.
        seed: random seed; the same seed gives the same weights on every device.
        decoder_norm: norm of each decoder row; ``None`` uses the architecture's
            ``default_decoder_norm``.
    """
    norm = type(sae).default_decoder_norm if decoder_norm is None else decoder_norm
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(sae.d_sae, sae.d_in, generator=gen, dtype=torch.float64)  # [d_sae, d_in]
    w = w / w.norm(dim=-1, keepdim=True) * norm
    sae.W_dec.copy_(w.to(sae.W_dec))
    sae.W_enc.copy_(w.T.to(sae.W_enc))
    sae.b_enc.zero_()
    sae.b_dec.zero_()
    sae.reset_thresholds()
    return sae


@torch.no_grad()
def geometric_median(points: Tensor, iters: int = 8, eps: float = 1e-8) -> Tensor:
    """Geometric median of ``points [n, d]`` by Weiszfeld's algorithm, ``-> [d]``.

    Starts at the mean; each step re-weights points by their inverse distance to the
    current estimate. A few steps suffice for an SAE's ``b_dec``.
    """
    pts = points.reshape(-1, points.shape[-1]).double()
    guess = pts.mean(0)
    for _ in range(iters):
        w = 1.0 / (pts - guess).norm(dim=-1).clamp_min(eps)  # [n]
        guess = (w[:, None] * pts).sum(0) / w.sum()
    return guess.to(points.dtype)


def data_center(data: Tensor, method: str = "geometric_median") -> Tensor:
    """Centre of ``data [..., d]``: ``"geometric_median"`` or ``"mean"``."""
    flat = data.reshape(-1, data.shape[-1])
    if flat.shape[0] == 0:
        raise SaekitError("Cannot compute b_dec from an empty batch; pass some activations.")
    if not torch.isfinite(flat).all():
        raise SaekitError(
            "Activations used to initialise b_dec contain NaN or inf; "
            "check the activation cache for corrupt rows."
        )
    if method == "geometric_median":
        return geometric_median(flat)
    if method == "mean":
        return flat.mean(0)
    raise SaekitError(
        f"Unknown b_dec init method {method!r}; expected 'geometric_median' or 'mean'."
    )
