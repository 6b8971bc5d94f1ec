"""Bad input to the per-feature analyses gives clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import saekit
from saekit import analysis
from saekit.sae import SAEConfig, TopKSAE, init_weights


@pytest.fixture(scope="module")
def sae() -> TopKSAE:
    return init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4, site="resid_post.1")), seed=0)


def _calls(model: saekit.Model, sae: TopKSAE, f: int) -> list:
    return [
        lambda: analysis.logit_effects(model, sae, f),
        lambda: analysis.ablate_feature(model, sae, "The cat sat", f),
        lambda: analysis.ablate_context(model, sae, "The cat sat", f),
        lambda: analysis.vocab_sweep(model, sae, "The cat", f),
        lambda: analysis.neuron_basis(model, sae, f, ["The cat sat"]),
        lambda: analysis.steer(model, sae, "The cat", {f: 1.0}),
    ]


@pytest.mark.parametrize("i", range(6))
def test_feature_out_of_range(tiny_llama: saekit.Model, sae: TopKSAE, i: int) -> None:
    for f in (16, -1):
        with pytest.raises(saekit.CompatibilityError, match=r"out of range .*d_sae=16"):
            _calls(tiny_llama, sae, f)[i]()


@pytest.mark.parametrize("i", range(6))
def test_sae_width_or_site_mismatch(tiny_llama: saekit.Model, i: int) -> None:
    wide = init_weights(TopKSAE(SAEConfig(d_in=48, d_sae=16, k=4, site="resid_post.1")), seed=0)
    with pytest.raises(saekit.CompatibilityError, match="width 32"):
        _calls(tiny_llama, wide, 1)[i]()
    nosite = init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4)), seed=0)
    with pytest.raises(saekit.CompatibilityError, match="cfg.site"):
        _calls(tiny_llama, nosite, 1)[i]()
    badsite = init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4, site="resid_post.9")), seed=0)
    with pytest.raises(saekit.SiteError, match="out of range"):
        _calls(tiny_llama, badsite, 1)[i]()


def test_context_that_becomes_empty(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    bos_and_one = tiny_llama.to_tokens("a")
    assert len(bos_and_one) == 2
    with pytest.raises(saekit.SaekitError, match="Nothing to ablate"):
        analysis.ablate_context(tiny_llama, sae, bos_and_one, 1)
    with pytest.raises(saekit.SaekitError, match="at least 2"):
        analysis.ablate_context(tiny_llama, sae, [5], 1)
    with pytest.raises(saekit.SaekitError, match="at least 2"):
        analysis.ablate_feature(tiny_llama, sae, [5], 1)
    with pytest.raises(saekit.SaekitError, match="empty string"):
        analysis.ablate_context(tiny_llama, sae, "", 1)


def test_context_ablation_modes(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    with pytest.raises(saekit.SaekitError, match="needs replacement"):
        analysis.ablate_context(tiny_llama, sae, "The cat sat", 1, mode="replace")
    with pytest.raises(saekit.SaekitError, match="'remove' or 'replace'"):
        analysis.ablate_context(tiny_llama, sae, "The cat sat", 1, mode="drop")
    with pytest.raises(saekit.SaekitError, match="out of range"):
        analysis.ablate_context(tiny_llama, sae, "The cat sat", 1, mode="replace", replacement=10**7)


def test_vocab_sweep_arguments(tiny_llama: saekit.Model, sae: TopKSAE) -> None:
    with pytest.raises(saekit.SaekitError, match="where must be"):
        analysis.vocab_sweep(tiny_llama, sae, "The cat", 1, where="middle")
    with pytest.raises(saekit.SaekitError, match="needs a context"):
        analysis.vocab_sweep(tiny_llama, sae, None, 1, where="prepend")
    with pytest.raises(saekit.SaekitError, match="No tokens"):
        analysis.vocab_sweep(tiny_llama, sae, "The cat", 1, tokens=[0, 1, 2])
    with pytest.raises(saekit.SaekitError, match="Token ids must lie in 0..299"):
        analysis.ablate_feature(tiny_llama, sae, torch.tensor([0, 5, 10**6]), 1)


def test_analysis_imports_no_widget_code() -> None:
    code = ("import sys, saekit.analysis; bad = [m for m in ('anywidget', 'ipywidgets', 'plotly') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
