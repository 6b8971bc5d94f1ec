"""Integration tests on the real default model, SmolLM2-135M-Instruct (offline)."""

from __future__ import annotations

import time

import pytest
import torch

import saekit

pytestmark = pytest.mark.slow


def test_default_model_shape_and_sites(default_model: saekit.Model) -> None:
    assert default_model.name == "SmolLM2-135M-Instruct"
    assert (default_model.n_layers, default_model.d_model, default_model.structure.d_mlp) == (30, 576, 1536)
    assert "mlp_neurons.15" in default_model.sites()


def test_default_model_activations_equal_hf(default_model: saekit.Model) -> None:
    texts = ["The capital of France is Paris.", "def add(a, b):\n    return a + b"]
    sites = ["resid_pre.15", "resid_post.15", "mlp_neurons.15"]
    acts = default_model.activations(texts, sites, progress=False)
    store = {}
    down = default_model.hf.model.layers[15].mlp.down_proj
    h = down.register_forward_hook(lambda m, a, o: store.__setitem__("n", a[0]))
    try:
        for d, t in enumerate(texts):
            ids = torch.tensor([default_model.to_tokens(t)])
            with torch.no_grad():
                hs = default_model.hf(ids, output_hidden_states=True).hidden_states
            sel = acts.doc == d
            pos = acts.pos[sel]  # BOS (position 0) is dropped by default
            assert pos.tolist() == list(range(1, ids.shape[1]))
            torch.testing.assert_close(acts["resid_pre.15"][sel], hs[15][0, pos], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(acts["resid_post.15"][sel], hs[16][0, pos], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(acts["mlp_neurons.15"][sel], store["n"][0, pos], atol=1e-4, rtol=1e-4)
    finally:
        h.remove()


def test_default_model_is_sensible(default_model: saekit.Model) -> None:
    out = default_model.generate("The capital of France is", max_new_tokens=4)
    assert "Paris" in out[0]
    text = saekit.default_corpus(8)
    ids = torch.tensor([default_model.to_tokens(text[0])[:64]])
    logits = default_model.logits(ids)
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:])
    assert 1.0 < loss.item() < 5.0


def test_second_load_uses_cache() -> None:
    saekit.load_model()  # ensure the cache exists
    t = time.perf_counter()
    saekit.load_model()
    assert time.perf_counter() - t < 10  # ~1 s here; generous for a busy CI machine
    folder = saekit.cache_dir() / "models" / "SmolLM2-135M-Instruct"
    assert (folder / "model.safetensors").exists()
    assert not list(folder.parent.glob(".tmp-*"))
