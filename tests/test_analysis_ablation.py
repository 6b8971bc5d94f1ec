"""Feature ablation and context ablation against manual forward passes."""

from __future__ import annotations

import pytest
import torch

import saekit
from saekit import analysis
from saekit.sae import SAEConfig, TopKSAE, init_weights
from saekit.splice import sae_edit

TEXT = "The cat sat on the mat. The dog ran in the park."


@pytest.fixture(scope="module")
def sae() -> TopKSAE:
    return init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=64, k=8, site="resid_post.1")), seed=0)


def _active_features(model: saekit.Model, sae: TopKSAE, ids: torch.Tensor, n: int) -> list[int]:
    x = model.run(ids[None], read=[sae.cfg.site], logits=False).acts[sae.cfg.site][0]
    with torch.no_grad():
        return sae.encode(x)[1:].sum(0).topk(n).indices.tolist()


def test_ablate_feature_matches_two_manual_runs(tiny_model: saekit.Model, sae: TopKSAE) -> None:
    model = tiny_model
    ids = torch.tensor(model.to_tokens(TEXT))
    feats = _active_features(model, sae, ids, 3)
    df = analysis.ablate_feature(model, sae, TEXT, feats, batch_size=2).frame
    assert list(df.columns) == ["feature", "pos", "token_id", "token", "activation", "next_token_id",
                                "next_token", "logprob_clean", "logprob_ablated", "delta"]
    assert len(df) == 3 * ids.numel()
    clean = torch.log_softmax(model.logits(ids[None])[0].float(), -1)
    x = model.run(ids[None], read=[sae.cfg.site], logits=False).acts[sae.cfg.site][0]
    codes = sae.encode(x).detach()
    where = torch.ones(1, ids.numel(), dtype=torch.bool)
    where[0, 0] = False  # BOS left alone by default
    for f in feats:
        edit = sae_edit(sae, ablate=[f], where=where)
        abl = torch.log_softmax(model.logits(ids[None], edits={sae.cfg.site: edit})[0].float(), -1)
        ref = (abl - clean)[torch.arange(ids.numel() - 1), ids[1:]]
        got = df[df.feature == f]
        assert torch.allclose(torch.tensor(got.delta.to_numpy()[:-1], dtype=torch.float32), ref, atol=2e-5)
        assert torch.allclose(torch.tensor(got.activation.to_numpy(), dtype=torch.float32), codes[:, f],
                              atol=1e-6)
        assert got.next_token_id.tolist() == ids[1:].tolist() + [-1]
        assert got.delta.isna().tolist() == [False] * (ids.numel() - 1) + [True]
        assert float(got.delta.abs().max()) > 0  # an active feature changes something


def test_ablate_feature_include_special_also_ablates_bos(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    ids = torch.tensor(tiny_llama.to_tokens(TEXT))
    x = tiny_llama.run(ids[None], read=["resid_post.1"], logits=False).acts["resid_post.1"][0]
    f = int(sae.encode(x)[0].detach().argmax())  # active at BOS
    a = analysis.ablate_feature(tiny_llama, sae, ids, f).frame
    b = analysis.ablate_feature(tiny_llama, sae, ids, f, include_special=True).frame
    clean = torch.log_softmax(tiny_llama.logits(ids[None])[0].float(), -1)
    edits = {"resid_post.1": sae_edit(sae, ablate=[f])}
    abl = torch.log_softmax(tiny_llama.logits(ids[None], edits=edits)[0], -1)
    ref = (abl - clean)[torch.arange(ids.numel() - 1), ids[1:]]
    assert torch.allclose(torch.tensor(b.delta.to_numpy()[:-1], dtype=torch.float32), ref, atol=2e-5)
    assert not torch.allclose(torch.tensor(a.delta.to_numpy()[:-1], dtype=torch.float32), ref, atol=1e-4)


def _loop_reference(model: saekit.Model, sae: TopKSAE, rows: list[torch.Tensor]) -> torch.Tensor:
    out = []
    for r in rows:
        x = model.run(r[None], read=[sae.cfg.site], logits=False).acts[sae.cfg.site][0, -1]
        out.append(sae.encode(x).detach())
    return torch.stack(out)  # [n, d_sae]


def test_batched_context_ablation_equals_per_token_loop(tiny_model: saekit.Model, sae: TopKSAE) -> None:
    _check_against_loop(tiny_model, sae, "remove", with_batch_size_1=False)


@pytest.mark.parametrize("mode", ["remove", "replace"])
def test_context_ablation_loop_and_batch_agree_llama(tiny_llama: saekit.Model, sae: TopKSAE,
                                                     mode: str) -> None:
    _check_against_loop(tiny_llama, sae, mode, with_batch_size_1=True)


def _check_against_loop(model: saekit.Model, sae: TopKSAE, mode: str, with_batch_size_1: bool) -> None:
    ids = torch.tensor(model.to_tokens("The cat sat on the mat."))
    feats = list(range(64))
    kw = {"replacement": 5} if mode == "replace" else {}
    batched = analysis.ablate_context(model, sae, ids, feats, mode=mode, batch_size=None, **kw).frame
    frames = [batched]
    if with_batch_size_1:
        frames.append(analysis.ablate_context(model, sae, ids, feats, mode=mode, batch_size=1,
                                              progress=False, **kw).frame)
    positions = list(range(1, ids.numel() - 1))
    if mode == "remove":
        rows = [ids] + [torch.cat([ids[:i], ids[i + 1 :]]) for i in positions]
    else:
        rows = [ids] + [torch.where(torch.arange(ids.numel()) == i, 5, ids) for i in positions]
    ref = _loop_reference(model, sae, rows)  # [1 + n, d_sae]
    for df in frames:
        got = torch.tensor(df.activation_without.to_numpy(), dtype=torch.float32).reshape(64, -1).T
        assert torch.allclose(got, ref[1:], atol=1e-5), (got - ref[1:]).abs().max()
        full = torch.tensor(df.activation_full.to_numpy(), dtype=torch.float32).reshape(64, -1)[:, 0]
        assert torch.allclose(full, ref[0], atol=1e-5)
    assert (ref[1:] != ref[0]).any()  # the check is not vacuous
    assert batched.pos.tolist()[: len(positions)] == positions


def test_context_ablation_tokens_and_text_input(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    df = analysis.ablate_context(tiny_llama, sae, "The cat sat", 3, progress=False).frame
    ids = tiny_llama.to_tokens("The cat sat")
    assert df.token_id.tolist() == ids[1:-1]
    assert df.token.tolist() == tiny_llama.to_strings(ids[1:-1])
    inc = analysis.ablate_context(tiny_llama, sae, "The cat sat", 3, include_special=True,
                                  progress=False).frame
    assert inc.pos.tolist() == list(range(len(ids) - 1))
