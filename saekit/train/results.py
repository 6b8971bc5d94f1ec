"""What training reports: live :class:`TrainStep` events and the final :class:`TrainResult`.

Example:
    >>> from saekit.train import TrainStep
    >>> ev = TrainStep(step=10, n_steps=100, tokens=40960,
    ...                metrics={"topk-64": {"l0": 8.0, "explained_variance": 0.5}})
    >>> ev.fraction_done
    0.1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from saekit.sae.base import SAE

HISTORY_COLUMNS = ["step", "tokens", "sae", "d_sae", "metric", "value"]


@dataclass(frozen=True)
class TrainStep:
    """A progress event, passed to each callback every ``log_every`` steps.

    Attributes:
        step: optimizer steps completed.
        n_steps: steps of the whole run.
        tokens: training vectors consumed.
        metrics: SAE name -> metric -> value, averaged since the previous event:
            ``loss``, ``mse``, ``l0``, ``explained_variance``, ``dead_fraction``,
            ``aux`` (AuxK / L1 / L0 term) and ``lr``; when a few massive dimensions
            hold most of the variance, also ``explained_variance_rest`` (EV on the
            other dimensions, measured on the last batch).
        notes: SAE name -> a warning sentence, for SAEs whose EV misleads (see
            :func:`saekit.train._diagnostics.quality_note`); empty when none.
    """

    step: int
    n_steps: int
    tokens: int
    metrics: Mapping[str, Mapping[str, float]]
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def fraction_done(self) -> float:
        return self.step / self.n_steps if self.n_steps else 1.0


@dataclass(frozen=True)
class TrainResult:
    """Trained SAEs and how training went.

    Attributes:
        saes: trained SAEs, in the order given; they take raw (un-normalised)
            activations, and ``sae.cfg.training`` records how they were trained.
        names: a label per SAE (``"topk-4608"``), as used in ``history``.
        history: long-format metrics: ``step, tokens, sae, d_sae, metric, value``.
        steps: steps completed (``< n_steps`` when stopped early).
        n_steps: steps of the whole run.
        tokens: training vectors consumed.
        seconds: wall time of this call.
        checkpoint: the last checkpoint written, if any.
    """

    saes: tuple[SAE, ...]
    names: tuple[str, ...]
    history: pd.DataFrame
    steps: int
    n_steps: int
    tokens: int
    seconds: float
    checkpoint: Path | None

    @property
    def complete(self) -> bool:
        return self.steps >= self.n_steps

    def final_metrics(self) -> pd.DataFrame:
        """The last logged value of each metric, one row per SAE (wide)."""
        if self.history.empty:
            return pd.DataFrame(index=pd.Index(self.names, name="sae"))
        last = self.history[self.history["step"] == self.history["step"].max()]
        wide = last.pivot_table(index="sae", columns="metric", values="value", aggfunc="last")
        return wide.reindex(list(self.names))

    def __getitem__(self, name: str) -> SAE:
        """The SAE called ``name`` (e.g. ``result["topk-4608"]``)."""
        return self.saes[self.names.index(name)]

    def __repr__(self) -> str:
        state = "complete" if self.complete else "stopped early"
        lines = [
            f"TrainResult({len(self.saes)} SAEs, {self.steps}/{self.n_steps} steps, "
            f"{self.tokens:,} tokens, {self.seconds:.1f} s, {state})"
        ]
        final = self.final_metrics()
        for name in self.names:
            if name in final.index and not final.empty:
                row = final.loc[name]
                lines.append(
                    f"  {name}: L0 {row.get('l0', float('nan')):.1f}, "
                    f"EV {row.get('explained_variance', float('nan')):.3f}, "
                    f"dead {row.get('dead_fraction', float('nan')):.3f}"
                )
            else:
                lines.append(f"  {name}")
        return "\n".join(lines)


def history_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Long-format history from records with :data:`HISTORY_COLUMNS` keys."""
    return pd.DataFrame.from_records(records, columns=HISTORY_COLUMNS)
