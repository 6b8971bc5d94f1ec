"""Long work tells its cost first (private).

Some analyses run one forward pass per variant of the text: :func:`ablate_context`
runs ``T`` variants of a ``T``-token text (cost grows with ``T**2``), ``vocab_sweep``
one row per vocabulary token. Before such work starts, :func:`check_cost` times a
small sample batch of the real rows, multiplies by the number of rows, and then

- raises :class:`~saekit.errors.SaekitError` with the estimate and how to proceed when
  it exceeds the caller's ``max_seconds``;
- warns (:class:`~saekit.errors.SaekitWarning`, also logged on ``saekit``) when it
  exceeds :data:`WARN_SECONDS`;
- stays silent otherwise. Small jobs (fewer than :data:`MIN_TOKENS` tokens in all) are
  not timed at all unless the caller set ``max_seconds``; the timed sample holds about
  :data:`SAMPLE_TOKENS` tokens, a small share of any job that is timed.

Example:
    >>> est = check_cost(model, "resid_post.15", ids[None], n_rows=2600,  # doctest: +SKIP
    ...                  what="ablate_context", max_seconds=60, fix="Pass a shorter context.")
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from saekit.errors import SaekitError, SaekitWarning
from saekit.model import Model

log = logging.getLogger("saekit")

#: Estimates above this many seconds warn before the work starts.
WARN_SECONDS = 30.0
#: Jobs with fewer tokens than this (rows x row length) are not timed (they are quick).
MIN_TOKENS = 16_384
#: The timed sample holds about this many tokens (at least one row).
SAMPLE_TOKENS = 2048


@dataclass(frozen=True)
class Cost:
    """An estimate: ``seconds`` for ``n_rows`` rows of ``row_len`` tokens (from a timed sample)."""

    what: str
    n_rows: int
    row_len: int
    seconds: float
    sample_rows: int
    sample_seconds: float

    def __str__(self) -> str:
        return (f"{self.what} needs {self.n_rows:,} forward rows of {self.row_len:,} tokens: about "
                f"{_fmt(self.seconds)} (timed {self.sample_rows} row(s) in {self.sample_seconds:.2f} s)")


def _fmt(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@torch.no_grad()
def estimate(model: Model, site: str, rows: Tensor, n_rows: int, what: str) -> Cost:
    """Time a forward (stopping after ``site``) of a sample of ``rows [n, L]``; scale to ``n_rows``."""
    L = int(rows.shape[1])
    k = max(1, min(SAMPLE_TOKENS // max(L, 1), n_rows))
    sample = rows[torch.arange(k) % rows.shape[0]]  # [k, L]: the given rows, repeated if need be
    start = time.perf_counter()
    model.run(sample, torch.ones_like(sample), read=[site], logits=False)
    took = time.perf_counter() - start
    return Cost(what, n_rows, L, took * n_rows / k, k, took)


def check_cost(
    model: Model,
    site: str,
    rows: Tensor,
    n_rows: int,
    *,
    what: str,
    max_seconds: float | None,
    fix: str,
) -> Cost | None:
    """Estimate the work; refuse it above ``max_seconds``, warn above :data:`WARN_SECONDS`.

    Args:
        model: the model.
        site: the site the work reads (the timed pass stops there).
        rows: ``[n, L]`` representative rows (a sample of the real ones).
        n_rows: how many such rows the work runs in all.
        what: the work's name, for the messages.
        max_seconds: the caller's limit, or ``None`` for none.
        fix: how to make the work smaller (for the messages).

    Returns:
        The :class:`Cost`, or ``None`` when the job was too small to time.
    """
    if max_seconds is not None and (not isinstance(max_seconds, int | float) or max_seconds <= 0):
        raise SaekitError(f"max_seconds must be a positive number of seconds; got {max_seconds!r}.")
    if max_seconds is None and n_rows * int(rows.shape[1]) < MIN_TOKENS:
        return None
    cost = estimate(model, site, rows, n_rows, what)
    if max_seconds is not None and cost.seconds > max_seconds:
        raise SaekitError(
            f"{cost}, more than max_seconds={max_seconds:g}. {fix} Or raise max_seconds "
            "(max_seconds=None runs it whatever it costs)."
        )
    if cost.seconds > WARN_SECONDS:
        msg = f"saekit: {cost}. {fix} Pass max_seconds= to refuse long runs."
        log.info(msg)
        warnings.warn(msg, SaekitWarning, stacklevel=3)
    return cost
