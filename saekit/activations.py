"""Activations at sites, in memory or cached on disk.

:class:`Activations` holds the vectors of many tokens with their token ids and
document/position indices. :class:`ActivationCache` is a folder of safetensors
shards written by :func:`cache_activations`, atomically and resumably, so SAE
training and analysis reuse one pass over a corpus.

Example:
    >>> cache = saekit.cache_activations(model, texts, "resid_post.15", "acts/")
    >>> for batch in cache.iter_batches(4096):   # [4096, d_in], shuffled
    ...     ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from saekit.errors import SaekitError


@dataclass(frozen=True)
class Activations:
    """Per-token activations.

    Attributes:
        acts: site -> ``[n_tokens, d]`` float tensor.
        token_ids: ``[n_tokens]`` token id of each row.
        doc: ``[n_tokens]`` index of the text each token came from.
        pos: ``[n_tokens]`` position of the token within its text.
    """

    acts: dict[str, Tensor]
    token_ids: Tensor
    doc: Tensor
    pos: Tensor

    def __getitem__(self, site: str) -> Tensor:
        try:
            return self.acts[site]
        except KeyError:
            raise SaekitError(
                f"No activations for site {site!r}; this object holds {list(self.acts)}."
            ) from None

    def __len__(self) -> int:
        return int(self.token_ids.shape[0])

    @property
    def sites(self) -> list[str]:
        return list(self.acts)

    def tokens(self) -> pd.DataFrame:
        """One row per token: ``doc``, ``pos``, ``token_id``."""
        return pd.DataFrame(
            {"doc": self.doc.numpy(), "pos": self.pos.numpy(), "token_id": self.token_ids.numpy()}
        )

    @staticmethod
    def concat(parts: Sequence[Activations]) -> Activations:
        """Join batches (as yielded by ``Model.iter_activations``) into one object."""
        if not parts:
            raise SaekitError("No activations to join: the input produced no tokens.")
        return Activations(
            acts={s: torch.cat([p.acts[s] for p in parts]) for s in parts[0].acts},
            token_ids=torch.cat([p.token_ids for p in parts]),
            doc=torch.cat([p.doc for p in parts]),
            pos=torch.cat([p.pos for p in parts]),
        )

    def __repr__(self) -> str:
        shapes = ", ".join(f"{s}: {tuple(a.shape)}" for s, a in self.acts.items())
        n_docs = int(self.doc.unique().numel()) if len(self) else 0
        return f"Activations({len(self)} tokens from {n_docs} texts; {shapes})"
