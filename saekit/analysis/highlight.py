"""Token activations: every token's SAE codes on a few texts (what token highlighting shows).

Example:
    >>> r = saekit.analysis.token_activations(model, sae, ["The cat sat.", "A dog ran."])
    >>> r.frame.nlargest(3, "activation")     # doc, pos, token, feature, activation
    >>> r                                     # in a notebook: the TokenHighlight view
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from saekit import _boundary
from saekit.analysis._checks import sae_site, special_mask
from saekit.analysis._result import Result
from saekit.ids import sae_name
from saekit.model import Model
from saekit.sae.base import SAE

__all__ = ["TokenActivations", "token_activations"]


@dataclass(frozen=True, eq=False, repr=False)
class TokenActivations(Result):
    """Codes of the ``shown`` features at every token of some texts, plus each token's
    top features. ``frame``: ``doc, pos, token, feature, activation`` (shown features).

    Per document ``d``: ``tokens[d]``, ``acts[d] [T, n_shown]``, ``top_ids[d] [T, k]``
    (``-1`` where fewer than ``k`` are active), ``top_values[d] [T, k]``, ``special[d] [T]``.
    """

    _view = "saekit.widgets.token_highlight:TokenHighlight"

    frame: pd.DataFrame
    sae: str
    shown: tuple[int, ...]
    tokens: tuple[tuple[str, ...], ...]
    acts: tuple[np.ndarray, ...]
    top_ids: tuple[np.ndarray, ...]
    top_values: tuple[np.ndarray, ...]
    special: tuple[np.ndarray, ...]

    @property
    def features(self) -> list[int]:
        return list(self.shown)

    def to_text(self) -> str:
        n_tok = sum(len(t) for t in self.tokens)
        feats = " ".join(f"#{f}" for f in self.shown)
        return f"TokenActivations · {self.sae} · {len(self.tokens)} texts · {n_tok} tokens · features {feats}"


@torch.no_grad()
def _codes(model: Model, sae: SAE, site: str, text: str) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Token strings, codes ``[T, d_sae]`` and the special-token mask ``[T]`` of one text."""
    ids = torch.tensor(model.to_tokens(text), dtype=torch.long)
    acts = model.run(ids[None], read=[site], logits=False).acts[site][0]  # [T, d_in]
    codes = sae.encode(acts.to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu()
    return model.to_strings(ids), codes, special_mask(model, ids)


def token_activations(
    model: Model,
    sae: SAE,
    texts: str | Sequence[str],
    features: Sequence[int] | None = None,
    *,
    top_k: int = 5,
    n_features: int = 5,
) -> TokenActivations:
    """The SAE's codes at every token of ``texts`` (special tokens flagged, not dropped).

    Args:
        model, sae: the model and an SAE at one of its sites.
        texts: one text or several.
        features: the features to show (default: the ``n_features`` with the largest
            activation on these texts, special tokens left out).
        top_k: top features kept per token.
        n_features: how many features to pick when ``features`` is None.
    """
    site = sae_site(model, sae)
    runs = [_codes(model, sae, site, t) for t in _boundary.texts(texts)]
    if features is None:
        peaks = [c[~m].max(0).values if (~m).any() else c.new_zeros(c.shape[1]) for _, c, m in runs]
        features = torch.stack(peaks).max(0).values.topk(min(n_features, sae.d_sae)).indices.tolist()
    shown = _boundary.feature_ids(features, sae.d_sae)
    tops = [codes.topk(min(top_k, sae.d_sae), dim=1) for _, codes, _ in runs]  # [T, k] each
    rows = [pd.DataFrame({"doc": d, "pos": np.repeat(np.arange(len(tok)), len(shown)),
                          "token": np.repeat(np.asarray(tok, dtype=object), len(shown)),
                          "feature": np.tile(shown, len(tok)),
                          "activation": codes[:, shown].reshape(-1).numpy()})
            for d, (tok, codes, _) in enumerate(runs)]
    return TokenActivations(
        pd.concat(rows, ignore_index=True), sae_name(sae), tuple(shown),
        tuple(tuple(tok) for tok, _, _ in runs), tuple(c[:, shown].numpy() for _, c, _ in runs),
        tuple(torch.where(v > 0, i, -1).numpy() for v, i in tops),
        tuple(v.clamp_min(0).numpy() for v, _ in tops), tuple(m.numpy() for _, _, m in runs),
    )
