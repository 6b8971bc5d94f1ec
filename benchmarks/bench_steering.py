"""A steering slider move vs plain generation on the default model, same run.

A slider move regenerates 32 tokens with one feature clamped (SAE spliced with its
error term at every step). Goal: within 1.2x of plain greedy generation of the same
32 tokens. Also prints the raw-HF-hook path for reference. Exits 1 when the goal is
missed or when saekit's steered text differs from the raw HF hook's (same edit, greedy).

    python benchmarks/bench_steering.py [--tokens 32] [--repeats 3] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import saekit
from saekit.sae import TopKSAE, init_weights
from saekit.splice import sae_edit

GOAL = 1.2  # steered generation / plain generation (time), at most


def _time(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--d-sae", type=int, default=4608)
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    model = saekit.load_model(device=a.device)
    site = "resid_post.15"
    sae = init_weights(TopKSAE(saekit.SAEConfig(d_in=576, d_sae=a.d_sae, k=32, site=site)), seed=0)
    sae = sae.to(model.device)
    prompt = "The history of the city begins"
    edit = sae_edit(sae, clamp={7: 20.0})
    plain = lambda: model.generate(prompt, max_new_tokens=a.tokens)  # noqa: E731
    steered = lambda: model.generate(prompt, max_new_tokens=a.tokens, edits={site: edit})  # noqa: E731
    layer = model.hf.get_submodule(model.structure.layer_path(15))
    enc = model._left_padded([prompt])

    def hf_hook() -> str:
        h = layer.register_forward_hook(lambda m, args, out: edit(out))
        try:
            with torch.inference_mode():
                ids = model.hf.generate(enc["input_ids"], attention_mask=enc["attention_mask"],
                                        max_new_tokens=a.tokens, min_new_tokens=a.tokens, do_sample=False,
                                        pad_token_id=enc["pad"])
        finally:
            h.remove()
        return model._decode_until_eos(ids[0, enc["input_ids"].shape[1] :].cpu())

    plain(), steered(), hf_hook()  # warm-up
    runs: dict[str, list[float]] = {"plain generate": [], "steered (saekit)": [], "steered (raw HF hook)": []}
    for _ in range(a.repeats):
        runs["plain generate"].append(_time(plain))
        runs["steered (saekit)"].append(_time(steered))
        runs["steered (raw HF hook)"].append(_time(hf_hook))
    best = {k: min(v) for k, v in runs.items()}
    print(f"{model!r}; {a.tokens} new tokens, SAE d_sae={a.d_sae} at {site}, best of {a.repeats}")
    for k, v in best.items():
        print(f"  {k:<24} {v:7.3f} s  ({a.tokens / v:6.1f} tok/s)")
    ratio = best["steered (saekit)"] / best["plain generate"]
    print(f"slider move / plain generation: {ratio:.3f}  (goal <= {GOAL})")
    hook_ratio = best["steered (saekit)"] / best["steered (raw HF hook)"]
    print(f"saekit steered / raw HF hook steered: {hook_ratio:.3f}")
    ours, reference = steered()[0], hf_hook()
    failures = [f"slider move {ratio:.3f}x plain generation, goal {GOAL}x"] if not ratio <= GOAL else []
    if ours != reference:
        failures.append(f"saekit's steered text {ours!r} differs from the raw HF hook's {reference!r}")
    print("FAIL: " + "; ".join(failures) if failures else "goal met")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
