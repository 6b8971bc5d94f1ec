"""Sparse TopK training kernels: only the ``k`` active latents of each vector cost work.

A dense TopK step does five ``batch x d_in x d_sae`` products (encode, decode, and
three in the backward pass). Here only the encoder's forward product stays dense; the
decode is an ``embedding_bag`` over the active rows, and the backward products go
through CSR matrices with ``batch * k`` entries, so they cost ``batch x k x d_in``.

Example:
    >>> import torch
    >>> idx = torch.tensor([[0, 2], [1, 2]])
    >>> vals = torch.tensor([[1.0, 2.0], [3.0, 0.5]])
    >>> W_dec = torch.eye(3)
    >>> sparse_decode(vals, SparsePattern(idx, 3), W_dec).tolist()
    [[1.0, 0.0, 2.0], [0.0, 3.0, 0.5]]
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


class SparsePattern:
    """Which latents are active in each row: ``idx [batch, m]``.

    Builds, once, the CSR index arrays that the backward products of one step share.
    """

    def __init__(self, idx: Tensor, d_sae: int) -> None:
        self.idx = idx  # [batch, m], int64, ascending within each row
        self.d_sae = d_sae
        self.batch, self.m = idx.shape
        flat = idx.reshape(-1)
        keys = flat.to(torch.int32) if d_sae < 2**31 else flat  # int32 sorts ~3x faster
        self.order = keys.argsort(stable=True)  # entries grouped by latent, rows ascending
        counts = torch.bincount(flat, minlength=d_sae)
        self.crow_t = torch.zeros(d_sae + 1, dtype=torch.int64, device=idx.device)
        self.crow_t[1:] = counts.cumsum(0)
        self.rows_t = self.order // self.m  # [batch * m] row of each sorted entry
        self.crow = torch.arange(0, self.batch * self.m + 1, self.m, dtype=torch.int64, device=idx.device)

    def t_matmul(self, values: Tensor, dense: Tensor) -> Tensor:
        """``G.T @ dense`` where ``G [batch, d_sae]`` holds ``values [batch, m]`` at ``idx``."""
        vals = values.reshape(-1)[self.order]
        g_t = _csr(self.crow_t, self.rows_t, vals, (self.d_sae, self.batch))
        return g_t @ dense  # [d_sae, d]

    def sampled_dot(self, a: Tensor, b: Tensor) -> Tensor:
        """``out[r, j] = a[r] . b[idx[r, j]]`` for ``a [batch, d]``, ``b [d_sae, d]``."""
        mask = _csr(
            self.crow,
            self.idx.reshape(-1),
            torch.zeros(self.batch * self.m, dtype=a.dtype, device=a.device),
            (self.batch, self.d_sae),
        )
        out = torch.sparse.sampled_addmm(mask, a, b.t(), beta=0.0)
        return out.values().view(self.batch, self.m)

    def scatter_sum(self, values: Tensor) -> Tensor:
        """``G.sum(0)``: per-latent sum of ``values [batch, m]`` -> ``[d_sae]``."""
        out = torch.zeros(self.d_sae, dtype=values.dtype, device=values.device)
        return out.index_add_(0, self.idx.reshape(-1), values.reshape(-1))


def _csr(crow: Tensor, col: Tensor, vals: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, vals, size, check_invariants=False)


class _Decode(torch.autograd.Function):
    """``out[r] = sum_j vals[r, j] * W_dec[idx[r, j]]`` with sparse backward."""

    @staticmethod
    def forward(ctx: Any, vals: Tensor, W_dec: Tensor, pattern: SparsePattern) -> Tensor:
        ctx.save_for_backward(vals, W_dec)
        ctx.pattern = pattern
        return F.embedding_bag(pattern.idx, W_dec, per_sample_weights=vals, mode="sum")

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        vals, W_dec = ctx.saved_tensors
        pattern: SparsePattern = ctx.pattern
        grad_out = grad_out.contiguous()
        grad_vals = pattern.sampled_dot(grad_out, W_dec) if ctx.needs_input_grad[0] else None
        grad_W = pattern.t_matmul(vals, grad_out) if ctx.needs_input_grad[1] else None
        return grad_vals, grad_W, None


class _EncoderValues(torch.autograd.Function):
    """Pass precomputed pre-activations at ``idx`` through, with a sparse backward.

    Forward returns ``pre_vals`` (already ``((x - b_dec) @ W_enc + b_enc)[r, idx[r]]``);
    backward sends the gradient to ``W_enc``, ``b_enc`` and ``b_dec``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        pre_vals: Tensor,
        x_centred: Tensor,
        W_enc: Tensor,
        b_enc: Tensor,
        b_dec: Tensor,
        pattern: SparsePattern,
    ) -> Tensor:
        ctx.save_for_backward(x_centred, W_enc)
        ctx.pattern = pattern
        return pre_vals.clone()

    @staticmethod
    def backward(ctx: Any, grad_vals: Tensor) -> tuple[Tensor | None, ...]:
        x_centred, W_enc = ctx.saved_tensors
        pattern: SparsePattern = ctx.pattern
        grad_vals = grad_vals.contiguous()
        grad_W_enc = pattern.t_matmul(grad_vals, x_centred).t().contiguous()  # [d_in, d_sae]
        grad_b_enc = pattern.scatter_sum(grad_vals)  # [d_sae]
        grad_b_dec = -(W_enc @ grad_b_enc)  # [d_in]: x_centred = x - b_dec
        return None, None, grad_W_enc, grad_b_enc, grad_b_dec, None


def sparse_decode(vals: Tensor, pattern: SparsePattern, W_dec: Tensor) -> Tensor:
    """``[batch, m]`` active values at ``pattern.idx`` -> ``[batch, d_in]`` (no bias)."""
    return _Decode.apply(vals, W_dec, pattern)


def encoder_values(
    pre_vals: Tensor,
    x_centred: Tensor,
    W_enc: Tensor,
    b_enc: Tensor,
    b_dec: Tensor,
    pattern: SparsePattern,
) -> Tensor:
    """Differentiable pre-activations at ``pattern.idx`` (values computed beforehand)."""
    return _EncoderValues.apply(pre_vals, x_centred, W_enc, b_enc, b_dec, pattern)


def topk_rows(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` largest entries of each row: ``(vals, idx)``, each ``[batch, k]``.

    On CUDA the indices are sorted within each row (cuSPARSE's CSR kernels expect it);
    the CPU kernels used here do not need it, and the sort costs as much as the decode.
    """
    vals, idx = scores.topk(k, dim=-1, sorted=False)
    if scores.device.type != "cuda":
        return vals, idx
    idx, order = idx.sort(dim=-1)
    return vals.gather(-1, order), idx
