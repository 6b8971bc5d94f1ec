"""Benchmark: the statistics pass vs the bare activation pass over the same tokens.

Runs, in one process on the default model (SmolLM2-135M) and the default corpus:

1. the bare pass: ``model.iter_activations`` at ``resid_post.15`` over N tokens;
2. ``saekit.feature_stats`` with a 4608-wide TopK SAE (k=32) at the same site over the
   same texts (all features: top-k, quantile and random examples, density, histograms);
3. the statistics pass over N/4 tokens first, to show that memory does not grow with N
   (peak RSS above the level at the start of the pass, for N/4 and for N tokens; and
   the accumulator state size).

Bare and statistics passes alternate for ``--rounds`` rounds and the fastest of each
is compared (wall clock), with the ratio of process CPU time beside it: both are
steadier than a single wall-clock pair on a shared machine.

The SAE is random-initialised (unit-norm decoder, W_enc = W_dec.T scaled by the
inverse per-dimension std of the activations, b_dec = their mean, so that activity
spreads over the features as in a trained SAE): timing does not depend on what the
features mean. Pass ``--sae PATH`` to use a trained one.
Goal: statistics pass <= 1.3x the bare pass. Exits 1 when the goal is missed or when the
statistics pass did not count the tokens the bare pass read.

Usage:
    python benchmarks/bench_stats.py [--tokens 12288] [--rounds 3] [--batch-size 16] [--device auto]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time

import torch

import saekit
from saekit.analysis._accumulate import SAEAccumulator
from saekit.analysis._stats_pass import settings_from

SITE = "resid_post.15"
GOAL = 1.3  # statistics pass / bare pass (wall clock), at most


def texts_for(model: saekit.Model, corpus: list[str], n_tokens: int) -> tuple[list[str], int]:
    """The shortest prefix of ``corpus`` with at least ``n_tokens`` non-special tokens."""
    chosen, total, special = [], 0, model.special_ids
    for text in corpus:
        chosen.append(text)
        total += sum(1 for i in model.to_tokens(text) if i not in special)
        if total >= n_tokens:
            break
    return chosen, total


def timed(fn, *args):  # type: ignore[no-untyped-def]
    """``(wall seconds, process CPU seconds, result)``: CPU time is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def bare_pass(model: saekit.Model, texts: list[str], batch_size: int) -> int:
    n = 0
    for batch in model.iter_activations(texts, [SITE], batch_size=batch_size, progress=False):
        n += len(batch)
    return n


def stats_pass(model: saekit.Model, sae: saekit.SAE, texts: list[str], batch_size: int):  # type: ignore[no-untyped-def]
    return saekit.feature_stats(model, sae, texts, batch_size=batch_size, progress=False)


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every 20 ms by a thread."""

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def extra_mb(self) -> float:
        return self.peak - self.start


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_sae(path: str | None, device: torch.device) -> saekit.SAE:
    if path:
        return saekit.load_sae(path, device=device)
    cfg = saekit.SAEConfig(d_in=576, d_sae=4608, k=32, site=SITE)
    return saekit.init_weights(saekit.TopKSAE(cfg), seed=0).to(device)


@torch.no_grad()
def spread_features(sae: saekit.SAE, sample: torch.Tensor) -> None:
    """Centre and scale a random SAE's encoder on the data, so most features fire.

    The residual stream has a few dimensions with huge variance; without this a random
    encoder's top-k is always the same few features, unlike a trained SAE's.
    """
    sae.init_b_dec_from(sample, "mean")
    sae.W_enc.div_(sample.std(0).clamp_min(1e-6)[:, None])  # [d_in, d_sae] / [d_in, 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=12288, help="tokens in the timed passes")
    ap.add_argument("--rounds", type=int, default=3, help="alternating bare/stats rounds")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sae", default=None, help="path of a trained SAE (default: random TopK 4608)")
    args = ap.parse_args()

    model = saekit.load_model(device=args.device)
    sae = make_sae(args.sae, model.device)
    corpus = saekit.default_corpus()
    texts, n_tok = texts_for(model, corpus, args.tokens)
    small, n_small = texts_for(model, corpus, args.tokens // 4)
    print(f"{model!r}\nSAE {sae.d_sae} features (k={sae.cfg.k}) at {sae.cfg.site}; "
          f"{len(texts)} texts, {n_tok} tokens; threads={torch.get_num_threads()}")

    warm = texts[: args.batch_size]  # first-call costs out of the timings
    if not args.sae:
        spread_features(sae, model.activations(warm, [SITE], progress=False)[SITE].to(sae.device))
    bare_pass(model, warm, args.batch_size)
    stats_pass(model, sae, warm, args.batch_size)

    with PeakMemory() as mem_small:
        t_small, _, _ = timed(stats_pass, model, sae, small, args.batch_size)
    gc.collect()
    bare, stat, stats = [], [], None
    for _ in range(args.rounds):  # alternate, keep the fastest of each: load on a shared machine
        bare.append(timed(bare_pass, model, texts, args.batch_size))
        with PeakMemory() as mem:
            stat.append(timed(stats_pass, model, sae, texts, args.batch_size))
        if stats is None:
            mem_large, stats = mem, stat[0][2]
        stat[-1] = stat[-1][:2]  # drop later results: only the first is kept
        gc.collect()
    n_bare = bare[0][2]
    if stats is None or not n_bare or stats.n_tokens != n_bare:
        sys.exit(f"FAIL: the statistics pass counted {getattr(stats, 'n_tokens', None)} tokens, "
                 f"the bare pass {n_bare}")

    settings = settings_from(20, 10, 5, 10, (24, 8))
    state_mb = SAEAccumulator(sae.d_sae, settings, 0, torch.device("cpu")).nbytes() / 2**20
    t_bare, t_stats = min(b[0] for b in bare), min(s[0] for s in stat)
    ratio, cpu_ratio = t_stats / t_bare, min(s[1] for s in stat) / min(b[1] for b in bare)
    print(f"bare activation pass : {n_bare / t_bare:9.1f} tok/s ({t_bare:.1f} s, {n_bare} tokens)")
    print(f"statistics pass      : {n_bare / t_stats:9.1f} tok/s ({t_stats:.1f} s)")
    print(f"ratio stats / bare   : {ratio:.3f}x wall, {cpu_ratio:.3f}x CPU time (goal <= {GOAL}x; "
          f"best of {args.rounds} alternating rounds)")
    print(f"memory: accumulator state {state_mb:.1f} MB (fixed by d_sae and settings); peak RSS above "
          f"the start of the pass: {mem_small.extra_mb:.0f} MB over {n_small} tokens ({t_small:.1f} s), "
          f"{mem_large.extra_mb:.0f} MB over {n_bare} tokens (includes the result: "
          f"{len(stats.examples):,} examples, at most {sae.d_sae * 80:,})")
    print(stats)
    ok = ratio <= GOAL  # False for NaN too
    print("goal met" if ok else f"FAIL: statistics pass {ratio:.3f}x the bare pass, goal {GOAL}x")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
