"""The training recipe on activations with "massive" dimensions and outlier tokens.

Gemma 3, Llama and Qwen models have a few residual dimensions whose values are 10-100x
the rest (Gemma 3 270M's layer 9: two dimensions hold 60% of the variance). These
tests plant such a dimension into data with a known dictionary, and into a tiny random
Llama's residual stream, and check that the recipe still finds the dictionary, that
the rescaling is folded away exactly, and that the warnings fire.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import _tiny
import pytest
import torch
from torch import Tensor

import saekit
from saekit.sae import SAEConfig, init_weights
from saekit.sae.batchtopk import BatchTopKSAE
from saekit.sae.jumprelu import JumpReLUSAE
from saekit.sae.topk import TopKSAE
from saekit.train import TrainConfig, train_saes
from saekit.train._diagnostics import quality_note
from saekit.train._normalize import estimate, fold_dims

MASSIVE = 0  # the planted massive dimension


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def planted(n: int, d: int = 64, m: int = 128, p: float = 3 / 128, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``x = codes @ D + 1``: sparse non-negative codes over a unit-norm dictionary
    that does not touch dimension ``MASSIVE``."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(m, d, generator=g)
    D[:, MASSIVE] = 0
    D /= D.norm(dim=-1, keepdim=True)
    codes = (torch.rand(n, m, generator=g) < p) * (0.5 + torch.rand(n, m, generator=g))
    return codes @ D + 1.0, D


def with_massive(x: Tensor, seed: int = 1) -> Tensor:
    """Dimension ``MASSIVE`` set to 300 +- 60 (Gemma-like: mean 50x, spread ~100x the
    other dimensions' spread); it holds over 95% of the variance."""
    g = torch.Generator().manual_seed(seed)
    x = x.clone()
    x[:, MASSIVE] = 300 + 60 * torch.randn(len(x), generator=g)
    return x


def recovery(sae, D: Tensor) -> float:
    """Mean over planted features of the best cosine with a decoder row (off the massive dim)."""
    W = sae.W_dec.detach().clone()
    W[:, MASSIVE] = 0
    W = W / W.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return float((W @ D.T).max(0).values.mean())


def ev_rest(sae, x: Tensor) -> float:
    keep = torch.arange(x.shape[1]) != MASSIVE
    with torch.no_grad():
        err = (sae(x) - x)[:, keep]
    xr = x[:, keep]
    return float(1 - err.pow(2).sum() / (xr - xr.mean(0)).pow(2).sum())


CFG = TrainConfig(batch_size=256, k=8, lr=4e-3, steps=384, warmup_steps=10, log_every=64)


def test_estimate_finds_massive_dims_and_leaves_ordinary_data_alone() -> None:
    x, _ = planted(8192)
    plain = estimate(x)
    assert plain.dim_scale is None and plain.dominant == ()
    big = estimate(with_massive(x))
    assert big.dominant == (MASSIVE,) and big.dominant_share > 0.9
    assert big.dim_scale is not None and float(big.dim_scale[MASSIVE]) > 100
    std = x.std(0)[1:]  # the others: their own standard deviations, relative to the median
    assert torch.allclose(big.dim_scale[1:], std / std.median(), rtol=0.02)
    assert estimate(with_massive(x), balance=False).dim_scale is None


def test_scale_is_robust_to_outlier_tokens() -> None:
    x, _ = planted(8192)
    spiked = x.clone()
    spiked[:8] *= 50  # attention-sink-like tokens: 0.1% of vectors with 50x the norm
    a, b = estimate(x).scale, estimate(spiked).scale
    assert abs(a / b - 1) < 0.01
    # the mean squared norm (the old estimate) would move by ~3.4x
    mean_sq = [float(v.pow(2).sum(-1).mean()) for v in (x, spiked)]
    assert mean_sq[1] / mean_sq[0] > 3


@pytest.mark.parametrize("cls", [TopKSAE, BatchTopKSAE, JumpReLUSAE])
def test_fold_dims_is_exact(cls) -> None:
    sae = init_weights(cls(SAEConfig(d_in=16, d_sae=32, k=4)), seed=0)
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_(0, 0.1)
        if cls is not TopKSAE:
            sae.threshold.fill_(0.05)
    x = torch.randn(64, 16) * 3
    w = torch.ones(16)
    w[[2, 5]] = torch.tensor([40.0, 7.0])
    expect_codes, expect_recon = sae.encode(x / w), sae(x / w) * w
    fold_dims(sae, w)
    assert torch.allclose(sae.encode(x), expect_codes, atol=1e-5)
    assert torch.allclose(sae(x), expect_recon, atol=1e-4)


def test_planted_features_recovered_as_well_with_a_massive_dimension() -> None:
    x, D = planted(65536)
    clean = train_saes(x, [256], CFG, progress=False).saes[0]
    massive = train_saes(with_massive(x), [256], CFG, progress=False)
    sae = massive.saes[0]
    assert sae.cfg.training["dims_rebalanced"] and sae.cfg.training["dominant_dims"] == [MASSIVE]
    assert recovery(clean, D) > 0.9
    assert recovery(sae, D) > recovery(clean, D) - 0.03
    assert ev_rest(sae, with_massive(x)) > ev_rest(clean, x) - 0.05
    # without rebalancing the massive dimension's variance crowds the dictionary out
    plain = train_saes(with_massive(x), [256], CFG.replace(balance_dims=False), progress=False).saes[0]
    assert recovery(sae, D) > recovery(plain, D) + 0.05
    # the returned SAE works on raw activations: the massive dimension is reconstructed too
    xm = with_massive(x[:4096])
    with torch.no_grad():
        err = (sae(xm) - xm)[:, MASSIVE]
    assert float(err.pow(2).mean()) < 0.1 * float(xm[:, MASSIVE].var())


def test_training_reports_ev_outside_the_massive_dims_and_warns() -> None:
    x, _ = planted(16384)
    events = []
    cfg = CFG.replace(steps=32, log_every=8, balance_dims=False)
    train_saes(with_massive(x), [128], cfg, callbacks=[events.append], progress=False)
    last = events[-1]
    assert "explained_variance_rest" in last.metrics["topk-128"]
    assert "dominated by 1 dimension (0)" in last.notes["topk-128"]
    plain = []
    train_saes(x, [128], cfg, callbacks=[plain.append], progress=False)
    assert "explained_variance_rest" not in plain[-1].metrics["topk-128"] and not plain[-1].notes


def test_monitor_shows_the_trainer_warnings() -> None:
    from saekit.widgets import TrainingMonitor

    x, _ = planted(16384)
    mon = TrainingMonitor(min_interval=0)
    cfg = CFG.replace(steps=16, log_every=8, balance_dims=False)
    train_saes(with_massive(x), [128], cfg, callbacks=[mon], progress=False)
    assert "dominated by 1 dimension" in mon.notes["topk-128"]
    assert "! topk-128: EV" in mon.to_text()
    # fed by update() alone, the monitor works the warning out from the metrics
    mon2 = TrainingMonitor(min_interval=0)
    mon2.update(10, {"a": {"explained_variance": 0.8, "explained_variance_rest": 0.5}})
    mon2.update(10, {"b": {"explained_variance": 0.8, "explained_variance_rest": 0.79}})
    assert set(mon2.notes) == {"a"}


def test_resume_with_rebalanced_dims_equals_uninterrupted(tmp_path: Path) -> None:
    x, _ = planted(8192)
    xm = with_massive(x)
    cfg = CFG.replace(steps=12, log_every=4, checkpoint_every=4)
    full = train_saes(xm, [64], cfg, progress=False)
    train_saes(xm, [64], cfg, checkpoint_dir=tmp_path, stop_at=8, progress=False)
    rest = train_saes(xm, [64], cfg, checkpoint_dir=tmp_path, resume=True, progress=False)
    a, b = full.saes[0].state_dict(), rest.saes[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_uses_several_batches() -> None:
    from saekit.sae.initialization import geometric_median

    x, _ = planted(4096)
    cfg = TrainConfig(batch_size=256, k=4, steps=1, init_tokens=2048, lr=1e-12, warmup_steps=0)
    sae = train_saes(x, [32], cfg, progress=False).saes[0]
    # steps=1 caps the sample at one batch; with more steps 8 batches are read
    cfg8 = cfg.replace(steps=8)
    gen = torch.Generator().manual_seed(0)  # the first epoch's order (seed 0)
    first8 = x[torch.randperm(len(x), generator=gen)[:2048]]
    sae8 = train_saes(x, [32], cfg8.replace(lr=1e-12), progress=False).saes[0]
    assert torch.allclose(sae8.b_dec, geometric_median(first8), atol=1e-3)
    assert not torch.allclose(sae.b_dec, sae8.b_dec, atol=1e-3)


def test_quality_note() -> None:
    note = quality_note(0.81, 0.58, (163, 87), 0.60, d_in=640, loss_recovered=0.69)
    assert note.startswith("EV 0.81 is dominated by 2 dimensions (163, 87) holding 60%")
    assert "loss recovered 0.69 is below EV 0.81" in note
    assert quality_note(0.74, 0.74, (), 0.0, d_in=576, loss_recovered=0.99) == ""


def test_tiny_model_with_a_planted_massive_dimension(tmp_path: Path) -> None:
    hf = _tiny.llama(seed=0)
    with torch.no_grad():  # every token's embedding carries a large, varying dimension 3
        emb = hf.model.embed_tokens.weight
        emb[:, 3] = 40 + 10 * torch.randn(emb.shape[0])
    model = saekit.load_model(hf, tokenizer=_tiny.tokenizer(), device="cpu")
    texts = _tiny.CORPUS * 40
    acts = model.activations(texts, ["resid_post.1"], progress=False)["resid_post.1"]
    norm = estimate(acts)
    assert 3 in norm.dominant and norm.dim_scale is not None
    cfg = TrainConfig(batch_size=128, k=4, lr=3e-3, steps=40, warmup_steps=2, log_every=10)
    result = train_saes(acts, [64], cfg, progress=False)
    sae = result.saes[0]
    sae.cfg = sae.cfg.replace(site="resid_post.1")
    table = saekit.evaluate(model, [sae], _tiny.CORPUS, progress=False)
    assert {"explained_variance_rest", "note"} <= set(table.columns)
    assert table.loc[0, "explained_variance"] > 0.5
