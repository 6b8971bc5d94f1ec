"""Attribution: which SAE features drive a prediction (activation x gradient).

:func:`attribute` splices each SAE into its site with the error term kept, so the
model runs exactly as before, but with the SAE codes as leaves of the autograd
graph. One backward pass of a metric (a logit, or a logit difference, at one
position) gives ``d metric / d code`` for every feature at every position;
``attribution = activation x gradient`` is the first-order estimate of how much the
metric would drop if that code were set to 0. :func:`check_attributions` tests that
estimate against true ablations.

Example:
    >>> att = saekit.analysis.attribute(model, sae, "The capital of France is", " Paris")
    >>> att.frame.head()                        # largest |attribution| first
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from saekit.analysis._batching import rowwise
from saekit.analysis._checks import Context, one_token, sae_site, special_mask, token_ids
from saekit.analysis.results import Attribution
from saekit.errors import SaekitError
from saekit.ids import sae_name
from saekit.model import Edit, Model
from saekit.sae.base import SAE
from saekit.splice import sae_edit

#: A target: one token (id or single-token string), or a pair ``(a, b)`` for ``logit a - logit b``.
Target = int | str | tuple[int | str, int | str]
COLUMNS = ["sae", "site", "pos", "token_id", "token", "feature", "activation", "gradient", "attribution"]


def attribute(
    model: Model,
    saes: SAE | Sequence[SAE],
    context: Context,
    target: Target,
    *,
    pos: int = -1,
    include_special: bool = False,
) -> Attribution:
    """Activation x gradient of a logit (or logit difference) for every active feature.

    The gradient of a code counts every path from it to the metric, through later
    layers and through later spliced sites alike (their error terms keep them exact),
    so it matches ablating that one code with the error term kept (see
    :func:`check_attributions`).

    Args:
        model: the model.
        saes: one SAE or several, at distinct sites.
        context: a text (tokenised with BOS) or token ids.
        target: token id / single-token string (metric = its logit), or a pair
            ``(a, b)`` (metric = logit a - logit b).
        pos: position whose logits give the metric (default: the last).
        include_special: also report features at special tokens (BOS).

    Returns:
        An :class:`~saekit.analysis.results.Attribution` whose ``frame`` is ``sae, site,
        pos, token_id, token, feature, activation, gradient,
        attribution`` with one row per non-zero code at positions ``<= pos``, sorted by
        ``|attribution|``, largest first. ``attribution`` is ``activation * gradient``;
        ablating the code changes the metric by about ``-attribution``.

    Example:
        >>> attribute(model, [sae_a, sae_b], "1 + 1 =", (" 2", " 3")).frame.head(10)
    """
    saes, sites = _sites(model, saes)
    ids = token_ids(model, context)
    p = _position(ids, pos)
    metric = _metric(model, target)
    codes: dict[str, Tensor] = {}
    edits = {site: _leaf_edit(sae, site, codes) for sae, site in zip(saes, sites, strict=True)}
    out = model.run(ids[None], edits=edits, grad=True)
    assert out.logits is not None
    grads = torch.autograd.grad(metric(out.logits[0, p]), [codes[s] for s in sites], allow_unused=True)
    keep = torch.arange(ids.numel()) <= p
    if not include_special:
        keep &= ~special_mask(model, ids)
    frames = [_frame(model, ids, site, codes[site][0], g, keep).assign(sae=sae_name(sae))
              for sae, site, g in zip(saes, sites, grads, strict=True)]
    df = pd.concat(frames, ignore_index=True)
    order = np.argsort(-df["attribution"].abs().to_numpy(), kind="stable")
    token = p + 1 if p + 1 < ids.numel() else None
    return Attribution(df.iloc[order].reset_index(drop=True)[COLUMNS], sae_name(saes[0]),
                       _target_text(model, target, ids, p), token)


def _target_text(model: Model, target: Target, ids: Tensor, p: int) -> str:
    """What is predicted, in words: ``"' Paris' at position 6"``, ``"' 2' - ' 3' after the text"``."""
    targets = target if isinstance(target, tuple) else (target,)
    names = [model.to_strings([one_token(model, t)])[0] for t in targets]
    where = f"at position {p + 1}" if p + 1 < ids.numel() else "after the text"
    return " - ".join(repr(n) for n in names) + f" {where}"


def _sites(model: Model, saes: SAE | Sequence[SAE]) -> tuple[list[SAE], list[str]]:
    saes = [saes] if isinstance(saes, SAE) else list(saes)
    if not saes:
        raise SaekitError("No SAEs given. Pass an SAE or a list of SAEs at distinct sites.")
    sites = [sae_site(model, s) for s in saes]
    if len(set(sites)) != len(sites):
        raise SaekitError(f"Two SAEs read the same site ({sites}); pass at most one SAE per site.")
    return saes, sites


def _position(ids: Tensor, pos: int) -> int:
    T = ids.numel()
    if not -T <= pos < T:
        raise SaekitError(f"pos={pos} is outside a context of {T} tokens (valid: {-T}..{T - 1}).")
    return pos % T


def _metric(model: Model, target: Target) -> Callable[[Tensor], Tensor]:
    """``logits [vocab] -> scalar``."""
    if isinstance(target, tuple):
        if len(target) != 2:
            raise SaekitError(f"A logit-difference target is a pair (a, b); got {len(target)} items.")
        a, b = one_token(model, target[0]), one_token(model, target[1])
        return lambda logits: logits[a].double() - logits[b].double()
    t = one_token(model, target)
    return lambda logits: logits[t].double()


def _leaf_edit(sae: SAE, site: str, codes: dict[str, Tensor]) -> Edit:
    """Identity in value; routes the gradient through ``codes[site]`` (a leaf)."""

    def edit(x: Tensor) -> Tensor:  # x: [1, T, d_in]
        c = sae.encode(x.detach()).detach().requires_grad_(True)  # [1, T, d_sae]
        codes[site] = c
        dec = c @ sae.W_dec.detach()
        return x + (dec - dec.detach()).to(x.dtype)

    return edit


def _frame(model: Model, ids: Tensor, site: str, codes: Tensor, grad: Tensor | None,
           keep: Tensor) -> pd.DataFrame:
    codes = codes.detach().double().cpu()  # [T, d_sae]
    grad = torch.zeros_like(codes) if grad is None else grad[0].detach().double().cpu()
    mask = (codes != 0) & keep[:, None]
    p, f = mask.nonzero(as_tuple=True)
    strings = model.to_strings(ids)
    act, g = codes[p, f], grad[p, f]
    return pd.DataFrame({
        "sae": "", "site": site, "pos": p.numpy(), "token_id": ids[p].numpy(),
        "token": [strings[i] for i in p.tolist()], "feature": f.numpy(),
        "activation": act.numpy(), "gradient": g.numpy(), "attribution": (act * g).numpy(),
    }, columns=COLUMNS)


@dataclass(frozen=True)
class AttributionCheck:
    """Predicted (``-attribution``) vs actual metric change when ablating top features.

    Attributes:
        frame: one row per checked (site, pos, feature): ``activation, attribution,
            predicted_change, actual_change``.
        correlation: Pearson correlation of predicted and actual changes (NaN if
            fewer than 2 rows or no variance).
        metric_clean: the metric on the unablated context.
    """

    frame: pd.DataFrame
    correlation: float
    metric_clean: float

    def __repr__(self) -> str:
        lines = [f"AttributionCheck({len(self.frame)} ablations, correlation={self.correlation:.3f}, "
                 f"metric_clean={self.metric_clean:.4f})"]
        for r in self.frame.itertuples():
            lines.append(f"  {r.site} pos {r.pos} feature {r.feature}: predicted "
                         f"{r.predicted_change:+.4f}, actual {r.actual_change:+.4f}")
        return "\n".join(lines)


def check_attributions(
    model: Model,
    saes: SAE | Sequence[SAE],
    context: Context,
    target: Target,
    *,
    top: int = 10,
    pos: int = -1,
    include_special: bool = False,
) -> AttributionCheck:
    """Ablate each of the ``top`` attributed codes for real and compare with the prediction.

    Each ablation sets one code at one position to 0 (``sae_edit(sae, ablate=[f],
    where=<that position>)``, error term kept). The clean run and all ablations share
    one batched forward pass.

    Example:
        >>> chk = check_attributions(model, sae, "The capital of France is", " Paris", top=5)
        >>> chk.correlation
        0.97
    """
    saes_l, sites = _sites(model, saes)
    att = attribute(model, saes_l, context, target, pos=pos, include_special=include_special).frame.head(top)
    if att.empty:
        raise SaekitError("No active features to check: every code is 0 at the positions considered.")
    ids = token_ids(model, context)
    p = _position(ids, pos)
    by_site = dict(zip(sites, saes_l, strict=True))
    edits = {s: rowwise([None] + [_one_ablation(by_site[s], r, ids.numel()) if r.site == s else None
                                  for r in att.itertuples()]) for s in set(att["site"])}
    logits = model.logits(ids[None].expand(len(att) + 1, -1), edits=edits)[:, p]  # [1 + n, vocab]
    metric = _metric(model, target)
    values = torch.stack([metric(row) for row in logits]).cpu()
    frame = att[["site", "pos", "feature", "activation", "attribution"]].copy()
    frame["predicted_change"] = -frame["attribution"]
    frame["actual_change"] = (values[1:] - values[0]).numpy()
    return AttributionCheck(frame.reset_index(drop=True), _pearson(frame), float(values[0]))


def _one_ablation(sae: SAE, row: object, T: int) -> Edit:
    where = torch.zeros(1, T, dtype=torch.bool)
    where[0, int(row.pos)] = True  # type: ignore[attr-defined]
    return sae_edit(sae, ablate=[int(row.feature)], where=where)  # type: ignore[attr-defined]


def _pearson(frame: pd.DataFrame) -> float:
    a, b = frame["predicted_change"].to_numpy(float), frame["actual_change"].to_numpy(float)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])
