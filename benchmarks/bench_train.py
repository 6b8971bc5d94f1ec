"""Training throughput: saekit's TopK trainer against SAELens's, and a family vs separate runs.

Both trainers see the same activations (synthetic, d_in 576 like SmolLM2's residual
stream) and the same hyper-parameters: TopK, k=32, batch 4096, Adam (lr 3e-4, betas
0.9/0.999), AuxK 1/32, unit-norm decoder rows, no dead latents during the timed steps.
Runs are interleaved round by round so a busy machine slows both alike; each figure is
the best round.

1. saekit vs SAELens 6.x (``SAETrainer`` + ``TopKTrainingSAE``; its dense path, and its
   ``use_sparse_activations`` option when that runs), one dictionary of ``--d-sae``
   latents: the per-step cost, time(1 + N steps) - time(1 step), as vectors/s.
2. A family of 3 sizes trained from one pass against the 3 sizes trained one after
   another (both saekit, end to end, set-up included), from the in-memory tensor and
   from an on-disk ``saekit.ActivationCache`` written by ``cache_activations``.

Goals (exit 1 when one is missed, or when a saekit run fails; only SAELens's own runs
may fail, reported and skipped):

- saekit's TopK step at least as fast as the fastest SAELens path (wall clock; not
  checked with ``--skip-saelens``; a failure when no SAELens path ran at all);
- a family from one pass no slower than its sizes trained separately, from every source.

Usage:
    python benchmarks/bench_train.py            # ~3 min on 2 CPU cores
    python benchmarks/bench_train.py --quick    # < 1 min
    python benchmarks/bench_train.py --device cuda --steps 50
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

import saekit
from saekit.activations import Activations
from saekit.train import TrainConfig, train_saes

Run = Callable[[int], "Seconds"]  # steps -> seconds
GOAL_SAELENS = 1.0  # fastest SAELens step time / saekit step time (wall), at least
GOAL_FAMILY = 1.0  # family time / separate runs' time (wall), at most


def synthetic_acts(n: int, d_in: int, seed: int = 0) -> torch.Tensor:
    """Correlated, anisotropic, offset vectors: a rough stand-in for a residual stream."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(d_in, d_in, generator=g) / d_in**0.5
    scales = torch.logspace(0, -1.5, d_in)
    z = torch.randn(n, d_in, generator=g) * scales
    return z @ basis * 10 + torch.randn(d_in, generator=g)


class _TensorModel:
    """Just enough of :class:`saekit.Model` for ``cache_activations``: serves rows of a
    tensor, 512 "tokens" per text, so the benchmark writes a real on-disk cache."""

    name = "synthetic"
    per_text = 512
    prepend_bos = False
    bos_id = None

    def __init__(self, acts: torch.Tensor) -> None:
        self.acts = acts

    def site(self, site: str) -> str:
        return site

    def site_width(self, site: str) -> int:
        return int(self.acts.shape[1])

    def activations(self, texts: Sequence[str], sites: Sequence[str], **_: object) -> Activations:
        rows = [int(t) for t in texts]
        n = self.per_text
        acts = torch.cat([self.acts[r * n : (r + 1) * n] for r in rows])
        doc = torch.arange(len(rows)).repeat_interleave(n)
        pos = torch.arange(n).repeat(len(rows))
        return Activations({sites[0]: acts}, torch.zeros(len(acts), dtype=torch.long), doc, pos)


def write_cache(acts: torch.Tensor, folder: Path) -> saekit.ActivationCache:
    model = _TensorModel(acts)
    texts = [str(i) for i in range(len(acts) // model.per_text)]
    return saekit.cache_activations(model, texts, "resid_post.15", folder, progress=False)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Seconds:
    """Wall-clock and CPU (process, all threads) seconds of one run."""

    wall: float
    cpu: float

    def __sub__(self, other: Seconds) -> Seconds:
        return Seconds(max(self.wall - other.wall, 1e-9), max(self.cpu - other.cpu, 1e-9))


@contextlib.contextmanager
def timed(out: list[Seconds], device: str) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    out.append(Seconds(time.perf_counter() - wall, time.process_time() - cpu))


class ModelStream:
    """Activations computed by the model on the fly; each iteration runs it again.

    This is training without a cache: every pass over the data costs a model forward,
    which is what training a family from one pass saves.
    """

    def __init__(self, model: object, texts: list[str], site: str) -> None:
        self.model, self.texts, self.site = model, texts, site

    def __iter__(self) -> Iterator[torch.Tensor]:
        parts = self.model.iter_activations(  # type: ignore[attr-defined]
            self.texts, [self.site], batch_size=16, max_length=128, progress=False
        )
        return (a[self.site] for a in parts)


def model_stream() -> ModelStream:
    """SmolLM2-135M (offline), layer 15's residual stream, over the default corpus."""
    return ModelStream(saekit.load_model(), saekit.default_corpus(), "resid_post.15")


def saekit_run(source: object, sizes: list[int], args: argparse.Namespace) -> Run:
    def run(steps: int) -> Seconds:
        cfg = TrainConfig(
            batch_size=args.batch,
            k=args.k,
            lr=3e-4,
            steps=steps,
            warmup_steps=1,
            device=args.device,
            log_every=steps,
            dead_tokens=args.batch * 1000,
        )
        out: list[Seconds] = []
        with timed(out, args.device):
            train_saes(source, sizes, cfg, progress=False)  # type: ignore[arg-type]
        return out[0]

    return run


def saelens_run(acts: torch.Tensor, d_sae: int, args: argparse.Namespace, sparse: bool) -> Run:
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    def run(steps: int) -> Seconds:
        sae = TopKTrainingSAE(
            TopKTrainingSAEConfig(
                d_in=acts.shape[1],
                d_sae=d_sae,
                k=args.k,
                device=args.device,
                use_sparse_activations=sparse,
                aux_loss_coefficient=1 / 32,
                decoder_init_norm=1.0,
            )
        )
        cfg = SAETrainerConfig(
            total_training_samples=steps * args.batch,
            train_batch_size_samples=args.batch,
            lr=3e-4,
            lr_end=3e-4,
            lr_warm_up_steps=1,
            device=args.device,
            dead_feature_window=1000,
        )
        batches = (acts[i * args.batch : (i + 1) * args.batch] for i in range(steps))
        trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches)
        out: list[Seconds] = []
        with timed(out, args.device), contextlib.redirect_stderr(io.StringIO()):  # its tqdm
            trainer.fit()
        return out[0]

    return run


def interleaved(runs: dict[str, Run], steps: int, rounds: int, marginal: bool) -> dict[str, list[Seconds]]:
    """Each run's seconds for ``steps`` steps in every round, runs alternating.

    ``marginal``: time(1 + steps) - time(1), i.e. set-up excluded.
    """
    got: dict[str, list[Seconds]] = {name: [] for name in runs}
    for r in range(rounds):
        order = list(runs.items()) if r % 2 == 0 else list(runs.items())[::-1]
        for name, run in order:
            try:
                got[name].append(run(steps + 1) - run(1) if marginal else run(steps))
            except (NotImplementedError, RuntimeError) as e:  # SAELens's sparse mode here
                if not name.startswith("SAELens"):
                    raise  # saekit's own run failed: the benchmark fails
                print(f"  {name}: fails ({type(e).__name__}: {str(e).splitlines()[0][:80]})")
                del runs[name], got[name]
    return got


def compare_trainers(acts: torch.Tensor, args: argparse.Namespace, steps: int, rounds: int) -> list[str]:
    """Prints the table; returns the goals missed."""
    runs: dict[str, Run] = {}
    if not args.skip_saelens:
        runs["SAELens TopK (dense)"] = saelens_run(acts, args.d_sae, args, sparse=False)
        runs["SAELens TopK (use_sparse_activations)"] = saelens_run(acts, args.d_sae, args, True)
    runs["saekit TopK"] = saekit_run(acts, [args.d_sae], args)
    got = interleaved(runs, steps, rounds, marginal=True)
    vectors = steps * args.batch
    print(f"\n== one TopK SAE, d_sae {args.d_sae}: training throughput (best round) ==")
    wall = {n: min(s.wall for s in v) for n, v in got.items()}
    cpu = {n: min(s.cpu for s in v) for n, v in got.items()}
    for name in got:
        print(
            f"{name:40s} {vectors / wall[name]:10,.0f} vectors/s   {1e3 * cpu[name] / steps:8.0f} CPU-ms/step"
        )
    refs = [n for n in got if n.startswith("SAELens")]
    if not refs:
        return [] if args.skip_saelens else ["no SAELens path ran: saekit's speed goal is unmeasured"]
    ref = min(refs, key=lambda n: wall[n])
    speed_up = wall[ref] / wall["saekit TopK"]
    print(
        f"saekit / fastest SAELens: {speed_up:.2f}x wall-clock, "
        f"{cpu[ref] / cpu['saekit TopK']:.2f}x CPU time (goal >= {GOAL_SAELENS}x wall-clock)"
    )
    return [] if speed_up >= GOAL_SAELENS else [f"saekit is {speed_up:.2f}x {ref}, goal {GOAL_SAELENS}x"]


def compare_family(
    sources: dict[str, object], sizes: list[int], args: argparse.Namespace, steps: int, rounds: int
) -> list[str]:
    """Prints one line per source; returns the goals missed."""
    missed = []
    print(f"\n== family {sizes}, {steps} steps end to end: one pass vs three separate runs ==")
    for label, source in sources.items():
        runs = {"family": saekit_run(source, sizes, args)}
        runs.update({f"alone {s}": saekit_run(source, [s], args) for s in sizes})
        runs["family"](1)  # warm-up: first calls of some kernels pay one-off set-up costs
        got = interleaved(runs, steps, rounds, marginal=False)
        fam = got.pop("family")
        # Conservative: the family's best round against the sum of each size's best round.
        fam_wall, fam_cpu = min(f.wall for f in fam), min(f.cpu for f in fam)
        sep_wall = sum(min(r.wall for r in v) for v in got.values())
        sep_cpu = sum(min(r.cpu for r in v) for v in got.values())
        per_round = [f.cpu / sum(v[r].cpu for v in got.values()) for r, f in enumerate(fam)]
        print(
            f"{label:10s} family {fam_wall:7.2f} s | separate {sep_wall:7.2f} s | "
            f"family / separate: {fam_wall / sep_wall:.2f} wall-clock, {fam_cpu / sep_cpu:.2f} "
            f"CPU time (per round CPU: {', '.join(f'{x:.2f}' for x in per_round)})"
        )
        if not fam_wall / sep_wall <= GOAL_FAMILY:
            missed.append(f"family / separate from {label}: {fam_wall / sep_wall:.2f}, goal {GOAL_FAMILY}")
    return missed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and smaller dictionaries")
    p.add_argument("--steps", type=int, default=None, help="timed steps per run")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (best kept)")
    p.add_argument("--d-sae", type=int, default=None, help="default 4608 (--quick: 2304)")
    p.add_argument(
        "--family", type=int, nargs="+", default=None, help="default 1152 2304 4608 (--quick: 576 1152 2304)"
    )
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--d-in", type=int, default=576)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip-saelens", action="store_true")
    p.add_argument("--skip-family", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument(
        "--stream",
        action="store_true",
        help="also compare the family from a live model stream (SmolLM2, no cache)",
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (3 if args.quick else 8)
    rounds = args.rounds or (1 if args.quick else 2)
    args.d_sae = args.d_sae or (2304 if args.quick else 4608)
    sizes = args.family or ([576, 1152, 2304] if args.quick else [1152, 2304, 4608])
    load = "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    print(
        f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, "
        f"batch {args.batch}, k {args.k}, d_in {args.d_in}; {steps} timed steps, "
        f"{rounds} rounds; load average {load}"
    )
    acts = synthetic_acts((steps + 2) * args.batch, args.d_in)
    missed = compare_trainers(acts, args, steps, rounds)
    if not args.skip_family:
        with tempfile.TemporaryDirectory() as tmp:
            # A failure here (e.g. _TensorModel fell behind Model) fails the benchmark.
            sources: dict[str, object] = {"in memory": acts, "cache": write_cache(acts, Path(tmp) / "cache")}
            missed += compare_family(sources, sizes, args, steps, rounds)
        if args.stream:  # a model forward per batch: few steps, one round
            missed += compare_family({"stream": model_stream()}, sizes, args, 2, 1)
    print("\nFAIL: " + "; ".join(missed) if missed else "\ngoals met")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
