"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead"); Gemma Scope's architecture.

Each feature has its own threshold: ``encode(x) = relu(pre) * (pre > threshold)``, with
``pre = (x - b_dec) @ W_enc + b_enc``. Activations below the threshold are cut to zero,
so small noisy activations do not count.

Training: the step in the forward pass has zero gradient almost everywhere. The paper
uses straight-through estimators with a rectangle-kernel pseudo-derivative of width
``bandwidth``; :meth:`JumpReLUSAE.encode_ste` and :meth:`JumpReLUSAE.l0_penalty`
implement them so that ``mse + l0_coefficient * l0_penalty`` trains the thresholds.

Example:
    >>> import torch
    >>> from saekit.sae import JumpReLUSAE, SAEConfig, init_weights
    >>> sae = init_weights(JumpReLUSAE(SAEConfig(d_in=8, d_sae=32)), seed=0)
    >>> x = torch.randn(4, 8)
    >>> bool(torch.equal(sae.encode(x), sae.encode_ste(x, bandwidth=0.001)))
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from saekit.sae.base import SAE, SAEConfig

INIT_THRESHOLD = 0.001  # Rajamanoharan et al., Appendix I


def _rectangle(u: Tensor) -> Tensor:
    """Rectangle kernel: 1 on ``(-1/2, 1/2)``, 0 elsewhere."""
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLUFn(torch.autograd.Function):
    """``z * H(z - theta)``; d/dtheta by the rectangle-kernel pseudo-derivative."""

    @staticmethod
    def forward(ctx: Any, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = (pre > threshold).to(grad.dtype) * grad
        pseudo = -(threshold / eps) * _rectangle((pre - threshold) / eps) * grad
        grad_thr = pseudo.reshape(-1, pre.shape[-1]).sum(0)
        return grad_pre, grad_thr, None


class _StepFn(torch.autograd.Function):
    """Heaviside ``H(z - theta)``; d/dtheta by the rectangle-kernel pseudo-derivative."""

    @staticmethod
    def forward(ctx: Any, pre: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        pseudo = -(1.0 / eps) * _rectangle((pre - threshold) / eps) * grad
        grad_thr = pseudo.reshape(-1, pre.shape[-1]).sum(0)
        return torch.zeros_like(pre), grad_thr, None


class JumpReLUSAE(SAE):
    """Sparse autoencoder with a per-feature threshold (JumpReLU).

    Attributes:
        threshold: ``nn.Parameter [d_sae]``, one threshold per feature.
    """

    architecture: ClassVar[str] = "jumprelu"
    default_decoder_norm: ClassVar[float] = 1.0

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        dtype = getattr(torch, cfg.dtype)
        self.threshold = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype))

    def encode(self, x: Tensor) -> Tensor:
        """``relu(pre) * (pre > threshold)``; ``[..., d_in] -> [..., d_sae]``."""
        pre = self.pre_acts(x)
        return torch.relu(pre) * (pre > self.threshold)

    def encode_ste(self, x: Tensor, bandwidth: float = 0.001) -> Tensor:
        """Same values as :meth:`encode`, differentiable in ``threshold``.

        Gradients: to the pre-activations through the kept entries; to each threshold
        by the pseudo-derivative ``-(theta / bandwidth) * K((pre - theta) / bandwidth)``.
        Keep ``threshold`` positive during training (e.g. clamp after each step).
        """
        pre = self.pre_acts(x)
        return _JumpReLUFn.apply(torch.relu(pre), self.threshold, bandwidth)

    def l0_penalty(self, x: Tensor, bandwidth: float = 0.001) -> Tensor:
        """Mean number of active features per vector, differentiable in ``threshold``.

        Its value is the L0 of :meth:`encode`; its gradient reaches the thresholds only,
        by the pseudo-derivative ``-(1 / bandwidth) * K((pre - theta) / bandwidth)``.
        """
        pre = self.pre_acts(x)
        return _StepFn.apply(pre, self.threshold, bandwidth).sum(-1).mean()

    def reset_thresholds(self) -> None:
        with torch.no_grad():
            self.threshold.fill_(INIT_THRESHOLD)
