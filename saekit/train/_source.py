"""Where training activations come from: a tensor, an iterable of batches, or a cache.

:func:`as_batches` turns any of them into fixed-size global batches ``[batch, d_in]``,
starting at a given batch index, so that a resumed run reads exactly the batches an
uninterrupted run would have read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from saekit.errors import SaekitError


@runtime_checkable
class ActivationSource(Protocol):
    """Anything that serves shuffled batches by index, like :class:`saekit.ActivationCache`.

    ``iter_batches(batch_size, shuffle=True, seed=s, start=i)`` must yield the same
    batches for the same arguments, beginning with batch ``i`` of that order.
    """

    @property
    def d_in(self) -> int: ...

    @property
    def n_tokens(self) -> int: ...

    def iter_batches(
        self, batch_size: int, *, shuffle: bool = True, seed: int = 0, start: int = 0
    ) -> Iterator[Tensor]: ...


Source = Tensor | ActivationSource | Iterable[Tensor]


def source_d_in(source: Source, first: Tensor) -> int:
    """The activation width, from the source or its first batch."""
    if isinstance(source, ActivationSource):
        return int(source.d_in)
    return int(first.shape[-1])


def source_len(source: Source) -> int | None:
    """How many vectors one pass holds, when known."""
    if isinstance(source, Tensor):
        return int(source.shape[0])
    if isinstance(source, ActivationSource):
        return int(source.n_tokens)
    return None


def as_batches(source: Source, batch_size: int, *, seed: int, start: int = 0) -> Iterator[Tensor]:
    """Global batches ``[batch_size, d_in]`` from batch index ``start`` on.

    A tensor or a cache is read in epochs (a fresh shuffle each, seeded by ``seed``
    and the epoch), without end; a plain iterable is re-batched to ``batch_size``,
    its first ``start`` batches skipped, and ends when it does (it must yield the
    same vectors in the same order each time it is iterated, for resume).

    Example:
        >>> import torch
        >>> b = next(as_batches(torch.randn(10, 4), 3, seed=0))
        >>> tuple(b.shape)
        (3, 4)
    """
    if isinstance(source, Tensor):
        return _tensor_batches(source, batch_size, seed, start)
    if isinstance(source, ActivationSource):
        return _cache_batches(source, batch_size, seed, start)
    if isinstance(source, (str, bytes, os.PathLike)):
        raise SaekitError(
            f"Cannot train on the path {source!r} itself; open the activation cache first: "
            "train_saes(saekit.ActivationCache(path), ...)."
        )
    if isinstance(source, Iterable):
        return _iterable_batches(source, batch_size, start)
    raise SaekitError(
        f"Cannot train on an object of type {type(source).__name__}. Pass a tensor [n, d_in], an iterable "
        "of tensors [batch, d_in], or an object with iter_batches(...) such as "
        "saekit.ActivationCache."
    )


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def _tensor_batches(acts: Tensor, batch_size: int, seed: int, start: int) -> Iterator[Tensor]:
    if acts.ndim != 2:
        raise SaekitError(
            f"Training activations must be a 2-D tensor [n, d_in], got shape "
            f"{tuple(acts.shape)}. Flatten batch and position first: acts.reshape(-1, d_in)."
        )
    per_epoch = acts.shape[0] // batch_size
    if per_epoch == 0:
        raise SaekitError(
            f"{acts.shape[0]} activation vectors is less than one batch of {batch_size}. "
            "Lower TrainConfig.batch_size or provide more activations."
        )
    epoch, index = divmod(start, per_epoch)
    while True:
        gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
        perm = torch.randperm(acts.shape[0], generator=gen).to(acts.device)
        for i in range(index, per_epoch):
            yield acts[perm[i * batch_size : (i + 1) * batch_size]]
        epoch, index = epoch + 1, 0


def _cache_batches(cache: ActivationSource, batch_size: int, seed: int, start: int) -> Iterator[Tensor]:
    per_epoch = int(cache.n_tokens) // batch_size
    if per_epoch == 0:
        raise SaekitError(
            f"The activation cache holds {cache.n_tokens} vectors, less than one batch of "
            f"{batch_size}. Lower TrainConfig.batch_size or cache more tokens."
        )
    epoch, index = divmod(start, per_epoch)
    while True:
        batches = cache.iter_batches(batch_size, shuffle=True, seed=_epoch_seed(seed, epoch), start=index)
        for served, batch in enumerate(batches, start=index):
            if served >= per_epoch or batch.shape[0] != batch_size:
                break  # a short last batch: start the next epoch instead
            yield batch
        epoch, index = epoch + 1, 0


def _iterable_batches(chunks: Iterable[Tensor], batch_size: int, start: int) -> Iterator[Tensor]:
    to_skip = start * batch_size  # vectors
    buffer: list[Tensor] = []
    held = 0
    for chunk in chunks:
        if not isinstance(chunk, Tensor):
            raise SaekitError(
                f"The activation iterable yielded a {type(chunk).__name__}; it must yield "
                "tensors [batch, d_in]."
            )
        chunk = chunk.reshape(-1, chunk.shape[-1])
        if to_skip:
            dropped = min(to_skip, chunk.shape[0])
            chunk, to_skip = chunk[dropped:], to_skip - dropped
        buffer.append(chunk)
        held += chunk.shape[0]
        while held >= batch_size:
            flat = torch.cat(buffer) if len(buffer) > 1 else buffer[0]
            yield flat[:batch_size]
            buffer, held = [flat[batch_size:]], held - batch_size
