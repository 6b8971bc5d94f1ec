"""Batched runs for the per-feature analyses: per-row edits, right padding (private)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from saekit.model import Edit, Model


def rowwise(edits: Sequence[Edit | None]) -> Edit:
    """One edit for a batch that applies ``edits[r]`` to row ``r`` (``None``: unchanged).

    Lets one forward pass hold several variants (e.g. one ablated feature per row).
    """

    def edit(x: Tensor) -> Tensor:  # x: [batch, pos, d]
        rows = [x[r : r + 1] if fn is None else fn(x[r : r + 1]) for r, fn in enumerate(edits)]
        return torch.cat(rows, dim=0)

    return edit


def pad_right(rows: Sequence[Tensor], pad_id: int) -> tuple[Tensor, Tensor, Tensor]:
    """Right-pad 1-d id tensors: ``(ids [n, T], mask [n, T], last [n])``, last = final real index."""
    width = max(int(r.numel()) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : r.numel()] = r
        mask[i, : r.numel()] = 1
    last = torch.tensor([r.numel() - 1 for r in rows], dtype=torch.long)
    return ids, mask, last


def pad_id(model: Model) -> int:
    """The id used for right padding (pad, else EOS, else 0)."""
    tok = model.tokenizer
    pid = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return int(pid or 0)


def site_at(model: Model, site: str, ids: Tensor, mask: Tensor, last: Tensor) -> Tensor:
    """``[n, d]``: the site's value at position ``last[r]`` of each row (stops after the site)."""
    acts = model.run(ids, mask, read=[site], logits=False).acts[site]  # [n, T, d]
    rows = torch.arange(ids.shape[0], device=acts.device)
    return acts[rows, last.to(acts.device)]


def chunks(n: int, size: int) -> list[slice]:
    """Slices covering ``range(n)`` in pieces of at most ``size``."""
    size = max(1, int(size))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]
