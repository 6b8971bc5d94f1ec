"""Context ablation: which context tokens a feature's activation at the last token needs.

Each token is coloured by how the feature's activation at the last position changes
when that token is removed (the Pythia-70M dictionary study's convention): red =
"activated less without this token" (the feature needs it), blue = activated more.
The last token, where the activation is read, is outlined.

Example:
    >>> import numpy as np
    >>> from saekit.widgets import ContextAblation
    >>> view = ContextAblation(["<bos>", "The", " cat", " sat"], [0.0, -0.5, -2.0, 0.0],
    ...                        activation_full=3.0, feature_id=7, ablated=[0, 1, 1, 0])
    >>> print(view.to_text())
    ContextAblation · feature #7 · activation at last token ' sat' (position 3): 3
    red = activated less without the token, blue = more
    <bos>[The:-0.5][ cat:-2]⟪ sat⟫
    most needed: ' cat' -2, 'The' -0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets as t

from saekit._html import fmt_value, visible_token
from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.widgets._base import _to_numpy, as_bytes, from_bytes
from saekit.widgets._bundle import bundle
from saekit.widgets._feature_view import FeatureTextView

if TYPE_CHECKING:
    from saekit.analysis.results import ContextEffects

__all__ = ["ContextAblation"]


class ContextAblation(FeatureTextView):
    """Context tokens coloured by the change of one feature's activation at the last token.

    Args:
        tokens: Every token of the context, last one included (where the activation is read).
        delta: ``[n_tokens]`` change of the activation at the last token when each token is
            removed, ``activation_without - activation_full`` (negative: the feature needs
            the token). Ignored where ``ablated`` is false.
        activation_full: The feature's activation at the last token with the full context.
        feature_id: The feature's index.
        ablated: ``[n_tokens]`` booleans, true where ``delta`` was measured (default: every
            token but the last). The others (BOS, the last token) are shown uncoloured.
        sae_name: Which dictionary the feature belongs to.
        label: A short description of the feature.
        vmax: The ``|delta|`` that gets the full colour (default: the largest ``|delta|``).
        mode: ``"remove"`` or ``"replace"``: how the tokens were ablated (shown on the page).
        title: A title above the view.

    Synced state: ``tokens``, ``delta`` (float32 buffer), ``ablated`` (uint8 buffer),
    ``activation_full``, ``feature_id``, ``sae_name``, ``label``, ``vmax``, ``mode``,
    ``title``.
    """

    _esm = bundle("context_ablation.js")

    mode = t.Unicode("remove").tag(sync=True)
    tokens = t.List(t.Unicode()).tag(sync=True)
    delta = t.Bytes(b"").tag(sync=True)
    ablated = t.Bytes(b"").tag(sync=True)
    activation_full = t.Float(0.0).tag(sync=True)
    vmax = t.Float(None, allow_none=True).tag(sync=True)

    def __init__(
        self,
        tokens: Sequence[str],
        delta: Any,
        *,
        activation_full: float,
        feature_id: int,
        ablated: Any = None,
        sae_name: str = "",
        label: str = "",
        vmax: float | None = None,
        mode: str = "remove",
        title: str = "",
    ) -> None:
        n = len(tokens)
        if n < 2:
            raise SaekitError(
                f"ContextAblation needs at least 2 tokens (a context and a last token); got {n}."
            )
        d = _to_numpy(delta).astype(np.float64).reshape(-1)
        if d.shape != (n,):
            raise SaekitError(f"delta must have one value per token ({n}); got shape {tuple(d.shape)}.")
        done = _ablated_mask(ablated, n)
        d = np.where(done, d, 0.0)
        super().__init__(
            tokens=[str(tok) for tok in tokens], delta=as_bytes(d, "f4", name="delta"),
            ablated=as_bytes(done, "u1", name="ablated"), activation_full=float(activation_full),
            feature_id=int(feature_id), sae_name=str(sae_name), label=str(label), vmax=vmax,
            mode=str(mode), title=str(title),
        )

    @classmethod
    def from_result(cls, result: ContextEffects, feature: int | FeatureRef | None = None,
                    **kwargs: Any) -> ContextAblation:
        """The view of an :func:`saekit.analysis.ablate_context` result (one feature of it).

        Args:
            result: The :class:`~saekit.analysis.results.ContextEffects`.
            feature: Which feature, when the result holds several.
            **kwargs: ``label``, ``vmax``, ``title``.

        Example:
            >>> r = saekit.analysis.ablate_context(model, sae, text, 7)   # doctest: +SKIP
            >>> ContextAblation.from_result(r)                            # doctest: +SKIP
        """
        delta, done, full = result.per_token(feature)
        f = feature.feature if isinstance(feature, FeatureRef) else feature
        return cls(result.tokens, delta, activation_full=full, ablated=done, sae_name=result.sae,
                   mode=result.mode, feature_id=f if f is not None else result.features[0], **kwargs)

    # ----- reading back ---------------------------------------------------------------
    def deltas(self) -> np.ndarray:
        """``[n_tokens]`` float32 changes (0 where a token was not ablated)."""
        return from_bytes(self.delta, "f4")

    def ablated_mask(self) -> np.ndarray:
        """``[n_tokens]`` booleans, true where the token was ablated."""
        return from_bytes(self.ablated, "u1").astype(bool)

    def scale_max(self) -> float:
        """The ``|delta|`` that gets the full colour."""
        if self.vmax is not None and self.vmax > 0:
            return float(self.vmax)
        values = np.abs(self.deltas()[self.ablated_mask()])
        return float(values.max()) if values.size and values.max() > 0 else 0.0

    def ranking(self) -> list[tuple[int, str, float]]:
        """``(pos, token, delta)`` of the ablated tokens, most needed (most negative) first."""
        d, done = self.deltas(), self.ablated_mask()
        order = sorted(np.flatnonzero(done).tolist(), key=lambda i: (float(d[i]), i))
        return [(i, self.tokens[i], float(d[i])) for i in order]

    def to_text(self) -> str:
        last = len(self.tokens) - 1
        at_last = (f" · activation at last token {visible_token(self.tokens[last])!r} "
                   f"(position {last}): {fmt_value(self.activation_full)}")
        lines = [self._heading("ContextAblation", at_last),
                 "red = activated less without the token, blue = more"]
        d, done = self.deltas(), self.ablated_mask()
        parts = []
        for i, tok in enumerate(self.tokens):
            text = visible_token(tok)
            if i == last:
                parts.append(f"⟪{text}⟫")
            elif done[i] and d[i] != 0:
                parts.append(f"[{text}:{fmt_value(float(d[i]))}]")
            else:
                parts.append(text)
        lines.append("".join(parts))
        needed = [(tok, v) for _, tok, v in self.ranking() if v < 0][:5]
        if needed:
            lines.append("most needed: " + ", ".join(f"{visible_token(tok)!r} {fmt_value(v)}"
                                                     for tok, v in needed))
        return "\n".join(lines)


def _ablated_mask(ablated: Any, n: int) -> np.ndarray:
    if ablated is None:
        done = np.ones(n, bool)
        done[-1] = False
        return done
    done = _to_numpy(ablated).astype(bool).reshape(-1)
    if done.shape != (n,):
        raise SaekitError(f"ablated must have one flag per token ({n}); got shape {tuple(done.shape)}.")
    if done[-1]:
        raise SaekitError("The last token is where the activation is read; it cannot be ablated.")
    return done
