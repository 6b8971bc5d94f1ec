"""Training monitor: live line charts of metrics per step, one line per SAE.

Example:
    >>> from saekit.widgets import TrainingMonitor
    >>> mon = TrainingMonitor(min_interval=0)
    >>> mon.update(100, {"topk-32": {"l0": 32.0, "mse": 0.5}})
    >>> mon.update(200, {"topk-32": {"l0": 32.0, "mse": 0.25}})
    >>> print(mon.to_text())
    TrainingMonitor · step 200 · 1 SAE
    sae      L0  MSE
    -------  --  ----
    topk-32  32  0.25
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets as t

from saekit._html import text_table
from saekit.errors import SaekitError
from saekit.train._diagnostics import EV_GAP
from saekit.widgets._base import SaekitView, as_bytes
from saekit.widgets._bundle import bundle

if TYPE_CHECKING:
    import pandas as pd

    from saekit.train.results import TrainStep

__all__ = ["METRIC_TITLES", "TrainingMonitor"]

METRIC_TITLES = {
    "l0": "L0",
    "explained_variance": "Explained variance",
    "dead_fraction": "Dead fraction",
    "mse": "MSE",
    "loss": "Loss",
    "lr": "Learning rate",
    "explained_variance_rest": "EV outside massive dims",
}


class TrainingMonitor(SaekitView):
    """Small-multiple line charts (one per metric, one line per SAE), fed by :meth:`update`.

    Args:
        metrics: Metric names in display order; others are added as they first appear.
        title: Shown above the charts.
        log_y: Metrics drawn on a log-scaled y axis (the page has a toggle too).
        max_points: Points per line sent to the page (evenly thinned; all are kept here).
        min_interval: Seconds between two syncs to the page; updates in between are
            sent together, at the latest ``min_interval`` later.

    Synced state: ``metrics``, ``saes``, ``series`` (``{"sae", "metric", "n"}`` per line,
    in buffer order), ``data`` (float64 ``[sum n, 2]`` rows of ``(step, value)``),
    ``log_y``, ``step``, ``notes`` (SAE name -> warning, shown above the charts).

    A monitor is also a training callback: ``train_saes(..., callbacks=[monitor])``
    passes the trainer's warnings too, e.g. when a few massive dimensions make
    explained variance look better than the dictionary is. Fed by :meth:`update`
    alone, it warns when ``explained_variance_rest`` lags ``explained_variance``.
    """

    _esm = bundle("training_monitor.js")

    title = t.Unicode("").tag(sync=True)
    metrics = t.List(t.Unicode()).tag(sync=True)
    metric_titles = t.Dict(value_trait=t.Unicode()).tag(sync=True)
    saes = t.List(t.Unicode()).tag(sync=True)
    series = t.List(t.Dict()).tag(sync=True)
    data = t.Bytes(b"").tag(sync=True)
    log_y = t.List(t.Unicode()).tag(sync=True)
    step = t.Float(None, allow_none=True).tag(sync=True)
    notes = t.Dict(value_trait=t.Unicode()).tag(sync=True)

    def __init__(
        self,
        metrics: Sequence[str] = (),
        *,
        title: str = "",
        log_y: Sequence[str] = ("mse",),
        max_points: int = 1000,
        min_interval: float = 0.1,
    ) -> None:
        super().__init__(title=title, metrics=list(metrics), log_y=list(log_y),
                         metric_titles=dict(METRIC_TITLES))
        self._points: dict[tuple[str, str], list[tuple[float, float]]] = {}
        self._max_points = max_points
        self._min_interval = min_interval
        self._last_sync = 0.0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._notes: dict[str, str] = {}

    def __call__(self, event: TrainStep) -> None:
        """Record a training event (use the monitor as a ``train_saes`` callback)."""
        self.update(event.step, event.metrics, notes=event.notes)

    def update(
        self,
        step: float,
        metrics: Mapping[str, Mapping[str, float]],
        *,
        notes: Mapping[str, str] | None = None,
    ) -> None:
        """Add one step's metrics: ``{sae_name: {metric_name: value}}``.

        Non-finite values are skipped. Steps need not be evenly spaced. ``notes``
        (SAE name -> warning) replace the warnings the monitor works out itself.
        """
        if not isinstance(metrics, Mapping) or not all(
            isinstance(v, Mapping) for v in metrics.values()
        ):
            raise SaekitError(
                "update(step, metrics) needs metrics as {sae_name: {metric_name: value}}, "
                f"e.g. {{'topk-32': {{'l0': 31.5, 'mse': 0.02}}}}; got {metrics!r:.120}."
            )
        with self._lock:
            for sae, values in metrics.items():
                for name, value in values.items():
                    if value is not None and math.isfinite(float(value)):
                        self._points.setdefault((str(sae), str(name)), []).append(
                            (float(step), float(value))
                        )
                self._notes[str(sae)] = (notes or {}).get(sae) or _own_note(values)
        self._schedule(float(step))

    def flush(self) -> None:
        """Send everything recorded so far to the page now."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            state = self._state()
            self._last_sync = time.monotonic()
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)

    def to_frame(self) -> pd.DataFrame:
        """All recorded points, long format: columns ``sae, metric, step, value``."""
        import pandas as pd

        rows = [(sae, m, s, v) for (sae, m), pts in self._points.items() for s, v in pts]
        return pd.DataFrame(rows, columns=["sae", "metric", "step", "value"])

    def to_text(self) -> str:
        with self._lock:
            points = {k: list(v) for k, v in self._points.items()}
        saes = _ordered(k[0] for k in points)
        metrics = _ordered([*self.metrics, *(k[1] for k in points)])
        last = max((p[-1][0] for p in points.values()), default=None)
        head = "TrainingMonitor" + (f" · {self.title}" if self.title else "")
        if last is None:
            return head + " · no data yet"
        head += f" · step {last:g} · {len(saes)} SAE{'s' if len(saes) != 1 else ''}"
        titles = [METRIC_TITLES.get(m, m) for m in metrics]
        rows = [[sae, *(_latest(points.get((sae, m))) for m in metrics)] for sae in saes]
        warn = [f"! {sae}: {note}" for sae, note in self._notes.items() if note]
        return "\n".join([head, text_table(rows, ["sae", *titles]), *warn])

    def _schedule(self, step: float) -> None:
        now = time.monotonic()
        with self._lock:
            wait = self._min_interval - (now - self._last_sync)
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self.flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self.flush()

    def _state(self) -> dict[str, Any]:
        keys = list(self._points)
        metrics = _ordered([*self.metrics, *(m for _, m in keys)])
        saes = _ordered(sae for sae, _ in keys)
        series, chunks = [], []
        for sae in saes:
            for metric in metrics:
                pts = self._points.get((sae, metric))
                if pts:
                    arr = _thin(np.asarray(pts, dtype=np.float64), self._max_points)
                    series.append({"sae": sae, "metric": metric, "n": int(arr.shape[0])})
                    chunks.append(arr)
        data = np.concatenate(chunks) if chunks else np.zeros((0, 2))
        step = max((p[-1][0] for p in self._points.values()), default=None)
        return {"metrics": metrics, "saes": saes, "series": series,
                "data": as_bytes(data, "f8", name="metrics", ndim=2), "step": step,
                "notes": {k: v for k, v in self._notes.items() if v}}


def _own_note(values: Mapping[str, float]) -> str:
    """A warning from the metrics alone: EV far above EV outside the massive dimensions."""
    ev, rest = values.get("explained_variance"), values.get("explained_variance_rest")
    if ev is None or rest is None or not ev - rest >= EV_GAP:
        return ""
    return (f"EV {ev:.2f} is dominated by a few massive dimensions; outside them EV is "
            f"{rest:.2f}, and the model's loss depends on those too")


def _ordered(items: Any) -> list[str]:
    return list(dict.fromkeys(items))


def _latest(points: list[tuple[float, float]] | None) -> float | str:
    return points[-1][1] if points else "-"


def _thin(points: np.ndarray, max_points: int) -> np.ndarray:
    """Evenly spaced subset of rows (first and last kept), ``[<= max_points, 2]``."""
    n = points.shape[0]
    if n <= max_points:
        return points
    idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    return points[idx]
