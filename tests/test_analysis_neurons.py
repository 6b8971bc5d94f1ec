"""Neuron-basis comparison on hand-built SAEs."""

from __future__ import annotations

import math

import _tiny
import pytest
import torch

import saekit
from saekit import analysis
from saekit.sae import ReLUSAE, SAEConfig, TopKSAE, init_weights


def _neuron_sae(site: str = "mlp_neurons.1") -> ReLUSAE:
    return init_weights(ReLUSAE(SAEConfig(d_in=48, d_sae=16, site=site)), seed=0)


def test_one_neuron_feature(tiny_llama: saekit.Model) -> None:
    sae = _neuron_sae()
    with torch.no_grad():
        sae.W_dec[2] = 0.0
        sae.W_dec[2, 7] = -3.0
        sae.W_enc[:, 2] = 0.0
        sae.W_enc[7, 2] = 1.0  # the feature is relu(neuron 7)
    nb = analysis.neuron_basis(tiny_llama, sae, 2, _tiny.CORPUS)
    assert nb.top_neuron == 7 and nb.max_cosine == pytest.approx(1.0)
    assert nb.participation_ratio == pytest.approx(1.0) and nb.entropy == pytest.approx(0.0, abs=1e-6)
    assert (nb.n_for_50, nb.n_for_90) == (1, 1)
    assert nb.neurons.cosine.iloc[0] == pytest.approx(-1.0)
    assert int(nb.neurons.set_index("neuron").correlation.idxmax()) == 7
    assert nb.max_correlation > 0.5
    assert "top neuron 7" in repr(nb)


def test_spread_over_four_neurons(tiny_llama: saekit.Model) -> None:
    sae = _neuron_sae()
    with torch.no_grad():
        sae.W_dec[4] = 0.0
        sae.W_dec[4, [1, 5, 9, 13]] = torch.tensor([1.0, -1.0, 1.0, 1.0])
    nb = analysis.neuron_basis(tiny_llama, sae, 4, _tiny.CORPUS[:2])
    assert nb.participation_ratio == pytest.approx(4.0, rel=1e-5)
    assert nb.entropy == pytest.approx(math.log(4), rel=1e-5)
    assert (nb.n_for_50, nb.n_for_90) == (2, 4)
    assert nb.max_cosine == pytest.approx(0.5, rel=1e-5)
    assert set(nb.neurons.neuron.iloc[:4]) == {1, 5, 9, 13}
    assert nb.neurons.mass.sum() == pytest.approx(1.0, rel=1e-5)


def test_residual_sae_compared_with_down_projection(tiny_llama: saekit.Model) -> None:
    sae = init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4, site="resid_post.1")), seed=0)
    down = tiny_llama.hf.model.layers[1].mlp.down_proj.weight.detach()  # [d_model, d_mlp]
    with torch.no_grad():
        sae.W_dec[3] = 2.5 * down[:, 11]
    nb = analysis.neuron_basis(tiny_llama, sae, 3, _tiny.CORPUS[:2])
    assert nb.neuron_site == "mlp_neurons.1"
    assert nb.top_neuron == 11 and nb.max_cosine == pytest.approx(1.0, abs=1e-5)
    ref = torch.nn.functional.cosine_similarity(down.T, sae.W_dec[3].detach()[None], dim=-1)
    got = nb.neurons.set_index("neuron").cosine.sort_index().to_numpy()
    assert torch.allclose(torch.tensor(got, dtype=torch.float32), ref, atol=1e-5)
    pre = init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4, site="resid_pre.2")), seed=0)
    assert analysis.neuron_basis(tiny_llama, pre, 3, _tiny.CORPUS[:1]).neuron_site == "mlp_neurons.1"


def test_activation_counts_against_manual(tiny_llama: saekit.Model) -> None:
    sae = _neuron_sae()
    f, q, thr = 5, 0.9, 0.01
    nb = analysis.neuron_basis(tiny_llama, sae, f, _tiny.CORPUS, threshold=thr, quantile=q)
    acts = tiny_llama.activations(_tiny.CORPUS, ["mlp_neurons.1"], progress=False)
    n = acts["mlp_neurons.1"]  # [N, d_mlp], BOS dropped
    codes = sae.encode(n)[:, f].detach()
    k = round(q * (n.shape[0] - 1)) + 1
    qv = n.kthvalue(k, dim=0).values
    ex = nb.examples
    assert list(ex.columns) == ["example", "pos", "token_id", "token", "activation", "n_active",
                                "n_above_quantile"]
    for d in range(len(_tiny.CORPUS)):
        rows = acts.doc == d
        best = int(codes[rows].argmax())
        assert int(ex.pos.iloc[d]) == int(acts.pos[rows][best])
        vec = n[rows][best]
        assert int(ex.n_active.iloc[d]) == int((vec > thr).sum())
        assert int(ex.n_above_quantile.iloc[d]) == int((vec > qv).sum())
        assert ex.activation.iloc[d] == pytest.approx(float(codes[rows][best]), abs=1e-6)
    assert nb.mean_active == pytest.approx(float(ex.n_active.mean()))


def test_neuron_basis_errors(tiny_llama: saekit.Model) -> None:
    sae = _neuron_sae()
    with pytest.raises(saekit.CompatibilityError, match="out of range"):
        analysis.neuron_basis(tiny_llama, sae, 16, _tiny.CORPUS)
    with pytest.raises(saekit.SaekitError, match="quantile"):
        analysis.neuron_basis(tiny_llama, sae, 1, _tiny.CORPUS, quantile=1.5)
    with pytest.raises(saekit.SaekitError, match="non-empty list"):
        analysis.neuron_basis(tiny_llama, sae, 1, "just one text")
    with pytest.raises(saekit.SaekitError, match="own layer"):
        analysis.neuron_basis(tiny_llama, sae, 1, _tiny.CORPUS, layer=0)


def test_neuron_directions_match_the_model_on_every_architecture(tiny_model: saekit.Model) -> None:
    """Adding 1 to neuron k changes mlp_out by that neuron's direction (Linear or Conv1D alike)."""
    k, d_mlp = 3, tiny_model.structure.d_mlp
    ids = torch.tensor([tiny_model.to_tokens("The cat")])
    bump = torch.zeros(d_mlp)
    bump[k] = 1.0
    clean = tiny_model.run(ids, read=["mlp_out.1"], logits=False).acts["mlp_out.1"]
    moved = tiny_model.run(ids, read=["mlp_out.1"], edits={"mlp_neurons.1": lambda x: x + bump},
                           logits=False).acts["mlp_out.1"]
    direction = (moved - clean)[0, 0]
    sae = init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=8, k=2, site="mlp_out.1")), seed=0)
    with torch.no_grad():
        sae.W_dec[0] = direction
    nb = analysis.neuron_basis(tiny_model, sae, 0, ["The cat sat"])
    assert nb.top_neuron == k and nb.max_cosine == pytest.approx(1.0, abs=1e-4)
    assert len(nb.neurons) == d_mlp
