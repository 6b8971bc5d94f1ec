"""Ablations: of a feature (effect on every next token) and of context tokens.

- :func:`ablate_feature` (Anthropic's "feature ablation effect"): subtract a feature's
  contribution at every position, keep the SAE's error term, finish the forward pass,
  and record how the log-likelihood of each next token changes.
- :func:`ablate_context` (the Pythia-70M dictionary study): drop (or replace) each
  context token in turn and record how the feature's activation at the last position
  changes. All variants run in one batched, right-padded forward pass that stops
  after the SAE's site.

Example:
    >>> r = saekit.analysis.ablate_context(model, sae, "The Eiffel Tower is in", 123)
    >>> r.frame.sort_values("delta").head(3)            # tokens the feature needs most
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from saekit.analysis._batching import chunks, pad_id, pad_right, rowwise, site_at
from saekit.analysis._checks import Context, feature_ids, one_token, sae_site, special_mask, token_ids
from saekit.analysis._cost import check_cost
from saekit.analysis.results import ContextEffects, FeatureAblation
from saekit.errors import SaekitError
from saekit.ids import sae_name
from saekit.model import Edit, Model
from saekit.sae.base import SAE
from saekit.splice import sae_edit

FEATURE_COLUMNS = ["feature", "pos", "token_id", "token", "activation", "next_token_id",
                   "next_token", "logprob_clean", "logprob_ablated", "delta"]
CONTEXT_COLUMNS = ["feature", "pos", "token_id", "token", "activation_full",
                   "activation_without", "delta"]


def ablate_feature(
    model: Model,
    sae: SAE,
    context: Context,
    features: int | Iterable[int],
    *,
    include_special: bool = False,
    batch_size: int = 8,
) -> FeatureAblation:
    """Per-token effect of ablating features on the next-token log-likelihood.

    Row 0 of each batch runs the clean context; row ``r`` runs it with feature
    ``features[r-1]`` set to 0 at every position (``sae_edit(sae, ablate=[f])``, error
    term kept, so nothing else changes). Several features share one forward pass.

    Args:
        model: the model.
        sae: the SAE at its site (``sae.cfg.site``).
        context: a text (tokenised with BOS) or token ids.
        features: one feature or several.
        include_special: also ablate at special tokens (BOS); off by default, as the
            BOS residual is an outlier the SAE was not trained on.
        batch_size: features per forward pass.

    Returns:
        A :class:`~saekit.analysis.results.FeatureAblation` whose ``frame`` has one row
        per (feature, position): ``feature, pos, token_id, token, activation`` (the
        feature's code at ``pos``), ``next_token_id,
        next_token, logprob_clean, logprob_ablated`` (log p of token ``pos+1``) and
        ``delta = logprob_ablated - logprob_clean``. The last position has no next
        token (-1, "" and NaN).

    Example:
        >>> df = ablate_feature(model, sae, "The cat sat on the mat", [3, 9]).frame
        >>> df[df.feature == 3].nsmallest(3, "delta")      # tokens the feature helps predict
    """
    site = sae_site(model, sae)
    feats = feature_ids(sae, features)
    ids = token_ids(model, context, min_len=2)  # [T]
    special = special_mask(model, ids)  # [T]
    where = None if include_special else ~special[None]  # [1, T]
    parts = [_feature_chunk(model, sae, site, ids, feats[s], where) for s in chunks(len(feats), batch_size)]
    codes = parts[0][0]  # [T, d_sae] clean codes
    clean = parts[0][1][0]  # [T-1]
    ablated = torch.cat([p[1][1:] for p in parts])  # [n_feat, T-1]
    frame = _feature_frame(model, ids, feats, codes, clean, ablated)
    return FeatureAblation(frame, sae_name(sae), special=special.numpy())


def _feature_chunk(model: Model, sae: SAE, site: str, ids: Tensor, feats: list[int],
                   where: Tensor | None) -> tuple[Tensor, Tensor]:
    """Clean codes ``[T, d_sae]`` and next-token log-probs ``[1 + n, T-1]`` (row 0 clean)."""
    edits: list[Edit | None] = [None] + [sae_edit(sae, ablate=[f], where=where) for f in feats]
    batch = ids[None].expand(len(edits), -1)
    out = model.run(batch, read=[site], edits={site: rowwise(edits)})
    with torch.no_grad():
        codes = sae.encode(out.acts[site][0]).float().cpu()
    assert out.logits is not None
    logits = out.logits[:, :-1].float()  # [n, T-1, vocab]
    nxt = ids[1:].to(logits.device)[None, :, None].expand(logits.shape[0], -1, 1)
    logp = logits.gather(-1, nxt)[..., 0] - torch.logsumexp(logits, dim=-1)  # [n, T-1]
    return codes, logp.cpu()


def _feature_frame(model: Model, ids: Tensor, feats: list[int], codes: Tensor, clean: Tensor,
                   ablated: Tensor) -> pd.DataFrame:
    T = ids.numel()
    strings = model.to_strings(ids)
    nan = torch.tensor([float("nan")])
    frames = []
    for i, f in enumerate(feats):
        lp_abl = torch.cat([ablated[i], nan])
        lp_clean = torch.cat([clean, nan])
        frames.append(pd.DataFrame({
            "feature": f, "pos": range(T), "token_id": ids.tolist(), "token": strings,
            "activation": codes[:, f].numpy(), "next_token_id": ids[1:].tolist() + [-1],
            "next_token": strings[1:] + [""], "logprob_clean": lp_clean.numpy(),
            "logprob_ablated": lp_abl.numpy(), "delta": (lp_abl - lp_clean).numpy(),
        }))
    return pd.concat(frames, ignore_index=True)[FEATURE_COLUMNS]


def ablate_context(
    model: Model,
    sae: SAE,
    context: Context,
    features: int | Iterable[int],
    *,
    mode: str = "remove",
    replacement: int | str | None = None,
    include_special: bool = False,
    batch_size: int | None = 256,
    progress: bool = True,
    max_seconds: float | None = None,
) -> ContextEffects:
    """Change of the features' activation at the last position when each context token goes.

    For every context token ``i`` but the last, a variant of the context either lacks
    token ``i`` (``mode="remove"``, one token shorter) or has it replaced by
    ``replacement`` (``mode="replace"``). The full context and all variants run as one
    right-padded batch that stops after the SAE's site (no logits); every feature of the
    SAE is read from the same pass.

    Args:
        model: the model.
        sae: the SAE at its site.
        context: a text (tokenised with BOS) or token ids; at least 2 tokens.
        features: one feature or several (all read from the same pass).
        mode: ``"remove"`` or ``"replace"``.
        replacement: token id (or single-token string) put in place of each token in
            ``"replace"`` mode.
        include_special: also ablate special tokens (BOS); off by default.
        batch_size: variants per forward pass; ``None`` puts all in one pass. Use a
            smaller value for long contexts to bound memory.
        progress: show a progress bar when there is more than one pass.
        max_seconds: refuse (:class:`~saekit.errors.SaekitError`, with the estimate)
            when the work would take longer. The cost grows with the square of the
            context (one variant per token); long contexts are timed first and warn
            (:class:`~saekit.errors.SaekitWarning`) above ``_cost.WARN_SECONDS``.

    Returns:
        A :class:`~saekit.analysis.results.ContextEffects` (``tokens``: the whole
        context) whose ``frame`` has one row per (feature, ablated position): ``feature, pos,
        token_id, token, activation_full`` (at the last position, full context),
        ``activation_without`` (with token ``pos`` removed/replaced) and
        ``delta = activation_without - activation_full`` (negative: the feature needs
        that token).

    Example:
        >>> df = ablate_context(model, sae, "The Eiffel Tower is in", 123).frame
        >>> df.loc[df.delta.idxmin(), "token"]
        ' Eiffel'
    """
    site = sae_site(model, sae)
    feats = feature_ids(sae, features)
    ids = token_ids(model, context, min_len=2)
    positions = _ablatable(model, ids, include_special)
    check_cost(model, site, ids[None], len(positions) + 1, what="ablate_context", max_seconds=max_seconds,
               fix="Pass a shorter context (e.g. the last 64 tokens before the token of interest).")
    rows = [ids] + _variants(model, ids, positions, mode, replacement)
    acts = _last_codes(model, sae, site, rows, batch_size or len(rows), progress)  # [1 + n, n_feat]
    frame = _context_frame(model, ids, positions, feats, acts[:, feats])
    return ContextEffects(frame, sae_name(sae), tuple(model.to_strings(ids)), mode)


def _ablatable(model: Model, ids: Tensor, include_special: bool) -> list[int]:
    special = special_mask(model, ids)
    positions = [i for i in range(ids.numel() - 1) if include_special or not bool(special[i])]
    if not positions:
        raise SaekitError(
            f"Nothing to ablate: the context {model.to_strings(ids)} has no token before the last "
            "one that is not a special token. Pass a longer context (or include_special=True)."
        )
    return positions


def _variants(model: Model, ids: Tensor, positions: list[int], mode: str,
              replacement: int | str | None) -> list[Tensor]:
    if mode == "remove":
        return [torch.cat([ids[:i], ids[i + 1 :]]) for i in positions]
    if mode != "replace":
        raise SaekitError(f"mode must be 'remove' or 'replace', got {mode!r}.")
    if replacement is None:
        raise SaekitError(
            "mode='replace' needs replacement=<token id or single-token string>, e.g. "
            "replacement=' the' or replacement=model.tokenizer.pad_token_id."
        )
    rep = one_token(model, replacement)
    out = []
    for i in positions:
        row = ids.clone()
        row[i] = rep
        out.append(row)
    return out


@torch.no_grad()
def _last_codes(model: Model, sae: SAE, site: str, rows: list[Tensor], batch_size: int,
                progress: bool) -> Tensor:
    """``[n_rows, d_sae]`` codes at each row's last real position."""
    pieces = chunks(len(rows), batch_size)
    out = []
    for s in tqdm(pieces, desc="context ablation", disable=not progress or len(pieces) == 1):
        ids, mask, last = pad_right(rows[s], pad_id(model))
        out.append(sae.encode(site_at(model, site, ids, mask, last)).float().cpu())
    return torch.cat(out)


def _context_frame(model: Model, ids: Tensor, positions: list[int], feats: list[int],
                   acts: Tensor) -> pd.DataFrame:
    strings = model.to_strings(ids)
    frames = []
    for j, f in enumerate(feats):
        full, without = acts[0, j], acts[1:, j]
        frames.append(pd.DataFrame({
            "feature": f, "pos": positions, "token_id": [int(ids[i]) for i in positions],
            "token": [strings[i] for i in positions], "activation_full": float(full),
            "activation_without": without.numpy(), "delta": (without - full).numpy(),
        }))
    return pd.concat(frames, ignore_index=True)[CONTEXT_COLUMNS]
