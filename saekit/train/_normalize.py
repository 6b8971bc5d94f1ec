"""How training inputs are normalised, estimated once from a sample of the first batches.

The SAE trains on ``x * scale / dim_scale``: ``scale`` brings a typical squared norm
(of ``x / dim_scale``) to ``d_in`` (estimated on many vectors, by the median so that a
few outlier tokens do not move it). ``dim_scale`` (``None``, or ``[d_in]``) is each
dimension's standard deviation: it is set only when a few "massive" dimensions hold a
large share of the variance (Gemma 3, Llama and Qwen models have such dimensions at
some layers), and then every dimension weighs the same in the loss instead of the
massive ones taking most of the dictionary. Both are folded into the weights
at the end (:func:`fold_dims`, then the objective's ``fold_scale``), so the returned SAE
takes raw activations.

Example:
    >>> import torch
    >>> x = torch.randn(4096, 64)
    >>> x[:, 0] = x[:, 0] * 100 + 1000          # one dimension with 10,000x the variance
    >>> norm = estimate(x, balance="auto")
    >>> norm.dim_scale is not None and norm.dominant == (0,)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from saekit.sae.base import SAE

# A dimension is "massive" when its variance exceeds this multiple of the median
# dimension's variance.
CAP = 16.0
# "auto" standardises the dimensions only when the massive ones hold at least this
# share of the variance (Gemma 3 270M resid_post.9: 6 dims, 0.66; SmolLM2-135M
# resid_post.15: 8 dims, 0.18).
AUTO_SHARE = 0.25
# Dimensions with less variance than this fraction of the median are scaled as if
# they had this much (a constant dimension is not blown up).
FLOOR = 1e-4


@dataclass(frozen=True)
class Normalization:
    """Input normalisation of a run: train on ``x * scale / dim_scale``.

    Attributes:
        scale: global multiplier (1.0 when normalisation is off).
        dim_scale: ``[d_in]`` per-dimension divisor (each dimension's standard
            deviation, relative to the median one), or ``None``.
        dominant: the dimensions holding the most variance, largest first (at most 8,
            those above ``CAP`` x the median dimension's variance).
        dominant_share: their share of the total variance.
    """

    scale: float
    dim_scale: Tensor | None = None
    dominant: tuple[int, ...] = ()
    dominant_share: float = 0.0

    def apply(self, x: Tensor) -> Tensor:
        """Normalised ``x [n, d_in]``."""
        x = x * self.scale
        return x if self.dim_scale is None else x / self.dim_scale.to(x)

    def raw_weight(self) -> Tensor | float:
        """Per-dimension factor turning a normalised squared error into a raw one."""
        w = 1.0 / self.scale**2
        return w if self.dim_scale is None else self.dim_scale.pow(2) * w


def estimate(sample: Tensor, *, normalize: bool = True, balance: str | bool = "auto") -> Normalization:
    """The normalisation for ``sample [n, d_in]`` (raw activations).

    Args:
        sample: vectors from the first batches of the run.
        normalize: estimate the global scale (else 1.0).
        balance: ``"auto"`` standardises the dimensions when massive ones hold at
            least ``AUTO_SHARE`` of the variance, ``True`` whenever there are massive
            dimensions, ``False`` never.
    """
    x = sample.double()
    var = x.var(0) if len(x) > 1 else torch.zeros(x.shape[1], dtype=x.dtype)
    massive, share = dominant_dims(var)
    on = balance is True or (balance == "auto" and share >= AUTO_SHARE)
    dim_scale = None
    if on and massive:
        ratio = var / var.median().clamp_min(1e-30)
        dim_scale = ratio.clamp_min(FLOOR).sqrt().float()  # every dimension: same variance
        x = x / dim_scale.double()  # the global scale is set after rebalancing
    sq = x.pow(2).sum(-1)
    scale = math.sqrt(x.shape[1] / float(sq.median().clamp_min(1e-30))) if normalize else 1.0
    return Normalization(scale, dim_scale, massive, share)


def dominant_dims(var: Tensor) -> tuple[tuple[int, ...], float]:
    """The massive dimensions (at most 8, largest first) of per-dimension variances
    ``var [d_in]``, and their share of the total variance."""
    ratio = var / var.median().clamp_min(1e-30)
    order = torch.argsort(var, descending=True)
    massive = tuple(int(i) for i in order[:8] if ratio[i] > CAP)
    share = float(var[list(massive)].sum() / var.sum().clamp_min(1e-30)) if massive else 0.0
    return massive, share


@torch.no_grad()
def fold_dims(sae: SAE, dim_scale: Tensor) -> None:
    """An SAE trained on ``x / dim_scale`` -> the same SAE on ``x`` (exact, any architecture).

    ``pre = (x/w - b) W + c = (x - w*b) (W / w[:, None]) + c`` and the reconstruction
    ``(z D + b) * w``: only ``W_enc``, ``W_dec`` and ``b_dec`` change; codes and
    thresholds do not. Decoder rows are then no longer exactly unit-norm.
    """
    w = dim_scale.to(sae.W_enc)
    sae.W_enc.div_(w[:, None])
    sae.W_dec.mul_(w[None, :])
    sae.b_dec.mul_(w)
