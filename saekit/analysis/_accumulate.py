"""The running state of the statistics pass for one SAE (bounded memory).

Per batch of ``n`` tokens the SAE's codes ``[n, d_sae]`` are folded into:

- counters ``[d_sae]``: active tokens, sum of activations, running max;
- a histogram of nonzero activations on a fixed log10 grid, ``[d_sae, HIST_BINS]``;
- three :class:`~saekit.analysis._kept.KeptSet` selections (top-k, quantile bins,
  random), each slot holding ``(activation, doc, pos)`` and the context window of
  token ids and this feature's activations, cut from the batch while it is in memory.

Nothing here grows with the number of tokens: see :meth:`SAEAccumulator.nbytes`.

Quantile bins are linear in ``[0, max]`` of each feature's *running* max. When a
batch raises a feature's max, that feature's kept quantile examples are re-binned
against the new max and re-merged by their random keys. A bin's sample is exactly
uniform over the tokens seen since the feature's max last grew, and over earlier
tokens up to re-binning at bin edges (an old bin that straddles a new edge can only
hand over the examples it kept). Maxima settle early in a long pass, so this is
close to the two-pass answer at the cost of one pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from saekit.analysis._kept import FieldSpec, KeptSet

#: fixed log10 grid for activation histograms: 20 bins per decade over [1e-4, 1e4];
#: values outside land in the end bins.
HIST_LO, HIST_HI, HIST_BINS = -4.0, 4.0, 160


@dataclass(frozen=True)
class FlatBatch:
    """The tokens of one batch in stream order (as ``Model.iter_activations`` yields).

    Attributes:
        token_ids: ``[n]``; doc: ``[n]``; pos: ``[n]`` position in the document.
    """

    token_ids: Tensor
    doc: Tensor
    pos: Tensor

    def windows(self, rows: Tensor, left: int, right: int) -> tuple[Tensor, Tensor]:
        """Flat indices ``[c, W]`` of the window around each row, and which are real.

        A window holds the ``left`` tokens before and ``right`` after, cut at the
        batch's edges and wherever the document or the position run breaks (dropped
        special tokens, the next document).
        """
        offsets = torch.arange(-left, right + 1, device=rows.device)  # [W]
        j = rows[:, None] + offsets  # [c, W]
        inside = (j >= 0) & (j < self.doc.numel())
        jc = j.clamp(0, max(self.doc.numel() - 1, 0))
        same = (self.doc[jc] == self.doc[rows, None]) & (self.pos[jc] - self.pos[rows, None] == offsets)
        return jc, inside & same


@dataclass(frozen=True)
class StatsSettings:
    """Sizes of the kept selections (see ``saekit.feature_stats``)."""

    k: int
    n_quantiles: int
    examples_per_quantile: int
    n_random: int
    left: int
    right: int

    @property
    def width(self) -> int:
        return self.left + self.right + 1


def _example_fields(width: int) -> dict[str, FieldSpec]:
    return {
        "act": ((), torch.float32, 0.0),
        "doc": ((), torch.int64, -1),
        "pos": ((), torch.int64, -1),
        "win_tok": ((width,), torch.int32, -1),
        "win_act": ((width,), torch.float32, 0.0),
    }


class SAEAccumulator:
    """Folds batches of one SAE's codes into bounded running statistics."""

    def __init__(self, d_sae: int, settings: StatsSettings, seed: int, device: torch.device) -> None:
        s, f = settings, _example_fields(settings.width)
        self.d_sae, self.settings, self.device = d_sae, s, device
        self.n_tokens = 0
        self.n_active = torch.zeros(d_sae, dtype=torch.int64, device=device)
        self.sum_act = torch.zeros(d_sae, dtype=torch.float64, device=device)
        self.max_act = torch.zeros(d_sae, device=device)
        self.hist = torch.zeros(d_sae * HIST_BINS, dtype=torch.int64, device=device)
        self.top = KeptSet(d_sae, s.k, f, device)
        self.quantile = KeptSet(d_sae * s.n_quantiles, s.examples_per_quantile, f, device)
        self.random = KeptSet(d_sae, s.n_random, f, device)
        self._gen = torch.Generator().manual_seed(seed)  # CPU: same keys on every device

    def nbytes(self) -> int:
        """Bytes of state; fixed by ``d_sae`` and the settings, not by the tokens seen."""
        counters = [self.n_active, self.sum_act, self.max_act, self.hist]
        own = sum(t.numel() * t.element_size() for t in counters)
        return own + self.top.nbytes() + self.quantile.nbytes() + self.random.nbytes()

    @torch.no_grad()
    def update(self, codes: Tensor, batch: FlatBatch) -> None:
        """Fold in the codes ``[n, d_sae]`` of the tokens of ``batch``.

        On CPU this runs on one thread: it is many small operations, and on a busy
        machine each multi-threaded one can stall waiting for a descheduled thread
        (measured: 10-40x slower with 2 threads than with 1 on a loaded 2-core box).
        """
        with _one_thread(self.device):
            self._update(codes, batch)

    def _update(self, codes: Tensor, batch: FlatBatch) -> None:
        codes = codes.float()
        self.n_tokens += codes.shape[0]
        rows, feats = (codes > 0).nonzero(as_tuple=True)  # [nnz] each; O(nnz) from here
        vals = codes[rows, feats]
        self.n_active += torch.bincount(feats, minlength=self.d_sae)
        self.sum_act.index_add_(0, feats, vals.double())
        self._histogram(feats, vals)
        old_max = self.max_act.clone()
        self.max_act.scatter_reduce_(0, feats, vals, "amax")
        self._rebin(old_max)
        q, n = self.settings.n_quantiles, vals.numel()
        top_key, q_key, r_key = -vals, self._keys(n), self._keys(n)
        q_group = feats * q + self._bins(vals, feats)
        plans = [
            (self.top, top_key, self.top.plan(feats, top_key)),
            (self.quantile, q_key, self.quantile.plan(q_group, q_key)),
            (self.random, r_key, self.random.plan(feats, r_key)),
        ]
        entering = torch.unique(torch.cat([p.idx for _, _, p in plans]))  # [u] sorted
        if entering.numel() == 0:
            return
        payload = _payload(codes, batch, rows[entering], feats[entering], vals[entering], self.settings)
        for kept, key, plan in plans:
            at = torch.searchsorted(entering, plan.idx)
            kept.write(plan, key[plan.idx], {name: v[at] for name, v in payload.items()})

    def _histogram(self, feats: Tensor, vals: Tensor) -> None:
        width = (HIST_HI - HIST_LO) / HIST_BINS
        b = ((vals.log10() - HIST_LO) / width).floor().clamp(0, HIST_BINS - 1).long()
        self.hist += torch.bincount(feats * HIST_BINS + b, minlength=self.hist.numel())

    def _bins(self, vals: Tensor, feats: Tensor) -> Tensor:
        q = self.settings.n_quantiles
        top = self.max_act[feats].clamp_min(torch.finfo(torch.float32).tiny)
        return (vals / top * q).floor().clamp(0, q - 1).long()

    def _keys(self, n: int) -> Tensor:
        return torch.rand(n, generator=self._gen).to(self.device)

    def _rebin(self, old_max: Tensor) -> None:
        grown = ((self.max_act > old_max) & (old_max > 0)).nonzero().squeeze(1)  # [g]
        if grown.numel() == 0:
            return
        q = self.settings.n_quantiles
        groups = (grown[:, None] * q + torch.arange(q, device=self.device)).reshape(-1)
        group, key, fields = self.quantile.pull(groups)
        feats = group // q
        new_group = feats * q + self._bins(fields["act"], feats)
        self.quantile.offer(new_group, key, lambda i: {n: v[i] for n, v in fields.items()})


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Run torch CPU ops on one thread inside the block (restored afterwards)."""
    before = torch.get_num_threads()
    if device.type != "cpu" or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _payload(codes: Tensor, batch: FlatBatch, rows: Tensor, feats: Tensor, vals: Tensor,
             settings: StatsSettings) -> dict[str, Tensor]:
    """Kept-set fields for active entries ``(rows [u], feats [u])`` of the batch."""
    j, ok = batch.windows(rows, settings.left, settings.right)  # [u, W]
    return {
        "act": vals,
        "doc": batch.doc[rows],
        "pos": batch.pos[rows],
        "win_tok": torch.where(ok, batch.token_ids[j], -1),
        "win_act": torch.where(ok, codes[j, feats[:, None]], 0.0),
    }
