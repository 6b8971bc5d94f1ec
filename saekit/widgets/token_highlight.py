"""Token highlighting: text coloured by one feature's activation, or several overlaid.

Example:
    >>> import numpy as np
    >>> from saekit.widgets import TokenDoc, TokenHighlight
    >>> doc = TokenDoc(["<bos>", "The", " cat"], np.array([[0.0], [0.5], [2.0]]), mask=[1, 0, 0])
    >>> view = TokenHighlight([doc], feature_ids=[7])
    >>> print(view.to_text())
    TokenHighlight · 1 document · 3 tokens · features #7 · showing #7 (max 2)
    [0] ⟦<bos>⟧[The:0.5][ cat:2]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets as t

from saekit._html import fmt_value, visible_token
from saekit.errors import SaekitError
from saekit.widgets._base import SaekitView, _to_numpy, as_bytes, from_bytes
from saekit.widgets._bundle import bundle

if TYPE_CHECKING:
    from saekit.analysis.highlight import TokenActivations

__all__ = ["TokenDoc", "TokenHighlight"]


@dataclass(frozen=True, eq=False)
class TokenDoc:
    """One document (prompt or example) for :class:`TokenHighlight`.

    Attributes:
        tokens: Token strings, already decoded (``Ġ``/``▁`` turned into spaces).
        acts: Activations, shape ``[n_tokens, n_features]`` (or ``[n_tokens]`` for one
            feature); column ``j`` belongs to ``feature_ids[j]`` of the view.
        top_ids: Optional per-token top features, ``[n_tokens, k]`` int (``-1`` pads).
        top_values: Their activations, ``[n_tokens, k]``.
        mask: Optional ``[n_tokens]`` booleans, true for tokens to grey out (BOS, special).
        label: Optional short label shown beside the document.
    """

    tokens: Sequence[str]
    acts: Any
    top_ids: Any = None
    top_values: Any = None
    mask: Any = None
    label: str | None = None


class TokenHighlight(SaekitView):
    """Tokens coloured by a feature's activation; hover for top features, click to switch.

    Synced state (what the page reads):
        ``tokens`` (list of token lists), ``feature_ids`` (columns of ``acts``),
        ``acts`` (float32 ``[total_tokens, n_features]`` buffer), ``mask`` (uint8
        ``[total_tokens]``), ``top_ids``/``top_values`` (int32/float32
        ``[total_tokens, top_k]``), ``selected_feature``, ``overlay`` (features shown
        together in different hues; empty = only ``selected_feature``), ``vmax``
        (fixed colour-scale maximum; ``None`` = the feature's maximum over the shown
        tokens).

    A feature outside ``feature_ids`` can still be selected: its values then come from
    the per-token top-k lists (zero where it is not among a token's top k).
    """

    _esm = bundle("token_highlight.js")

    title = t.Unicode("").tag(sync=True)
    tokens = t.List(t.List(t.Unicode())).tag(sync=True)
    doc_labels = t.List(t.Unicode()).tag(sync=True)
    feature_ids = t.List(t.Int()).tag(sync=True)
    feature_labels = t.Dict(value_trait=t.Unicode()).tag(sync=True)
    acts = t.Bytes(b"").tag(sync=True)
    mask = t.Bytes(b"").tag(sync=True)
    top_k = t.Int(0).tag(sync=True)
    top_ids = t.Bytes(b"").tag(sync=True)
    top_values = t.Bytes(b"").tag(sync=True)
    selected_feature = t.Int(None, allow_none=True).tag(sync=True)
    overlay = t.List(t.Int()).tag(sync=True)
    vmax = t.Float(None, allow_none=True).tag(sync=True)

    def __init__(
        self,
        docs: Sequence[TokenDoc | tuple[Sequence[str], Any]],
        feature_ids: Sequence[int] | None = None,
        *,
        selected_feature: int | None = None,
        overlay: Sequence[int] = (),
        vmax: float | None = None,
        feature_labels: Mapping[int, str] | None = None,
        title: str = "",
    ) -> None:
        packed = _pack([d if isinstance(d, TokenDoc) else TokenDoc(*d) for d in docs], feature_ids)
        ids = packed.pop("feature_ids")
        if selected_feature is None and ids:
            selected_feature = ids[0]
        super().__init__(
            **packed,
            feature_ids=ids,
            selected_feature=selected_feature,
            overlay=[int(f) for f in overlay],
            vmax=vmax,
            feature_labels={str(k): str(v) for k, v in (feature_labels or {}).items()},
            title=title,
        )

    @classmethod
    def from_result(cls, result: TokenActivations, *, labels: Mapping[int, str] | None = None,
                    title: str | None = None) -> TokenHighlight:
        """The view of a :func:`saekit.analysis.token_activations` result (titled by its SAE)."""
        docs = [TokenDoc(tok, acts, top_ids=ids, top_values=vals, mask=special)
                for tok, acts, ids, vals, special in zip(result.tokens, result.acts, result.top_ids,
                                                         result.top_values, result.special, strict=True)]
        return cls(docs, feature_ids=list(result.shown), feature_labels=labels,
                   title=result.sae if title is None else title)

    def _own_sae(self) -> str:
        return self.title or "sae"

    @property
    def n_tokens(self) -> int:
        return sum(len(doc) for doc in self.tokens)

    @property
    def shown_features(self) -> list[int]:
        """The features whose activations colour the tokens now."""
        if self.overlay:
            return list(self.overlay)
        return [] if self.selected_feature is None else [self.selected_feature]

    def feature_values(self, feature: int) -> np.ndarray:
        """Activations of ``feature`` for every token (all documents), ``[total_tokens]``.

        Uses the ``acts`` column when ``feature`` is in ``feature_ids``, otherwise the
        per-token top-k lists (zero where absent) -- exactly what the page colours.
        """
        n = self.n_tokens
        if feature in self.feature_ids:
            acts = from_bytes(self.acts, "f4", (n, len(self.feature_ids)))
            return acts[:, self.feature_ids.index(feature)]
        if self.top_k == 0:
            return np.zeros(n, dtype=np.float32)
        ids = from_bytes(self.top_ids, "i4", (n, self.top_k))
        vals = from_bytes(self.top_values, "f4", (n, self.top_k))
        out = np.zeros(n, dtype=np.float32)
        rows, cols = np.nonzero(ids == feature)  # a feature appears at most once in a token's top k
        out[rows] = vals[rows, cols]
        return out

    def masked(self) -> np.ndarray:
        """Boolean ``[total_tokens]``: tokens shown greyed and left uncoloured."""
        return from_bytes(self.mask, "u1").astype(bool)

    def scale_max(self, feature: int) -> float:
        """The activation that gets the full colour for ``feature``."""
        if self.vmax is not None and self.vmax > 0:
            return float(self.vmax)
        values = self.feature_values(feature)[~self.masked()]
        return float(values.max()) if values.size and values.max() > 0 else 0.0

    def to_text(self) -> str:
        shown = self.shown_features
        ndocs = len(self.tokens)
        head = (
            f"TokenHighlight · {ndocs} document{'s' if ndocs != 1 else ''} · "
            f"{self.n_tokens} tokens · features {' '.join(f'#{f}' for f in self.feature_ids)}"
        )
        if shown:
            maxes = ", ".join(f"#{f} (max {fmt_value(self.scale_max(f))})" for f in shown)
            head += f" · showing {maxes}"
        lines = [f"{self.title}\n{head}" if self.title else head]
        lines += self._text_lines(shown)
        return "\n".join(lines)

    def _text_lines(self, shown: list[int]) -> list[str]:
        values = [self.feature_values(f) for f in shown]
        masked = self.masked()
        lines, pos = [], 0
        for d, doc in enumerate(self.tokens):
            label = self.doc_labels[d] if d < len(self.doc_labels) and self.doc_labels[d] else d
            parts = []
            for tok in doc:
                parts.append(_token_text(tok, [v[pos] for v in values], shown, masked[pos]))
                pos += 1
            lines.append(f"[{label}] " + "".join(parts))
        return lines


def _token_text(token: str, vals: list[float], shown: list[int], masked: bool) -> str:
    text = visible_token(token)
    if masked:
        return f"⟦{text}⟧"
    active = [(f, v) for f, v in zip(shown, vals, strict=True) if v > 0]
    if not active:
        return text
    if len(shown) == 1:
        return f"[{text}:{fmt_value(float(active[0][1]))}]"
    return f"[{text}:" + ",".join(f"#{f}={fmt_value(float(v))}" for f, v in active) + "]"


def _pack(docs: list[TokenDoc], feature_ids: Sequence[int] | None) -> dict[str, Any]:
    """Validate documents and concatenate them into the synced buffers."""
    if not docs:
        raise SaekitError("TokenHighlight needs at least one document; got an empty list.")
    acts = [_doc_acts(d, i) for i, d in enumerate(docs)]
    n_features = acts[0].shape[1]
    if any(a.shape[1] != n_features for a in acts):
        shapes = [tuple(a.shape) for a in acts]
        raise SaekitError(f"Every document needs the same number of feature columns; got {shapes}.")
    ids = list(range(n_features)) if feature_ids is None else [int(f) for f in feature_ids]
    if len(ids) != n_features:
        raise SaekitError(
            f"feature_ids has {len(ids)} ids but the activations have {n_features} columns; "
            "pass one id per column."
        )
    top_k = _top_k(docs)
    tops = [_doc_tops(d, i, top_k) for i, d in enumerate(docs)]
    masks = [_doc_mask(d, i) for i, d in enumerate(docs)]
    return {
        "tokens": [[str(tok) for tok in d.tokens] for d in docs],
        "doc_labels": [d.label or "" for d in docs],
        "feature_ids": ids,
        "acts": as_bytes(np.concatenate(acts), "f4", name="acts", ndim=2),
        "mask": as_bytes(np.concatenate(masks), "u1", name="mask"),
        "top_k": top_k,
        "top_ids": as_bytes(np.concatenate([ti for ti, _ in tops]), "i4", name="top_ids"),
        "top_values": as_bytes(np.concatenate([tv for _, tv in tops]), "f4", name="top_values"),
    }


def _doc_acts(doc: TokenDoc, i: int) -> np.ndarray:
    acts = _to_numpy(doc.acts).astype(np.float32)
    if acts.ndim == 1:
        acts = acts[:, None]
    if acts.ndim != 2 or acts.shape[0] != len(doc.tokens):
        raise SaekitError(
            f"Document {i}: acts must have shape [n_tokens, n_features] with n_tokens = "
            f"{len(doc.tokens)} (its token count); got {tuple(acts.shape)}."
        )
    return acts


def _top_k(docs: list[TokenDoc]) -> int:
    given = [d.top_ids is not None for d in docs]
    if any(given) and not all(given):
        raise SaekitError("Give top_ids for every document or for none.")
    return max((_to_numpy(d.top_ids).shape[-1] for d in docs if d.top_ids is not None), default=0)


def _doc_tops(doc: TokenDoc, i: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(doc.tokens)
    if doc.top_ids is None:
        return np.zeros((n, k), np.int32), np.zeros((n, k), np.float32)
    ids = _to_numpy(doc.top_ids).astype(np.int64)
    vals = _to_numpy(doc.top_values if doc.top_values is not None else np.zeros(ids.shape))
    if ids.shape != (n, ids.shape[-1]) or vals.shape != ids.shape:
        raise SaekitError(
            f"Document {i}: top_ids and top_values must both have shape [n_tokens={n}, k]; "
            f"got {tuple(ids.shape)} and {tuple(vals.shape)}."
        )
    pad = k - ids.shape[1]
    ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1).astype(np.int32)
    vals = np.pad(vals.astype(np.float32), ((0, 0), (0, pad)))
    return ids, vals


def _doc_mask(doc: TokenDoc, i: int) -> np.ndarray:
    n = len(doc.tokens)
    if doc.mask is None:
        return np.zeros(n, np.uint8)
    mask = _to_numpy(doc.mask).astype(bool)
    if mask.shape != (n,):
        raise SaekitError(f"Document {i}: mask must have shape [{n}]; got {tuple(mask.shape)}.")
    return mask.astype(np.uint8)
