"""Evaluating SAEs on a model: sparsity, reconstruction, and loss when spliced in.

Example:
    >>> table = saekit.evaluate(model, [sae_a, sae_b], saekit.default_corpus(64))
    >>> table[["sae", "l0", "explained_variance", "loss_recovered"]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from saekit import _boundary
from saekit.analysis._checks import special_mask  # the one special-token mask
from saekit.errors import CompatibilityError, SaekitError
from saekit.ids import name_saes
from saekit.model import Model
from saekit.sae.base import SAE
from saekit.splice import mean_ablation_edit, reconstruction_edit, zero_ablation_edit
from saekit.train._diagnostics import quality_note
from saekit.train._normalize import dominant_dims


@dataclass
class _SAEStats:
    """Running sums for one SAE over the evaluated tokens."""

    d_sae: int
    d_in: int
    n: int = 0
    l0: float = 0.0
    sq_err: float = 0.0
    cos: float = 0.0
    fires: Tensor = field(default_factory=lambda: torch.zeros(0))
    loss_sae: float = 0.0
    kl: float = 0.0
    x_sq: float = 0.0  # sum of squared norms, for the variance of the activations
    x_sum: Tensor = field(default_factory=lambda: torch.zeros(0))
    x_sq_dim: Tensor = field(default_factory=lambda: torch.zeros(0))  # per-dimension sums
    err_dim: Tensor = field(default_factory=lambda: torch.zeros(0))

    def __post_init__(self) -> None:
        self.fires = torch.zeros(self.d_sae, dtype=torch.float64)
        self.x_sum = torch.zeros(self.d_in, dtype=torch.float64)
        self.x_sq_dim = torch.zeros(self.d_in, dtype=torch.float64)
        self.err_dim = torch.zeros(self.d_in, dtype=torch.float64)

    def ev_rest(self) -> tuple[float, tuple[int, ...], float]:
        """EV outside the massive dimensions, those dimensions, and their variance share."""
        var = self.x_sq_dim - self.x_sum.pow(2) / self.n  # [d_in], summed over tokens
        dims, share = dominant_dims(var)
        rest = torch.ones(self.d_in, dtype=torch.bool)
        rest[list(dims)] = False
        return 1 - float(self.err_dim[rest].sum() / var[rest].sum()), dims, share


def _check(model: Model, saes: Sequence[SAE]) -> list[SAE]:
    if isinstance(saes, SAE):
        saes = [saes]
    if not saes:
        raise SaekitError("No SAEs to evaluate. Pass a list of SAEs.")
    for sae in saes:
        _boundary.finite_weights(sae, fix="Its metrics would be NaN. Evaluate another checkpoint "
                                 "(or find where training diverged).")
        if not sae.cfg.site:
            raise CompatibilityError(
                "This SAE does not say which site it reads (cfg.site is empty). Set it: "
                "sae.cfg = sae.cfg.replace(site='resid_post.15')."
            )
        width = model.site_width(sae.cfg.site)
        if width != sae.d_in:
            raise CompatibilityError(
                f"SAE d_in={sae.d_in} does not match site {sae.cfg.site!r} of width {width}. "
                "Use an SAE trained on this model and site."
            )
        if sae.cfg.model_name and sae.cfg.model_name != model.name:
            import warnings

            warnings.warn(
                f"SAE was trained on {sae.cfg.model_name!r} but the model is {model.name!r}.",
                stacklevel=3,
            )
    return list(saes)


def _token_loss(logits: Tensor, b) -> tuple[Tensor, Tensor]:  # type: ignore[no-untyped-def]
    """Per-position next-token loss ``[b, p-1]`` and the mask of the predictions counted:
    real token pairs whose target is fresh (not repeated context of a chunked text)."""
    ids = b.input_ids
    lp = F.log_softmax(logits[:, :-1].float(), -1)
    loss = -lp.gather(-1, ids[:, 1:, None].to(lp.device))[..., 0]
    valid = (b.attention_mask[:, :-1].bool() & b.fresh()[:, 1:]).to(lp.device)
    return loss, valid


def evaluate(
    model: Model,
    saes: Sequence[SAE] | SAE | Mapping[str, SAE],
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    max_length: int | None = 128,
    dense_threshold: float = 0.1,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per SAE: sparsity, reconstruction and downstream loss.

    Columns: ``sae``, ``site``, ``d_sae``, ``l0``, ``mse``, ``explained_variance``, ``fvu``,
    ``cosine``, ``loss_clean``, ``loss_spliced``, ``loss_zero``, ``loss_mean``,
    ``loss_recovered`` (vs zero ablation), ``loss_recovered_mean`` (vs mean ablation),
    ``kl`` (clean || spliced, nats/token), ``dead_frac`` (never fired here),
    ``dense_frac`` (fired on more than ``dense_threshold`` of tokens), ``n_tokens``,
    ``explained_variance_rest`` (EV outside the few "massive" dimensions, if any, that
    hold most of the variance: Gemma 3's layer 9 has 2 of 640 with 60%) and ``note``:
    a warning, empty when none, when EV is dominated by such dimensions or loss
    recovered is below EV (see :func:`saekit.train._diagnostics.quality_note`).
    ``df.attrs["density"]`` is a long DataFrame (sae, feature, density) for a
    log-density histogram.

    Loss recovered follows the literature: ``(L_zero - L_sae) / (L_zero - L_clean)``,
    where ``L_sae`` splices the SAE reconstruction (no error term) in at its site.
    SAEs are spliced, and sites ablated, at every real token but BOS and other special
    tokens (the BOS attention sink is not what SAEs are trained on), as in SAELens.
    Texts longer than ``max_length`` are chunked with a little repeated context
    (see :meth:`Model.batches`); each token and each prediction is counted once. Rows
    are batched by length (less padding); every number is a sum over tokens, so the
    order does not matter.
    """
    named = name_saes(saes)  # the one naming rule: the table's "sae" column
    saes = _check(model, list(named.values()))
    names = list(named)
    batches = list(model.batches(texts, batch_size=batch_size, max_length=max_length, sort_rows=True))
    means = _site_means(model, saes, batches)
    stats = [_SAEStats(s.d_sae, s.d_in) for s in saes]
    clean, n_pred = 0.0, 0
    zero = dict.fromkeys(means, 0.0)  # site -> summed loss with the site zero-ablated
    mean = dict.fromkeys(means, 0.0)
    from tqdm.auto import tqdm

    for b in tqdm(batches, desc="evaluate", disable=not progress):
        run = model.run(b.input_ids, b.attention_mask, read=sorted(means))
        assert run.logits is not None  # logits=True is the default
        loss, valid = _token_loss(run.logits, b)
        clean_lp = F.log_softmax(run.logits.float(), -1)
        clean += float(loss[valid].sum())
        n_pred += int(valid.sum())
        where = _content(model, b)  # [batch, pos]: where SAEs are spliced and sites ablated
        for site in sorted(means):
            zero[site] += _site_loss(model, b, {site: zero_ablation_edit(where)})
            mean[site] += _site_loss(model, b, {site: mean_ablation_edit(means[site], where)})
        for sae, st in zip(saes, stats):
            _accumulate(model, sae, st, b, where, run.acts[sae.cfg.site], clean_lp, valid)
    return _table(saes, names, stats, means, clean, zero, mean, n_pred, dense_threshold)


def _site_means(model: Model, saes: Sequence[SAE], batches: list[Any]) -> dict[str, Tensor]:
    sites = sorted({s.cfg.site for s in saes})
    total = {s: torch.zeros(model.site_width(s), dtype=torch.float64) for s in sites}
    n = 0
    for b in batches:
        acts = model.run(b.input_ids, b.attention_mask, read=sites, logits=False).acts
        keep = _content(model, b).to(model.device)
        for s in sites:
            total[s] += acts[s][keep].double().sum(0).cpu()
        n += int(keep.sum())
    return {s: (t / n).float() for s, t in total.items()}


def _content(model: Model, b) -> Tensor:  # type: ignore[no-untyped-def]
    """``[batch, pos]`` mask of the fresh, non-special tokens: the positions SAEs are spliced at.

    The context repeated at the start of a chunked text's follow-on row keeps its clean
    activations, like the BOS: it was spliced and counted in the row before.
    """
    return b.fresh() & ~special_mask(model, b.input_ids).to(b.input_ids.device)


def _site_loss(model: Model, b, edits) -> float:  # type: ignore[no-untyped-def]
    logits = model.logits(b.input_ids, b.attention_mask, edits=edits)
    loss, valid = _token_loss(logits, b)
    return float(loss[valid].sum())


def _accumulate(model: Model, sae: SAE, st: _SAEStats, b, keep: Tensor, x: Tensor,  # type: ignore[no-untyped-def]
                clean_lp: Tensor, valid: Tensor) -> None:
    with torch.inference_mode():
        xs = x[keep.to(x.device)].to(sae.device)
        codes = sae.encode(xs)
        recon = sae.decode(codes)
    st.n += len(xs)
    st.l0 += float((codes > 0).sum())
    st.sq_err += float((recon - xs).pow(2).sum())
    st.err_dim += (recon - xs).double().pow(2).sum(0).cpu()
    st.x_sq_dim += xs.double().pow(2).sum(0).cpu()
    st.cos += float(F.cosine_similarity(recon, xs, dim=-1).sum())
    st.fires += (codes > 0).sum(0).double().cpu()
    logits = model.logits(b.input_ids, b.attention_mask, edits={sae.cfg.site: reconstruction_edit(sae, keep)})
    loss, _ = _token_loss(logits, b)
    st.loss_sae += float(loss[valid].sum())
    lp = F.log_softmax(logits.float(), -1)
    kl = (clean_lp.exp() * (clean_lp - lp)).sum(-1)[:, :-1]
    st.kl += float(kl[valid].sum())
    st.x_sq += float(xs.double().pow(2).sum())
    st.x_sum += xs.double().sum(0).cpu()


def _table(saes, names, stats, means, clean, zero, mean, n_pred, dense_threshold) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    rows, dens = [], []
    for sae, name, st in zip(saes, names, stats):
        site = sae.cfg.site
        l_clean, l_zero, l_mean = clean / n_pred, zero[site] / n_pred, mean[site] / n_pred
        l_sae = st.loss_sae / n_pred
        total_var = st.x_sq - float(st.x_sum.pow(2).sum()) / st.n
        density = (st.fires / st.n).numpy()
        ev, (ev_rest, dims, share) = 1 - st.sq_err / total_var, st.ev_rest()
        l_rec = (l_zero - l_sae) / (l_zero - l_clean)
        rows.append({
            "sae": name, "site": sae.cfg.site, "d_sae": sae.d_sae, "l0": st.l0 / st.n,
            "mse": st.sq_err / (st.n * sae.d_in), "explained_variance": ev,
            "explained_variance_rest": ev_rest,
            "fvu": st.sq_err / total_var, "cosine": st.cos / st.n,
            "loss_clean": l_clean, "loss_spliced": l_sae, "loss_zero": l_zero, "loss_mean": l_mean,
            "loss_recovered": l_rec,
            "loss_recovered_mean": (l_mean - l_sae) / (l_mean - l_clean),
            "kl": st.kl / n_pred, "dead_frac": float((density == 0).mean()),
            "dense_frac": float((density > dense_threshold).mean()), "n_tokens": st.n,
            "note": quality_note(ev, ev_rest, dims, share, d_in=sae.d_in, loss_recovered=l_rec),
        })
        dens.append(pd.DataFrame({"sae": name, "feature": np.arange(sae.d_sae), "density": density}))
    table = pd.DataFrame(rows)
    table.attrs["density"] = pd.concat(dens, ignore_index=True)
    return table
