"""Bounded selections: in each group, keep the items with the smallest keys.

One structure serves the three kinds of examples the statistics pass keeps:

- top-k activating examples: group = feature, key = ``-activation``;
- uniformly random active examples: group = feature, key = a uniform random number
  (keeping the ``m`` smallest random keys of a stream is a uniform sample without
  replacement of size ``m``: "bottom-m" or priority sampling, a mergeable reservoir);
- quantile examples: group = ``feature * n_bins + bin``, key = a uniform random number.

State is ``[n_groups, capacity]`` per field (plus a trailing window axis for the
context windows), so memory is fixed at construction and never grows with the stream.
Each group's slots stay sorted by key, empty slots hold key ``+inf``.

Example:
    >>> import torch
    >>> kept = KeptSet(n_groups=2, capacity=2, fields={"act": ((), torch.float32, 0.0)})
    >>> key = torch.tensor([-3.0, -1.0, -2.0, -5.0])
    >>> kept.offer(torch.tensor([0, 0, 0, 1]), key, lambda i: {"act": -key[i]})
    >>> kept.fields["act"].tolist()
    [[3.0, 2.0], [5.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

#: field name -> (trailing shape, dtype, fill value of an empty slot)
FieldSpec = tuple[tuple[int, ...], torch.dtype, float]


def smallest_per_group(group: Tensor, key: Tensor, capacity: int) -> tuple[Tensor, Tensor]:
    """Indices of the ``capacity`` smallest keys of each group, and their rank in it.

    Args:
        group: ``[c]`` int64 group of each candidate.
        key: ``[c]`` float key of each candidate.
        capacity: how many to keep per group.

    Returns:
        ``(idx [c'], rank [c'])``: candidate indices sorted by (group, key), with
        ``rank < capacity`` their position within the group.
    """
    order = torch.argsort(key, stable=True)
    order = order[torch.argsort(group[order], stable=True)]
    g = group[order]
    _, counts = torch.unique_consecutive(g, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts  # [n_runs]
    rank = torch.arange(g.numel(), device=g.device) - starts.repeat_interleave(counts)
    keep = rank < capacity
    return order[keep], rank[keep]


class KeptSet:
    """Per group, the ``capacity`` items with the smallest keys seen so far.

    Attributes:
        key: ``[n_groups, capacity]`` sorted ascending per group; ``inf`` = empty slot.
        fields: name -> ``[n_groups, capacity, *trailing]`` payload of each slot.
    """

    def __init__(
        self,
        n_groups: int,
        capacity: int,
        fields: Mapping[str, FieldSpec],
        device: torch.device | str = "cpu",
    ) -> None:
        self.n_groups, self.capacity = n_groups, capacity
        self.key = torch.full((n_groups, capacity), float("inf"), device=device)
        self.fields: dict[str, Tensor] = {
            name: torch.full((n_groups, capacity, *shape), fill, dtype=dtype, device=device)
            for name, (shape, dtype, fill) in fields.items()
        }
        self._fill = {name: spec[2] for name, spec in fields.items()}

    def nbytes(self) -> int:
        """Memory held by the state, in bytes (fixed at construction)."""
        tensors = [self.key, *self.fields.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def offer(self, group: Tensor, key: Tensor, make_fields: Callable[[Tensor], dict[str, Tensor]]) -> None:
        """Offer candidates; ``make_fields(idx)`` builds the payload of the chosen ones.

        Candidates whose key cannot enter their group are dropped before
        ``make_fields`` is called, so expensive payloads (context windows) are built
        only for at most ``capacity`` candidates per touched group.

        Args:
            group: ``[c]`` int64 group of each candidate.
            key: ``[c]`` float key of each candidate (smaller is kept).
            make_fields: candidate indices ``[c']`` -> name -> ``[c', *trailing]``.
        """
        if key.numel() == 0 or self.capacity == 0:
            return
        may_enter = (key < self.key[group, -1]).nonzero().squeeze(1)  # [c1]
        idx, rank = smallest_per_group(group[may_enter], key[may_enter], self.capacity)
        chosen = may_enter[idx]
        if chosen.numel():
            self._merge(group[chosen], rank, key[chosen], make_fields(chosen))

    def _merge(self, group: Tensor, rank: Tensor, key: Tensor, new: dict[str, Tensor]) -> None:
        # group/rank: [c] sorted by group, ranks < capacity; merge with touched rows.
        touched, row = torch.unique_consecutive(group, return_inverse=True)  # [g_t], [c]
        n_t, cap = touched.numel(), self.capacity
        cand_key = self.key.new_full((n_t, cap), float("inf"))
        cand_key[row, rank] = key
        both_key = torch.cat([self.key[touched], cand_key], 1)  # [g_t, 2 cap]
        order = torch.argsort(both_key, dim=1, stable=True)[:, :cap]  # [g_t, cap]
        self.key[touched] = torch.gather(both_key, 1, order)
        for name, state in self.fields.items():
            trailing = state.shape[2:]
            cand = state.new_full((n_t, cap, *trailing), self._fill[name])
            cand[row, rank] = new[name].to(state.dtype)
            both = torch.cat([state[touched], cand], 1)  # [g_t, 2 cap, *trailing]
            pick = order.view(n_t, cap, *([1] * len(trailing))).expand(n_t, cap, *trailing)
            state[touched] = torch.gather(both, 1, pick)

    def pull(self, groups: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Remove and return the items of ``groups`` (to re-offer them under new groups).

        Returns:
            ``(group [c], key [c], fields name -> [c, *trailing])`` of the non-empty slots.
        """
        keys = self.key[groups]  # [g, cap]
        full = torch.isfinite(keys)
        out_group = groups[:, None].expand_as(keys)[full]
        out = {name: state[groups][full] for name, state in self.fields.items()}
        self.key[groups] = float("inf")
        for name, state in self.fields.items():
            state[groups] = self._fill[name]
        return out_group, keys[full], out

    def filled(self) -> tuple[Tensor, Tensor]:
        """``(group [c], slot [c])`` of every non-empty slot, in (group, slot) order."""
        g, s = torch.isfinite(self.key).nonzero(as_tuple=True)
        return g, s
