"""Data-parallel SAE training over ``torch.distributed`` (launch with ``torchrun``).

Every rank reads the same global batches and trains on its own slice of each
(``batch_size / world_size`` rows); gradients are averaged with one ``all_reduce`` per
step, so every rank takes the same optimizer step and the weights stay identical
(equal, to float rounding, to single-process training on the same data). Rank 0
writes checkpoints.

Example: ``train.py``, run with ``torchrun --nproc-per-node 2 train.py``::

    import saekit
    from saekit.train import TrainConfig, train_saes
    from saekit.train.distributed import init_from_env

    init_from_env()  # nccl on GPUs, gloo on CPU
    result = train_saes(saekit.ActivationCache("acts/"), [4608], TrainConfig())
    # every rank returns the same SAEs; rank 0 wrote the checkpoints
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from saekit.errors import SaekitError


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the data-parallel group (world 1: no communication).

    Attributes:
        rank: this process's index.
        world_size: number of processes.
    """

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> DataParallel:
        """The initialised default process group, or a single process."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: Tensor) -> Tensor:
        """This rank's rows of a global batch ``[batch, d] -> [batch / world, d]``."""
        if self.world_size == 1:
            return batch
        n = batch.shape[0]
        if n % self.world_size:
            raise SaekitError(
                f"Batch size {n} is not divisible by the {self.world_size} ranks; "
                "choose TrainConfig.batch_size as a multiple of the world size."
            )
        per = n // self.world_size
        return batch[self.rank * per : (self.rank + 1) * per]

    def sum(self, t: Tensor) -> Tensor:
        """Element-wise sum of ``t`` over ranks (a new tensor)."""
        if self.world_size == 1:
            return t
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def any(self, mask: Tensor) -> Tensor:
        """Element-wise OR of a bool tensor over ranks."""
        if self.world_size == 1:
            return mask
        return self.sum(mask.to(torch.int32)) > 0

    def average_grads(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Average ``.grad`` of ``params`` over ranks with one flattened ``all_reduce``."""
        if self.world_size == 1:
            return
        by_dtype: dict[torch.dtype, list[Tensor]] = {}
        for p in params:
            if p.grad is not None:
                by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
        for grads in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat.div_(self.world_size)
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def init_from_env(backend: str | None = None) -> DataParallel:
    """Initialise the default process group from ``torchrun``'s environment variables.

    Args:
        backend: ``None`` picks ``"nccl"`` when CUDA is available, else ``"gloo"``.

    Returns:
        This process's :class:`DataParallel` (also when already initialised).
    """
    if not dist.is_available():
        raise SaekitError("torch.distributed is not available in this PyTorch build.")
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise SaekitError(
            "RANK / WORLD_SIZE are not set: start the script with torchrun, e.g. "
            "`torchrun --nproc-per-node 2 train.py`."
        )
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return DataParallel.current()


def device_for(requested: str, dp: DataParallel) -> torch.device:
    """Resolve ``"auto"`` to this rank's GPU when there is one, else the CPU."""
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0")) if dp.world_size > 1 else 0
        return torch.device("cuda", local % torch.cuda.device_count())
    return torch.device("cpu")
