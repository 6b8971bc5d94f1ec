"""Neuron-basis comparison: is this feature just one MLP neuron?

Two views, as in the Pythia-70M dictionary study:

- **weights**: how the feature's direction spreads over the MLP neurons of its layer.
  For an SAE on ``mlp_neurons.L`` the decoder row *is* a vector over neurons; for a
  residual SAE it is compared (cosine) with each neuron's output direction (a column
  of the down-projection). Summaries: the largest single-neuron cosine, the
  participation ratio and entropy of the squared weights, and how many neurons hold
  50% / 90% of that mass.
- **activations**: on the feature's top examples (at each example's max-activating
  token), how many neurons fire above a fixed threshold and above their own quantile
  (e.g. their 99th percentile over all tokens of the examples), and which neuron's
  activation correlates best with the feature's.

Example:
    >>> nb = saekit.analysis.neuron_basis(model, sae, 123, top_texts)
    >>> nb.max_cosine, nb.n_for_90                 # one neuron: ~1.0 and 1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from saekit.analysis._batching import chunks, pad_id, pad_right
from saekit.analysis._checks import feature_ids, sae_site, special_mask, token_ids
from saekit.analysis._directions import neuron_directions
from saekit.errors import SaekitError
from saekit.model import Model
from saekit.sae.base import SAE

NEURON_COLUMNS = ["neuron", "rank", "cosine", "mass", "frac_active", "frac_above_quantile", "correlation"]
EXAMPLE_COLUMNS = ["example", "pos", "token_id", "token", "activation", "n_active", "n_above_quantile"]


@dataclass(frozen=True)
class NeuronBasis:
    """How one feature relates to the MLP neurons of its layer (see module docstring).

    Attributes:
        feature, site, neuron_site: what was compared.
        neurons: per neuron ``neuron, rank, cosine, mass, frac_active,
            frac_above_quantile, correlation``, sorted by ``mass`` (largest first).
        examples: per example ``example, pos, token_id, token, activation, n_active,
            n_above_quantile`` at its max-activating token.
        max_cosine: largest ``|cosine|`` between the feature and one neuron.
        participation_ratio: ``1 / sum(mass**2)``: ~1 for one neuron, d_mlp if uniform.
        entropy: ``-sum(mass * log(mass))`` in nats.
        n_for_50, n_for_90: fewest neurons holding 50% / 90% of the mass.
        mean_active, mean_above_quantile: mean neuron counts over the examples.
        max_correlation: best Pearson correlation of a neuron with the feature over
            all tokens of the examples.
    """

    feature: int
    site: str
    neuron_site: str
    neurons: pd.DataFrame
    examples: pd.DataFrame
    max_cosine: float
    participation_ratio: float
    entropy: float
    n_for_50: int
    n_for_90: int
    mean_active: float
    mean_above_quantile: float
    max_correlation: float

    @property
    def top_neuron(self) -> int:
        return int(self.neurons["neuron"].iloc[0])

    def __repr__(self) -> str:
        return (
            f"NeuronBasis(feature {self.feature} at {self.site} vs {self.neuron_site}: "
            f"top neuron {self.top_neuron}, max |cos| {self.max_cosine:.3f}, participation ratio "
            f"{self.participation_ratio:.1f}, {self.n_for_50} neurons for 50% / {self.n_for_90} for 90% "
            f"of mass; on {len(self.examples)} examples {self.mean_active:.1f} neurons active, "
            f"{self.mean_above_quantile:.1f} above their quantile; best neuron correlation "
            f"{self.max_correlation:.3f})"
        )


def neuron_basis(
    model: Model,
    sae: SAE,
    feature: int,
    examples: Sequence[str] | Sequence[Sequence[int]],
    *,
    threshold: float = 0.0,
    quantile: float = 0.99,
    layer: int | None = None,
    batch_size: int = 16,
) -> NeuronBasis:
    """Compare one feature with the MLP neurons of its layer, by weights and by activations.

    Args:
        model: the model.
        sae: the SAE at its site.
        feature: the feature index.
        examples: the feature's top examples, as texts or token-id lists (e.g. the
            windows of a statistics pass: ``[e.token_ids for e in examples]``). Each
            example is compared at its max-activating (non-special) token.
        threshold: a neuron counts as active above this value (MLP neurons of gated
            MLPs are signed; the quantile count is the scale-free one).
        quantile: per-neuron quantile over all tokens of the examples (0.99 = 99th percentile).
        layer: MLP layer to compare with; default the SAE's layer (``resid_pre.L`` uses
            layer ``L-1``, whose MLP wrote into it).
        batch_size: examples per forward pass.

    Example:
        >>> nb = neuron_basis(model, sae, 123, ["text one", "text two"], quantile=0.99)
        >>> nb.neurons.head()
    """
    site = sae_site(model, sae)
    (f,) = feature_ids(sae, [feature])
    L = _layer(model, site, layer)
    nsite = f"mlp_neurons.{L}"
    if not 0 < quantile < 1:
        raise SaekitError(f"quantile must be in (0, 1), got {quantile}.")
    cosine = _cosines(model, sae, site, f, L)  # [d_mlp]
    acts = _activations(model, sae, site, nsite, f, examples, batch_size)
    return _summarise(model, f, site, nsite, cosine, acts, threshold, quantile)


def _layer(model: Model, site: str, layer: int | None) -> int:
    if layer is not None:
        model.site(f"mlp_neurons.{layer}")  # validates
        return layer
    s = model.site(site)
    return max(s.layer - 1, 0) if s.kind == "resid_pre" else s.layer


def _cosines(model: Model, sae: SAE, site: str, f: int, L: int) -> Tensor:
    w = sae.W_dec.detach()[f].float().cpu()
    if site == f"mlp_neurons.{L}":
        return w / w.norm().clamp_min(1e-12)
    if model.site(site).kind == "mlp_neurons":
        raise SaekitError(f"An SAE on {site!r} can only be compared with the neurons of its own layer.")
    dirs = neuron_directions(model, L)  # [d_mlp, d_model]
    return torch.nn.functional.cosine_similarity(dirs, w[None], dim=-1, eps=1e-12)


@dataclass(frozen=True)
class _Acts:
    """Per example: token ids ``[T]``, feature codes ``[T]``, neurons ``[T, d_mlp]``, non-special ``[T]``."""

    ids: list[Tensor]
    codes: list[Tensor]
    neurons: list[Tensor]
    keep: list[Tensor]


@torch.no_grad()
def _activations(model: Model, sae: SAE, site: str, nsite: str, f: int,
                 examples: Sequence[str] | Sequence[Sequence[int]], batch_size: int) -> _Acts:
    if isinstance(examples, str) or not len(examples):
        raise SaekitError("examples must be a non-empty list of texts or token-id lists.")
    rows = [token_ids(model, e) for e in examples]
    out = _Acts(rows, [], [], [])
    for s in chunks(len(rows), batch_size):
        ids, mask, _ = pad_right(rows[s], pad_id(model))
        acts = model.run(ids, mask, read=[site, nsite], logits=False).acts
        c = sae.encode(acts[site])[..., f].float().cpu()  # [b, T]
        n = acts[nsite].float().cpu()  # [b, T, d_mlp]
        for r, row in enumerate(rows[s]):
            out.codes.append(c[r, : row.numel()])
            out.neurons.append(n[r, : row.numel()])
            out.keep.append(~special_mask(model, row))
    return out


def _summarise(model: Model, f: int, site: str, nsite: str, cosine: Tensor, a: _Acts,
               threshold: float, quantile: float) -> NeuronBasis:
    all_c = torch.cat([c[k] for c, k in zip(a.codes, a.keep, strict=True)])  # [N]
    all_n = torch.cat([n[k] for n, k in zip(a.neurons, a.keep, strict=True)])  # [N, d_mlp]
    if all_c.numel() == 0:
        raise SaekitError("The examples contain no tokens besides special tokens.")
    q = _column_quantile(all_n, quantile)  # [d_mlp]
    best = [int(torch.where(k, c, -torch.inf).argmax()) for c, k in zip(a.codes, a.keep, strict=True)]
    at_best = torch.stack([n[p] for n, p in zip(a.neurons, best, strict=True)])  # [n_ex, d_mlp]
    active, above = at_best > threshold, at_best > q
    mass = cosine.pow(2) / cosine.pow(2).sum().clamp_min(1e-12)
    frame = _neuron_frame(cosine, mass, active, above, _correlations(all_c, all_n))
    cum = torch.cumsum(torch.sort(mass, descending=True).values, 0)
    n_for = [min(int((cum < t).sum()) + 1, mass.numel()) for t in (0.5, 0.9)]
    return NeuronBasis(
        feature=f, site=site, neuron_site=nsite, neurons=frame,
        examples=_example_frame(model, a, best, active, above),
        max_cosine=float(cosine.abs().max()), participation_ratio=float(1 / mass.pow(2).sum()),
        entropy=float(-(mass * mass.clamp_min(1e-30).log()).sum()), n_for_50=n_for[0], n_for_90=n_for[1],
        mean_active=float(active.sum(1).float().mean()),
        mean_above_quantile=float(above.sum(1).float().mean()),
        max_correlation=float(frame["correlation"].max()),
    )


def _column_quantile(x: Tensor, q: float) -> Tensor:
    """Per-column ``q``-quantile of ``x [N, d]`` (lower value; no size limit)."""
    k = min(max(int(round(q * (x.shape[0] - 1))) + 1, 1), x.shape[0])
    return x.kthvalue(k, dim=0).values


def _correlations(c: Tensor, n: Tensor) -> Tensor:
    """Pearson correlation of ``c [N]`` with each column of ``n [N, d]`` (0 where undefined)."""
    c, n = c.double() - c.double().mean(), n.double() - n.double().mean(0)
    denom = c.norm() * n.norm(dim=0)
    return torch.where(denom > 0, (c @ n) / denom.clamp_min(1e-300), 0.0).float()


def _neuron_frame(cosine: Tensor, mass: Tensor, active: Tensor, above: Tensor, corr: Tensor) -> pd.DataFrame:
    order = torch.sort(mass, descending=True, stable=True).indices
    return pd.DataFrame({
        "neuron": order.numpy(), "rank": range(order.numel()), "cosine": cosine[order].numpy(),
        "mass": mass[order].numpy(), "frac_active": active.float().mean(0)[order].numpy(),
        "frac_above_quantile": above.float().mean(0)[order].numpy(), "correlation": corr[order].numpy(),
    }, columns=NEURON_COLUMNS)


def _example_frame(model: Model, a: _Acts, best: list[int], active: Tensor, above: Tensor) -> pd.DataFrame:
    tok = [int(ids[p]) for ids, p in zip(a.ids, best, strict=True)]
    return pd.DataFrame({
        "example": range(len(best)), "pos": best, "token_id": tok, "token": model.to_strings(tok),
        "activation": [float(c[p]) for c, p in zip(a.codes, best, strict=True)],
        "n_active": active.sum(1).numpy(), "n_above_quantile": above.sum(1).numpy(),
    }, columns=EXAMPLE_COLUMNS)
