"""Tokenising texts into right-padded, chunked batches.

Texts longer than ``max_length`` are split into rows. Every row starts with the
text's special prefix (BOS). A follow-on row also repeats the last
:data:`CHUNK_CONTEXT` tokens of the row before it as *context*: the model sees them,
but their activations were already produced by the previous row and are not emitted
again (:meth:`TokenBatch.fresh`). Without that context, the first token of a
follow-on row sits right after BOS with no history, and in SmolLM2 a newline there
becomes a second attention sink with a residual norm ~24,000 (others ~170), which
swamps SAE training and inflates explained variance.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from saekit.errors import SaekitError

CHUNK_CONTEXT = 16
"""Tokens of history repeated at the start of each follow-on row (at most half a row)."""


@dataclass(frozen=True)
class TokenBatch:
    """Right-padded token rows. Row ``r`` holds tokens ``offset[r]..`` of document ``doc[r]``.

    Attributes:
        input_ids: ``[batch, pos]`` token ids (pad id where ``attention_mask`` is 0).
        attention_mask: ``[batch, pos]`` 1 for real tokens.
        doc: ``[batch]`` index of each row's text in the input list.
        offset: ``[batch]`` position of the row's first content token in its text.
        prefix: number of leading special tokens repeated on every row (BOS).
        context: ``[batch]`` content tokens at the start of each row that only give
            context (emitted by the row before); 0 on a text's first row.
    """

    input_ids: Tensor
    attention_mask: Tensor
    doc: Tensor
    offset: Tensor
    prefix: int
    context: Tensor

    def fresh(self) -> Tensor:
        """``[batch, pos]`` mask of the tokens this row is the first to see: every real
        token except padding, the repeated context of follow-on rows and their BOS."""
        p = torch.arange(self.input_ids.shape[1])[None, :]
        first = (self.offset == 0)[:, None]
        head = (p < self.prefix) & first
        body = p >= self.prefix + self.context[:, None]
        return self.attention_mask.bool() & (head | body)

    def positions(self) -> Tensor:
        """``[batch, pos]`` position of every token within its document."""
        p = torch.arange(self.input_ids.shape[1]).expand_as(self.input_ids)
        return torch.where(p < self.prefix, p, p - self.prefix + self.offset[:, None] + self.prefix)


def check_texts(texts: str | Sequence[str]) -> list[str]:
    """Accept one text or a list (:func:`saekit._boundary.texts`); refuse blank texts too."""
    from saekit._boundary import texts as checked

    texts = checked(texts)
    bad = [i for i, t in enumerate(texts) if not t.strip()]
    if bad:
        raise SaekitError(
            f"Texts at indices {bad[:5]} are empty or not strings. Every text must be a "
            "non-empty string; drop empty ones first (e.g. [t for t in texts if t.strip()])."
        )
    return texts


def split_rows(
    ids: list[int], prefix: int, max_length: int, context: int = CHUNK_CONTEXT
) -> Iterator[tuple[list[int], int, int]]:
    """Split one tokenised text into rows of at most ``max_length`` tokens.

    Yields ``(row ids, offset of the row's first content token, context tokens)``;
    the prefix is repeated on every row and follow-on rows start with ``context``
    tokens of the row before (at most half a row), so every content token is fresh
    in exactly one row.
    """
    head, body = ids[:prefix], ids[prefix:]
    step = max_length - prefix
    if step <= 0:
        raise SaekitError(
            f"max_length={max_length} leaves no room for content tokens after the {prefix} "
            f"special prefix token(s). Pass max_length >= {prefix + 2}."
        )
    ctx = min(context, step // 2)
    yield head + body[:step], 0, 0
    end = step
    while end < len(body):
        lo = end - ctx
        yield head + body[lo : lo + step], lo, ctx
        end = lo + step


def pad_rows(rows: list[tuple[list[int], int, int, int]], pad_id: int, prefix: int) -> TokenBatch:
    """Right-pad ``(ids, doc, offset, context)`` rows into a :class:`TokenBatch`."""
    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, *_) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    doc = torch.tensor([r[1] for r in rows], dtype=torch.long)
    offset = torch.tensor([r[2] for r in rows], dtype=torch.long)
    context = torch.tensor([r[3] for r in rows], dtype=torch.long)
    return TokenBatch(ids, mask, doc, offset, prefix, context)
