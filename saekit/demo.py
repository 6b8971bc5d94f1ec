"""The main job: train a family of SAEs on the default model, evaluate, explore, export.

    python -m saekit.demo [--quick] [--out out]

Steps (each cached, so a second run takes seconds): cache activations of the
default model at a middle layer over the offline corpus; train 3 TopK dictionaries
of increasing size from that one pass; evaluate them on held-out text; compute
feature statistics; write the evaluation table, paper figures and an offline HTML
explorer into ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

import saekit
from saekit import _storage, plots
from saekit._demo_outputs import write_explorer
from saekit.sae import load_sae, save_sae
from saekit.train import TrainConfig, train_saes
from saekit.train._checkpoint import drop_broken

log = logging.getLogger("saekit")

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from saekit.figures import Width


@dataclass(frozen=True)
class Settings:
    """What the demo does; ``--quick`` shrinks it to run in about 3 minutes."""

    layer: int = 15
    sizes: tuple[int, ...] = (1152, 2304, 4608)
    k: int = 32
    train_texts: int = 2400  # 271,760 tokens at max_length 128
    eval_texts: int = 48
    stats_texts: int = 256
    max_length: int = 128
    batch_size: int = 1024  # small batches + a high lr: the demo's budget is ~600 steps
    lr: float = 3e-3
    epochs: int = 2

    @staticmethod
    def quick() -> Settings:
        return Settings(sizes=(576, 1152, 2304), train_texts=320, eval_texts=12, stats_texts=48, epochs=2,
                        batch_size=512)

    @property
    def site(self) -> str:
        return f"resid_post.{self.layer}"

    def key(self) -> str:
        sizes = "-".join(map(str, self.sizes))
        run = f"n{self.train_texts}-e{self.epochs}-b{self.batch_size}-lr{self.lr:g}"
        return f"v4-L{self.layer}-k{self.k}-{run}-{sizes}"


def _log(msg: str) -> None:
    print(f"[saekit demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _split(s: Settings) -> tuple[list[str], list[str]]:
    texts = saekit.default_corpus()
    held_out = texts[: s.eval_texts]
    train = texts[1000 : 1000 + s.train_texts]  # disjoint from the held-out texts
    return train, held_out


def train_family(model: saekit.Model, s: Settings | None = None) -> list[saekit.SAE]:
    """The demo's family of TopK SAEs: loaded from the cache, or trained once and cached.

    The notebooks call this with ``Settings.quick()`` so they share one training run.

    Example:
        >>> saes = train_family(saekit.load_model(), Settings.quick())
    """
    s = s or Settings()
    train, _ = _split(s)
    work = saekit.cache_dir() / "demo"
    folder = _work(s)
    names = [f"topk-{n}" for n in s.sizes]
    if all((folder / n / "cfg.json").exists() for n in names):
        try:
            saes = [_named(load_sae(folder / n), n) for n in names]
            _storage.verify_file(folder / "history.csv")
            _log(f"reusing trained SAEs from {folder}")
            return saes
        except saekit.FormatError as err:  # a broken entry: train again (resuming), with a note
            log.warning("saekit: trained SAEs in %s are broken (%s); recomputing them.", folder,
                        _storage.one_line(err))
    drop_broken(folder / "checkpoints")
    cache = saekit.cache_activations(model, train, s.site, work / "acts" / f"v4-{s.site}-n{s.train_texts}",
                                     max_length=s.max_length, batch_size=16)
    _log(f"{cache!r}")
    cfgs = [saekit.SAEConfig(d_in=cache.d_in, d_sae=n, k=s.k, site=s.site, model_name=model.name,
                             name=f"topk-{n}") for n in s.sizes]
    cfg = TrainConfig(batch_size=s.batch_size, lr=s.lr, total_tokens=cache.n_tokens * s.epochs, k=s.k,
                      warmup_steps=20, log_every=5, checkpoint_every=50)
    result = train_saes(cache, cfgs, cfg, checkpoint_dir=folder / "checkpoints", resume=True)
    _log(f"trained {len(result.saes)} SAEs in {result.seconds:.0f} s ({result.tokens} vectors)")
    for name, sae in zip(names, result.saes):
        save_sae(sae, folder / name)
    _storage.write_checked(folder / "history.csv", lambda p: result.history.to_csv(p, index=False))
    return list(result.saes)


def _named(sae: saekit.SAE, name: str) -> saekit.SAE:
    """An SAE cached before ``SAEConfig.name`` existed gets its folder's name."""
    if not sae.cfg.name:
        sae.cfg = sae.cfg.replace(name=name)
    return sae


def run(s: Settings, out: Path) -> pd.DataFrame:
    """Run the whole job; returns the evaluation table."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    _log("loading the default model (SmolLM2-135M-Instruct, offline)")
    model = saekit.load_model()
    _log(f"{model!r}")
    _, held_out = _split(s)
    saes = train_family(model, s)
    named = saekit.name_saes(saes)
    table = _evaluate(model, saes, held_out, s, out)
    stats = _stats(model, named, s)
    _figures(named, table, s, out / "figures")
    _log("writing the offline explorer")
    index = write_explorer(out / "explorer", model, named, stats, held_out)
    for name, sae in named.items():
        save_sae(sae, out / "saes" / name)
    _storage.write_json(out / "settings.json", asdict(s))
    _log(f"done in {time.perf_counter() - t0:.0f} s; explorer: {index.resolve()}")
    return table


def _work(s: Settings) -> Path:
    return saekit.cache_dir() / "demo" / "saes" / s.key()


def _evaluate(model: saekit.Model, saes: list[saekit.SAE], held_out: list[str], s: Settings,
              out: Path) -> pd.DataFrame:
    def compute(entry: Path) -> None:
        table = saekit.evaluate(model, saes, held_out, max_length=s.max_length)
        density = table.attrs["density"]
        _storage.write_folder(entry, {"evaluation.csv": _csv(table), "density.csv": _csv(density)})

    def load(entry: Path) -> pd.DataFrame:
        _storage.verify(entry)
        table = pd.read_csv(entry / "evaluation.csv")
        table.attrs["density"] = pd.read_csv(entry / "density.csv")
        _log(f"using the evaluation in {entry}")
        return table

    entry = _work(s) / f"evaluation-{s.eval_texts}"
    table = _storage.load_or_rebuild(entry, load, compute, "the cached evaluation")
    _storage.atomic_write(out / "evaluation.csv", _csv(table))
    _storage.atomic_write(out / "feature_density.csv", _csv(table.attrs["density"]))
    return table


def _csv(frame: pd.DataFrame) -> Callable[[Path], None]:
    return lambda p: frame.to_csv(p, index=False)


def _stats(model: saekit.Model, saes: dict[str, saekit.SAE], s: Settings) -> saekit.FeatureStats:
    def compute(folder: Path) -> None:
        texts = saekit.default_corpus()[200 : 200 + s.stats_texts]
        saekit.feature_stats(model, saes, texts, max_length=s.max_length).save(folder)

    def load(folder: Path) -> saekit.FeatureStats:
        stats = saekit.FeatureStats.load(folder)
        _log(f"using the feature statistics in {folder}")
        return stats

    folder = _work(s) / f"stats-{s.stats_texts}"
    return _storage.load_or_rebuild(folder, load, compute, "the cached feature statistics")


def _figures(saes: dict[str, saekit.SAE], table: pd.DataFrame, s: Settings, folder: Path) -> None:
    from saekit import figures
    from saekit.analysis.geometry import max_cosine_to_smallest

    folder.mkdir(parents=True, exist_ok=True)
    history = pd.read_csv(_work(s) / "history.csv")
    figs: dict[str, tuple[go.Figure, Width]] = {
        "training_curves": (plots.training_curves(history), "double"),
        "feature_density": (plots.density_histogram(table.attrs["density"]), "single"),
        "evaluation_vs_size": (plots.evaluation_vs_size(table), "single"),
        "max_cosine_vs_smallest": (plots.max_cosine_histograms(max_cosine_to_smallest(saes)), "single"),
    }
    _log(f"exporting {len(figs)} figures (PDF, SVG, PNG) to {folder}")
    with figures.batch():
        for name, (fig, width) in figs.items():
            for ext in ("pdf", "svg", "png"):
                figures.export(fig, folder / f"{name}.{ext}", width=width)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small settings (about 3 minutes)")
    p.add_argument("--out", default="out", help="output folder")
    a = p.parse_args(argv)
    s = Settings.quick() if a.quick else Settings()
    table = run(s, Path(a.out))
    cols = ["sae", "d_sae", "l0", "explained_variance", "loss_clean", "loss_spliced", "loss_zero",
            "loss_recovered", "loss_recovered_mean", "kl", "dead_frac", "n_tokens"]
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(table[cols].to_string(index=False))
    print(f"\nWrote {Path(a.out).resolve()}. Open the notebooks with `make lab`.")


if __name__ == "__main__":
    main()
