"""UMAP neighbourhoods: a scatter of decoder directions, coloured by dictionary, density or cluster.

The page draws the points on a canvas from binary buffers (tens of thousands of points
stay fast). Hover shows a feature's label (e.g. its top tokens); a click on a point
calls the :meth:`~saekit.widgets.SaekitView.on_feature_click` handlers with its
:class:`~saekit.ids.FeatureRef`; a lasso (drag) selects
points and syncs their indices back to Python in :attr:`~UmapView.selection`.

Example:
    >>> import pandas as pd
    >>> from saekit.analysis.results import UmapMap
    >>> from saekit.widgets import UmapView
    >>> coords = UmapMap(pd.DataFrame({"sae": ["a", "a", "b"], "feature": [0, 1, 0],
    ...                                "x": [0.0, 1.0, 5.0], "y": [0.0, 0.5, 2.0]}))
    >>> view = UmapView.from_result(coords, labels=["the, a", "cat", "dog"])
    >>> view.selection = [0, 2]                       # what a lasso in the page does
    >>> print(view.to_text())
    UmapView · 3 points · 2 dictionaries (a: 2, b: 1) · colour by sae
    selected 2: a#0 'the, a', b#0 'dog'
    >>> view.selected[["sae", "feature"]].values.tolist()
    [['a', 0], ['b', 0]]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets as t

from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.widgets._base import SaekitView, _to_numpy, as_bytes, from_bytes
from saekit.widgets._bundle import bundle, read_css

if TYPE_CHECKING:
    import pandas as pd

    from saekit.analysis.results import UmapMap

__all__ = ["UmapView"]

COLOR_BY = ("sae", "density", "cluster")
_TEXT_LIST = 8


class UmapView(SaekitView):
    """Scatter of features (one point per decoder direction), with hover, click and lasso.

    Args:
        coords: A :func:`saekit.analysis.umap_coords` result (its frame: ``sae, feature,
            x, y``; optional columns ``label``, ``density`` and ``cluster`` are used when
            the arguments below are not given).
        labels: Hover text per point: a sequence aligned with the points, or a mapping
            ``FeatureRef`` (or ``(sae, feature)``) ``-> text`` (missing ones are blank).
        density: Firing density per point (fraction of tokens, 0..1), aligned with the rows.
        cluster: Integer cluster id per point (-1 = no cluster), aligned with the rows.
        color_by: ``"sae"``, ``"density"`` or ``"cluster"``.
        title: A title above the plot.

    Synced state: ``sae_names``, ``point_sae`` (int32 index into ``sae_names``),
    ``point_feature`` (int32), ``xy`` (float32 ``[n, 2]``), ``labels``, ``density``
    (float32) with ``has_density``, ``cluster`` (int32) with ``has_cluster``,
    ``color_by``, ``highlight`` and ``selection`` (point indices), ``focus`` (one point
    index or None), ``title``.
    """

    _esm = bundle("umap_view.js")
    _css = read_css() + read_css("analysis_views.css")

    title = t.Unicode("").tag(sync=True)
    sae_names = t.List(t.Unicode()).tag(sync=True)
    point_sae = t.Bytes(b"").tag(sync=True)
    point_feature = t.Bytes(b"").tag(sync=True)
    xy = t.Bytes(b"").tag(sync=True)
    labels = t.List(t.Unicode()).tag(sync=True)
    density = t.Bytes(b"").tag(sync=True)
    has_density = t.Bool(False).tag(sync=True)
    cluster = t.Bytes(b"").tag(sync=True)
    has_cluster = t.Bool(False).tag(sync=True)
    color_by = t.Enum(COLOR_BY, default_value="sae").tag(sync=True)
    highlight = t.List(t.Int()).tag(sync=True)
    focus = t.Int(None, allow_none=True).tag(sync=True)
    selection = t.List(t.Int()).tag(sync=True)

    def __init__(
        self,
        coords: UmapMap,
        *,
        labels: Sequence[str] | Mapping[tuple[str, int], str] | None = None,
        density: Any = None,
        cluster: Any = None,
        color_by: str = "sae",
        title: str = "",
    ) -> None:
        frame = _frame_of(coords)
        state = _points_state(frame)
        n = len(frame)
        labels = _column(frame, "label", labels)
        density = _column(frame, "density", density)
        cluster = _column(frame, "cluster", cluster)
        state["labels"] = _labels(labels, frame, n)
        if density is not None:
            state["density"] = as_bytes(_aligned(density, n, "density"), "f4", name="density")
        if cluster is not None:
            ids = _aligned(cluster, n, "cluster").astype(np.int64)
            state["cluster"] = as_bytes(ids, "i4", name="cluster")
        if color_by not in COLOR_BY:
            raise SaekitError(f"color_by must be one of {COLOR_BY}; got {color_by!r}.")
        if (color_by == "density" and density is None) or (color_by == "cluster" and cluster is None):
            raise SaekitError(f"color_by={color_by!r} needs {color_by}= values (or a {color_by!r} column).")
        super().__init__(**state, has_density=density is not None, has_cluster=cluster is not None,
                         color_by=color_by, title=str(title))
        self.observe(self._check_indices, names=["selection", "highlight"])

    @classmethod
    def from_result(cls, result: UmapMap, **kwargs: Any) -> UmapView:
        """The view of a :func:`saekit.analysis.umap_coords` result (``kwargs`` as above)."""
        return cls(result, **kwargs)

    # ----- points ----------------------------------------------------------------------
    @property
    def n_points(self) -> int:
        return len(self.labels)

    def point_saes(self) -> list[str]:
        """The dictionary name of every point."""
        idx = from_bytes(self.point_sae, "i4")
        return [self.sae_names[i] for i in idx]

    def point_features(self) -> np.ndarray:
        return from_bytes(self.point_feature, "i4")

    def coordinates(self) -> np.ndarray:
        """``[n, 2]`` float32 x, y."""
        return from_bytes(self.xy, "f4", (-1, 2))

    def index_of(self, sae: str, feature: int) -> int:
        """The point index of ``(sae, feature)``."""
        index = self._index().get((str(sae), int(feature)))
        if index is None:
            raise SaekitError(f"No point for feature {feature} of {sae!r}; dictionaries: {self.sae_names}.")
        return index

    def points_of(self, pairs: Iterable[tuple[str, int]]) -> list[int]:
        """Point indices of ``(sae, feature)`` pairs; pairs without a point are skipped."""
        index = self._index()
        found = (index.get((str(s), int(f))) for s, f in pairs)
        return [i for i in found if i is not None]

    def highlight_features(self, pairs: Iterable[tuple[str, int]],
                           focus: tuple[str, int] | None = None) -> None:
        """Emphasise some features (e.g. a splitting tree), optionally ringing one of them."""
        with self.hold_sync():
            self.highlight = self.points_of(pairs)
            self.focus = None if focus is None else self.index_of(*focus)

    @property
    def selected(self) -> pd.DataFrame:
        """The lasso selection: ``point, sae, feature, x, y, label``."""
        import pandas as pd

        idx = list(self.selection)
        saes, feats, xy = self.point_saes(), self.point_features(), self.coordinates()
        return pd.DataFrame({
            "point": idx, "sae": [saes[i] for i in idx], "feature": feats[idx].astype(np.int64),
            "x": xy[idx, 0], "y": xy[idx, 1], "label": [self.labels[i] for i in idx],
        })

    def request_point(self, index: int) -> None:
        """Do what a click on point ``index`` does: request its feature's ref."""
        self.request_feature(FeatureRef(self.point_saes()[index], int(self.point_features()[index])))

    def to_text(self) -> str:
        saes = self.point_saes()
        counts = ", ".join(f"{name}: {saes.count(name)}" for name in self.sae_names)
        n_dicts = len(self.sae_names)
        head = (f"UmapView · {self.n_points} points · {n_dicts} dictionar{'ies' if n_dicts != 1 else 'y'} "
                f"({counts}) · colour by {self.color_by}")
        lines = [f"{self.title}\n{head}" if self.title else head]
        for name, points in (("selected", self.selection), ("highlighted", self.highlight)):
            if points:
                lines.append(f"{name} {len(points)}: {self._list_text(points)}")
        return "\n".join(lines)

    # ----- internals -------------------------------------------------------------------
    def _index(self) -> dict[tuple[str, int], int]:
        return {(s, int(f)): i for i, (s, f) in enumerate(zip(self.point_saes(), self.point_features(),
                                                                strict=True))}

    def _list_text(self, points: Sequence[int]) -> str:
        saes, feats = self.point_saes(), self.point_features()
        parts = []
        for i in points[:_TEXT_LIST]:
            label = f" {self.labels[i]!r}" if self.labels[i] else ""
            parts.append(f"{saes[i]}#{int(feats[i])}{label}")
        more = f", … {len(points) - _TEXT_LIST} more" if len(points) > _TEXT_LIST else ""
        return ", ".join(parts) + more

    def _check_indices(self, change: Any) -> None:
        bad = [i for i in change["new"] if not 0 <= i < self.n_points]
        if bad:
            setattr(self, change["name"], [i for i in change["new"] if 0 <= i < self.n_points])
            raise SaekitError(
                f"{change['name']}: point indices {bad[:5]} are outside 0..{self.n_points - 1}."
            )


def _frame_of(coords: UmapMap) -> pd.DataFrame:
    from saekit.analysis.results import UmapMap

    if not isinstance(coords, UmapMap):
        raise SaekitError(
            f"UmapView shows a saekit.analysis.umap_coords(saes) result; got {type(coords).__name__}."
        )
    return coords.frame


def _points_state(coords: pd.DataFrame) -> dict[str, Any]:
    if len(coords) == 0:
        raise SaekitError("coords has no rows; there is nothing to plot.")
    names = [str(s) for s in dict.fromkeys(coords["sae"].tolist())]
    code = {name: i for i, name in enumerate(names)}
    xy = np.stack([coords["x"].to_numpy(np.float64), coords["y"].to_numpy(np.float64)], axis=1)
    return {
        "sae_names": names,
        "point_sae": as_bytes(np.array([code[str(s)] for s in coords["sae"]], np.int64), "i4", name="sae"),
        "point_feature": as_bytes(coords["feature"].to_numpy(np.int64), "i4", name="feature"),
        "xy": as_bytes(xy, "f4", name="x, y", ndim=2),
    }


def _column(coords: pd.DataFrame, name: str, given: Any) -> Any:
    if given is not None:
        return given
    return coords[name].to_numpy() if name in coords.columns else None


def _aligned(values: Any, n: int, name: str) -> np.ndarray:
    arr = _to_numpy(values).reshape(-1)
    if arr.shape != (n,):
        raise SaekitError(f"{name} needs one value per point ({n}); got shape {tuple(arr.shape)}.")
    return arr


def _labels(labels: Any, coords: pd.DataFrame, n: int) -> list[str]:
    if labels is None:
        return [""] * n
    if isinstance(labels, Mapping):
        keys = zip(coords["sae"].astype(str), coords["feature"].astype(int), strict=True)
        return [str(labels.get(FeatureRef(*k), labels.get(k, ""))) for k in keys]
    out = ["" if lab is None else str(lab) for lab in labels]
    if len(out) != n:
        raise SaekitError(f"labels needs one text per point ({n}); got {len(out)}.")
    return out
