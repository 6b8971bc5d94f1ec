"""Driving the statistics pass: checking SAEs, feeding batches to accumulators.

SAEs are named by :func:`saekit.ids.name_saes`, as everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from saekit.analysis._accumulate import FlatBatch, SAEAccumulator, StatsSettings
from saekit.analysis._assemble import assemble
from saekit.analysis._checks import checked_site
from saekit.errors import CompatibilityError, SaekitError
from saekit.sae.base import SAE

SAEs = SAE | Sequence[SAE] | Mapping[str, SAE]


def check_model_saes(model: Any, named: Mapping[str, SAE]) -> None:
    """Every SAE names a site of ``model`` whose width equals its ``d_in``.

    SAEs may sit on other devices than the model: the pass moves activations to them.
    """
    for name, sae in named.items():
        checked_site(model, sae, name)


def settings_from(k: int, n_quantiles: int, per_quantile: int, n_random: int,
                  context: tuple[int, int]) -> StatsSettings:
    """Validated :class:`StatsSettings`."""
    for label, value, low in [("k", k, 1), ("n_quantiles", n_quantiles, 1),
                              ("examples_per_quantile", per_quantile, 0), ("n_random", n_random, 0)]:
        if not isinstance(value, int) or value < low:
            raise SaekitError(f"{label} must be an integer >= {low}, got {value!r}.")
    ok = isinstance(context, (tuple, list)) and len(context) == 2
    if not ok or not all(isinstance(c, int) and c >= 0 for c in context):
        raise SaekitError(
            f"context must be (left, right) token counts >= 0, e.g. (24, 8); got {context!r}."
        )
    return StatsSettings(k, n_quantiles, per_quantile, n_random, int(context[0]), int(context[1]))


def _site_of(name: str, sae: SAE, sites: list[str]) -> str:
    if sae.cfg.site in sites:
        return sae.cfg.site
    if not sae.cfg.site and len(sites) == 1:
        return sites[0]
    raise CompatibilityError(
        f"SAE {name!r} reads site {sae.cfg.site!r}, but the activations hold {sites}. "
        "Collect activations at the SAE's site."
    )


def run_pass(
    stream: Iterable[Any],
    named: Mapping[str, SAE],
    settings: StatsSettings,
    seed: int,
    to_strings: Callable[[list[int]], Sequence[str]] | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """Fold every batch of ``stream`` (``Activations``) into per-SAE accumulators.

    Returns the keyword arguments of :class:`~saekit.analysis.stats.FeatureStats`.
    """
    accs = {name: SAEAccumulator(sae.d_sae, settings, seed + i, sae.device)
            for i, (name, sae) in enumerate(named.items())}
    site_of: dict[str, str] = {}
    last_doc = -1
    with torch.no_grad():
        for batch in stream:
            if not site_of:
                site_of = {n: _site_of(n, s, batch.sites) for n, s in named.items()}
            flat: dict[torch.device, FlatBatch] = {}
            for name, sae in named.items():
                dev = sae.device
                if dev not in flat:
                    flat[dev] = FlatBatch(batch.token_ids.to(dev), batch.doc.to(dev), batch.pos.to(dev))
                x = batch[site_of[name]].to(dev)  # [n, d_in]
                accs[name].update(sae.encode(x), flat[dev])
            if len(batch):
                last_doc = max(last_doc, int(batch.doc.max()))
    n_tokens = next(iter(accs.values())).n_tokens
    if n_tokens == 0:
        raise SaekitError(
            "The corpus produced no tokens to analyse (all were special or padding). "
            "Pass longer texts, or keep_special=True."
        )
    parts = assemble(accs, to_strings)
    info = {
        "n_tokens": n_tokens,
        "n_texts": last_doc + 1,
        "context": [settings.left, settings.right],
        "settings": {"k": settings.k, "n_quantiles": settings.n_quantiles,
                     "examples_per_quantile": settings.examples_per_quantile,
                     "n_random": settings.n_random, "seed": seed},
        "saes": {n: {"site": site_of.get(n, s.cfg.site), "d_sae": s.d_sae,
                     "architecture": s.cfg.architecture} for n, s in named.items()},
        **extra,
    }
    return {**parts.__dict__, "info": info}
