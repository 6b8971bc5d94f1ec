"""Splicing an SAE into a model: edits that replace a site's activations.

Each function here builds an :data:`~saekit.model.Edit` (``[batch, pos, d] -> [batch,
pos, d]``) for :meth:`Model.run` / :meth:`Model.generate`. With ``error=True`` the
SAE's error term ``x - sae(x)`` is added back, so the model runs exactly as before
except for the features you change: editing one feature changes only that
feature's contribution ``Δcode * W_dec[f]``.

Clamp semantics (steering): ``clamp={f: v}`` sets feature ``f``'s code to ``v`` at every
edited position (whatever it was, active or not); ``scale={f: k}`` multiplies the
code by ``k`` (so it acts only where the feature is active); ``add={f: v}`` adds
``v * W_dec[f]`` everywhere (equivalent to adding ``v`` to the code);
``ablate=[f]`` sets the code to 0.

Example:
    >>> edit = saekit.sae_edit(sae, clamp={123: 8.0})
    >>> model.generate("I went to", edits={sae.cfg.site: edit})
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from saekit import _boundary
from saekit.model import Edit
from saekit.sae.base import SAE


def sae_edit(
    sae: SAE,
    *,
    error: bool = True,
    ablate: Iterable[int] = (),
    clamp: Mapping[int, float] | None = None,
    scale: Mapping[int, float] | None = None,
    add: Mapping[int, float] | None = None,
    where: Tensor | None = None,
) -> Edit:
    """An edit that runs the site through ``sae`` with some features changed.

    Args:
        sae: the SAE for this site.
        error: keep the SAE's error term (exact model except the changed features).
            With ``error=False`` the site is replaced by the SAE reconstruction.
        ablate: features whose code is set to 0.
        clamp: feature -> value the code is set to.
        scale: feature -> factor the code is multiplied by.
        add: feature -> amount added to the code (along its decoder direction).
        where: ``[batch, pos]`` bool mask of positions to edit (others untouched);
            e.g. to leave BOS alone. None edits every position.

    Feature ids and values pass the boundary (:mod:`saekit._boundary`): ints, numpy
    integers and :class:`~saekit.ids.FeatureRef`; finite values. A string, float, bool,
    NaN or infinite value raises :class:`~saekit.errors.SaekitError`.
    """
    ablate = _boundary.feature_ids(ablate, sae.d_sae) if _given(ablate) else []
    clamp, scale, add = (_boundary.feature_values(v, f"sae_edit({k}=...)", sae.d_sae) if v is not None else {}
                         for k, v in (("clamp", clamp), ("scale", scale), ("add", add)))
    changes = _Changes.build(sae, ablate, clamp, scale, add)

    def edit(x: Tensor) -> Tensor:  # x: [batch, pos, d_in]
        codes = sae.encode(x)
        if error:
            new = x + changes.delta(codes, sae) if changes.features.numel() else x
        else:
            new = sae.decode(changes.apply(codes)).to(x.dtype)
        return new if where is None else torch.where(where[..., None].to(x.device), new, x)

    return edit


def _given(ablate: object) -> bool:
    """False for an empty list/tuple (the default: nothing to ablate)."""
    return not (isinstance(ablate, list | tuple | range) and len(ablate) == 0)


def reconstruction_edit(sae: SAE, where: Tensor | None = None) -> Edit:
    """Replace the site by the SAE's reconstruction (no error term)."""
    return sae_edit(sae, error=False, where=where)


def zero_ablation_edit(where: Tensor | None = None) -> Edit:
    """Replace the site by zeros."""
    return lambda x: x * 0 if where is None else torch.where(where[..., None].to(x.device), 0 * x, x)


def mean_ablation_edit(mean: Tensor, where: Tensor | None = None) -> Edit:
    """Replace the site by a fixed mean vector ``[d]``."""

    def edit(x: Tensor) -> Tensor:
        m = mean.to(x.device, x.dtype).expand_as(x)
        return m if where is None else torch.where(where[..., None].to(x.device), m, x)

    return edit


class _Changes:
    """Feature indices and per-feature (set, mul, add) rules, as tensors (ids checked by sae_edit)."""

    def __init__(self, features: Tensor, set_to: Tensor, mul: Tensor, plus: Tensor) -> None:
        self.features, self.set_to, self.mul, self.plus = features, set_to, mul, plus

    @classmethod
    def build(cls, sae: SAE, ablate: Iterable[int], clamp: Mapping[int, float],
              scale: Mapping[int, float], add: Mapping[int, float]) -> _Changes:
        rules: dict[int, list[float]] = {}  # f -> [set (nan = keep), mul, add]
        for f in ablate:
            rules.setdefault(int(f), [float("nan"), 1.0, 0.0])[0] = 0.0
        for f, v in clamp.items():
            rules.setdefault(int(f), [float("nan"), 1.0, 0.0])[0] = float(v)
        for f, v in scale.items():
            rules.setdefault(int(f), [float("nan"), 1.0, 0.0])[1] = float(v)
        for f, v in add.items():
            rules.setdefault(int(f), [float("nan"), 1.0, 0.0])[2] = float(v)
        feats = torch.tensor(sorted(rules), dtype=torch.long)
        vals = torch.tensor([rules[f] for f in sorted(rules)], dtype=torch.float32).reshape(-1, 3)
        return cls(feats, vals[:, 0], vals[:, 1], vals[:, 2])

    def _new_values(self, old: Tensor) -> Tensor:  # old: [..., n_changed]
        dev = old.device
        set_to = self.set_to.to(dev)
        base = torch.where(torch.isnan(set_to), old, set_to.to(old.dtype))
        return base * self.mul.to(dev, old.dtype) + self.plus.to(dev, old.dtype)

    def apply(self, codes: Tensor) -> Tensor:
        if not self.features.numel():
            return codes
        f = self.features.to(codes.device)
        out = codes.clone()
        out[..., f] = self._new_values(codes[..., f])
        return out

    def delta(self, codes: Tensor, sae: SAE) -> Tensor:
        """``(new - old codes) @ W_dec`` for the changed features only."""
        f = self.features.to(codes.device)
        old = codes[..., f]
        return (self._new_values(old) - old) @ sae.W_dec[f]
