"""Plain-language warnings about a dictionary whose explained variance misleads.

Explained variance (EV) weighs every direction by its variance. Where a few "massive"
dimensions hold most of it (Gemma 3 270M's layer 9: 2 of 640 dimensions hold 60%), EV
mostly says how well those few are reconstructed, while the model's next-token loss
depends on all of them. :func:`quality_note` turns the numbers into a sentence, used by
:func:`saekit.evaluate` (``note`` column) and the training monitor.

Example:
    >>> print(quality_note(0.81, 0.58, (163, 87), 0.60, d_in=640))  # doctest: +NORMALIZE_WHITESPACE
    EV 0.81 is dominated by 2 dimensions (163, 87) holding 60% of the variance; on the
    other 638 dimensions EV is 0.58
    >>> quality_note(0.74, 0.74, (), 0.0, d_in=576, loss_recovered=0.99)
    ''
"""

from __future__ import annotations

from saekit.train._normalize import AUTO_SHARE

# EV on the other dimensions this far below the overall EV is worth a warning.
EV_GAP = 0.05
# Loss recovered below EV by more than this: the errors fall where the model looks.
LOSS_GAP = 0.02


def quality_note(
    ev: float,
    ev_rest: float,
    dominant: tuple[int, ...],
    share: float,
    *,
    d_in: int,
    loss_recovered: float | None = None,
) -> str:
    """A warning sentence, or ``""`` when EV can be taken at face value.

    Args:
        ev: explained variance over all dimensions.
        ev_rest: explained variance on the dimensions outside ``dominant``.
        dominant: the massive dimensions (largest variance first).
        share: their share of the activations' variance.
        d_in: the activation width.
        loss_recovered: when known (from :func:`saekit.evaluate`).
    """
    parts = []
    if dominant and share >= AUTO_SHARE and ev - ev_rest >= EV_GAP:
        dims = ", ".join(str(d) for d in dominant[:4]) + (", ..." if len(dominant) > 4 else "")
        n = len(dominant)
        parts.append(
            f"EV {ev:.2f} is dominated by {n} dimension{'s' if n > 1 else ''} ({dims}) holding "
            f"{share:.0%} of the variance; on the other {d_in - n} dimensions EV is {ev_rest:.2f}"
        )
    if loss_recovered is not None and loss_recovered < ev - LOSS_GAP:
        parts.append(
            f"loss recovered {loss_recovered:.2f} is below EV {ev:.2f}: the reconstruction "
            "errors fall on directions the model relies on"
        )
    return "; ".join(parts)
