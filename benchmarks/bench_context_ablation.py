"""Benchmark: context ablation in one batched pass vs a per-token loop of forward passes.

On the default model (SmolLM2-135M) with a ~64-token prompt and a random-init TopK SAE
at ``resid_post.15``: every context token is removed in turn and the feature
activations at the last position are read. Both variants read only the SAE's site and
stop the forward pass there, so the only difference is batching:

- batched: ``ablate_context(..., batch_size=None)``: all T-1 variants (plus the full
  context) as one right-padded batch, one forward pass;
- loop: ``ablate_context(..., batch_size=1)``: one forward pass per variant (what a
  per-token loop of ``model.run`` calls costs, no padding).

Both give the same numbers (checked below). Prints the median times of ``--repeats``
runs and their ratio (goal: batched at least 5x faster). Exits 1 when the goal is
missed, when the two disagree, or when saekit returns no rows.

Usage:
    python benchmarks/bench_context_ablation.py [--tokens 64] [--repeats 3] [--device auto]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

import torch

import saekit
from saekit import analysis
from saekit.sae import SAEConfig, TopKSAE, init_weights

GOAL = 5.0  # loop time / batched time, at least
TOLERANCE = 1e-3  # max |batched - loop| relative to the largest activation

TEXT = (
    "The history of the city goes back to a small fishing village on the river, where traders "
    "from the north met farmers from the valley every spring. Over the centuries the market grew "
    "into a town, the town into a city, and the old bridge became the heart of a busy port that "
    "still carries most of the region's goods to the sea."
)


def _time(fn, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=64, help="prompt length in tokens (BOS included)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--site", default="resid_post.15")
    args = ap.parse_args()

    model = saekit.load_model(device=args.device)
    ids = torch.tensor(model.to_tokens(TEXT * 4)[: args.tokens])
    sae = init_weights(TopKSAE(SAEConfig(d_in=model.d_model, d_sae=4608, k=32, site=args.site)), seed=0)
    sae = sae.to(model.device)
    feats = list(range(sae.d_sae))

    def batched():  # type: ignore[no-untyped-def]
        return analysis.ablate_context(model, sae, ids, feats, batch_size=None, progress=False)

    def loop():  # type: ignore[no-untyped-def]
        return analysis.ablate_context(model, sae, ids, feats, batch_size=1, progress=False)

    batched()  # warm-up (allocations, kernels)
    t_batch, a = _time(batched, args.repeats)
    t_loop, b = _time(loop, args.repeats)
    diff = float((a.activation_without - b.activation_without).abs().max())  # type: ignore[union-attr]
    scale = float(b.activation_without.abs().max())  # type: ignore[union-attr]
    print(f"model: {model.name} on {model.device}, torch threads {torch.get_num_threads()}")
    n_var = len(a) // len(feats)  # type: ignore[arg-type]
    print(f"prompt: {ids.numel()} tokens -> {n_var} variants (+ the full context), "
          f"site {args.site}, SAE d_sae={sae.d_sae}, all features read")
    print(f"batched (1 pass):            {t_batch:8.3f} s")
    print(f"loop ({n_var + 1} passes, batch 1):   {t_loop:8.3f} s")
    speed_up = t_loop / t_batch
    print(f"speed-up: {speed_up:.1f}x (goal >= {GOAL}x)   (max |difference| {diff:.2e}, "
          f"largest activation {scale:.2e})")
    failures = []
    if speed_up < GOAL:
        failures.append(f"batched is {speed_up:.1f}x faster than the loop, goal {GOAL}x")
    if not n_var or len(a) != len(b):  # type: ignore[arg-type]
        failures.append(f"saekit returned {len(a)} batched and {len(b)} loop rows")  # type: ignore[arg-type]
    if not diff <= TOLERANCE * max(scale, 1.0) or not math.isfinite(scale):  # NaN fails too
        failures.append(f"batched and loop differ by {diff:.2e}")
    print("FAIL: " + "; ".join(failures) if failures else "goal met")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
