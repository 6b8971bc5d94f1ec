"""saekit's notebook views (anywidget): each renders a result and calls back into a controller.

Each view is built from its analysis result with ``View.from_result(result)``; clicks
call back with :class:`~saekit.ids.FeatureRef` s.

Public names:
    TokenDoc, TokenHighlight: tokens coloured by feature activations.
    FeatureCard: a feature's dashboard (from saekit.analysis' FeatureView).
    SteerSlider, Steering: sliders + prompt -> baseline and steered text (injected generate_fn).
    TrainingMonitor: live metric charts per step for several SAEs (`update(step, metrics)`).
    ContextAblation: context tokens coloured by a feature's activation change without each.
    LogitAttribution: activation + ablation effect per token, logit effects, features
        ranked by attribution to a chosen prediction.
    UmapView: canvas scatter of decoder directions (hover labels, click, lasso selection).
    SplitNode, FeatureSplitting: a parent feature and its children across dictionary sizes.
"""

from __future__ import annotations

from saekit.widgets._base import SaekitView
from saekit.widgets.context_ablation import ContextAblation
from saekit.widgets.feature_card import FeatureCard
from saekit.widgets.logit_attribution import LogitAttribution
from saekit.widgets.splitting import FeatureSplitting, SplitNode
from saekit.widgets.steering import GenerateFn, Steering, SteerSlider
from saekit.widgets.token_highlight import TokenDoc, TokenHighlight
from saekit.widgets.training_monitor import TrainingMonitor
from saekit.widgets.umap_view import UmapView

__all__ = [
    "ContextAblation",
    "FeatureCard",
    "FeatureSplitting",
    "GenerateFn",
    "LogitAttribution",
    "SaekitView",
    "SplitNode",
    "SteerSlider",
    "Steering",
    "TokenDoc",
    "TokenHighlight",
    "TrainingMonitor",
    "UmapView",
]
