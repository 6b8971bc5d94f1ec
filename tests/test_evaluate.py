"""evaluate(): every column against a hand computation on a tiny model."""

from __future__ import annotations

import _tiny
import pytest
import torch
import torch.nn.functional as F

import saekit
from saekit._tokens import split_rows
from saekit.errors import CompatibilityError
from saekit.evaluate import evaluate
from saekit.sae import ReLUSAE, TopKSAE, init_weights

SITE = "resid_post.1"


def _saes() -> list[saekit.SAE]:
    a = init_weights(TopKSAE(saekit.SAEConfig(d_in=32, d_sae=64, k=4, site=SITE)), seed=0)
    b = init_weights(ReLUSAE(saekit.SAEConfig(d_in=32, d_sae=16, site="resid_post.0")), seed=1)
    return [a, b]


def _not_bos(fn):  # type: ignore[no-untyped-def]
    """Apply an edit everywhere but position 0 (BOS), as evaluate() does."""
    return lambda v: torch.cat([v[:, :1], fn(v[:, 1:])], 1)


def _manual(model: saekit.Model, sae: saekit.SAE, texts: list[str]) -> dict[str, float]:
    """Reference numbers text by text, unbatched; BOS (position 0) is never spliced."""
    xs, losses, zero, spliced = [], [], [], []
    for t in texts:
        ids = torch.tensor([model.to_tokens(t)])
        out = model.run(ids, read=[sae.cfg.site])
        assert ids[0, 0] == 0 and 0 not in ids[0, 1:]
        xs.append(out.acts[sae.cfg.site][0, 1:])
        tgt = ids[0, 1:]
        losses.append(F.cross_entropy(out.logits[0, :-1], tgt, reduction="none"))
        zl = model.logits(ids, edits={sae.cfg.site: _not_bos(lambda v: v * 0)})
        zero.append(F.cross_entropy(zl[0, :-1], tgt, reduction="none"))
        sl = model.logits(ids, edits={sae.cfg.site: _not_bos(sae)})
        spliced.append(F.cross_entropy(sl[0, :-1], tgt, reduction="none"))
    x = torch.cat(xs)
    with torch.no_grad():
        codes = sae.encode(x)
        recon = sae.decode(codes)
    lc, lz, ls = (torch.cat(v).mean().item() for v in (losses, zero, spliced))
    return {
        "l0": (codes > 0).float().sum(-1).mean().item(),
        "explained_variance": 1 - ((recon - x) ** 2).sum().item() / ((x - x.mean(0)) ** 2).sum().item(),
        "loss_clean": lc, "loss_zero": lz, "loss_spliced": ls,
        "loss_recovered": (lz - ls) / (lz - lc),
        "dead_frac": ((codes > 0).sum(0) == 0).float().mean().item(),
    }


def test_evaluate_matches_manual_computation(tiny_llama: saekit.Model) -> None:
    saes = _saes()
    table = evaluate(tiny_llama, saes, _tiny.CORPUS, batch_size=3, progress=False)
    assert list(table["site"]) == [SITE, "resid_post.0"]
    for row, sae in zip(table.to_dict("records"), saes):
        ref = _manual(tiny_llama, sae, _tiny.CORPUS)
        for key, value in ref.items():
            assert row[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
        assert row["fvu"] == pytest.approx(1 - row["explained_variance"])
        assert row["kl"] >= 0
    dens = table.attrs["density"]
    assert set(dens.columns) == {"sae", "feature", "density"} and len(dens) == 64 + 16


def test_chunked_text_counts_each_token_and_prediction_once(tiny_llama: saekit.Model) -> None:
    text = " ".join(_tiny.CORPUS)
    ids = tiny_llama.to_tokens(text)
    row = evaluate(tiny_llama, _saes()[:1], [text], max_length=16, progress=False).iloc[0]
    assert row["n_tokens"] == len(ids) - 1
    losses = []
    for r, _, ctx in split_rows(ids, 1, 16):
        logits = tiny_llama.logits(torch.tensor([r]))[0]
        ce = F.cross_entropy(logits[:-1], torch.tensor(r[1:]), reduction="none")
        losses.append(ce[ctx:])  # the predictions of the row's fresh tokens
    assert sum(len(x) for x in losses) == len(ids) - 1
    assert row["loss_clean"] == pytest.approx(torch.cat(losses).mean().item(), rel=1e-5)


def test_identity_like_sae_recovers_all_loss(tiny_llama: saekit.Model) -> None:
    eye = TopKSAE(saekit.SAEConfig(d_in=32, d_sae=64, k=64, site=SITE))
    with torch.no_grad():
        eye.W_enc[:, :32] = torch.eye(32)
        eye.W_enc[:, 32:] = -torch.eye(32)
        eye.W_dec[:32] = torch.eye(32)
        eye.W_dec[32:] = -torch.eye(32)
    row = evaluate(tiny_llama, [eye], _tiny.CORPUS, progress=False).iloc[0]
    assert row["explained_variance"] == pytest.approx(1.0, abs=1e-5)
    assert row["loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    assert row["kl"] == pytest.approx(0.0, abs=1e-5)


def test_evaluate_refuses_mismatched_sae(tiny_llama: saekit.Model) -> None:
    wrong = TopKSAE(saekit.SAEConfig(d_in=48, d_sae=64, k=4, site=SITE))
    with pytest.raises(CompatibilityError, match="d_in=48 does not match site 'resid_post.1' of width 32"):
        evaluate(tiny_llama, [wrong], _tiny.CORPUS, progress=False)
    nosite = TopKSAE(saekit.SAEConfig(d_in=32, d_sae=64, k=4))
    with pytest.raises(CompatibilityError, match="cfg.site is empty"):
        evaluate(tiny_llama, [nosite], _tiny.CORPUS, progress=False)
    other = TopKSAE(saekit.SAEConfig(d_in=32, d_sae=64, k=4, site=SITE, model_name="gpt2"))
    with pytest.warns(UserWarning, match="trained on 'gpt2'"):
        evaluate(tiny_llama, [other], _tiny.CORPUS[:1], progress=False)
