"""What every analysis result shares: a tidy frame, its feature refs, a text form, a view.

A result is a small frozen dataclass. It holds its long-format frame (``.frame``; a copy
with :meth:`Result.to_frame`), knows the :class:`~saekit.ids.FeatureRef` s it is about
(``.refs``), prints as plain text (``str``, ``repr``, IPython's pretty printer) and shows
itself in a notebook: ``_repr_mimebundle_`` imports its view module lazily and builds the
view with the view's one constructor, ``View.from_result(result)``. Without the widget
libraries it falls back to the text form.

Example:
    >>> import pandas as pd
    >>> from saekit.analysis.results import LogitEffects
    >>> r = LogitEffects(pd.DataFrame({"feature": [3], "direction": ["top"], "rank": [0],
    ...                                "token_id": [5], "token": [" cat"], "logit": [1.5]}), "topk-8")
    >>> r.refs
    (FeatureRef(sae='topk-8', feature=3),)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from saekit.errors import SaekitError
from saekit.ids import FeatureRef

if TYPE_CHECKING:
    import pandas as pd


class Result:
    """Abstract base (mixin) of analysis results. Subclasses are frozen dataclasses.

    Subclasses set ``_view = "module:Class"`` (empty: no view, the text form is shown)
    and implement :meth:`to_text`; those with a ``frame`` and ``sae`` field get
    :attr:`features` and :attr:`refs` from it.
    """

    _view: ClassVar[str] = ""

    frame: pd.DataFrame
    sae: str

    # ----- data --------------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """A copy of the tidy (long) frame."""
        return self.frame.copy()

    @property
    def features(self) -> list[int]:
        """The feature indices this result is about, in order of first appearance."""
        return [int(f) for f in dict.fromkeys(self.frame["feature"].tolist())]

    @property
    def refs(self) -> tuple[FeatureRef, ...]:
        """The features this result is about, as refs."""
        return tuple(FeatureRef(self.sae, f) for f in self.features)

    def rows(self, feature: int | FeatureRef | None = None) -> pd.DataFrame:
        """The rows of one feature (``None``: the only one), sorted by ``pos`` if there is one."""
        feats = self.features
        if isinstance(feature, FeatureRef):
            feature = feature.feature
        if feature is None:
            if len(feats) != 1:
                raise SaekitError(
                    f"This {type(self).__name__} holds features {feats}; pick one with feature=<id>.")
            feature = feats[0]
        rows = self.frame[self.frame["feature"] == int(feature)]
        if rows.empty:
            raise SaekitError(
                f"No rows for feature {feature} in this {type(self).__name__} (it holds {feats}).")
        return rows.sort_values("pos") if "pos" in rows.columns else rows

    # ----- text --------------------------------------------------------------------------
    def to_text(self) -> str:
        """The plain-text form (what a terminal, a test or ``text/plain`` shows)."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_text())

    # ----- display -----------------------------------------------------------------------
    def view(self, **kwargs: Any) -> Any:
        """This result's view (``View.from_result(self, **kwargs)``); imports widget code."""
        if not self._view:
            raise SaekitError(f"A {type(self).__name__} has no view; print it or use .frame.")
        module, name = self._view.split(":")
        return getattr(importlib.import_module(module), name).from_result(self, **kwargs)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        text = {"text/plain": self.to_text()}
        if not self._view:
            return text
        try:
            bundle = self.view()._repr_mimebundle_(include=include, exclude=exclude)
        except ImportError:  # no widget libraries: the text form
            return text
        if isinstance(bundle, tuple):  # (data, metadata)
            bundle = bundle[0]
        return {**(bundle or {}), **text}
