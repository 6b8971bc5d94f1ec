"""Tokenising texts into right-padded, chunked batches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from saekit.errors import SaekitError


@dataclass(frozen=True)
class TokenBatch:
    """Right-padded token rows. Row ``r`` holds tokens ``offset[r]..`` of document ``doc[r]``.

    Attributes:
        input_ids: ``[batch, pos]`` token ids (pad id where ``attention_mask`` is 0).
        attention_mask: ``[batch, pos]`` 1 for real tokens.
        doc: ``[batch]`` index of each row's text in the input list.
        offset: ``[batch]`` position of the row's first content token in its text.
        prefix: number of leading special tokens repeated on every row (BOS).
    """

    input_ids: Tensor
    attention_mask: Tensor
    doc: Tensor
    offset: Tensor
    prefix: int

    def positions(self) -> Tensor:
        """``[batch, pos]`` position of every token within its document."""
        p = torch.arange(self.input_ids.shape[1]).expand_as(self.input_ids)
        return torch.where(p < self.prefix, p, p - self.prefix + self.offset[:, None] + self.prefix)


def check_texts(texts: str | Sequence[str]) -> list[str]:
    """Accept one text or a list; refuse empty input with a clear message."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise SaekitError("Got an empty list of texts. Pass at least one non-empty string.")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise SaekitError(
            f"Texts at indices {bad[:5]} are empty or not strings. Every text must be a "
            "non-empty string; drop empty ones first (e.g. [t for t in texts if t.strip()])."
        )
    return texts


def split_rows(ids: list[int], prefix: int, max_length: int) -> Iterator[tuple[list[int], int]]:
    """Split one tokenised text into rows of at most ``max_length`` (prefix repeated)."""
    head, body = ids[:prefix], ids[prefix:]
    step = max_length - prefix
    if step <= 0:
        raise SaekitError(f"max_length={max_length} leaves no room for content tokens.")
    for start in range(0, max(len(body), 1), step):
        yield head + body[start : start + step], start


def pad_rows(rows: list[tuple[list[int], int, int]], pad_id: int, prefix: int) -> TokenBatch:
    """Right-pad ``(ids, doc, offset)`` rows into a :class:`TokenBatch`."""
    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, _, _) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    doc = torch.tensor([r[1] for r in rows], dtype=torch.long)
    offset = torch.tensor([r[2] for r in rows], dtype=torch.long)
    return TokenBatch(ids, mask, doc, offset, prefix)
