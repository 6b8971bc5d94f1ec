"""Per-feature analyses on the real default model (SmolLM2-135M): slow, few, quick."""

from __future__ import annotations

import time

import pytest
import torch

import saekit
from saekit import analysis
from saekit.sae import ReLUSAE, SAEConfig, TopKSAE, init_weights

pytestmark = pytest.mark.slow


def test_token_feature_logit_lens_and_full_vocab_sweep(default_model: saekit.Model) -> None:
    """A feature reading " Paris" and writing " France": the logit lens and a whole-vocabulary
    sweep (49152 tokens) both find them."""
    m = default_model
    (paris,) = m.tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    (france,) = m.tokenizer(" France", add_special_tokens=False)["input_ids"]
    x = m.run(torch.tensor([[paris]]), read=["resid_post.0"], logits=False).acts["resid_post.0"][0, -1]
    sae = init_weights(ReLUSAE(SAEConfig(d_in=m.d_model, d_sae=8, site="resid_post.0")), seed=0)
    with torch.no_grad():
        sae.W_enc[:, 3] = x / x.norm()
        sae.W_dec[3] = m.W_U[:, france]
    lens = analysis.logit_effects(m, sae, 3, k=5).frame
    assert france in lens[lens.direction == "top"].token_id.tolist()
    t0 = time.perf_counter()
    sweep = analysis.vocab_sweep(m, sae, None, 3, where="alone", progress=False)
    elapsed = time.perf_counter() - t0
    assert len(sweep) == m.W_U.shape[1] - len(m.special_ids)
    assert paris in sweep.token_id.head(5).tolist()
    assert elapsed < 60, f"full-vocabulary sweep took {elapsed:.1f} s"


def test_large_clamp_changes_generated_text(default_model: saekit.Model) -> None:
    m = default_model
    sae = init_weights(TopKSAE(SAEConfig(d_in=m.d_model, d_sae=256, k=16, site="resid_post.15")), seed=0)
    df = analysis.steer(m, sae, "The capital of France is", {17: 200.0}, max_new_tokens=6).frame
    assert "Paris" in df.baseline.iloc[0]
    assert df.changed.all(), df
