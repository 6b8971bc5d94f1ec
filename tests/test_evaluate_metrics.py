"""evaluate(): mse, cosine, loss_mean, loss_recovered_mean, kl and dense_frac by hand.

The reference runs a tiny random Llama (d_model 64, 2 layers) text by text through plain
HF forward hooks on a deep copy of the model, encodes with the SAE formulas written out
here (not ``sae.encode``), and averages over tokens the way the metrics are defined:
every real token but BOS is spliced / ablated and counted; every next-token prediction
is counted once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import _tiny
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import LlamaConfig, LlamaForCausalLM

import saekit
from saekit.evaluate import evaluate
from saekit.sae import ReLUSAE, TopKSAE

D, K = 64, 6
TEXTS = [*_tiny.CORPUS, "The cat sat.", "Paris is the capital of France and the dog ran."]


def _hf() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(_tiny.tokenizer()), hidden_size=D, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        initializer_range=0.2,  # sharper logits than the default 0.02: ablations move the loss
        bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def models() -> tuple[saekit.Model, LlamaForCausalLM]:
    hf = _hf()
    reference = copy.deepcopy(hf)  # the hand computation never touches saekit's copy
    return saekit.load_model(hf, tokenizer=_tiny.tokenizer(), device="cpu"), reference


def _random_sae(cls: type[saekit.SAE], site: str, seed: int, **kw: int) -> saekit.SAE:
    sae = cls(saekit.SAEConfig(d_in=D, d_sae=48, site=site, **kw))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec):
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        sae.b_enc.add_(0.2)  # ReLU codes fire on a fair share of tokens, not all
    return sae


def _codes(sae: saekit.SAE, x: Tensor) -> Tensor:
    """The encoder by its formula: ReLU, then (TopK) keep the k largest."""
    pre = torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    if isinstance(sae, TopKSAE):
        kth = pre.topk(sae.k, dim=-1).values[..., -1:]
        pre = torch.where(pre >= kth, pre, torch.zeros_like(pre))
    return pre


def _layer(hf: LlamaForCausalLM, site: str) -> nn.Module:
    kind, layer = site.split(".")
    assert kind == "resid_post"
    return hf.model.layers[int(layer)]


def _forward(hf: LlamaForCausalLM, ids: Tensor, site: str,
             replace: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """Logits ``[T, vocab]`` and the site's clean value ``[T, d]`` of one text; ``replace``
    maps the site's value at every position but BOS (position 0)."""
    seen: list[Tensor] = []

    def hook(module: nn.Module, args: object, out: Tensor | tuple[Tensor, ...]) -> object:
        h = out[0] if isinstance(out, tuple) else out
        seen.append(h[0].detach().clone())
        if replace is None:
            return None
        new = torch.cat([h[:, :1], replace(h[:, 1:])], 1)
        return (new, *out[1:]) if isinstance(out, tuple) else new

    handle = _layer(hf, site).register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = hf(ids[None]).logits[0]
    finally:
        handle.remove()
    return logits, seen[0]


def _reference(hf: LlamaForCausalLM, sae: saekit.SAE, site: str, dense: float) -> dict[str, float]:
    tok = _tiny.tokenizer()
    ids = [torch.tensor(tok(t)["input_ids"]) for t in TEXTS]
    assert all(int(i[0]) == 0 and 0 not in i[1:].tolist() for i in ids)  # BOS first, only there
    clean = [_forward(hf, i, site) for i in ids]
    x = torch.cat([acts[1:] for _, acts in clean])  # [n_tokens, d]: every token but BOS
    mean = x.mean(0)
    with torch.no_grad():
        codes = _codes(sae, x)
        recon = codes @ sae.W_dec + sae.b_dec
        splice = lambda v: _codes(sae, v) @ sae.W_dec + sae.b_dec  # noqa: E731
        ablate = lambda v: mean.expand_as(v)  # noqa: E731
    l_clean, l_sae, l_mean, kl = [], [], [], []
    for i, (logits, _) in zip(ids, clean):
        spliced, _ = _forward(hf, i, site, splice)
        mean_ablated, _ = _forward(hf, i, site, ablate)
        l_clean.append(F.cross_entropy(logits[:-1], i[1:], reduction="none"))
        l_sae.append(F.cross_entropy(spliced[:-1], i[1:], reduction="none"))
        l_mean.append(F.cross_entropy(mean_ablated[:-1], i[1:], reduction="none"))
        p, q = F.log_softmax(logits[:-1], -1), F.log_softmax(spliced[:-1], -1)
        kl.append((p.exp() * (p - q)).sum(-1))  # KL(clean || spliced) per prediction
    lc, ls, lm = (torch.cat(v).mean().item() for v in (l_clean, l_sae, l_mean))
    density = (codes > 0).float().mean(0)
    return {
        "n_tokens": len(x),
        "mse": ((recon - x) ** 2).mean().item(),
        "cosine": F.cosine_similarity(recon, x, dim=-1).mean().item(),
        "loss_clean": lc, "loss_spliced": ls, "loss_mean": lm,
        "loss_recovered_mean": (lm - ls) / (lm - lc),
        "kl": torch.cat(kl).mean().item(),
        "dense_frac": (density > dense).double().mean().item(),
    }


# dense thresholds inside each SAE's range of firing rates (ReLU ~0.3-0.7, TopK ~k/d_sae)
@pytest.mark.parametrize(
    "cls, site, dense", [(ReLUSAE, "resid_post.0", 0.5), (TopKSAE, "resid_post.1", 0.15)]
)
def test_metrics_match_a_hand_computation(
    models: tuple[saekit.Model, LlamaForCausalLM], cls: type[saekit.SAE], site: str, dense: float
) -> None:
    model, hf = models
    sae = _random_sae(cls, site, seed=3, **({"k": K} if cls is TopKSAE else {}))
    ref = _reference(hf, sae, site, dense)
    row = evaluate(model, [sae], TEXTS, batch_size=4, dense_threshold=dense, progress=False).iloc[0]
    # The reference is well conditioned: these differences are far above float32 noise.
    assert abs(ref["loss_mean"] - ref["loss_clean"]) > 0.05
    assert abs(ref["loss_mean"] - ref["loss_spliced"]) > 0.05
    assert ref["kl"] > 1e-3 and 0 < ref["dense_frac"] < 1
    assert row["n_tokens"] == ref["n_tokens"]
    for key in ("mse", "cosine", "loss_clean", "loss_spliced", "loss_mean", "loss_recovered_mean", "kl"):
        assert row[key] == pytest.approx(ref[key], rel=1e-4, abs=1e-6), key
    assert row["dense_frac"] == ref["dense_frac"]


def test_dense_frac_follows_the_threshold(models: tuple[saekit.Model, LlamaForCausalLM]) -> None:
    """Every feature's firing rate against thresholds just below and above it."""
    model, hf = models
    sae = _random_sae(ReLUSAE, "resid_post.0", seed=4)
    table = evaluate(model, [sae], TEXTS, dense_threshold=0.0, progress=False)
    density = table.attrs["density"]["density"].to_numpy()
    tok = _tiny.tokenizer()
    x = torch.cat([_forward(hf, torch.tensor(tok(t)["input_ids"]), "resid_post.0")[1][1:] for t in TEXTS])
    with torch.no_grad():
        ref = (_codes(sae, x) > 0).double().mean(0).numpy()
    assert density == pytest.approx(ref, abs=1e-12)
    assert table.iloc[0]["dense_frac"] == pytest.approx((ref > 0).mean())
    for t in (0.1, 0.5, 0.9):
        row = evaluate(model, [sae], TEXTS, dense_threshold=t, progress=False).iloc[0]
        assert row["dense_frac"] == pytest.approx((ref > t).mean()), t
