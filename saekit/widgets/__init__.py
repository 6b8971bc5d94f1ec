"""saekit's notebook views (anywidget): each renders a result and calls back into a controller.

Public names:
    TokenDoc, TokenHighlight: tokens coloured by feature activations.
    FeatureCardData (+ CardExample, QuantileGroup, Histogram), FeatureCard: a feature's dashboard.
    SteerSlider, Steering: sliders + prompt -> baseline and steered text (injected generate_fn).
    TrainingMonitor: live metric charts per step for several SAEs (`update(step, metrics)`).
"""

from __future__ import annotations

from saekit.widgets._base import SaekitView
from saekit.widgets.feature_card import (
    CardExample,
    FeatureCard,
    FeatureCardData,
    Histogram,
    QuantileGroup,
)
from saekit.widgets.steering import GenerateFn, Steering, SteerSlider
from saekit.widgets.token_highlight import TokenDoc, TokenHighlight
from saekit.widgets.training_monitor import TrainingMonitor

__all__ = [
    "CardExample",
    "FeatureCard",
    "FeatureCardData",
    "GenerateFn",
    "Histogram",
    "QuantileGroup",
    "SaekitView",
    "SteerSlider",
    "Steering",
    "TokenDoc",
    "TokenHighlight",
    "TrainingMonitor",
]
