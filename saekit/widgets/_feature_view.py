"""What the one-feature text views share (:class:`ContextAblation`, :class:`LogitAttribution`).

Both show one feature of one SAE on one text under the same header (title, then
``Feature #id``, the SAE's name and the feature's label; ``featureHead`` in
``static/_common.js``), and both are built from an analysis result
(:mod:`saekit.analysis.results`), which picks one feature's rows for them.
"""

from __future__ import annotations

import traitlets as t

from saekit.widgets._base import SaekitView
from saekit.widgets._bundle import read_css


class FeatureTextView(SaekitView):
    """Abstract base of a view of one feature on one text: header traits and text.

    Synced state: ``title``, ``feature_id``, ``sae_name``, ``label``. A click on a bare
    feature id is a feature of ``sae_name``.
    """

    _css = read_css() + read_css("analysis_views.css")

    title = t.Unicode("").tag(sync=True)
    feature_id = t.Int(0).tag(sync=True)
    sae_name = t.Unicode("").tag(sync=True)
    label = t.Unicode("").tag(sync=True)

    def _own_sae(self) -> str:
        return self.sae_name or "sae"

    def _heading(self, view: str, detail: str = "") -> str:
        """``view · feature #id[ · sae_name][ · label]detail``, under the title if there is one."""
        head = f"{view} · feature #{self.feature_id}"
        head += f" · {self.sae_name}" if self.sae_name else ""
        head += f" · {self.label}" if self.label else ""
        head += detail
        return f"{self.title}\n{head}" if self.title else head
