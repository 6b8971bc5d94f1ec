"""Steering: baseline equals plain generation, steered equals generation with the edit."""

from __future__ import annotations

import math

import pytest

import saekit
from saekit import analysis
from saekit.sae import SAEConfig, TopKSAE, init_weights
from saekit.splice import sae_edit

PROMPTS = ["The cat sat", "Paris is the capital of"]


@pytest.fixture(scope="module")
def sae() -> TopKSAE:
    return init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=64, k=8, site="resid_post.1")), seed=0)


def test_greedy_steering_matches_manual_generation(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    r = analysis.steer(tiny_llama, sae, PROMPTS, {3: 40.0}, max_new_tokens=8)
    df = r.frame
    assert list(df.columns) == ["prompt", "baseline", "steered", "changed"]
    assert df.prompt.tolist() == PROMPTS
    assert df.baseline.tolist() == tiny_llama.generate(PROMPTS, max_new_tokens=8)
    manual = tiny_llama.generate(PROMPTS, max_new_tokens=8,
                                 edits={"resid_post.1": sae_edit(sae, clamp={3: 40.0})})
    assert df.steered.tolist() == manual
    assert df.changed.all()  # a large clamp changes the text
    assert r.values == {3: 40.0} and r.mode == "clamp" and r.site == "resid_post.1"
    assert r.refs == (saekit.FeatureRef("topk-64@resid_post.1", 3),)
    assert str(r).splitlines()[0] == "SteeringResult · topk-64@resid_post.1 · clamp #3 40"


@pytest.mark.parametrize(("mode", "kw"), [("scale", "scale"), ("add", "add")])
def test_modes_use_matching_sae_edit(tiny_llama: saekit.Model, sae: TopKSAE, mode: str, kw: str) -> None:
    df = analysis.steer(tiny_llama, sae, PROMPTS[0], {3: 30.0, 7: -2.0}, mode=mode, max_new_tokens=6).frame
    manual = tiny_llama.generate(PROMPTS[0], max_new_tokens=6,
                                 edits={"resid_post.1": sae_edit(sae, **{kw: {3: 30.0, 7: -2.0}})})
    assert df.steered.tolist() == manual


def test_sampling_uses_same_seed_for_both(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    df = analysis.steer(tiny_llama, sae, PROMPTS, {3: 0.0}, mode="scale", max_new_tokens=8,
                        do_sample=True, seed=7).frame
    assert df.baseline.tolist() == tiny_llama.generate(PROMPTS, max_new_tokens=8, do_sample=True, seed=7)
    manual = tiny_llama.generate(PROMPTS, max_new_tokens=8, do_sample=True, seed=7,
                                 edits={"resid_post.1": sae_edit(sae, scale={3: 0.0})})
    assert df.steered.tolist() == manual
    other = analysis.steer(tiny_llama, sae, PROMPTS, {3: 0.0}, mode="scale", max_new_tokens=8,
                           do_sample=True, seed=8).frame
    assert other.baseline.tolist() != df.baseline.tolist()  # the seed matters


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(tiny_llama: saekit.Model, sae: TopKSAE, bad: float) -> None:
    with pytest.raises(saekit.SaekitError, match="finite"):
        analysis.steer(tiny_llama, sae, "Hi", {3: bad})


def test_bad_steering_arguments(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    with pytest.raises(saekit.CompatibilityError, match="out of range"):
        analysis.steer(tiny_llama, sae, "Hi", {64: 1.0})
    with pytest.raises(saekit.SaekitError, match="mode must be"):
        analysis.steer(tiny_llama, sae, "Hi", {3: 1.0}, mode="multiply")
    with pytest.raises(saekit.SaekitError, match="No features"):
        analysis.steer(tiny_llama, sae, "Hi", {})
