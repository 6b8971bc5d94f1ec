"""What the one-feature text views share (:class:`ContextAblation`, :class:`LogitAttribution`).

Both show one feature of one SAE on one text under the same header (title, then
``Feature #id``, the SAE's name and the feature's label; ``featureHead`` in
``static/_common.js``), and both are built from analysis frames that may hold rows of
several features.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"feature": [7, 7], "pos": [1, 0], "delta": [0.5, -1.0]})
    >>> feature_rows(frame, ("feature", "pos", "delta"), None, "ablate_feature")["pos"].tolist()
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import traitlets as t

from saekit.errors import SaekitError
from saekit.widgets._base import SaekitView
from saekit.widgets._bundle import read_css

if TYPE_CHECKING:
    import pandas as pd


class FeatureTextView(SaekitView):
    """Abstract base of a view of one feature on one text: header traits and text.

    Synced state: ``title``, ``feature_id``, ``sae_name``, ``label``.
    """

    _css = read_css() + read_css("analysis_views.css")

    title = t.Unicode("").tag(sync=True)
    feature_id = t.Int(0).tag(sync=True)
    sae_name = t.Unicode("").tag(sync=True)
    label = t.Unicode("").tag(sync=True)

    def _heading(self, view: str, detail: str = "") -> str:
        """``view · feature #id[ · sae_name][ · label]detail``, under the title if there is one."""
        head = f"{view} · feature #{self.feature_id}"
        head += f" · {self.sae_name}" if self.sae_name else ""
        head += f" · {self.label}" if self.label else ""
        head += detail
        return f"{self.title}\n{head}" if self.title else head


def feature_rows(frame: pd.DataFrame, columns: Sequence[str], feature: int | None, what: str,
                 fix: str = "") -> pd.DataFrame:
    """The rows of one feature of an analysis frame, sorted by ``pos`` when it has one.

    Args:
        frame: A frame with a ``feature`` column and the other ``columns``.
        columns: The columns it must have.
        feature: Which feature; ``None`` when the frame holds exactly one.
        what: The analysis that makes such frames (``"ablate_feature"``), for errors.
        fix: How to build the right frame, added to the missing-columns error.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SaekitError(f"Not an {what} frame: columns {missing} are missing (got {list(frame.columns)})."
                          + (f" {fix}" if fix else ""))
    feats = list(dict.fromkeys(frame["feature"].tolist()))
    if feature is None and len(feats) > 1:
        raise SaekitError(f"The frame holds features {feats}; pick one with feature=<id>.")
    chosen = feats[0] if feature is None and feats else feature
    rows = frame[frame["feature"] == chosen]
    if rows.empty:
        raise SaekitError(f"No rows for feature {chosen} in the {what} frame (it holds {feats}).")
    return rows.sort_values("pos") if "pos" in rows.columns else rows
