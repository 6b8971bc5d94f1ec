"""The base of saekit's views: synced traits, one bundled ES module, a plain-text form.

Arrays cross to the browser as binary buffers: a ``traitlets.Bytes`` trait holding
little-endian float32 / int32 / uint8 bytes is sent by ipywidgets as a buffer, and the
front end reads it as a typed array (``static/_common.js``: ``f32``, ``i32``, ``u8``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any

import anywidget
import numpy as np

from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.widgets._bundle import read_css

__all__ = ["SaekitView", "as_bytes", "from_bytes"]

_DTYPES: dict[str, np.dtype[Any]] = {
    "f4": np.dtype("<f4"),
    "f8": np.dtype("<f8"),
    "i4": np.dtype("<i4"),
    "u1": np.dtype("u1"),
}


def as_bytes(array: Any, dtype: str, *, name: str, ndim: int | None = None) -> bytes:
    """Convert ``array`` to C-ordered little-endian bytes of ``dtype`` for a Bytes trait.

    Args:
        array: Anything ``numpy.asarray`` accepts (torch tensors are moved to CPU first).
        dtype: One of ``"f4"``, ``"f8"``, ``"i4"``, ``"u1"``.
        name: The argument's name, used in error messages.
        ndim: The expected number of dimensions, if fixed.

    Example:
        >>> len(as_bytes([[1, 2], [3, 4]], "f4", name="acts", ndim=2))
        16
    """
    arr = _to_numpy(array)
    if ndim is not None and arr.ndim != ndim:
        raise SaekitError(f"{name} must have {ndim} dimensions, got shape {tuple(arr.shape)}.")
    if dtype.startswith("f") and arr.size and not np.all(np.isfinite(arr)):
        raise SaekitError(
            f"{name} contains NaN or infinite values; replace them (np.nan_to_num) before display."
        )
    return np.ascontiguousarray(arr, dtype=_DTYPES[dtype]).tobytes()


def from_bytes(data: bytes, dtype: str, shape: Sequence[int] = (-1,)) -> np.ndarray:
    """Read bytes written by :func:`as_bytes` back into an array (a copy)."""
    return np.frombuffer(data, dtype=_DTYPES[dtype]).reshape(tuple(shape)).copy()


def _to_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor; torch is not imported here
        array = array.detach().float().cpu().numpy()
    return np.asarray(array)


class SaekitView(anywidget.AnyWidget):
    """Abstract base of every saekit view.

    Subclasses set ``_esm = bundle("<view>.js")``, declare their synced traits and
    implement :meth:`to_text`. ``repr(view)`` is the plain-text form, which is also what
    terminals and the ``text/plain`` part of the notebook output show.

    A click on a feature in the page calls the functions registered with
    :meth:`on_feature_click` with its :class:`~saekit.ids.FeatureRef` (and keeps it in
    :attr:`requested`), so a controller can open that feature's card. Views of several
    SAEs send the SAE's name with the click; the others name their own SAE
    (:meth:`_own_sae`).
    """

    _css = read_css()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._feature_click_handlers: list[Callable[[FeatureRef], None]] = []
        self.requested: FeatureRef | None = None
        self.on_msg(self._on_custom_msg)

    def to_text(self) -> str:
        """The plain-text form of the view."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.to_text()

    def on_feature_click(self, fn: Callable[[FeatureRef], None], *, remove: bool = False) -> None:
        """Call ``fn(ref)`` with the :class:`~saekit.ids.FeatureRef` of every feature clicked.

        Example:
            >>> view.on_feature_click(lambda ref: print("open card", ref.sae, ref.feature))  # doctest: +SKIP
        """
        if remove:
            self._feature_click_handlers.remove(fn)
        else:
            self._feature_click_handlers.append(fn)

    def request_feature(self, feature: FeatureRef | int) -> None:
        """Do what a click on ``feature`` does (an int is a feature of this view's own SAE)."""
        ref = feature if isinstance(feature, FeatureRef) else FeatureRef(self._own_sae(), int(feature))
        self.requested = ref
        for fn in list(self._feature_click_handlers):
            fn(ref)

    def _own_sae(self) -> str:
        """The SAE a bare feature id in this view belongs to (views of one SAE override it)."""
        return "sae"

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "feature_click":
            feature, sae = content.get("feature"), content.get("sae")
            if isinstance(feature, int) and not isinstance(feature, bool) and feature >= 0:
                self.request_feature(FeatureRef(sae, feature) if isinstance(sae, str) and sae else feature)

    def view_state(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The view's own synced state: JSON-able values and binary buffers, by trait name.

        This is what the front-end module reads with ``model.get(name)``; figure export
        writes it into a standalone HTML file.
        """
        base = set(anywidget.AnyWidget.class_trait_names(sync=True)) | {"_esm", "_css"}
        names = sorted(set(self.trait_names(sync=True)) - base)
        names = [n for n in names if not n.startswith("_anywidget")]
        state: dict[str, Any] = {}
        buffers: dict[str, bytes] = {}
        for name in names:
            value = getattr(self, name)
            if isinstance(value, (bytes, bytearray, memoryview)):
                buffers[name] = bytes(value)
            else:
                state[name] = value
        return state, buffers

    def view_state_json(self) -> dict[str, Any]:
        """:meth:`view_state` as one JSON-able dict (buffers base64-encoded under ``$b64``)."""
        state, buffers = self.view_state()
        encoded = {k: {"$b64": base64.b64encode(v).decode("ascii")} for k, v in buffers.items()}
        return {**state, **encoded}
