"""Attribution (activation x gradient) against finite differences and true ablations."""

from __future__ import annotations

import _tiny
import pytest
import torch

import saekit
from saekit import analysis
from saekit.sae import SAEConfig, TopKSAE, init_weights
from saekit.splice import sae_edit

TEXT = "The cat sat on the mat."


@pytest.fixture(scope="module")
def model64() -> saekit.Model:
    return saekit.load_model(_tiny.llama(), tokenizer=_tiny.tokenizer(), device="cpu", dtype=torch.float64)


def _sae(site: str, seed: int, dtype: str = "float64", scale: float = 1.0) -> TopKSAE:
    sae = init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=48, k=6, site=site, dtype=dtype)), seed=seed)
    with torch.no_grad():
        sae.W_dec.mul_(scale)
    return sae


def _metric(model: saekit.Model, ids: torch.Tensor, edits: dict, a: int, b: int) -> float:
    logits = model.logits(ids[None], edits=edits)[0, -1]
    return float(logits[a] - logits[b])


def test_gradients_match_finite_differences(model64: saekit.Model) -> None:
    saes = [_sae("resid_post.0", 1), _sae("resid_post.1", 2)]
    ids = torch.tensor(model64.to_tokens(TEXT))
    a, b = 40, 50
    df = analysis.attribute(model64, saes, ids, (a, b)).frame
    assert list(df.columns) == ["sae", "site", "pos", "token_id", "token", "feature", "activation",
                                "gradient", "attribution"]
    assert set(df.sae) == {saekit.sae_name(s) for s in saes}
    assert df.attribution.abs().is_monotonic_decreasing
    assert set(df.site) == {"resid_post.0", "resid_post.1"}
    assert (df.pos > 0).all()  # BOS excluded by default
    h = 1e-3
    for row in df.head(6).itertuples():
        sae = saes[0] if row.site == "resid_post.0" else saes[1]
        where = torch.zeros(1, ids.numel(), dtype=torch.bool)
        where[0, row.pos] = True
        plus = _metric(model64, ids, {row.site: sae_edit(sae, add={row.feature: h}, where=where)}, a, b)
        minus = _metric(model64, ids, {row.site: sae_edit(sae, add={row.feature: -h}, where=where)}, a, b)
        fd = (plus - minus) / (2 * h)
        assert row.gradient == pytest.approx(fd, rel=1e-3, abs=1e-6)
        assert row.attribution == pytest.approx(row.activation * row.gradient, rel=1e-12)
    codes = saes[1].encode(model64.run(ids[None], read=["resid_post.1"], logits=False)
                           .acts["resid_post.1"][0]).detach()
    n_active = int((codes[1:] != 0).sum())
    assert (df.site == "resid_post.1").sum() == n_active  # one row per active code


def test_single_token_target_and_position(model64: saekit.Model) -> None:
    sae = _sae("resid_post.1", 2)
    ids = torch.tensor(model64.to_tokens(TEXT))
    df = analysis.attribute(model64, sae, ids, 40, pos=3).frame
    assert df.pos.max() <= 3
    row = df.iloc[0]
    where = torch.zeros(1, ids.numel(), dtype=torch.bool)
    where[0, int(row.pos)] = True
    h = 1e-3
    m = [float(model64.logits(ids[None], edits={"resid_post.1": sae_edit(sae, add={int(row.feature): s},
                                                                         where=where)})[0, 3, 40])
         for s in (h, -h)]
    assert row.gradient == pytest.approx((m[0] - m[1]) / (2 * h), rel=1e-3)


def test_check_attributions_correlates_for_small_edits(model64: saekit.Model) -> None:
    saes = [_sae("resid_post.0", 1, scale=0.05), _sae("resid_post.1", 2, scale=0.05)]
    ids = torch.tensor(model64.to_tokens(TEXT))
    chk = analysis.check_attributions(model64, saes, ids, (40, 50), top=8)
    assert len(chk.frame) == 8
    assert chk.correlation > 0.99
    assert "correlation=" in repr(chk)
    # first row's actual change against a manual ablation
    row = chk.frame.iloc[0]
    sae = saes[0] if row.site == "resid_post.0" else saes[1]
    where = torch.zeros(1, ids.numel(), dtype=torch.bool)
    where[0, int(row.pos)] = True
    clean = _metric(model64, ids, {}, 40, 50)
    abl = _metric(model64, ids, {row.site: sae_edit(sae, ablate=[int(row.feature)], where=where)}, 40, 50)
    assert chk.metric_clean == pytest.approx(clean, rel=1e-7)
    assert row.actual_change == pytest.approx(abl - clean, rel=1e-6, abs=1e-12)
    assert row.predicted_change == pytest.approx(-row.attribution)


def test_float32_model_and_text_target(tiny_llama: saekit.Model) -> None:
    sae = _sae("resid_post.2", 3, dtype="float32")
    df = analysis.attribute(tiny_llama, sae, TEXT, "at").frame
    assert len(df) > 0 and df.attribution.abs().max() > 0


def test_bad_targets(tiny_llama: saekit.Model) -> None:
    sae = _sae("resid_post.2", 3, dtype="float32")
    with pytest.raises(saekit.SaekitError, match="not one"):
        analysis.attribute(tiny_llama, sae, TEXT, "the cat")
    with pytest.raises(saekit.SaekitError, match="out of range"):
        analysis.attribute(tiny_llama, sae, TEXT, 10**6)
    with pytest.raises(saekit.SaekitError, match="pos=99"):
        analysis.attribute(tiny_llama, sae, TEXT, 5, pos=99)
    with pytest.raises(saekit.SaekitError, match="same site"):
        analysis.attribute(tiny_llama, [sae, sae], TEXT, 5)
