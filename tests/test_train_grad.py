"""remove_parallel_decoder_grad: the decoder gradient loses its part along each decoder
row and keeps the perpendicular part, checked against a gradient built from known parts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from saekit.sae import SAE, BatchTopKSAE, JumpReLUSAE, ReLUSAE, SAEConfig, TopKSAE
from saekit.train import TrainConfig
from saekit.train._objectives import objective_for

D_SAE, D_IN = 12, 7


def _parts(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Decoder rows of assorted norms, and a gradient's parallel and perpendicular parts."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D_SAE, D_IN, generator=g, dtype=torch.float64)
    w *= torch.linspace(0.3, 4.0, D_SAE, dtype=torch.float64)[:, None] / w.norm(dim=-1, keepdim=True)
    u = w / w.norm(dim=-1, keepdim=True)  # unit rows
    r = torch.randn(D_SAE, D_IN, generator=g, dtype=torch.float64)
    perp = r - (r * u).sum(-1, keepdim=True) * u  # [d_sae, d_in], each row orthogonal to its u
    along = torch.randn(D_SAE, 1, generator=g, dtype=torch.float64) * 5 * u
    return w, along, perp


def _sae(cls: type[SAE], w: Tensor) -> SAE:
    sae = cls(SAEConfig(d_in=D_IN, d_sae=D_SAE, k=3, dtype="float64"))
    with torch.no_grad():
        sae.W_dec.copy_(w)
    return sae


def test_keeps_the_perpendicular_part_and_drops_the_parallel_one() -> None:
    w, along, perp = _parts(0)
    assert (perp * w).sum(-1).abs().max() < 1e-12 and (along * w).sum(-1).abs().min() > 1e-3
    sae = _sae(TopKSAE, w)
    sae.W_dec.grad = along + perp
    sae.remove_parallel_decoder_grad()
    torch.testing.assert_close(sae.W_dec.grad, perp, rtol=0, atol=1e-12)
    torch.testing.assert_close(sae.W_dec.detach(), w, rtol=0, atol=0)  # the weights are untouched


def test_purely_parallel_grad_vanishes_and_purely_perpendicular_grad_stays() -> None:
    w, along, perp = _parts(1)
    sae = _sae(TopKSAE, w)
    sae.W_dec.grad = along.clone()
    sae.remove_parallel_decoder_grad()
    torch.testing.assert_close(sae.W_dec.grad, torch.zeros_like(w), rtol=0, atol=1e-12)
    sae.W_dec.grad = perp.clone()
    sae.remove_parallel_decoder_grad()
    torch.testing.assert_close(sae.W_dec.grad, perp, rtol=0, atol=1e-12)
    sae.W_dec.grad = None
    sae.remove_parallel_decoder_grad()  # no gradient yet: nothing to do
    assert sae.W_dec.grad is None


def test_a_step_along_the_kept_gradient_keeps_row_norms_to_first_order() -> None:
    """The point of the projection: a small step leaves each row's norm unchanged up to
    O(lr^2), while the raw gradient changes it at O(lr)."""
    w, along, perp = _parts(2)
    lr = 1e-4
    kept = (w - lr * perp).norm(dim=-1) - w.norm(dim=-1)
    raw = (w - lr * (along + perp)).norm(dim=-1) - w.norm(dim=-1)
    assert kept.abs().max() < 1e-6 < raw.abs().min()


@pytest.mark.parametrize("cls", [TopKSAE, BatchTopKSAE, JumpReLUSAE])
def test_unit_norm_objectives_project_a_real_gradient(cls: type[SAE]) -> None:
    """The trainer calls objective.before_step between backward() and step()."""
    w, _, _ = _parts(3)
    sae = _sae(cls, w)
    x = torch.randn(32, D_IN, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    codes = torch.rand(32, D_SAE, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    (sae.decode(codes) - x).pow(2).sum().backward()
    raw = sae.W_dec.grad.clone()  # type: ignore[union-attr]
    u = w / w.norm(dim=-1, keepdim=True)
    objective_for(sae, TrainConfig()).before_step(sae)
    expected = raw - (raw * u).sum(-1, keepdim=True) * u  # by hand
    torch.testing.assert_close(sae.W_dec.grad, expected, rtol=0, atol=1e-10)
    assert (raw * u).sum(-1).abs().min() > 1e-3  # there was a parallel part to remove


def test_relu_objective_leaves_the_gradient_alone() -> None:
    """ReLU SAEs are trained with a decoder-norm-weighted L1, not unit-norm rows."""
    w, along, perp = _parts(6)
    sae = _sae(ReLUSAE, w)
    sae.W_dec.grad = along + perp
    objective_for(sae, TrainConfig()).before_step(sae)
    torch.testing.assert_close(sae.W_dec.grad, along + perp, rtol=0, atol=0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    d_sae=st.integers(1, 6), d_in=st.integers(2, 6), seed=st.integers(0, 2**16),
    norm=st.floats(1e-2, 1e2), grad_scale=st.floats(1e-3, 1e3),
)
def test_projection_properties(d_sae: int, d_in: int, seed: int, norm: float, grad_scale: float) -> None:
    """For any rows and gradient: what is kept is perpendicular to its row, what is removed
    is parallel to it, and projecting twice changes nothing."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d_sae, d_in, generator=g, dtype=torch.float64)
    w = w / w.norm(dim=-1, keepdim=True) * norm
    grad = torch.randn(d_sae, d_in, generator=g, dtype=torch.float64) * grad_scale
    sae = TopKSAE(SAEConfig(d_in=d_in, d_sae=d_sae, k=1, dtype="float64"))
    with torch.no_grad():
        sae.W_dec.copy_(w)
    sae.W_dec.grad = grad.clone()
    sae.remove_parallel_decoder_grad()
    kept = sae.W_dec.grad.clone()
    u = w / norm
    removed = grad - kept
    tol = 1e-9 * grad_scale
    assert (kept * u).sum(-1).abs().max() <= tol  # perpendicular
    assert (removed - (removed * u).sum(-1, keepdim=True) * u).abs().max() <= tol  # parallel
    assert kept.norm(dim=-1).sub(grad.norm(dim=-1)).max() <= tol  # a projection never grows it
    sae.remove_parallel_decoder_grad()
    torch.testing.assert_close(sae.W_dec.grad, kept, rtol=0, atol=tol)
