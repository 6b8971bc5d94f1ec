"""saekit's notebook views (anywidget): each renders a result and calls back into a controller.

Public names:
    TokenDoc, TokenHighlight: tokens coloured by feature activations.
    FeatureCardData (+ CardExample, QuantileGroup, Histogram), FeatureCard: a feature's dashboard.
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
from saekit.widgets.token_highlight import TokenDoc, TokenHighlight

__all__ = [
    "CardExample",
    "FeatureCard",
    "FeatureCardData",
    "Histogram",
    "QuantileGroup",
    "SaekitView",
    "TokenDoc",
    "TokenHighlight",
]
