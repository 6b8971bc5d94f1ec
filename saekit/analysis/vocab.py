"""Vocabulary sweep: which single tokens raise or lower a feature ("created examples").

Following the Pythia-70M dictionary study: put every vocabulary token before the
context (``where="prepend"``, after BOS), after it (``"append"``), or on its own
(``"alone"``, after BOS), run all variants in large batches that stop after the
SAE's site, and rank tokens by the feature's activation at the last position.

Example:
    >>> df = saekit.analysis.vocab_sweep(model, sae, "The weather today is", 123)
    >>> df.head(10)                              # tokens that raise feature 123 most
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from saekit.analysis._batching import chunks, site_at
from saekit.analysis._checks import Context, feature_ids, sae_site, special_mask, token_ids
from saekit.analysis._cost import check_cost
from saekit.errors import SaekitError
from saekit.model import Model
from saekit.sae.base import SAE

COLUMNS = ["feature", "rank", "token_id", "token", "activation", "delta"]
MODES = ("prepend", "append", "alone")
#: Default number of tokens per forward pass (rows x row length); bounds memory.
TOKENS_PER_BATCH = 16384


def vocab_sweep(
    model: Model,
    sae: SAE,
    context: Context | None,
    features: int | Iterable[int],
    *,
    where: str = "prepend",
    tokens: Sequence[int] | Tensor | None = None,
    include_special: bool = False,
    batch_size: int | None = None,
    progress: bool = True,
    max_seconds: float | None = None,
) -> pd.DataFrame:
    """Feature activation at the last position with each vocabulary token added.

    Args:
        model: the model.
        sae: the SAE at its site.
        context: a text (tokenised with BOS) or token ids; ignored when ``where="alone"``
            (pass ``None``).
        features: one feature or several (all read from the same passes).
        where: ``"prepend"`` (BOS, token, context), ``"append"`` (context, token) or
            ``"alone"`` (BOS, token).
        tokens: token ids to try; default the whole vocabulary.
        include_special: also try special tokens (BOS, EOS...).
        batch_size: rows per forward pass; default ``16384 // row_length``, so memory
            stays bounded on any vocabulary size. Lower it if memory runs short.
        progress: show a progress bar.
        max_seconds: refuse (:class:`~saekit.errors.SaekitError`, with the estimate)
            when the sweep would take longer; long sweeps are timed first and warn
            (:class:`~saekit.errors.SaekitWarning`) above ``_cost.WARN_SECONDS``.

    Returns:
        Long DataFrame ``feature, rank, token_id, token, activation, delta``, sorted per
        feature by ``activation`` (rank 0 = raises it most). ``delta`` is the change from
        the unmodified context's activation at its last position (for ``"alone"``: from
        the BOS-only row, or 0 when the tokenizer adds no BOS).

    Example:
        >>> vocab_sweep(model, sae, None, 7, where="alone").head(5)
    """
    site = sae_site(model, sae)
    feats = feature_ids(sae, features)
    prefix, body = _split_context(model, context, where)
    cand = _candidates(model, tokens, include_special)  # [V]
    rows = _rows(prefix, body, cand, where)  # [V, L]
    width = rows.shape[1]
    size = batch_size or max(1, TOKENS_PER_BATCH // width)
    check_cost(model, site, rows, rows.shape[0], what="vocab_sweep", max_seconds=max_seconds,
               fix="Pass tokens= (a subset of the vocabulary) or a shorter context.")
    acts = _sweep(model, sae, site, rows, feats, size, progress)  # [V, n_feat]
    base = _baseline(model, sae, site, prefix, body, where, feats)  # [n_feat]
    return _frame(model, cand, feats, acts, base)


def _split_context(model: Model, context: Context | None, where: str) -> tuple[Tensor, Tensor]:
    """(leading special tokens, the rest) of the context; for "alone" the BOS prefix only."""
    if where not in MODES:
        raise SaekitError(f"where must be one of {MODES}, got {where!r}.")
    if where == "alone":
        bos = model.to_tokens(" ")  # the tokenizer's own prefix (BOS), if any
        n = int(special_mask(model, torch.tensor(bos)).long().cumprod(0).sum())
        return torch.tensor(bos[:n], dtype=torch.long), torch.zeros(0, dtype=torch.long)
    if context is None:
        raise SaekitError(f"where={where!r} needs a context; pass a text, or use where='alone'.")
    ids = token_ids(model, context)
    n = int(special_mask(model, ids).long().cumprod(0).sum())
    return ids[:n], ids[n:]


def _candidates(model: Model, tokens: Sequence[int] | Tensor | None, include_special: bool) -> Tensor:
    vocab = model.W_U.shape[1]
    cand = torch.arange(vocab) if tokens is None else torch.as_tensor(tokens, dtype=torch.long).flatten()
    if cand.numel() and (int(cand.min()) < 0 or int(cand.max()) >= vocab):
        raise SaekitError(f"tokens must be ids in 0..{vocab - 1}.")
    if not include_special:
        cand = cand[~special_mask(model, cand)]
    if not cand.numel():
        raise SaekitError("No tokens to sweep (all were special tokens). Pass include_special=True.")
    return cand


def _rows(prefix: Tensor, body: Tensor, cand: Tensor, where: str) -> Tensor:
    """``[V, L]`` one row per candidate token."""
    n = cand.numel()
    col = cand[:, None]
    pre, post = prefix.expand(n, -1), body.expand(n, -1)
    parts = [pre, col, post] if where == "prepend" else [pre, post, col]
    return torch.cat(parts, dim=1)


@torch.no_grad()
def _sweep(model: Model, sae: SAE, site: str, rows: Tensor, feats: list[int], size: int,
           progress: bool) -> Tensor:
    V, L = rows.shape
    mask = torch.ones(min(size, V), L, dtype=torch.long)
    last = torch.full((min(size, V),), L - 1, dtype=torch.long)
    out = []
    for s in tqdm(chunks(V, size), desc="vocab sweep", disable=not progress):
        n = s.stop - s.start
        x = site_at(model, site, rows[s], mask[:n], last[:n])  # [n, d_in]
        out.append(sae.encode(x)[:, feats].float().cpu())
    return torch.cat(out)


@torch.no_grad()
def _baseline(model: Model, sae: SAE, site: str, prefix: Tensor, body: Tensor, where: str,
              feats: list[int]) -> Tensor:
    ids = torch.cat([prefix, body])
    if ids.numel() == 0:
        return torch.zeros(len(feats))
    x = site_at(model, site, ids[None], torch.ones(1, ids.numel(), dtype=torch.long),
                torch.tensor([ids.numel() - 1]))
    return sae.encode(x)[0, feats].float().cpu()


def _frame(model: Model, cand: Tensor, feats: list[int], acts: Tensor, base: Tensor) -> pd.DataFrame:
    strings = model.tokenizer.batch_decode(cand[:, None].tolist())
    frames = []
    for j, f in enumerate(feats):
        order = torch.sort(acts[:, j], descending=True, stable=True).indices
        frames.append(pd.DataFrame({
            "feature": f, "rank": range(cand.numel()), "token_id": cand[order].numpy(),
            "token": [strings[i] for i in order.tolist()], "activation": acts[order, j].numpy(),
            "delta": (acts[order, j] - base[j]).numpy(),
        }))
    return pd.concat(frames, ignore_index=True)[COLUMNS]
