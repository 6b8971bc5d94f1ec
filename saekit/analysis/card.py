"""A feature card's data: the statistics pass's view of a feature, its logit effects and
its decoder neighbours, as one :class:`~saekit.analysis.stats.FeatureView`.

Example:
    >>> fv = saekit.analysis.feature_view(stats, FeatureRef("topk-1152", 7), sae=sae, model=model)
    >>> fv                                       # in a notebook: the FeatureCard view
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from saekit.analysis.geometry import neighbours
from saekit.analysis.logits import logit_effects
from saekit.ids import FeatureRef

if TYPE_CHECKING:
    from saekit.analysis.stats import FeatureStats, FeatureView
    from saekit.model import Model
    from saekit.sae.base import SAE


def feature_view(stats: FeatureStats, ref: FeatureRef, *, sae: SAE | None = None, model: Model | None = None,
                 n_logits: int = 8, n_neighbours: int = 8) -> FeatureView:
    """``stats.feature(ref)``, with logit effects (needs ``sae`` and ``model``) and
    decoder neighbours (needs ``sae``) added."""
    view = stats.feature(ref)
    logits = logit_effects(model, sae, ref.feature, k=n_logits) if sae is not None and model is not None \
        and n_logits > 0 else None
    near = neighbours(sae, ref.feature, k=n_neighbours) if sae is not None and sae.d_sae > 1 \
        and n_neighbours > 0 else None
    return view.with_parts(logits=logits, neighbours=near)
