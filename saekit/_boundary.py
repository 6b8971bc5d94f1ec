"""The boundary: every public entry point turns user input into checked values here.

One small set of validators for feature ids, clamp values, texts, token ids and SAE
weights. Anything they refuse raises :class:`~saekit.errors.SaekitError` saying what was
wrong, what was expected and how to fix it. Code inside the boundary trusts its inputs.

Accepted feature ids: Python ``int``, numpy integers, 0-d integer tensors and
:class:`~saekit.ids.FeatureRef`. Refused: ``bool``, ``str`` (``"12"`` is not 12, and is
not ``[1, 2]``), floats (``3.0`` and ``3.7`` alike: no silent truncation), ``None``, NaN.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from saekit.errors import CompatibilityError, SaekitError, SaekitWarning
from saekit.ids import FeatureRef

if TYPE_CHECKING:
    from saekit.sae.base import SAE

log = logging.getLogger("saekit")

_ID_HELP = "Pass an integer index (e.g. 12), a numpy integer, or saekit.FeatureRef(sae_name, 12)."


def _describe(x: Any) -> str:
    return f"{x!r} ({type(x).__name__})"


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool | np.bool_):
        return False
    if isinstance(x, numbers.Integral | np.integer):
        return True
    if isinstance(x, np.ndarray):
        return x.ndim == 0 and np.issubdtype(x.dtype, np.integer)
    return isinstance(x, Tensor) and x.ndim == 0 and not x.dtype.is_floating_point \
        and x.dtype != torch.bool and not x.dtype.is_complex


def feature_id(x: Any, d_sae: int | None = None, sae: str | None = None) -> int:
    """One feature index, checked.

    Args:
        x: an int, numpy integer, 0-d integer tensor or :class:`FeatureRef`.
        d_sae: the SAE's size; the index must lie in ``0..d_sae-1``.
        sae: the SAE's name; a :class:`FeatureRef` must name this SAE.

    Example:
        >>> feature_id(np.int64(3), d_sae=8)
        3
    """
    if isinstance(x, FeatureRef):
        if sae is not None and x.sae != sae:
            raise SaekitError(
                f"{x} refers to SAE {x.sae!r}, but this call uses SAE {sae!r}. Pass the ref's own "
                "SAE, or a plain index for this one."
            )
        f = x.feature
    elif _is_integer(x):
        f = int(x)
    else:
        kind = "a string" if isinstance(x, str) else "a float" if isinstance(
            x, float | np.floating) else "a bool" if isinstance(x, bool | np.bool_) else "not an integer"
        raise SaekitError(f"Feature id {_describe(x)} is {kind}. {_ID_HELP}")
    if d_sae is not None and not 0 <= f < d_sae:
        raise CompatibilityError(
            f"Feature id {f} is out of range for an SAE with d_sae={d_sae} (valid: 0..{d_sae - 1}). "
            f"Pass an integer in [0, {d_sae - 1}]."
        )
    if f < 0:
        raise SaekitError(f"Feature id {f} is negative. {_ID_HELP}")
    return f


def feature_ids(x: Any, d_sae: int | None = None, sae: str | None = None) -> list[int]:
    """One or several feature indices as a non-empty list, each checked by :func:`feature_id`.

    A single id gives a one-element list; lists, tuples, ranges, numpy arrays and 1-d
    integer tensors give their elements in order. A string is refused, not split.
    """
    if isinstance(x, FeatureRef) or _is_integer(x) or x is None or isinstance(x, float | bool):
        return [feature_id(x, d_sae, sae)]
    if isinstance(x, str | bytes):
        raise SaekitError(
            f"Feature ids {_describe(x)} are a string, not indices ('12' is not 12 nor [1, 2]). {_ID_HELP}"
        )
    if isinstance(x, Mapping):
        raise SaekitError(f"Feature ids {_describe(x)}: expected an index or a list of indices. {_ID_HELP}")
    if isinstance(x, np.ndarray | Tensor):
        if x.ndim != 1:
            raise SaekitError(f"Feature ids must be a 1-d array; got shape {tuple(x.shape)}.")
        items: list[Any] = list(x)
    elif isinstance(x, Iterable):
        items = list(x)
    else:
        raise SaekitError(f"Feature ids {_describe(x)}: expected an index or a list of indices. {_ID_HELP}")
    if not items:
        raise SaekitError("No features given. Pass a feature index or a list of them, e.g. [12, 40].")
    return [feature_id(i, d_sae, sae) for i in items]


def token_id(x: Any, vocab: int) -> int:
    """One token id (an integer in ``0..vocab-1``; not a float, bool or string)."""
    if not _is_integer(x):
        raise SaekitError(
            f"Token id {_describe(x)} is not an integer. Pass an id (e.g. 42) or a single-token string."
        )
    if not 0 <= int(x) < vocab:
        raise SaekitError(
            f"Token id {int(x)} is out of range for a vocabulary of {vocab} (valid: 0..{vocab - 1})."
        )
    return int(x)


def finite(value: Any, what: str) -> float:
    """A real, finite number (``int``/``float``/numpy/0-d tensor; not bool, str, NaN or inf)."""
    if isinstance(value, Tensor) and value.ndim == 0:
        value = value.item()
    ok = isinstance(value, numbers.Real | np.floating | np.integer) and not isinstance(
        value, bool | np.bool_)
    if not ok or not math.isfinite(float(value)):
        raise SaekitError(
            f"{what} must be a finite number; got {_describe(value)}. Use e.g. 10.0."
        )
    return float(value)


def feature_values(
    values: Mapping[Any, Any], what: str, d_sae: int | None = None, sae: str | None = None
) -> dict[int, float]:
    """``{feature: value}`` with checked ids and finite values (clamps, scales, additions)."""
    if not isinstance(values, Mapping):
        raise SaekitError(
            f"{what} must be a dict {{feature: value}}; got {_describe(values)}. Use e.g. {{12: 10.0}}."
        )
    out: dict[int, float] = {}
    for k, v in values.items():
        f = feature_id(k, d_sae, sae)
        out[f] = finite(v, f"{what} value for feature {f}")
    return out


def text(x: Any, what: str = "text") -> str:
    """A non-empty string."""
    if not isinstance(x, str):
        raise SaekitError(f"The {what} must be a string; got {_describe(x)}.")
    if not x:
        raise SaekitError(f"The {what} is an empty string. Pass a non-empty text.")
    return x


def texts(x: Any, what: str = "texts") -> list[str]:
    """A non-empty list of non-empty strings (a single string gives a one-element list)."""
    if isinstance(x, str):
        return [text(x, what)]
    if not isinstance(x, Sequence | Iterable) or isinstance(x, bytes | Mapping):
        raise SaekitError(f"The {what} must be a string or a list of strings; got {_describe(x)}.")
    items = list(x)
    if not items:
        raise SaekitError(f"No {what} given. Pass a string or a non-empty list of strings.")
    bad = [i for i, t in enumerate(items) if not isinstance(t, str) or not t]
    if bad:
        raise SaekitError(
            f"The {what} must be non-empty strings; items {bad[:8]} are not "
            f"(first: {_describe(items[bad[0]])})."
        )
    return items


def within_context(
    ids: Tensor, n_ctx: int | None, *, truncate: bool, what: str = "prompt", new_tokens: int = 0,
    fix: str = "Shorten it, or pass truncate=True to keep its last tokens.",
) -> Tensor:
    """``[..., T]`` ids that fit a context of ``n_ctx`` tokens (with room for ``new_tokens``).

    Longer ids are refused, or with ``truncate=True`` cut to their last tokens with a
    :class:`~saekit.errors.SaekitWarning`: never silently. ``new_tokens`` reserves room
    for tokens still to be generated (``generate``: prompt + new tokens must fit);
    ``fix`` ends the error message (how the caller can proceed).

    Example:
        >>> within_context(torch.arange(6), 4, truncate=True).tolist()  # doctest: +SKIP
        [2, 3, 4, 5]
    """
    if n_ctx is None:
        return ids
    room = n_ctx - new_tokens
    plus = f" plus {new_tokens} new tokens" if new_tokens else ""
    if room < 1:
        raise SaekitError(
            f"{new_tokens} new tokens do not fit the model's context of {n_ctx} tokens. "
            f"Ask for at most {n_ctx - 1} new tokens."
        )
    if ids.shape[-1] <= room:
        return ids
    if not truncate:
        raise SaekitError(
            f"The {what} has {ids.shape[-1]} tokens{plus} but the model's context is {n_ctx}. {fix}"
        )
    warnings.warn(
        f"saekit: the {what} has {ids.shape[-1]} tokens{plus}; keeping its last {room} "
        f"(the model's context is {n_ctx}).", SaekitWarning, stacklevel=3,
    )
    return ids[..., -room:]


def finite_weights(sae: SAE, where: str = "", *, fix: str | None = None) -> None:
    """Refuse an SAE whose parameters hold NaN or infinite values.

    Args:
        sae: the SAE.
        where: the file it came from, for the message.
        fix: how to proceed (default: load another checkpoint or ``allow_nonfinite=True``).
    """
    bad = [n for n, p in sae.named_parameters() if not bool(torch.isfinite(p).all())]
    bad += [n for n, b in sae.named_buffers() if b.is_floating_point() and not bool(torch.isfinite(b).all())]
    if bad:
        at = f" loaded from {where}" if where else ""
        fix = fix or ("Use another checkpoint, or pass allow_nonfinite=True to load it anyway (for "
                      "debugging).")
        raise CompatibilityError(
            f"The SAE{at} has NaN or infinite values in {bad}; its outputs would be NaN. {fix}"
        )
