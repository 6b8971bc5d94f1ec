"""Benchmark: the statistics pass vs the bare activation pass over the same tokens.

Runs, in one process on the default model (SmolLM2-135M) and the default corpus:

1. the bare pass: ``model.iter_activations`` at ``resid_post.15`` over N tokens;
2. ``saekit.feature_stats`` with a 4608-wide TopK SAE (k=32) at the same site over the
   same texts (all features: top-k, quantile and random examples, density, histograms);
3. the statistics pass over N/4 tokens first, to show that memory does not grow with N
   (peak RSS after N/4 tokens and after N tokens; the accumulator state size).

The SAE is random-initialised (unit-norm decoder, W_enc = W_dec.T): timing does not
depend on what the features mean. Pass ``--sae PATH`` to use a trained one.
Goal: statistics pass <= 1.3x the bare pass.

Usage:
    python benchmarks/bench_stats.py [--tokens 32768] [--batch-size 16] [--device auto]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch

import saekit
from saekit.analysis._accumulate import SAEAccumulator
from saekit.analysis._stats_pass import settings_from

SITE = "resid_post.15"


def texts_for(model: saekit.Model, corpus: list[str], n_tokens: int) -> tuple[list[str], int]:
    """The shortest prefix of ``corpus`` with at least ``n_tokens`` non-special tokens."""
    chosen, total, special = [], 0, model.special_ids
    for text in corpus:
        chosen.append(text)
        total += sum(1 for i in model.to_tokens(text) if i not in special)
        if total >= n_tokens:
            break
    return chosen, total


def bare_pass(model: saekit.Model, texts: list[str], batch_size: int) -> tuple[float, int]:
    start, n = time.perf_counter(), 0
    for batch in model.iter_activations(texts, [SITE], batch_size=batch_size, progress=False):
        n += len(batch)
    return time.perf_counter() - start, n


def stats_pass(model: saekit.Model, sae: saekit.SAE, texts: list[str], batch_size: int):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    stats = saekit.feature_stats(model, sae, texts, batch_size=batch_size, progress=False)
    return time.perf_counter() - start, stats


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_sae(path: str | None, device: torch.device) -> saekit.SAE:
    if path:
        return saekit.load_sae(path, device=device)
    cfg = saekit.SAEConfig(d_in=576, d_sae=4608, k=32, site=SITE)
    return saekit.init_weights(saekit.TopKSAE(cfg), seed=0).to(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32768, help="tokens in the timed passes")
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
    bare_pass(model, warm, args.batch_size)
    stats_pass(model, sae, warm, args.batch_size)

    t_bare, n_bare = bare_pass(model, texts, args.batch_size)
    t_small, _ = stats_pass(model, sae, small, args.batch_size)
    rss_small = peak_rss_mb()
    t_stats, stats = stats_pass(model, sae, texts, args.batch_size)
    rss_large = peak_rss_mb()
    assert stats.n_tokens == n_bare, (stats.n_tokens, n_bare)

    settings = settings_from(20, 10, 5, 10, (24, 8))
    state_mb = SAEAccumulator(sae.d_sae, settings, 0, torch.device("cpu")).nbytes() / 2**20
    ratio = t_stats / t_bare
    print(f"bare activation pass : {n_bare / t_bare:9.1f} tok/s ({t_bare:.1f} s, {n_bare} tokens)")
    print(f"statistics pass      : {n_bare / t_stats:9.1f} tok/s ({t_stats:.1f} s)")
    print(f"ratio stats / bare   : {ratio:.3f}x (goal <= 1.3x)")
    print(f"memory: accumulator state {state_mb:.1f} MB (fixed by d_sae and settings); peak RSS "
          f"{rss_small:.0f} MB after {n_small} tokens ({t_small:.1f} s), {rss_large:.0f} MB after {n_bare}")
    print(stats)
    sys.exit(0 if ratio <= 1.3 else 1)


if __name__ == "__main__":
    main()
