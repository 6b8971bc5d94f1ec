"""Splicing SAEs into the model: error term, feature edits, ablations."""

from __future__ import annotations

import _tiny
import pytest
import torch

import saekit
from saekit.errors import CompatibilityError
from saekit.sae import TopKSAE, init_weights
from saekit.splice import mean_ablation_edit, reconstruction_edit, sae_edit, zero_ablation_edit

SITE = "resid_post.1"


@pytest.fixture(scope="module")
def sae() -> TopKSAE:
    return init_weights(TopKSAE(saekit.SAEConfig(d_in=32, d_sae=64, k=8, site=SITE)), seed=0)


def _ids(model: saekit.Model) -> torch.Tensor:
    return torch.tensor([model.to_tokens(_tiny.CORPUS[0])])


def test_error_term_makes_splice_exact(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    ids = _ids(tiny_llama)
    clean = tiny_llama.logits(ids)
    spliced = tiny_llama.logits(ids, edits={SITE: sae_edit(sae)})
    torch.testing.assert_close(spliced, clean, atol=1e-5, rtol=1e-5)
    recon = tiny_llama.logits(ids, edits={SITE: reconstruction_edit(sae)})
    assert (recon - clean).abs().max() > 1e-3


def test_feature_edits_change_only_that_contribution(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    ids = _ids(tiny_llama)
    x = tiny_llama.run(ids, read=[SITE], logits=False).acts[SITE]
    codes = sae.encode(x)
    f = int(codes[0, 3].argmax())
    cases = {
        "ablate": (sae_edit(sae, ablate=[f]), -codes[..., f]),
        "clamp": (sae_edit(sae, clamp={f: 5.0}), 5.0 - codes[..., f]),
        "scale": (sae_edit(sae, scale={f: 3.0}), 2.0 * codes[..., f]),
        "add": (sae_edit(sae, add={f: 2.0}), torch.full_like(codes[..., f], 2.0)),
    }
    for name, (edit, dcode) in cases.items():
        expected = x + dcode[..., None] * sae.W_dec[f]
        torch.testing.assert_close(edit(x), expected, atol=1e-5, rtol=1e-5, msg=name)


def test_reconstruction_without_error_matches_decode(sae: TopKSAE) -> None:
    x = torch.randn(2, 5, 32)
    torch.testing.assert_close(sae_edit(sae, error=False, clamp={1: 4.0})(x)[..., :],
                               sae.decode(torch.cat([sae.encode(x)[..., :1],
                                                     torch.full((2, 5, 1), 4.0),
                                                     sae.encode(x)[..., 2:]], -1)))


def test_where_mask_and_ablations() -> None:
    x = torch.randn(1, 4, 3)
    where = torch.tensor([[False, True, True, False]])
    z = zero_ablation_edit(where)(x)
    assert torch.equal(z[0, 0], x[0, 0]) and torch.all(z[0, 1:3] == 0)
    m = mean_ablation_edit(torch.tensor([1.0, 2.0, 3.0]))(x)
    assert torch.equal(m, torch.tensor([1.0, 2.0, 3.0]).expand(1, 4, 3))


def test_out_of_range_feature_refused(sae: TopKSAE) -> None:
    with pytest.raises(CompatibilityError, match=r"out of range.*d_sae=64"):
        sae_edit(sae, clamp={64: 1.0})


def test_unembed_is_final_norm_then_head(tiny_model: saekit.Model) -> None:
    ids = _ids(tiny_model)
    out = tiny_model.run(ids, read=[f"resid_post.{tiny_model.n_layers - 1}"])
    last = out.acts[f"resid_post.{tiny_model.n_layers - 1}"]
    torch.testing.assert_close(tiny_model.unembed(last), out.logits, atol=1e-5, rtol=1e-5)
