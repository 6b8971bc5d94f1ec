"""Logit attribution: a feature's activation and its effect on each next-token prediction.

Anthropic's convention ("Towards Monosemanticity"): the feature's activation is the
background colour of each token; the effect of ablating the feature on the
log-likelihood of that token is a coloured underline (blue: the feature makes the
token more likely, i.e. ablating it lowers log p; red: less likely; thicker and darker
= larger). Beside the text: the feature's top and bottom logit effects and, for a
chosen prediction, the features ranked by attribution (click one to open it).

Example:
    >>> import pandas as pd
    >>> from saekit.analysis.results import Attribution
    >>> from saekit.widgets import LogitAttribution
    >>> ranked = pd.DataFrame({"sae": "s", "feature": [7, 2], "activation": [2.0, 0.25],
    ...                        "attribution": [1.25, -0.5]})
    >>> view = LogitAttribution(
    ...     ["<bos>", "The", " cat", " sat"], [0.0, 0.5, 2.0, 0.0], [0.0, 0.0, 0.0, -0.8],
    ...     feature_id=7, has_effect=[0, 1, 1, 1], mask=[1, 0, 0, 0],
    ...     top_logits=[(" sat", 1.5)], bottom_logits=[(" the", -0.5)],
    ...     ranking=Attribution(ranked, "s", "' sat' at position 3", token=3),
    ... )
    >>> print(view.to_text())
    LogitAttribution · feature #7
    background = activation (max 2) · underline = Δ log p of the token when ablated (max |Δ| 0.8)
    ⟦<bos>⟧[The:a=0.5][ cat:a=2][ sat:Δ=-0.8]
    Top logits: ' sat' 1.5
    Bottom logits: ' the' -0.5
    Attribution to ' sat' at position 3: #7 +1.25 (act 2), #2 -0.5 (act 0.25)
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets as t

from saekit._html import fmt_value, visible_token
from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.widgets._base import _to_numpy, as_bytes, from_bytes
from saekit.widgets._bundle import bundle
from saekit.widgets._feature_view import FeatureTextView
from saekit.widgets._runner import LatestRunner

if TYPE_CHECKING:
    from saekit.analysis.results import Attribution, FeatureAblation, LogitEffects

__all__ = ["LogitAttribution"]


#: ``attribution_fn(token_index) -> Attribution``: attribute the prediction of token ``token_index``.
AttributionFn = Callable[[int], "Attribution"]


class LogitAttribution(FeatureTextView):
    """One feature on one text: activation (background) and ablation effect (underline).

    Args:
        tokens: Token strings of the text.
        acts: ``[n_tokens]`` the feature's activation at each token.
        effect: ``[n_tokens]`` change of the log-likelihood of *this* token when the feature
            is ablated (``log p_ablated - log p_clean``; the prediction is made at the
            previous position). Negative: the feature made the token more likely.
        feature_id: The feature.
        has_effect: ``[n_tokens]`` booleans, true where ``effect`` was measured (default:
            every token but the first, which nothing predicts).
        mask: ``[n_tokens]`` booleans for special tokens (greyed, uncoloured).
        top_logits, bottom_logits: ``(token, logit)`` pairs of the feature's direct logit
            effect.
        ranking: An :func:`saekit.analysis.attribute` result: its features are ranked by
            attribution to its prediction (the analysis ranks them; ``n_ranked`` shown).
        attribution_fn: ``fn(token_index) -> Attribution``; when given, clicking a
            token ranks the features for predicting it (run off the kernel's main thread).
        sae_name, label, title: Shown in the header.
        feature_labels: Short descriptions of features in the ranking.
        vmax: Activation that gets the full colour (default: the largest).

    Synced state: ``tokens``, ``acts``/``effect`` (float32 buffers), ``mask``/
    ``has_effect`` (uint8), ``act_max``, ``effect_max``, ``top_logits``,
    ``bottom_logits``, ``attr_target``, ``attr_token``, ``attr_features`` (int32),
    ``attr_values``/``attr_acts`` (float32), ``feature_labels``, ``can_choose``,
    ``busy``, ``error``. Clicking a ranked feature calls the :meth:`on_feature_click`
    handlers.
    """

    _esm = bundle("logit_attribution.js")

    tokens = t.List(t.Unicode()).tag(sync=True)
    acts = t.Bytes(b"").tag(sync=True)
    mask = t.Bytes(b"").tag(sync=True)
    effect = t.Bytes(b"").tag(sync=True)
    has_effect = t.Bytes(b"").tag(sync=True)
    act_max = t.Float(0.0).tag(sync=True)
    effect_max = t.Float(0.0).tag(sync=True)
    top_logits = t.List(t.List()).tag(sync=True)
    bottom_logits = t.List(t.List()).tag(sync=True)
    attr_target = t.Unicode("").tag(sync=True)
    attr_token = t.Int(None, allow_none=True).tag(sync=True)
    attr_features = t.Bytes(b"").tag(sync=True)
    attr_values = t.Bytes(b"").tag(sync=True)
    attr_acts = t.Bytes(b"").tag(sync=True)
    feature_labels = t.Dict(value_trait=t.Unicode()).tag(sync=True)
    can_choose = t.Bool(False).tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)

    def __init__(
        self,
        tokens: Sequence[str],
        acts: Any,
        effect: Any,
        *,
        feature_id: int,
        has_effect: Any = None,
        mask: Any = None,
        top_logits: Sequence[tuple[str, float]] = (),
        bottom_logits: Sequence[tuple[str, float]] = (),
        ranking: Attribution | None = None,
        attribution_fn: AttributionFn | None = None,
        sae_name: str = "",
        label: str = "",
        title: str = "",
        feature_labels: Mapping[int, str] | None = None,
        vmax: float | None = None,
        n_ranked: int = 15,
    ) -> None:
        self._attribution_fn = attribution_fn
        self._n_ranked = int(n_ranked)
        self._runner: LatestRunner[int] = LatestRunner(
            self._rank, on_done=lambda _tok, r: self.set_ranking(r), on_error=self._show_error,
            on_busy=lambda busy: setattr(self, "busy", busy))
        super().__init__(
            **_text_state(tokens, acts, effect, has_effect, mask, vmax),
            feature_id=int(feature_id), sae_name=str(sae_name), label=str(label), title=str(title),
            top_logits=_pairs(top_logits), bottom_logits=_pairs(bottom_logits),
            feature_labels={str(k): str(v) for k, v in (feature_labels or {}).items()},
            can_choose=attribution_fn is not None, **_ranking_state(ranking, len(tokens), n_ranked),
        )

    @classmethod
    def from_result(
        cls,
        result: FeatureAblation,
        logits: LogitEffects | None = None,
        *,
        feature: int | FeatureRef | None = None,
        **kwargs: Any,
    ) -> LogitAttribution:
        """The view of an :func:`saekit.analysis.ablate_feature` result (one feature of it).

        Args:
            result: The :class:`~saekit.analysis.results.FeatureAblation`; row ``pos`` of its
                frame holds the effect on predicting token ``pos + 1``.
            logits: The feature's :func:`saekit.analysis.logit_effects`, shown beside the text.
            feature: Which feature, when the result holds several.
            **kwargs: Any other argument of the constructor (``ranking``, ``attribution_fn``...).
        """
        args = result.per_token(feature)
        top, bottom = logits.pairs(args["feature"]) if logits is not None else ([], [])
        kwargs.setdefault("mask", result.special if len(result.special) == len(args["tokens"]) else None)
        return cls(args["tokens"], args["acts"], args["effect"], has_effect=args["has_effect"],
                   feature_id=args["feature"], top_logits=top, bottom_logits=bottom,
                   sae_name=result.sae, **kwargs)

    # ----- updates ---------------------------------------------------------------------
    def set_ranking(self, ranking: Attribution | None) -> None:
        """Show another attribution ranking (or none)."""
        state = _ranking_state(ranking, len(self.tokens), self._n_ranked)
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)
            self.error = ""

    def show(self, result: FeatureAblation, logits: LogitEffects | None = None, *,
             feature: int | FeatureRef | None = None, label: str = "", vmax: float | None = None) -> None:
        """Show another feature (results as in :meth:`from_result`); the ranking is kept."""
        args = result.per_token(feature)
        mask = result.special if len(result.special) == len(args["tokens"]) else None
        state = _text_state(args["tokens"], args["acts"], args["effect"], args["has_effect"], mask, vmax)
        top, bottom = logits.pairs(args["feature"]) if logits is not None else ([], [])
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)
            self.feature_id, self.label, self.sae_name = args["feature"], str(label), result.sae
            self.top_logits, self.bottom_logits = _pairs(top), _pairs(bottom)

    def choose_prediction(self, token: int) -> None:
        """Rank features for predicting ``tokens[token]`` (what a click on that token does)."""
        if self._attribution_fn is None:
            raise SaekitError("This view has no attribution_fn; build it with one to rank predictions.")
        if not 1 <= int(token) < len(self.tokens):
            raise SaekitError(
                f"token must be in 1..{len(self.tokens) - 1} (a token that something predicts); got {token}."
            )
        self._runner.submit(int(token))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a requested ranking is done; ``False`` on timeout."""
        return self._runner.wait(timeout)

    # ----- reading back --------------------------------------------------------------
    def activations(self) -> np.ndarray:
        return from_bytes(self.acts, "f4")

    def effects(self) -> np.ndarray:
        """``[n_tokens]`` float32; 0 where no effect was measured."""
        return from_bytes(self.effect, "f4")

    def ranking(self) -> list[tuple[int, float, float]]:
        """``(feature, attribution, activation)`` rows of the shown ranking."""
        feats = from_bytes(self.attr_features, "i4").tolist()
        vals, acts = from_bytes(self.attr_values, "f4"), from_bytes(self.attr_acts, "f4")
        return [(f, float(v), float(a)) for f, v, a in zip(feats, vals, acts, strict=True)]

    def to_text(self) -> str:
        lines = [self._heading("LogitAttribution"),
                 f"background = activation (max {fmt_value(self.act_max)}) · underline = Δ log p of the "
                 f"token when ablated (max |Δ| {fmt_value(self.effect_max)})"]
        acts, eff = self.activations(), self.effects()
        masked = from_bytes(self.mask, "u1").astype(bool)
        lines.append("".join(_token_text(tok, float(a), float(e), bool(m))
                             for tok, a, e, m in zip(self.tokens, acts, eff, masked, strict=True)))
        for title, pairs in (("Top logits", self.top_logits), ("Bottom logits", self.bottom_logits)):
            if pairs:
                shown = ", ".join(f"{visible_token(tok)!r} {fmt_value(v)}" for tok, v in pairs)
                lines.append(f"{title}: {shown}")
        rows = self.ranking()
        if self.attr_target:
            ranked = ", ".join(f"#{f} {'+' if v > 0 else ''}{fmt_value(v)} (act {fmt_value(a)})"
                               for f, v, a in rows)
            lines.append(f"Attribution to {self.attr_target}: {ranked or 'no active features'}")
        if self.error:
            lines.append(f"error: {self.error.splitlines()[-1]}")
        return "\n".join(lines)

    # ----- internals -------------------------------------------------------------------
    def _rank(self, token: int) -> Attribution:
        from saekit.analysis.results import Attribution

        assert self._attribution_fn is not None
        result = self._attribution_fn(token)
        if not isinstance(result, Attribution):
            raise SaekitError(
                "attribution_fn must return a saekit.analysis.attribute() result; "
                f"got {type(result).__name__}."
            )
        return result

    def _show_error(self, _token: int, exc: BaseException) -> None:
        lines = traceback.format_exception_only(type(exc), exc)
        self.error = "attribution_fn failed: " + "".join(lines).strip()

    def _on_custom_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "choose_prediction":
            token = content.get("token")
            if isinstance(token, int) and not isinstance(token, bool) and self._attribution_fn is not None:
                self.choose_prediction(token)
        else:
            super()._on_custom_msg(widget, content, buffers)


def _token_text(token: str, act: float, effect: float, masked: bool) -> str:
    text = visible_token(token)
    if masked:
        return f"⟦{text}⟧"
    parts = ([f"a={fmt_value(act)}"] if act > 0 else []) + ([f"Δ={fmt_value(effect)}"] if effect != 0 else [])
    return f"[{text}:{','.join(parts)}]" if parts else text


def _flags(value: Any, n: int, name: str, default: np.ndarray) -> np.ndarray:
    if value is None:
        return default
    flags = _to_numpy(value).astype(bool).reshape(-1)
    if flags.shape != (n,):
        raise SaekitError(f"{name} must have one flag per token ({n}); got shape {tuple(flags.shape)}.")
    return flags


def _values(value: Any, n: int, name: str) -> np.ndarray:
    arr = _to_numpy(value).astype(np.float64).reshape(-1)
    if arr.shape != (n,):
        raise SaekitError(f"{name} must have one value per token ({n}); got shape {tuple(arr.shape)}.")
    return arr


def _text_state(tokens: Sequence[str], acts: Any, effect: Any, has_effect: Any, mask: Any,
                vmax: float | None) -> dict[str, Any]:
    n = len(tokens)
    if n == 0:
        raise SaekitError("LogitAttribution needs at least one token.")
    a, e = _values(acts, n, "acts"), _values(effect, n, "effect")
    has = _flags(has_effect, n, "has_effect", np.arange(n) > 0)
    masked = _flags(mask, n, "mask", np.zeros(n, bool))
    e = np.where(has, e, 0.0)
    shown = a[~masked]
    act_max = float(vmax) if vmax else float(shown.max()) if shown.size and shown.max() > 0 else 0.0
    return {
        "tokens": [str(tok) for tok in tokens], "acts": as_bytes(a, "f4", name="acts"),
        "effect": as_bytes(e, "f4", name="effect"), "has_effect": as_bytes(has, "u1", name="has_effect"),
        "mask": as_bytes(masked, "u1", name="mask"), "act_max": act_max,
        "effect_max": float(np.abs(e).max()) if e.size else 0.0,
    }


def _ranking_state(ranking: Attribution | None, n_tokens: int, top: int) -> dict[str, Any]:
    if ranking is None:
        return {"attr_target": "", "attr_token": None, "attr_features": b"", "attr_values": b"",
                "attr_acts": b""}
    ranked = ranking.ranked(top=top)  # computed by the analysis
    token = ranking.token
    if token is not None and not 0 <= int(token) < n_tokens:
        token = None
    return {"attr_target": str(ranking.target) or "the chosen prediction", "attr_token": token,
            "attr_features": as_bytes(ranked["feature"].to_numpy(np.int64), "i4", name="features"),
            "attr_values": as_bytes(ranked["attribution"].to_numpy(), "f4", name="attributions"),
            "attr_acts": as_bytes(ranked["activation"].to_numpy(), "f4", name="activations")}


def _pairs(pairs: Sequence[tuple[str, float]]) -> list[list[Any]]:
    return [[str(tok), float(v)] for tok, v in pairs]
