"""SAE architectures against hand-computed values on a tiny SAE (d_in=4, d_sae=6)."""

from __future__ import annotations

import math

import pytest
import torch

from saekit.errors import CompatibilityError, SaekitError
from saekit.sae import (
    SAE,
    BatchTopKSAE,
    JumpReLUSAE,
    ReLUSAE,
    SAEConfig,
    TopKSAE,
    geometric_median,
    init_weights,
)

# Hand-chosen weights. x = [1.5, 2, -1, 0.3], b_dec = [0.5, 0, 0, 0], so x - b_dec =
# [1, 2, -1, 0.3] and pre = (x - b_dec) @ W_enc + b_enc = [1, 1.5, -1, 0.4, 2, -2].
W_ENC = [[1, 0, 0, 0, 1, -1], [0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1], [0, 0, 0, 1, 0, 0]]
B_ENC = [0, -0.5, 0, 0.1, -1, 0]
W_DEC = [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 3], [1, 1, 0, 0], [0, 0, 1, 1]]
B_DEC = [0.5, 0, 0, 0]
X = torch.tensor([[1.5, 2.0, -1.0, 0.3]])
PRE = [1.0, 1.5, -1.0, 0.4, 2.0, -2.0]


def tiny(cls: type[SAE], **cfg: object) -> SAE:
    sae = cls(SAEConfig(d_in=4, d_sae=6, **cfg))  # type: ignore[arg-type]
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor(W_ENC, dtype=torch.float32))
        sae.b_enc.copy_(torch.tensor(B_ENC))
        sae.W_dec.copy_(torch.tensor(W_DEC, dtype=torch.float32))
        sae.b_dec.copy_(torch.tensor(B_DEC))
    return sae


def close(a: torch.Tensor, b: list[float] | list[list[float]]) -> bool:
    return torch.allclose(a, torch.tensor(b, dtype=a.dtype), atol=1e-6)


def test_pre_acts_hand_computed() -> None:
    assert close(tiny(ReLUSAE).pre_acts(X)[0], PRE)


def test_relu_encode_decode_and_l1() -> None:
    sae = tiny(ReLUSAE)
    codes = sae.encode(X)
    assert close(codes[0], [1, 1.5, 0, 0.4, 2, 0])
    # 1*row0 + 1.5*row1 + 0.4*row3 + 2*row4 + b_dec
    assert close(sae.decode(codes)[0], [3.5, 5, 0, 1.2])
    assert close(sae(X)[0], [3.5, 5, 0, 1.2])
    # decoder row norms [1, 2, 1, 3, sqrt2, sqrt2]
    assert sae.l1_penalty(codes).item() == pytest.approx(1 + 3 + 1.2 + 2 * math.sqrt(2), abs=1e-5)
    assert sae.architecture == "relu" and sae.cfg.architecture == "relu"


def test_l1_penalty_gradient_reaches_decoder_norms() -> None:
    sae = tiny(ReLUSAE)
    codes = sae.encode(X)
    sae.l1_penalty(codes).backward()
    # d/dW_dec[4] of 2 * ||W_dec[4]|| = 2 * W_dec[4] / ||W_dec[4]||
    assert close(sae.W_dec.grad[4], [math.sqrt(2), math.sqrt(2), 0, 0])


def test_topk_hand_computed() -> None:
    sae = tiny(TopKSAE, k=2)
    assert close(sae.encode(X)[0], [0, 1.5, 0, 0, 2, 0])
    assert close(sae(X)[0], [2.5, 5, 0, 0])  # 1.5*row1 + 2*row4 + b_dec
    vals, idx = sae.encode_sparse(X)
    assert sorted(idx[0].tolist()) == [1, 4]
    assert close(sae.decode_sparse(vals, idx)[0], [2.5, 5, 0, 0])


def test_topk_with_fewer_positive_than_k_keeps_zeros() -> None:
    sae = tiny(TopKSAE, k=5)  # only 4 positive pre-activations
    assert close(sae.encode(X)[0], [1, 1.5, 0, 0.4, 2, 0])


def test_auxk_reconstruction_hand_computed() -> None:
    sae = tiny(TopKSAE, k=2)
    pre = sae.pre_acts(X)
    dead = torch.tensor([True, False, False, True, False, False])
    assert close(sae.auxk_reconstruction(pre, dead, k_aux=1)[0], [1, 0, 0, 0])  # f0=1 > f3=.4
    # k_aux above the number of dead latents is capped: 1*row0 + 0.4*row3
    assert close(sae.auxk_reconstruction(pre, dead, k_aux=5)[0], [1, 0, 0, 1.2])
    none_dead = torch.zeros(6, dtype=torch.bool)
    assert close(sae.auxk_reconstruction(pre, none_dead, k_aux=3)[0], [0, 0, 0, 0])


def test_auxk_loss_hand_computed() -> None:
    sae = tiny(TopKSAE, k=2)
    x = torch.cat([X, torch.tensor([B_DEC])])  # second vector: pre = b_enc
    pre = sae.pre_acts(x)
    dead = torch.tensor([True, False, False, True, False, False])
    residual = torch.tensor([[1.0, 0, 0, 1.2], [0, 0, 0, 0]])
    # recon: [1,0,0,1.2] and 0.1*row3 = [0,0,0,0.3]; error (0 + 0.09)/2; residual
    # variance around its mean [.5,0,0,.6]: (0.61 + 0.61)/2
    loss = sae.auxk_loss(residual, pre, dead, k_aux=2)
    assert loss.item() == pytest.approx(0.045 / 0.61, rel=1e-5)
    assert sae.auxk_loss(residual, pre, torch.zeros(6, dtype=torch.bool), 2).item() == 0.0


def test_batchtopk_training_rule_is_batch_level() -> None:
    sae = tiny(BatchTopKSAE, k=2)
    x = torch.cat([X, torch.tensor([B_DEC])])  # 2 vectors -> keep top 4 of the batch
    codes = sae.encode_batch_topk(x)
    assert close(codes, [[1, 1.5, 0, 0.4, 2, 0], [0, 0, 0, 0, 0, 0]])  # x1 takes all 4


def test_batchtopk_threshold_running_estimate() -> None:
    sae = tiny(BatchTopKSAE, k=2)
    assert float(sae.threshold) == -1.0  # unset: inference is a plain ReLU
    assert close(sae.encode(X)[0], [1, 1.5, 0, 0.4, 2, 0])
    codes = sae.encode_batch_topk(torch.cat([X, torch.tensor([B_DEC])]))
    assert sae.update_threshold(codes) == pytest.approx(0.4)  # first batch sets it
    second = torch.tensor([[0.0, 1.0, 3.0]])
    assert sae.update_threshold(second, beta=0.9) == pytest.approx(0.9 * 0.4 + 0.1 * 1.0)
    assert sae.update_threshold(torch.zeros(2, 3)) == pytest.approx(0.46)  # nothing fired
    sae.threshold.fill_(1.2)
    assert close(sae.encode(X)[0], [0, 1.5, 0, 0, 2, 0])
    assert "threshold" in dict(sae.named_buffers())


def test_jumprelu_hand_computed() -> None:
    sae = tiny(JumpReLUSAE)
    with torch.no_grad():
        sae.threshold.copy_(torch.tensor([0.5, 2, 0, 0.5, 1, 0]))
    assert close(sae.encode(X)[0], [1, 0, 0, 0, 2, 0])
    assert close(sae(X)[0], [3.5, 2, 0, 0])  # row0 + 2*row4 + b_dec
    assert isinstance(sae.threshold, torch.nn.Parameter) and sae.threshold.shape == (6,)


def test_jumprelu_negative_threshold_never_gives_negative_codes() -> None:
    sae = tiny(JumpReLUSAE)
    with torch.no_grad():
        sae.threshold.fill_(-5.0)
    assert close(sae.encode(X)[0], [1, 1.5, 0, 0.4, 2, 0])


def _one_feature_jumprelu() -> tuple[JumpReLUSAE, torch.Tensor]:
    sae = JumpReLUSAE(SAEConfig(d_in=1, d_sae=1))
    with torch.no_grad():
        sae.W_enc.fill_(1.0)
        sae.W_dec.fill_(1.0)
        sae.threshold.fill_(0.5)
    return sae, torch.tensor([[0.5], [0.52], [0.7]])


def test_jumprelu_ste_threshold_gradient_hand_computed() -> None:
    sae, x = _one_feature_jumprelu()
    codes = sae.encode_ste(x, bandwidth=0.1)
    assert torch.equal(codes, sae.encode(x))
    assert close(codes[:, 0], [0, 0.52, 0.7])
    codes.sum().backward()
    # (z - theta)/eps = [0, 0.2, 2]: two inside the rectangle -> -(0.5 / 0.1) * 2
    assert sae.threshold.grad.item() == pytest.approx(-10.0)
    assert sae.W_enc.grad.item() == pytest.approx(0.52 + 0.7)  # kept entries pass through


def test_jumprelu_l0_penalty_value_and_gradient() -> None:
    sae, x = _one_feature_jumprelu()
    l0 = sae.l0_penalty(x, bandwidth=0.1)
    assert l0.item() == pytest.approx(2 / 3)
    l0.backward()
    assert sae.threshold.grad.item() == pytest.approx(-(1 / 0.1) * 2 / 3)
    assert sae.W_enc.grad is None or sae.W_enc.grad.abs().sum() == 0


@pytest.mark.parametrize(
    ("cls", "norm"), [(ReLUSAE, 0.1), (TopKSAE, 1.0), (BatchTopKSAE, 1.0), (JumpReLUSAE, 1.0)]
)
def test_init_weights(cls: type[SAE], norm: float) -> None:
    cfg = SAEConfig(d_in=16, d_sae=48, k=4)
    a, b, c = (init_weights(cls(cfg), seed=s) for s in (3, 3, 4))
    assert torch.allclose(a.W_dec.norm(dim=-1), torch.full((48,), norm), atol=1e-6)
    assert torch.equal(a.W_enc, a.W_dec.T)
    assert torch.equal(a.W_dec, b.W_dec) and not torch.equal(a.W_dec, c.W_dec)
    assert a.b_enc.abs().sum() == 0 and a.b_dec.abs().sum() == 0
    assert torch.allclose(init_weights(cls(cfg), 0, decoder_norm=2.0).W_dec.norm(dim=-1),
                          torch.full((48,), 2.0))


def test_init_weights_resets_thresholds() -> None:
    j = init_weights(JumpReLUSAE(SAEConfig(d_in=4, d_sae=6)))
    assert torch.allclose(j.threshold, torch.full((6,), 0.001))
    b = BatchTopKSAE(SAEConfig(d_in=4, d_sae=6, k=2))
    b.threshold.fill_(3.0)
    assert float(init_weights(b).threshold) == -1.0


def test_geometric_median_ignores_outliers_and_minimises_distance() -> None:
    gen = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.randn(300, 3, generator=gen) + 1.0, torch.full((20, 3), 500.0)])
    gm = geometric_median(pts, iters=50)
    assert (gm - 1.0).abs().max() < 0.3  # the mean is ~32 away
    assert (pts.mean(0) - 1.0).abs().min() > 20

    def cost(p: torch.Tensor) -> float:
        return float((pts - p).norm(dim=-1).sum())

    for step in torch.eye(3) * 0.05:
        assert cost(gm) <= cost(gm + step) and cost(gm) <= cost(gm - step)


def test_init_b_dec_from() -> None:
    sae = TopKSAE(SAEConfig(d_in=3, d_sae=6, k=2))
    data = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 4, 0], [2, 4, 6]])
    assert torch.allclose(sae.init_b_dec_from(data, method="mean"), torch.tensor([1.0, 2, 1.5]))
    assert torch.allclose(sae.b_dec, torch.tensor([1.0, 2, 1.5]))
    sae.init_b_dec_from(data)
    assert torch.allclose(sae.b_dec, geometric_median(data))
    with pytest.raises(SaekitError, match="NaN"):
        sae.init_b_dec_from(torch.tensor([[float("nan"), 0, 0]]))
    with pytest.raises(SaekitError, match="Unknown b_dec init"):
        sae.init_b_dec_from(data, method="median")
    with pytest.raises(CompatibilityError, match="width 5"):
        sae.init_b_dec_from(torch.zeros(2, 5))


def test_remove_parallel_decoder_grad() -> None:
    sae = init_weights(TopKSAE(SAEConfig(d_in=8, d_sae=16, k=2)), seed=1)
    sae.W_dec.grad = torch.randn(16, 8)
    before = sae.W_dec.grad.clone()
    sae.remove_parallel_decoder_grad()
    assert torch.allclose((sae.W_dec.grad * sae.W_dec).sum(-1), torch.zeros(16), atol=1e-6)
    assert not torch.allclose(before, sae.W_dec.grad)


def test_decode_sparse_matches_dense_decode() -> None:
    sae = init_weights(TopKSAE(SAEConfig(d_in=8, d_sae=32, k=4)), seed=2)
    x = torch.randn(3, 5, 8)
    vals, idx = sae.encode_sparse(x)
    assert vals.shape == idx.shape == (3, 5, 4)
    assert torch.allclose(sae.decode_sparse(vals, idx), sae(x), atol=1e-6)


@pytest.mark.parametrize("cls", [ReLUSAE, TopKSAE, BatchTopKSAE, JumpReLUSAE])
def test_shapes_and_width_check(cls: type[SAE]) -> None:
    sae = init_weights(cls(SAEConfig(d_in=8, d_sae=32, k=4, site="resid_post.3")))
    assert sae.encode(torch.randn(2, 7, 8)).shape == (2, 7, 32)
    assert sae(torch.randn(2, 7, 8)).shape == (2, 7, 8)
    assert (sae.encode(torch.randn(50, 8)) >= 0).all()
    with pytest.raises(CompatibilityError, match=r"width 9.*'resid_post.3'.*d_in=8"):
        sae.encode(torch.randn(2, 9))


@pytest.mark.parametrize("cls", [TopKSAE, BatchTopKSAE])
@pytest.mark.parametrize("k", [None, 0, 7])
def test_bad_k_refused(cls: type[SAE], k: int | None) -> None:
    with pytest.raises(CompatibilityError, match="0 < k <= d_sae"):
        cls(SAEConfig(d_in=4, d_sae=6, k=k))


def test_bad_sizes_refused() -> None:
    with pytest.raises(CompatibilityError, match="positive"):
        ReLUSAE(SAEConfig(d_in=0, d_sae=6))
