"""saekit.train: recovery, determinism, families, resume, NaN handling, schedule, AuxK."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import Tensor

from saekit.errors import CompatibilityError, FormatError, SaekitError
from saekit.sae.base import SAEConfig
from saekit.sae.initialization import init_weights
from saekit.sae.topk import TopKSAE
from saekit.train import ActivationSource, TrainConfig, TrainStep, train_saes
from saekit.train._objectives import StepContext, TopKObjective
from saekit.train._source import as_batches
from saekit.train.distributed import DataParallel

SMALL = TrainConfig(batch_size=128, k=4, lr=3e-3, steps=24, warmup_steps=3, log_every=4)


def planted(n: int, d: int = 64, m: int = 128, p: float = 3 / 128, seed: int = 0):
    """``x = codes @ D + 1``: sparse non-negative codes over a unit-norm dictionary."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(m, d, generator=g)
    D /= D.norm(dim=-1, keepdim=True)
    codes = (torch.rand(n, m, generator=g) < p) * (0.5 + torch.rand(n, m, generator=g))
    return codes @ D + 1.0, D


def explained_variance(sae, x: Tensor) -> float:
    err = (sae(x) - x).pow(2).sum()
    return float(1 - err / (x - x.mean(0)).pow(2).sum())


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small matrices gain nothing from 2 threads, and on a busy shared machine OpenMP's
    spinning threads make them 10x slower; results do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4096, 16, generator=g) * torch.linspace(0.2, 3, 16) + 0.5


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- quality ------------------------------------------------------------------------------


def test_topk_recovers_planted_dictionary() -> None:
    x, D = planted(65536)
    cfg = TrainConfig(batch_size=256, k=8, lr=4e-3, steps=512, warmup_steps=10)
    result = train_saes(x, [256], cfg, progress=False)
    sae = result.saes[0]
    best_cos = ((sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)) @ D.T).max(0).values
    assert explained_variance(sae, x) > 0.9
    assert float(best_cos.mean()) > 0.95
    assert float((best_cos > 0.9).float().mean()) > 0.9
    # decoder rows stay unit norm (the TopK constraint)
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(256), atol=1e-5)
    # the logged EV is measured on the normalised training batches; it agrees closely
    logged = result.final_metrics().loc["topk-256", "explained_variance"]
    assert abs(logged - explained_variance(sae, x)) < 0.05


@pytest.mark.parametrize(
    ("architecture", "extra"),
    [
        ("relu", {"l1_coefficient": 1.0}),
        ("batchtopk", {}),
        ("jumprelu", {"l0_coefficient": 0.1, "lr": 1e-2}),  # thresholds move slowly
    ],
)
def test_other_architectures_learn_the_dictionary(architecture: str, extra: dict) -> None:
    x, D = planted(32768)
    cfg = TrainConfig(
        architecture=architecture, batch_size=256, k=6, lr=4e-3, steps=256, warmup_steps=10
    ).replace(**extra)
    result = train_saes(x, [256], cfg, progress=False)
    sae = result.saes[0]
    best_cos = ((sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)) @ D.T).max(0).values
    assert float(best_cos.mean()) > 0.85, architecture
    assert explained_variance(sae, x) > 0.6, architecture
    l0 = float((sae.encode(x) > 0).float().sum(-1).mean())
    assert 1.0 < l0 < 12.0, (architecture, l0)
    if architecture == "batchtopk":  # the learned threshold reproduces k active at inference
        assert 0.8 * 6 < l0 < 1.2 * 6, l0


# -- determinism and families ---------------------------------------------------------------


def test_same_seed_same_weights_and_other_seed_differs(data: Tensor) -> None:
    a = train_saes(data, [32], SMALL, progress=False).saes[0]
    b = train_saes(data, [32], SMALL, progress=False).saes[0]
    c = train_saes(data, [32], SMALL.replace(seed=1), progress=False).saes[0]
    assert same_weights(a, b)
    assert not torch.equal(a.W_dec, c.W_dec)


def test_family_equals_separate_trainings(data: Tensor) -> None:
    family = train_saes(data, [24, 48, 96], SMALL, progress=False)
    assert family.names == ("topk-24", "topk-48", "topk-96")
    for size, sae in zip([24, 48, 96], family.saes, strict=True):
        alone = train_saes(data, [size], SMALL, progress=False).saes[0]
        assert same_weights(sae, alone), size
    hist = family.history
    assert list(hist.columns) == ["step", "tokens", "sae", "d_sae", "metric", "value"]
    assert set(hist["sae"]) == set(family.names)


def test_sparse_kernels_match_dense_autograd(data: Tensor) -> None:
    cfg = SMALL.replace(k=2, dead_tokens=256)  # latents die quickly, so AuxK runs too
    sparse = train_saes(data, [256], cfg, progress=False)
    dense = train_saes(data, [256], cfg.replace(sparse_kernels=False), progress=False)
    assert sparse.history.query("metric == 'aux'")["value"].max() > 0
    for name, p in sparse.saes[0].state_dict().items():
        torch.testing.assert_close(p, dense.saes[0].state_dict()[name], atol=2e-5, rtol=1e-4)


# -- schedule, dead latents, AuxK -----------------------------------------------------------


def test_lr_schedule_values() -> None:
    cfg = TrainConfig(steps=100, warmup_steps=10, decay_fraction=0.2)
    got = [cfg.lr_scale(s, 100) for s in (0, 4, 9, 10, 50, 79, 80, 90, 99)]
    assert got == pytest.approx([0.1, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.05])
    assert TrainConfig(steps=10, warmup_steps=0, decay_fraction=0.0).lr_scale(9, 10) == 1.0
    auto = TrainConfig(steps=400)  # warm-up 5% of the steps by default
    assert auto.warmup(400) == 20 and auto.lr_scale(9, 400) == pytest.approx(0.5)
    assert TrainConfig().warmup(10**6) == 1000
    assert TrainConfig(lr=None).lr_for(2**14) == pytest.approx(2e-4)
    assert TrainConfig(lr=None).lr_for(2**12) == pytest.approx(4e-4)


def test_lr_schedule_is_what_training_uses(data: Tensor) -> None:
    cfg = SMALL.replace(lr=1e-3, steps=20, warmup_steps=5, log_every=1)
    hist = train_saes(data, [32], cfg, progress=False).history
    lrs = hist.query("metric == 'lr'").sort_values("step")["value"].tolist()
    assert lrs == pytest.approx([1e-3 * cfg.lr_scale(s, 20) for s in range(20)])


def test_dead_tracking_on_a_constructed_sae() -> None:
    # Latents 0 and 1 always win the top-2; the other 14 never fire. With lr=0 nothing
    # changes, so they count as dead exactly once `dead_tokens` vectors have passed.
    sae = init_weights(TopKSAE(SAEConfig(d_in=8, d_sae=16, k=2)), seed=0)
    with torch.no_grad():
        sae.b_enc[:2] = 100.0
    cfg = TrainConfig(batch_size=64, steps=6, lr=0.0, log_every=1, dead_tokens=3 * 64, warmup_steps=0)
    hist = train_saes(torch.randn(640, 8), [sae], cfg, progress=False).history
    dead = hist.query("metric == 'dead_fraction'").sort_values("step")["value"].tolist()
    assert dead == [0.0, 0.0, 14 / 16, 14 / 16, 14 / 16, 14 / 16]
    l0 = hist.query("metric == 'l0'")["value"].tolist()
    assert l0 == [2.0] * 6


def _topk_loss(sae: TopKSAE, x: Tensor, dead: Tensor, sparse: bool):
    cfg = TrainConfig(k=sae.k, sparse_kernels=sparse, k_aux=4)
    x_var = (x - x.mean(0)).pow(2).sum(-1).mean()
    ctx = StepContext(dead=dead, sparsity_scale=1.0, var_x=x_var, dp=DataParallel(), n_steps=1)
    sae.zero_grad()
    out = TopKObjective(cfg).loss(sae, x, ctx)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in sae.named_parameters()}


@pytest.mark.parametrize("sparse", [True, False])
def test_auxk_is_nonzero_only_with_dead_latents(sparse: bool) -> None:
    torch.manual_seed(0)
    sae = init_weights(TopKSAE(SAEConfig(d_in=8, d_sae=32, k=3)), seed=1)
    x = torch.randn(50, 8)
    none_dead = torch.zeros(32, dtype=torch.bool)
    out, grads = _topk_loss(sae, x, none_dead, sparse)
    assert float(out.aux) == 0.0
    assert float(out.loss.detach()) == pytest.approx(float(out.sse) / 50, rel=1e-6)  # pure MSE
    with torch.no_grad():  # some latents lose every top-k contest but are not always < 0
        sae.b_enc[-8:] = -0.5
    out_main, grads_main = _topk_loss(sae, x, none_dead, sparse)
    dead = ~out_main.fired
    assert 0 < int(dead.sum()) < 32
    out_aux, grads_aux = _topk_loss(sae, x, dead, sparse)
    assert float(out_aux.aux) > 0.0
    assert float(out_aux.loss.detach()) > float(out_main.loss.detach())
    # the AuxK term reaches only the dead latents' decoder rows
    diff = (grads_aux["W_dec"] - grads_main["W_dec"]).abs().sum(-1)
    assert bool((diff[dead] > 0).any()) and float(diff[~dead].max()) == 0.0


def test_auxk_value_matches_its_definition() -> None:
    sae = init_weights(TopKSAE(SAEConfig(d_in=8, d_sae=32, k=3)), seed=2)
    x = torch.randn(40, 8)
    dead = torch.arange(32) >= 20
    out, _ = _topk_loss(sae, x, dead, sparse=True)
    with torch.no_grad():
        residual = x - sae(x)
        pre = sae.pre_acts(x)
        masked = torch.where(dead, pre, torch.tensor(float("-inf")))
        vals, idx = masked.topk(4, dim=-1)
        e_hat = torch.zeros(40, 32).scatter(-1, idx, vals.relu()) @ sae.W_dec
        err = (e_hat - residual).pow(2).sum(-1).mean()
        expected = err / (residual - residual.mean(0)).pow(2).sum(-1).mean()
    assert float(out.aux) == pytest.approx(float(expected), rel=1e-5)


# -- checkpoints and resume ---------------------------------------------------------------------


class _Stop(Exception):
    pass


def _raise_at(step: int, exc: type[BaseException]):
    def callback(ev: TrainStep) -> None:
        if ev.step == step:
            raise exc()

    return callback


@pytest.mark.parametrize(
    ("exc", "resumed_from"), [(KeyboardInterrupt, 8), (_Stop, 6)], ids=["ctrl-c", "crash"]
)
def test_resume_equals_uninterrupted(tmp_path: Path, data: Tensor, exc, resumed_from: int) -> None:
    # checkpoints fall inside logging windows: partial metric sums must survive too
    cfg = SMALL.replace(checkpoint_every=3, log_every=4, dead_tokens=512)
    full = train_saes(data, [32, 64], cfg, progress=False)
    with pytest.raises(exc):
        train_saes(
            data, [32, 64], cfg, checkpoint_dir=tmp_path, callbacks=[_raise_at(8, exc)], progress=False
        )
    # Ctrl-C between steps saves where it stopped; a crash keeps the periodic checkpoint.
    assert sorted(p.name for p in tmp_path.iterdir())[-1] == f"step-{resumed_from:08d}"
    seen: list[int] = []
    resumed = train_saes(
        data,
        [32, 64],
        cfg,
        checkpoint_dir=tmp_path,
        resume=True,
        callbacks=[lambda ev: seen.append(ev.step)],
        progress=False,
    )
    assert seen[0] == (resumed_from // 4 + 1) * 4  # the next logging step
    for a, b in zip(full.saes, resumed.saes, strict=True):
        assert same_weights(a, b)
    pd.testing.assert_frame_equal(full.history, resumed.history)
    assert resumed.steps == 24 and resumed.complete


def test_stop_at_then_resume_with_a_plain_iterable(tmp_path: Path, data: Tensor) -> None:
    chunks = [data[i : i + 100] for i in range(0, len(data), 100)]  # re-batched to 128
    cfg = SMALL.replace(steps=30)
    full = train_saes(chunks, [32], cfg, progress=False)
    part = train_saes(chunks, [32], cfg, checkpoint_dir=tmp_path, stop_at=11, progress=False)
    assert part.steps == 11 and not part.complete
    rest = train_saes(chunks, [32], cfg, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert same_weights(full.saes[0], rest.saes[0])
    pd.testing.assert_frame_equal(full.history, rest.history)
    assert len(list(tmp_path.glob("step-*"))) <= cfg.keep_checkpoints


def test_nan_in_activations_stops_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    batches = [torch.randn(64, 8) for _ in range(12)]
    bad = [b.clone() for b in batches]
    bad[9][5, 3] = float("nan")
    bad[9][7, 0] = float("inf")
    # init_tokens: initialise from the first 4 batches in both runs (a bad batch inside
    # that window is left out of the initialisation sample, so the runs would differ)
    cfg = TrainConfig(batch_size=64, k=2, steps=12, checkpoint_every=4, warmup_steps=1, init_tokens=256)
    with pytest.raises(SaekitError) as err:
        train_saes(bad, [16], cfg, checkpoint_dir=tmp_path, progress=False)
    msg = str(err.value)
    assert "batch 9 (step 10 of 12" in msg and "2 NaN/inf values" in msg
    assert "step-00000008" in msg and "resume=True" in msg
    ckpts = sorted(p.name for p in tmp_path.glob("step-*"))
    assert ckpts == ["step-00000004", "step-00000008"]
    # the kept checkpoint is exactly a clean run's state after 8 steps
    clean = train_saes(batches, [16], cfg, checkpoint_dir=tmp_path / "clean", stop_at=8, progress=False)
    from saekit.train._checkpoint import load_checkpoint

    _, kept = load_checkpoint(tmp_path / "step-00000008")
    _, ref = load_checkpoint(tmp_path / "clean" / "step-00000008")
    assert kept.keys() == ref.keys() and all(torch.equal(kept[k], ref[k]) for k in kept)
    # after fixing the data, resuming finishes the run as if nothing happened
    fixed = train_saes(batches, [16], cfg, checkpoint_dir=tmp_path, resume=True, progress=False)
    full = train_saes(batches, [16], cfg, progress=False)
    assert same_weights(fixed.saes[0], full.saes[0])
    assert clean.steps == 8


def test_nan_in_first_batch_is_reported_before_any_training(tmp_path: Path) -> None:
    x = torch.randn(256, 8)
    x[3, 1] = float("nan")
    with pytest.raises(SaekitError, match="batch 0 .*No checkpoint was written yet"):
        train_saes([x], [16], TrainConfig(batch_size=256, k=2, steps=1), progress=False)


def test_corrupt_checkpoint_is_a_format_error(tmp_path: Path, data: Tensor) -> None:
    cfg = SMALL.replace(steps=8)
    train_saes(data, [32], cfg, checkpoint_dir=tmp_path, stop_at=4, progress=False)
    f = tmp_path / "step-00000004" / "state.safetensors"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(FormatError, match="truncated or corrupt"):
        train_saes(data, [32], cfg, checkpoint_dir=tmp_path, resume=True, progress=False)


def test_resume_with_other_settings_is_refused(tmp_path: Path, data: Tensor) -> None:
    train_saes(data, [32], SMALL, checkpoint_dir=tmp_path, stop_at=4, progress=False)
    with pytest.raises(SaekitError, match=r"lr: 0.003 -> 0.001"):
        train_saes(data, [32], SMALL.replace(lr=1e-3), checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(SaekitError, match="topk-64"):
        train_saes(data, [64], SMALL, checkpoint_dir=tmp_path, resume=True, progress=False)
    other_k = SAEConfig(d_in=16, d_sae=32, k=8)  # same name "topk-32", other k
    with pytest.raises(SaekitError, match=r"'topk', 16, 32, 8"):
        train_saes(data, [other_k], SMALL, checkpoint_dir=tmp_path, resume=True, progress=False)


# -- sources, normalisation, events, bad input ---------------------------------------------------------


class _Cache:
    """A stand-in for saekit.ActivationCache (the ActivationSource protocol)."""

    def __init__(self, acts: Tensor) -> None:
        self.acts, self.d_in, self.n_tokens = acts, acts.shape[1], acts.shape[0]

    def iter_batches(
        self, batch_size: int, *, shuffle: bool = True, seed: int = 0, start: int = 0
    ) -> Iterator[Tensor]:
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(self.n_tokens, generator=g)
        for i in range(start, self.n_tokens // batch_size):
            yield self.acts[perm[i * batch_size : (i + 1) * batch_size]]


@pytest.mark.parametrize("kind", ["tensor", "cache", "iterable"])
def test_sources_restart_at_any_batch(data: Tensor, kind: str) -> None:
    src = {"tensor": data, "cache": _Cache(data), "iterable": list(data.split(50))}[kind]
    if kind == "cache":
        assert isinstance(src, ActivationSource)
    n = 40 if kind != "iterable" else 30  # 32 batches of 128 per epoch: crosses into epoch 2
    all_batches = list(itertools.islice(as_batches(src, 128, seed=3), n))
    assert all(b.shape == (128, 16) for b in all_batches)
    later = list(itertools.islice(as_batches(src, 128, seed=3, start=7), n - 7))
    assert all(torch.equal(a, b) for a, b in zip(all_batches[7:], later, strict=True))
    if kind != "iterable":  # epochs are reshuffled
        assert not torch.equal(all_batches[0], all_batches[32])
        epoch = torch.cat(all_batches[:32])
        assert torch.equal(epoch.sum(0), data.sum(0)) or torch.allclose(epoch.sum(0), data.sum(0))


def test_normalisation_is_folded_into_the_weights(data: Tensor) -> None:
    a = train_saes(data, [32], SMALL, progress=False).saes[0]
    b = train_saes(data * 100, [32], SMALL, progress=False).saes[0]
    torch.testing.assert_close(b.encode(data * 100), 100 * a.encode(data), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(b(data * 100), 100 * a(data), rtol=1e-3, atol=1e-2)
    assert b.cfg.training["normalization_scale"] == pytest.approx(
        a.cfg.training["normalization_scale"] / 100, rel=1e-6
    )


def test_jumprelu_thresholds_are_folded_too(data: Tensor) -> None:
    cfg = SMALL.replace(architecture="jumprelu", l0_coefficient=0.05)
    a = train_saes(data, [32], cfg, progress=False).saes[0]
    b = train_saes(data * 10, [32], cfg, progress=False).saes[0]
    torch.testing.assert_close(b.threshold, a.threshold * 10, rtol=1e-4, atol=1e-6)
    assert torch.equal(b.encode(data * 10) > 0, a.encode(data) > 0)


def test_callbacks_metadata_and_repr(data: Tensor) -> None:
    events: list[TrainStep] = []
    result = train_saes(data, [32, 64], SMALL, callbacks=[events.append], progress=False)
    assert [e.step for e in events] == [4, 8, 12, 16, 20, 24]
    assert events[-1].tokens == 24 * 128 and events[-1].fraction_done == 1.0
    assert set(events[-1].metrics) == {"topk-32", "topk-64"}
    assert set(events[-1].metrics["topk-32"]) == {
        "loss",
        "mse",
        "l0",
        "explained_variance",
        "dead_fraction",
        "aux",
        "lr",
    }
    assert events[-1].metrics["topk-32"]["l0"] <= 4.0
    sae = result["topk-64"]
    assert sae.cfg.training["steps"] == 24 and sae.cfg.training["k"] == 4
    assert sae.cfg.training["trainer"] == "saekit"
    text = repr(result)
    assert text.startswith("TrainResult(2 SAEs, 24/24 steps, 3,072 tokens")
    assert "topk-64: L0 " in text


def test_given_sae_is_copied_and_continued(data: Tensor) -> None:
    start = init_weights(TopKSAE(SAEConfig(d_in=16, d_sae=32, k=4)), seed=5)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    result = train_saes(data, [start], SMALL.replace(steps=4), progress=False)
    assert all(torch.equal(before[k], v) for k, v in start.state_dict().items())
    assert not torch.equal(result.saes[0].W_enc, start.W_enc)


def test_bad_inputs_are_explained(data: Tensor) -> None:
    with pytest.raises(CompatibilityError, match="d_in=8 cannot train on activations of width 16"):
        train_saes(data, [SAEConfig(d_in=8, d_sae=32, k=4)], SMALL, progress=False)
    with pytest.raises(SaekitError, match="Unknown SAE architecture 'gated'"):
        train_saes(data, [32], SMALL.replace(architecture="gated"), progress=False)
    with pytest.raises(SaekitError, match="less than one batch"):
        train_saes(data[:100], [32], SMALL.replace(steps=None), progress=False)
    with pytest.raises(SaekitError, match="no known length"):
        train_saes(iter([data]), [32], SMALL.replace(steps=None), progress=False)
    with pytest.raises(SaekitError, match="2-D tensor"):
        train_saes(data.reshape(2, -1, 16), [32], SMALL, progress=False)
    with pytest.raises(SaekitError, match="open the activation cache first"):
        train_saes("acts/", [32], SMALL, progress=False)
    with pytest.raises(SaekitError, match="Cannot train on an object of type int"):
        train_saes(3, [32], SMALL, progress=False)
    with pytest.raises(SaekitError, match="yielded a list"):
        train_saes([[1.0, 2.0]], [32], SMALL, progress=False)
    with pytest.raises(SaekitError, match="give one of them"):
        TrainConfig(steps=3, total_tokens=100)
    with pytest.raises(SaekitError, match="resume=True needs checkpoint_dir"):
        train_saes(data, [32], SMALL, resume=True, progress=False)


def test_source_running_out_warns_and_returns(data: Tensor) -> None:
    with pytest.warns(UserWarning, match="ran out after 3 of 24 steps"):
        result = train_saes(list(data[:400].split(100)), [32], SMALL, progress=False)
    assert result.steps == 3 and not result.complete


def test_progress_bar_shows_l0_ev_dead(data: Tensor, capsys) -> None:
    train_saes(data, [32, 64], SMALL, progress=True)
    err = capsys.readouterr().err
    assert "L0 4/4 | EV " in err and "| dead " in err


def test_device_auto_is_cpu_without_cuda(data: Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """``"auto"`` is the CPU when CUDA is absent (also for a rank of a group), and training
    on ``"auto"`` then leaves the SAEs there; with CUDA it is this rank's GPU."""
    from dataclasses import replace

    from saekit.train.distributed import device_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_for("auto", DataParallel()) == torch.device("cpu")
    assert device_for("auto", DataParallel(rank=1, world_size=2)) == torch.device("cpu")
    result = train_saes(data[:256], [32], replace(SMALL, steps=2, device="auto"), progress=False)
    assert result.saes[0].W_dec.device == torch.device("cpu")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # no GPU is touched below
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert device_for("auto", DataParallel(rank=3, world_size=4)) == torch.device("cuda", 1)
    assert device_for("auto", DataParallel()) == torch.device("cuda", 0)  # one process: LOCAL_RANK unused
    assert device_for("cpu", DataParallel(rank=3, world_size=4)) == torch.device("cpu")


def test_trains_and_resumes_from_a_real_activation_cache(tiny_llama, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import _tiny

    import saekit

    texts = [f"{chr(65 + i)} {t}" for i, t in enumerate(_tiny.CORPUS * 6)]
    cache = saekit.cache_activations(
        tiny_llama, texts, "resid_post.1", tmp_path / "c", shard_tokens=100, docs_per_step=4, progress=False
    )
    assert isinstance(cache, ActivationSource)
    cfg = TrainConfig(
        batch_size=32, k=4, lr=3e-3, steps=3 * (cache.n_tokens // 32) + 2, warmup_steps=2, checkpoint_every=5
    )  # several epochs of the cache
    full = train_saes(cache, [64, 128], cfg, progress=False)
    assert full.saes[0].d_in == 32 and full.complete
    part = train_saes(
        cache, [64, 128], cfg, checkpoint_dir=tmp_path / "ck", stop_at=cfg.steps // 2, progress=False
    )
    assert not part.complete
    rest = train_saes(cache, [64, 128], cfg, checkpoint_dir=tmp_path / "ck", resume=True, progress=False)
    for a, b in zip(full.saes, rest.saes, strict=True):
        assert same_weights(a, b)
    assert explained_variance(full.saes[1], cache.load()) > 0.5
