"""Data-parallel training on CPU: 2 processes on the gloo backend match one process."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from saekit.train import DataParallel, TrainConfig, train_saes

CFG = TrainConfig(batch_size=256, k=4, lr=3e-3, steps=30, warmup_steps=3, log_every=5, dead_tokens=1024)
SIZES = [32, 64]


def _data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(4096, 16, generator=g) * torch.linspace(0.2, 3, 16) + 0.5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        assert DataParallel.current() == DataParallel(rank, world)
        folder = Path(out) / "ckpt"
        result = train_saes(_data(), SIZES, CFG, checkpoint_dir=folder, progress=False)
        tensors = {
            f"{n}.{k}": v
            for n, s in zip(result.names, result.saes, strict=True)
            for k, v in s.state_dict().items()
        }
        save_file(tensors, Path(out) / f"rank{rank}.safetensors")
        if rank == 0:
            result.history.to_csv(Path(out) / "history.csv", index=False)
    finally:
        dist.destroy_process_group()


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_two_gloo_ranks_match_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = train_saes(_data(), SIZES, CFG, progress=False)
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in range(2)]
    for key in ranks[0]:  # every rank holds the same weights
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    for name, sae in zip(single.names, single.saes, strict=True):
        for k, v in sae.state_dict().items():
            torch.testing.assert_close(ranks[0][f"{name}.{k}"], v, atol=1e-5, rtol=1e-5)
    # rank 0 wrote the checkpoints; metrics were reduced over both ranks
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("step-*")) == ["step-00000030"]
    import pandas as pd

    hist = pd.read_csv(tmp_path / "history.csv")
    ref = single.history
    for metric in ("mse", "l0", "explained_variance", "dead_fraction"):
        got = hist.query("metric == @metric")["value"].to_numpy()
        want = ref.query("metric == @metric")["value"].to_numpy()
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5), metric


def test_shard_needs_a_divisible_batch() -> None:
    from saekit.errors import SaekitError

    dp = DataParallel(rank=1, world_size=3)
    with pytest.raises(SaekitError, match="not divisible by the 3 ranks"):
        dp.shard(torch.zeros(10, 2))
    assert torch.equal(DataParallel(1, 2).shard(torch.arange(8)[:, None])[:, 0], torch.arange(4, 8))
