"""saekit's notebook views (anywidget): each renders a result and calls back into a controller.

Public names:
    TokenDoc, TokenHighlight: tokens coloured by feature activations.
"""

from __future__ import annotations

from saekit.widgets._base import SaekitView
from saekit.widgets.token_highlight import TokenDoc, TokenHighlight

__all__ = ["SaekitView", "TokenDoc", "TokenHighlight"]
