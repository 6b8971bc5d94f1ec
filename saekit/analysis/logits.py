"""Direct logit effects: a feature's decoder direction read through the unembedding.

The "logit lens" of a feature: ``unembed(W_dec[f])`` (final norm, then the output
embedding) says which next tokens the feature pushes up and which it pushes down
when it writes into the residual stream, ignoring every later layer.

Example:
    >>> df = saekit.analysis.logit_effects(model, sae, [12, 40], k=5).frame
    >>> df[df.direction == "top"].token.tolist()[:5]
    [' Paris', ' France', ...]
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch

from saekit.analysis._checks import feature_ids, sae_site
from saekit.analysis._directions import residual_directions
from saekit.analysis.results import LogitEffects
from saekit.ids import sae_name
from saekit.model import Model
from saekit.sae.base import SAE

COLUMNS = ["feature", "direction", "rank", "token_id", "token", "logit"]


def logit_effects(
    model: Model, sae: SAE, features: int | Iterable[int], k: int = 10, *, norm: bool = True
) -> LogitEffects:
    """Top and bottom ``k`` tokens of each feature's direct logit effect.

    Args:
        model: the model the SAE belongs to.
        sae: an SAE at any site; for ``mlp_neurons`` SAEs the decoder row is first
            mapped to the residual stream by the MLP's down-projection.
        features: a feature index or several.
        k: tokens per direction.
        norm: apply the final norm before the unembedding (as the model does). With
            ``norm=False`` the raw direction is multiplied by the unembedding.

    Returns:
        A :class:`~saekit.analysis.results.LogitEffects` whose ``frame`` is ``feature,
        direction ("top"/"bottom"), rank (0 = strongest),
        token_id, token, logit``. ``bottom`` rows are sorted from most negative up.

    Example:
        >>> logit_effects(model, sae, 7, k=3).frame
           feature direction  rank  token_id   token  logit
        0        7       top     0      5432  " cat"   4.21 ...
    """
    feats = feature_ids(sae, features)
    sae_site(model, sae)
    vocab = model.W_U.shape[1]
    k = max(1, min(int(k), vocab))
    dirs = residual_directions(model, sae, feats)  # [n_feat, d_model]
    logits = model.unembed(dirs, norm=norm).float().cpu()  # [n_feat, vocab]
    rows: list[dict[str, object]] = []
    for i, f in enumerate(feats):
        for direction, largest in (("top", True), ("bottom", False)):
            vals, idx = torch.topk(logits[i], k, largest=largest)
            strings = model.to_strings(idx)
            rows += [
                {"feature": f, "direction": direction, "rank": r, "token_id": int(t),
                 "token": s, "logit": float(v)}
                for r, (t, s, v) in enumerate(zip(idx, strings, vals, strict=True))
            ]
    return LogitEffects(pd.DataFrame(rows, columns=COLUMNS), sae_name(sae))

