"""A tiny Llama with a hand-planted SAE feature, for the analysis tests.

Layer 0's attention has zero query/key weights, so it attends uniformly: the value of
``attn_out.0`` at position t is the mean over j <= t of ``u[token_j]``, where
``u[v] = o_proj(v_proj(norm(embed[v])))`` (no biases in Llama attention).

Feature ``F`` of a ReLU SAE on ``attn_out.0`` reads ``u[A]/|u[A]|`` (token ``A`` has the
largest ``|u|``, so by Cauchy-Schwarz no other token reads as strongly) with a bias that
keeps it positive; its decoder row is the unembedding row of token ``B`` (the token
with the largest unembedding norm, so the logit lens must rank ``B`` first).
"""

from __future__ import annotations

from dataclasses import dataclass

import _tiny
import torch

import saekit
from saekit.sae import ReLUSAE, SAEConfig, init_weights

F = 5  # the planted feature


@dataclass(frozen=True)
class Planted:
    model: saekit.Model
    sae: ReLUSAE
    A: int  # the token the feature reads
    B: int  # the token the feature writes
    u: torch.Tensor  # [vocab, d_model] per-token attn_out.0 contribution


def build() -> Planted:
    hf = _tiny.llama(seed=3)
    attn = hf.model.layers[0].self_attn
    with torch.no_grad():
        attn.q_proj.weight.zero_()
        attn.k_proj.weight.zero_()
    model = saekit.load_model(hf, tokenizer=_tiny.tokenizer(), device="cpu")
    vocab = hf.config.vocab_size
    ids = torch.arange(vocab)[:, None]  # each token alone: attn_out.0 = u[token]
    u = model.run(ids, read=["attn_out.0"], logits=False).acts["attn_out.0"][:, 0].float()
    normal = ~torch.isin(torch.arange(vocab), torch.tensor(sorted(model.special_ids)))
    A = int(torch.where(normal, u.norm(dim=-1), -1.0).argmax())
    W_U = model.W_U.detach()  # [d_model, vocab]
    B = int(torch.where(normal, W_U.norm(dim=0), -1.0).argmax())
    sae = init_weights(ReLUSAE(SAEConfig(d_in=32, d_sae=16, site="attn_out.0")), seed=1)
    with torch.no_grad():
        sae.W_enc[:, F] = u[A] / u[A].norm()
        sae.b_enc[F] = u[A].norm()  # pre-activation stays > 0: no ReLU clipping
        sae.W_dec[F] = W_U[:, B]
    return Planted(model, sae, A, B, u)


def context_with(planted: Planted, n: int = 8, seed: int = 0) -> torch.Tensor:
    """BOS + n distinct ordinary tokens, token A in the middle, A not last."""
    special = planted.model.special_ids
    gen = torch.Generator().manual_seed(seed)
    pool = [t for t in torch.randperm(planted.u.shape[0], generator=gen).tolist()
            if t not in special and t != planted.A][: n - 1]
    pool.insert(n // 2, planted.A)
    return torch.tensor([0, *pool])
