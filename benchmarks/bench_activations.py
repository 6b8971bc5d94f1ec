"""Activation throughput on the default model at a middle layer, three ways, one run.

1. saekit: ``model.iter_activations`` (nnsight trace, early stop after the site).
2. plain HF forward hook that raises to stop after the layer (the best hand-written path).
3. plain HF full forward with the same hook (no early stop).

Prints tokens/s for each and the ratios. Goals: saekit within 5% of (2); (2)/(3) ~2x.
Exits 1 when saekit misses its goal (time ratio saekit / (2) above 1.05) or reads other
activations than the HF hook; (2)/(3) is HF's own speed-up, printed for reference.

    python benchmarks/bench_activations.py [--tokens 16384] [--layer 15] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import saekit

GOAL = 1.05  # saekit's time / the early-stopping HF hook's time, at most
TOLERANCE = 1e-4  # max |saekit - HF hook| of the activations read


class _Stop(Exception):
    pass


def _max_difference(model: saekit.Model, batch, site: str, layer: int) -> float:  # type: ignore[no-untyped-def]
    """Largest difference between saekit's activations and the HF hook's on one batch."""
    module = model.hf.get_submodule(model.structure.layer_path(layer))
    seen = []

    def hook(mod, args, out):  # type: ignore[no-untyped-def]
        seen.append(out[0] if isinstance(out, tuple) else out)

    h = module.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            model.hf(batch.input_ids.to(model.device), attention_mask=batch.attention_mask.to(model.device))
    finally:
        h.remove()
    keep = batch.attention_mask.bool().to(model.device)
    ours = model.run(batch.input_ids, batch.attention_mask, read=[site], logits=False).acts[site]
    return float((ours[keep].float() - seen[0][keep].float()).abs().max())


def _hf_hook(model: saekit.Model, batches, layer: int, stop: bool) -> float:  # type: ignore[no-untyped-def]
    module = model.hf.get_submodule(model.structure.layer_path(layer))
    out = []

    def hook(mod, args, output):  # type: ignore[no-untyped-def]
        out.append(output[0] if isinstance(output, tuple) else output)
        if stop:
            raise _Stop

    h = module.register_forward_hook(hook)
    t = time.perf_counter()
    try:
        with torch.inference_mode():
            for b in batches:
                try:
                    model.hf(b.input_ids.to(model.device), attention_mask=b.attention_mask.to(model.device))
                except _Stop:
                    pass
                keep = b.attention_mask.bool().to(model.device)
                out[-1][keep].float().cpu()
    finally:
        h.remove()
    _sync(model)
    return time.perf_counter() - t


def _saekit(model: saekit.Model, batches, site: str) -> float:  # type: ignore[no-untyped-def]
    """The same batches through saekit's traced read (what iter_activations runs per batch)."""
    t = time.perf_counter()
    for b in batches:
        x = model.run(b.input_ids, b.attention_mask, read=[site], logits=False).acts[site]
        x[b.attention_mask.bool().to(model.device)].float().cpu()
    _sync(model)
    return time.perf_counter() - t


def _saekit_texts(model: saekit.Model, texts, site: str, bs: int, max_len: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """End to end from texts: tokenising, chunking, dropping specials included."""
    t = time.perf_counter()
    n = sum(len(a) for a in model.iter_activations(texts, [site], batch_size=bs, max_length=max_len,
                                                    progress=False))
    _sync(model)
    return time.perf_counter() - t, n


def _sync(model: saekit.Model) -> None:
    if model.device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--layer", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model = saekit.load_model(device=a.device)
    # texts long enough to fill max_length rows: no padding, same tokens for every method
    texts = [t for t in saekit.default_corpus() if len(model.to_tokens(t)) >= a.max_length]
    texts = texts[: a.tokens // a.max_length]
    batches = list(model.batches(texts, batch_size=a.batch_size, max_length=a.max_length))
    batches = [b for b in batches if b.input_ids.shape[1] == a.max_length]
    n_tok = sum(int(b.attention_mask.sum()) for b in batches)
    if not n_tok:
        sys.exit(f"FAIL: no text of the corpus fills a row of {a.max_length} tokens; lower --max-length.")
    site = f"resid_post.{a.layer}"
    runs: dict[str, list[float]] = {"saekit (early stop)": [], "HF hook (early stop)": [],
                                    "HF hook (full forward)": []}
    _saekit(model, batches[:1], site)  # warm-up
    for _ in range(a.repeats):  # interleaved, so drift on a shared machine hits all alike
        runs["saekit (early stop)"].append(_saekit(model, batches, site))
        runs["HF hook (early stop)"].append(_hf_hook(model, batches, a.layer, stop=True))
        runs["HF hook (full forward)"].append(_hf_hook(model, batches, a.layer, stop=False))
    best = {k: min(v) for k, v in runs.items()}
    print(f"{model!r}; {n_tok} tokens at {site}, batch {a.batch_size} x {a.max_length}, best of {a.repeats}")
    for k, v in best.items():
        print(f"  {k:<24} {n_tok / v:9.0f} tok/s")
    t_texts, n_texts = _saekit_texts(model, texts, site, a.batch_size, a.max_length)
    print(f"  {'saekit from texts':<24} {n_texts / t_texts:9.0f} tok/s  (tokenising + chunking included)")
    s, h, f = best.values()
    print(f"saekit / HF-hook time ratio: {s / h:.3f}  (goal <= {GOAL})")
    print(f"early-stop speed-up (full / early, HF): {f / h:.2f}x;  saekit vs full forward: {f / s:.2f}x")
    diff = _max_difference(model, batches[0], site, a.layer)
    print(f"max |saekit - HF hook| activation: {diff:.2e}  (at most {TOLERANCE})")
    failures = [f"saekit / HF-hook time ratio {s / h:.3f} > {GOAL}"] if s / h > GOAL else []
    if not n_texts:
        failures.append("saekit read no tokens from the texts")
    if not diff <= TOLERANCE:  # also catches NaN
        failures.append(f"saekit's activations differ from the HF hook's by {diff:.2e}")
    print("FAIL: " + "; ".join(failures) if failures else "goal met")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
