"""steering_edit: each mode against its formula, with the SAE's error term kept.

With ``c = code(x)`` written out here (not ``sae.encode``) and ``w_f = W_dec[f]``:

- clamp ``{f: v}``: ``x + sum_f (v - c_f) w_f`` (set, active or not);
- scale ``{f: k}``: ``x + sum_f (k - 1) c_f w_f`` (acts only where ``f`` fires);
- add ``{f: v}``:   ``x + sum_f v w_f`` (everywhere, no ReLU / top-k afterwards).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import saekit
from saekit.analysis.steering import steering_edit
from saekit.errors import SaekitError
from saekit.sae import ReLUSAE, TopKSAE

D_IN, D_SAE, K = 16, 40, 5
FEATURES = {3: 4.0, 17: -1.5, 30: 0.0}


def _random(cls: type[saekit.SAE]) -> saekit.SAE:
    sae = cls(saekit.SAEConfig(d_in=D_IN, d_sae=D_SAE, k=K))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec):
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return sae


def _codes(sae: saekit.SAE, x: Tensor) -> Tensor:
    pre = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    if isinstance(sae, TopKSAE):
        kth = pre.topk(sae.k, dim=-1).values[..., -1:]
        pre = torch.where(pre >= kth, pre, torch.zeros_like(pre))
    return pre


def _expected(sae: saekit.SAE, x: Tensor, features: dict[int, float], mode: str) -> Tensor:
    c = _codes(sae, x)
    out = x.clone()
    for f, v in features.items():
        w = sae.W_dec[f]
        step = {"clamp": v - c[..., f], "scale": (v - 1) * c[..., f], "add": torch.full_like(c[..., f], v)}
        out += step[mode][..., None] * w
    return out


@pytest.fixture
def x() -> Tensor:
    return torch.randn(3, 7, D_IN, generator=torch.Generator().manual_seed(2)) * 2  # [batch, pos, d_in]


@pytest.mark.parametrize("cls", [ReLUSAE, TopKSAE])
@pytest.mark.parametrize("mode", ["clamp", "scale", "add"])
def test_each_mode_matches_its_formula(cls: type[saekit.SAE], mode: str, x: Tensor) -> None:
    sae = _random(cls)
    c = _codes(sae, x)
    assert (c[..., 3] > 0).any() and (c[..., 3] == 0).any()  # feature 3 fires at some positions only
    with torch.no_grad():
        got = steering_edit(sae, FEATURES, mode)(x)
        want = _expected(sae, x, FEATURES, mode)
    assert got.shape == x.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_modes_differ_where_the_feature_is_off(x: Tensor) -> None:
    """Where feature 3 is silent, scale leaves x as is; clamp and add move it by v * w_3."""
    sae = _random(ReLUSAE)
    off = _codes(sae, x)[..., 3] == 0  # [batch, pos]
    w = sae.W_dec[3].detach()
    with torch.no_grad():
        scaled = steering_edit(sae, {3: 5.0}, "scale")(x)
        clamped = steering_edit(sae, {3: 5.0}, "clamp")(x)
        added = steering_edit(sae, {3: 5.0}, "add")(x)
    torch.testing.assert_close(scaled[off], x[off])
    torch.testing.assert_close(clamped[off], x[off] + 5.0 * w, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(added[off], x[off] + 5.0 * w, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(scaled[~off], x[~off])


def test_clamp_and_scale_set_the_code_of_an_orthonormal_dictionary() -> None:
    """A tied ReLU SAE with orthonormal rows and no biases reads back the code it was given."""
    sae = ReLUSAE(saekit.SAEConfig(d_in=D_IN, d_sae=8))
    q, _ = torch.linalg.qr(torch.randn(D_IN, 8, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        sae.W_dec.copy_(q.T)
        sae.W_enc.copy_(q)
    x = torch.randn(200, D_IN, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before = sae.encode(x)
        on = before[:, 2] > 0
        clamped = sae.encode(steering_edit(sae, {2: 7.0}, "clamp")(x))
        scaled = sae.encode(steering_edit(sae, {2: 3.0}, "scale")(x))
        added = sae.encode(steering_edit(sae, {2: 1.5}, "add")(x))
    assert 20 < int(on.sum()) < 180
    pre = x @ q[:, 2]  # feature 2's pre-activation; negative where it is off
    torch.testing.assert_close(clamped[on, 2], torch.full((int(on.sum()),), 7.0), rtol=1e-5, atol=1e-5)
    # where it was off, the kept error term still holds the negative pre-activation
    torch.testing.assert_close(clamped[~on, 2], torch.relu(pre[~on] + 7.0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scaled[:, 2], 3.0 * before[:, 2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(added[:, 2], torch.relu(pre + 1.5), rtol=1e-5, atol=1e-5)
    others = [i for i in range(8) if i != 2]
    for codes in (clamped, scaled, added):
        torch.testing.assert_close(codes[:, others], before[:, others], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_refused(bad: float) -> None:
    with pytest.raises(SaekitError):
        steering_edit(_random(ReLUSAE), {3: bad}, "clamp")


def test_unknown_mode_and_empty_features_refused() -> None:
    sae = _random(ReLUSAE)
    with pytest.raises(SaekitError, match="mode must be one of"):
        steering_edit(sae, {3: 1.0}, "set")
    with pytest.raises(SaekitError, match="No features to steer"):
        steering_edit(sae, {}, "clamp")
    with pytest.raises(SaekitError, match="out of range"):
        steering_edit(sae, {D_SAE: 1.0}, "add")
