"""Bounded selections: in each group, keep the items with the smallest keys.

One structure serves the three kinds of examples the statistics pass keeps:

- top-k activating examples: group = feature, key = ``-activation``;
- uniformly random active examples: group = feature, key = a uniform random number
  (keeping the ``m`` smallest random keys of a stream is a uniform sample without
  replacement of size ``m``: "bottom-m" or priority sampling, a mergeable reservoir);
- quantile examples: group = ``feature * n_bins + bin``, key = a uniform random number.

State is ``[n_groups, capacity]`` per field (plus a trailing window axis for the
context windows), so memory is fixed at construction and never grows with the stream.
Empty slots hold key ``+inf``; slots are in no particular order.

Example:
    >>> import torch
    >>> kept = KeptSet(n_groups=2, capacity=2, fields={"act": ((), torch.float32, 0.0)})
    >>> key = torch.tensor([-3.0, -1.0, -2.0, -5.0])
    >>> kept.offer(torch.tensor([0, 0, 0, 1]), key, lambda i: {"act": -key[i]})
    >>> [sorted(row) for row in kept.fields["act"].tolist()]   # 0.0 = an empty slot
    [[2.0, 3.0], [0.0, 5.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

#: field name -> (trailing shape, dtype, fill value of an empty slot)
FieldSpec = tuple[tuple[int, ...], torch.dtype, float]


def orderable(key: Tensor) -> Tensor:
    """float32 ``[c]`` -> int64 ``[c]`` in ``[0, 2**32)`` with the same order."""
    bits = key.float().contiguous().view(torch.int32).long()  # sign-extended
    return torch.where(bits >= 0, bits + 2**31, 2**31 - 1 - (bits & 0x7FFFFFFF))


def smallest_per_group(group: Tensor, key: Tensor, capacity: int) -> tuple[Tensor, Tensor]:
    """Indices of the ``capacity`` smallest keys of each group, and their rank in it.

    One sort of the composite ``group * 2**32 + orderable(key)``.

    Args:
        group: ``[c]`` int64 group of each candidate (< 2**31).
        key: ``[c]`` float key of each candidate.
        capacity: how many to keep per group.

    Returns:
        ``(idx [c'], rank [c'])``: candidate indices sorted by (group, key), with
        ``rank < capacity`` their position within the group.
    """
    order = torch.argsort(group * 2**32 + orderable(key))
    g = group[order]
    _, counts = torch.unique_consecutive(g, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts  # [n_runs]
    rank = torch.arange(g.numel(), device=g.device) - starts.repeat_interleave(counts)
    keep = rank < capacity
    return order[keep], rank[keep]


@dataclass(frozen=True)
class Plan:
    """Where entering candidates go: ``key[rows, slots] = key of candidate idx``."""

    rows: Tensor  # [e] group of each entering candidate
    slots: Tensor  # [e] slot it takes (an empty one, or one it evicts)
    idx: Tensor  # [e] candidate index


class KeptSet:
    """Per group, the ``capacity`` items with the smallest keys seen so far.

    Slots are not kept in key order: an item stays in its slot until a smaller key
    evicts it, so a merge writes only the entering items (their windows are the bulk
    of the state) and never moves the others.

    Attributes:
        key: ``[n_groups, capacity]``; ``inf`` marks an empty slot.
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
        """Offer candidates; ``make_fields(idx)`` builds the payload of those that enter.

        Args:
            group: ``[c]`` int64 group of each candidate.
            key: ``[c]`` float key of each candidate (smaller is kept).
            make_fields: candidate indices ``[e]`` -> name -> ``[e, *trailing]``.
        """
        plan = self.plan(group, key)
        if plan.idx.numel():
            self.write(plan, key[plan.idx], make_fields(plan.idx))

    def plan(self, group: Tensor, key: Tensor) -> Plan:
        """Which candidates enter, and where; the state is not changed.

        Candidates that cannot enter are dropped early, so that expensive payloads
        (context windows) are built only for the items actually stored.
        """
        empty = group.new_zeros(0)
        if key.numel() == 0 or self.capacity == 0:
            return Plan(empty, empty, empty)
        worst = self.key.amax(1)  # [n_groups]
        may_enter = (key < worst[group]).nonzero().squeeze(1)  # [c1]
        if may_enter.numel() == 0:
            return Plan(empty, empty, empty)
        idx, rank = smallest_per_group(group[may_enter], key[may_enter], self.capacity)
        chosen = may_enter[idx]
        rows, slots, entering = self._placements(group[chosen], rank, key[chosen])
        return Plan(rows, slots, chosen[entering])

    def write(self, plan: Plan, key: Tensor, new: Mapping[str, Tensor]) -> None:
        """Store the entering candidates: ``key [e]`` and ``new`` name -> ``[e, *trailing]``."""
        self.key[plan.rows, plan.slots] = key
        for name, state in self.fields.items():
            state[plan.rows, plan.slots] = new[name].to(state.dtype)

    def _placements(self, group: Tensor, rank: Tensor, key: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Where entering candidates go: ``(group rows, slots, candidate indices)``.

        ``group``/``rank``/``key``: ``[c]`` sorted by group, ranks < capacity.
        """
        touched, row = torch.unique_consecutive(group, return_inverse=True)  # [g_t], [c]
        n_t, cap = touched.numel(), self.capacity
        cand_key = self.key.new_full((n_t, cap), float("inf"))
        cand_key[row, rank] = key
        cand_idx = torch.full((n_t, cap), -1, dtype=torch.long, device=key.device)
        cand_idx[row, rank] = torch.arange(key.numel(), device=key.device)
        both = torch.cat([self.key[touched], cand_key], 1)  # [g_t, 2 cap]
        order = torch.argsort(both, dim=1, stable=True)  # old slots win ties
        kept = torch.zeros_like(both, dtype=torch.bool).scatter_(1, order[:, :cap], True)
        kept_new = kept[:, cap:] & (cand_idx >= 0)  # [g_t, cap]
        evicted = ~kept[:, :cap]  # [g_t, cap]; as many per row as kept_new
        r_new, c_new = kept_new.nonzero(as_tuple=True)  # row-major: pairs up per row
        r_old, s_old = evicted.nonzero(as_tuple=True)
        return touched[r_old], s_old, cand_idx[r_new, c_new]

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
