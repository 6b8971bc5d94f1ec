"""The per-feature analyses find a hand-planted feature (see tests/_planted.py)."""

from __future__ import annotations

import _planted
import pytest
import torch

from saekit import analysis


@pytest.fixture(scope="module")
def planted() -> _planted.Planted:
    return _planted.build()


def test_logit_effects_ranks_written_token_first(planted: _planted.Planted) -> None:
    df = analysis.logit_effects(planted.model, planted.sae, [_planted.F, 0], k=4).frame
    assert list(df.columns) == ["feature", "direction", "rank", "token_id", "token", "logit"]
    assert len(df) == 2 * 2 * 4
    top = df[(df.feature == _planted.F) & (df.direction == "top")]
    assert top.token_id.iloc[0] == planted.B
    assert top.token.iloc[0] == planted.model.to_strings([planted.B])[0]
    ref = planted.model.unembed(planted.sae.W_dec[_planted.F]).float()
    got = torch.tensor(top.logit.to_numpy(), dtype=torch.float32)
    assert torch.allclose(got, ref.topk(4).values, atol=1e-6)
    bottom = df[(df.feature == _planted.F) & (df.direction == "bottom")]
    assert bottom.token_id.tolist() == ref.topk(4, largest=False).indices.tolist()
    assert bottom.logit.is_monotonic_increasing and top.logit.is_monotonic_decreasing


def test_logit_effects_without_norm_is_plain_unembedding(planted: _planted.Planted) -> None:
    df = analysis.logit_effects(planted.model, planted.sae, _planted.F, k=3, norm=False).frame
    w = planted.sae.W_dec[_planted.F].detach()
    ref = w @ planted.model.W_U.detach()  # [vocab]
    top = df[df.direction == "top"]
    assert top.token_id.tolist() == ref.topk(3).indices.tolist()
    got = torch.tensor(top.logit.to_numpy(), dtype=torch.float32)
    assert torch.allclose(got, ref.topk(3).values, atol=1e-5)


def test_context_ablation_finds_read_token(planted: _planted.Planted) -> None:
    ids = _planted.context_with(planted)
    df = analysis.ablate_context(planted.model, planted.sae, ids, _planted.F, progress=False).frame
    assert list(df.columns) == ["feature", "pos", "token_id", "token", "activation_full",
                                "activation_without", "delta"]
    assert df.pos.tolist() == list(range(1, ids.numel() - 1))  # BOS and last token kept
    assert df.loc[df.delta.idxmin(), "token_id"] == planted.A
    # hand computation: activation = mean_j <u_j, w> + b over the tokens present
    w = planted.sae.W_enc[:, _planted.F].detach()
    b = float(planted.sae.b_enc[_planted.F].detach())
    s = planted.u[ids] @ w  # [T]
    full = float(s.mean()) + b
    assert df.activation_full.iloc[0] == pytest.approx(full, abs=1e-5)
    for row in df.itertuples():
        without = float(torch.cat([s[: row.pos], s[row.pos + 1 :]]).mean()) + b
        assert row.activation_without == pytest.approx(without, abs=1e-5)


def test_context_ablation_replace_mode(planted: _planted.Planted) -> None:
    ids = _planted.context_with(planted)
    rep = int(ids[1])
    df = analysis.ablate_context(planted.model, planted.sae, ids, _planted.F, mode="replace",
                                 replacement=rep, progress=False).frame
    assert df.loc[df.delta.idxmin(), "token_id"] == planted.A
    assert df.delta.iloc[0] == pytest.approx(0.0, abs=1e-6)  # replacing token 1 by itself
    w = planted.sae.W_enc[:, _planted.F].detach()
    s = planted.u[ids] @ w
    i = int((ids == planted.A).nonzero()[0, 0])
    expected = float(planted.u[rep] @ w - s[i]) / ids.numel()
    assert df.set_index("pos").delta[i] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("where", ["prepend", "append", "alone"])
def test_vocab_sweep_ranks_read_token_first(planted: _planted.Planted, where: str) -> None:
    ids = _planted.context_with(planted)
    ctx = None if where == "alone" else ids
    df = analysis.vocab_sweep(planted.model, planted.sae, ctx, _planted.F, where=where, progress=False)
    assert list(df.columns) == ["feature", "rank", "token_id", "token", "activation", "delta"]
    assert df.token_id.iloc[0] == planted.A
    assert df["rank"].tolist() == list(range(len(df)))
    assert df.activation.is_monotonic_decreasing
    n_special = len(planted.model.special_ids)
    assert len(df) == planted.u.shape[0] - n_special
    # hand computation for the winner
    w, b = planted.sae.W_enc[:, _planted.F].detach(), float(planted.sae.b_enc[_planted.F].detach())
    rows = {"prepend": [0, planted.A, *ids[1:].tolist()], "append": [*ids.tolist(), planted.A],
            "alone": [0, planted.A]}[where]
    assert df.activation.iloc[0] == pytest.approx(float((planted.u[rows] @ w).mean()) + b, abs=1e-5)
    base_rows = {"prepend": ids.tolist(), "append": ids.tolist(), "alone": [0]}[where]
    base = float((planted.u[base_rows] @ w).mean()) + b
    assert df.delta.iloc[0] == pytest.approx(df.activation.iloc[0] - base, abs=1e-5)


def test_vocab_sweep_chunking_does_not_change_results(planted: _planted.Planted) -> None:
    ids = _planted.context_with(planted)
    big = analysis.vocab_sweep(planted.model, planted.sae, ids, [_planted.F, 2], progress=False)
    small = analysis.vocab_sweep(planted.model, planted.sae, ids, [_planted.F, 2], batch_size=7,
                                 progress=False)
    assert big.token_id.tolist() == small.token_id.tolist()
    assert torch.allclose(torch.tensor(big.activation.to_numpy(), dtype=torch.float32),
                          torch.tensor(small.activation.to_numpy(), dtype=torch.float32), atol=1e-5)
    assert set(big.feature) == {_planted.F, 2}


def test_vocab_sweep_subset_of_tokens(planted: _planted.Planted) -> None:
    df = analysis.vocab_sweep(planted.model, planted.sae, None, _planted.F, where="alone",
                              tokens=[10, planted.A, 20], progress=False)
    assert df.token_id.tolist()[0] == planted.A and sorted(df.token_id) == sorted([10, 20, planted.A])
