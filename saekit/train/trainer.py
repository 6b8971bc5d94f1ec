"""Train a family of SAEs of several sizes from one pass over activations.

Each global batch is read once and fed to every SAE of the family (each with its own
Adam); under ``torchrun`` each rank trains on its slice of the batch and gradients are
averaged (:mod:`saekit.train.distributed`).

Example:
    >>> import torch
    >>> from saekit.train import TrainConfig, train_saes
    >>> acts = torch.randn(4096, 16)
    >>> result = train_saes(acts, [32, 64], TrainConfig(batch_size=256, k=4), progress=False)
    >>> [sae.d_sae for sae in result.saes], result.steps
    ([32, 64], 16)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from saekit.errors import SaekitError
from saekit.sae.base import SAE
from saekit.train._checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from saekit.train._diagnostics import quality_note
from saekit.train._members import (
    SAESpec,
    build_saes,
    finished_sae,
    initialise,
    make_member,
    member_names,
    with_provenance,
)
from saekit.train._normalize import AUTO_SHARE, Normalization, estimate
from saekit.train._objectives import StepContext, StepOutput, _global_var
from saekit.train._source import Source, as_batches, source_d_in, source_len
from saekit.train.config import TrainConfig
from saekit.train.distributed import DataParallel, device_for
from saekit.train.results import TrainResult, TrainStep, history_frame

Callback = Callable[[TrainStep], None]
# Fields that may change between a run and its resumption without changing the result.
_OPERATIONAL = {"log_every", "checkpoint_every", "keep_checkpoints", "device"}


def train_saes(
    source: Source,
    saes: Sequence[SAESpec] | SAESpec,
    cfg: TrainConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    stop_at: int | None = None,
) -> TrainResult:
    """Train one SAE per entry of ``saes`` on one pass over ``source``.

    Args:
        source: activations: a tensor ``[n, d_in]``, an iterable of tensors
            ``[batch, d_in]`` (re-batched; iterated again from the start on resume), or
            an object with ``iter_batches`` such as :class:`saekit.ActivationCache`.
        saes: sizes (``[1152, 2304, 4608]``, architecture and ``k`` from ``cfg``),
            :class:`SAEConfig` objects, or SAEs to continue from (copied).
        cfg: hyper-parameters (:class:`TrainConfig`; default settings if ``None``).
        checkpoint_dir: folder for checkpoints (every ``cfg.checkpoint_every`` steps, at
            the end, and when interrupted between steps).
        resume: continue from the newest checkpoint in ``checkpoint_dir`` (a fresh start
            when there is none). The result equals an uninterrupted run.
        callbacks: called with a :class:`TrainStep` every ``cfg.log_every`` steps.
        progress: show a tqdm progress bar with L0, explained variance and dead fraction.
        stop_at: stop after this many steps of the run (checkpointing there), e.g. to
            train in chunks; the learning-rate schedule still spans the whole run.

    Returns:
        A :class:`TrainResult` with the trained SAEs and the metric history.

    Raises:
        SaekitError: bad settings, NaN/inf in the activations (the last good
            checkpoint is left intact), or a diverging loss.
    """
    run = _Run(source, saes, cfg or TrainConfig(), checkpoint_dir, resume)
    return run.train(list(callbacks), progress, stop_at)


class _Run:
    """State of one training run; :meth:`train` drives the loop."""

    def __init__(
        self,
        source: Source,
        specs: Sequence[SAESpec] | SAESpec,
        cfg: TrainConfig,
        checkpoint_dir: str | Path | None,
        resume: bool,
    ) -> None:
        self.cfg = cfg
        self.dp = DataParallel.current()
        self.device = device_for(cfg.device, self.dp)
        self.n_steps = cfg.n_steps(source_len(source))
        self.folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if resume and self.folder is None:
            raise SaekitError("resume=True needs checkpoint_dir=... (where to resume from).")
        ckpt = latest_checkpoint(self.folder) if resume and self.folder else None
        self.step = 0
        self.records: list[dict[str, Any]] = []
        self.last_checkpoint: Path | None = ckpt
        self.saved_step = -1
        self.pending: list[Tensor] = []  # batches read for initialisation, trained on first
        self._mid_step = False
        self.var_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        if ckpt is None:
            self._start_fresh(source, specs)
        else:
            self._resume(source, specs, ckpt)
        self.window = cfg.dead_window(self.n_steps)
        dim_scale = self.norm.dim_scale
        self._metric_weight = None if dim_scale is None else dim_scale.to(self.device).pow(2)
        self._rest: Tensor | None = None  # [d_in] raw-axis weights, 0 on the massive dims
        self._last_x: Tensor | None = None
        if self.norm.dominant and self.norm.dominant_share >= AUTO_SHARE:
            d_in = self.members[0].sae.d_in
            rest = torch.ones(d_in, dtype=torch.float64, device=self.device)
            rest[list(self.norm.dominant)] = 0.0
            self._rest = rest if self._metric_weight is None else rest * self._metric_weight.double()

    # -- setup -------------------------------------------------------------------------

    def _start_fresh(self, source: Source, specs: Sequence[SAESpec] | SAESpec) -> None:
        self.batches = as_batches(source, self.cfg.batch_size, seed=self.cfg.seed, start=0)
        sample = self._init_sample()  # [<= init_tokens, d_in], from the first batches
        d_in = source_d_in(source, sample)
        specs = _as_list(specs)
        saes = with_provenance(build_saes(specs, d_in, self.cfg), source)
        self.norm = estimate(sample, normalize=self.cfg.normalize_activations, balance=self.cfg.balance_dims)
        fresh = [not isinstance(s, torch.nn.Module) for s in specs]
        for sae, is_fresh in zip(saes, fresh, strict=True):
            initialise(sae, is_fresh, self.norm.apply(sample), self.norm, self.cfg)
        self.members = [
            make_member(n, s, self.cfg, self.device) for n, s in zip(member_names(saes), saes, strict=True)
        ]

    def _init_sample(self) -> Tensor:
        """Read the first batches (kept in ``pending`` to train on) up to ``init_tokens``."""
        want = max(1, min(self.n_steps, math.ceil(self.cfg.init_tokens / self.cfg.batch_size)))
        good = 0  # batches before the first one with NaN/inf (that one fails at its step)
        while len(self.pending) < want:
            batch = next(self.batches, None)  # [batch, d_in]
            if batch is None:
                break
            self.pending.append(batch)
            if not bool(torch.isfinite(batch).all()):
                break
            good += 1
        if not self.pending:
            raise SaekitError("The activation source yielded no complete batch.")
        if good == 0:
            self._check_batch(self.pending[0], 0)
        return torch.cat(self.pending[:good])[: self.cfg.init_tokens].float()

    def _resume(self, source: Source, specs: Sequence[SAESpec] | SAESpec, ckpt: Path) -> None:
        meta, tensors = load_checkpoint(ckpt)
        self._check_same_run(meta)
        self.step = int(meta["step"])
        dim_scale = tensors.get("run.dim_scale")
        self.norm = Normalization(float(meta["scale"]), dim_scale, tuple(meta.get("dominant", ())),
                                  float(meta.get("dominant_share", 0.0)))
        self.records = list(meta["history"])
        saes = with_provenance(build_saes(_as_list(specs), int(meta["d_in"]), self.cfg), source)
        names = member_names(saes)
        shapes = [_shape(s.cfg.to_dict()) for s in saes]
        saved = [_shape(c) for c in meta["sae_configs"]]
        if names != meta["names"] or shapes != saved:
            raise SaekitError(
                f"Checkpoint {ckpt} trained SAEs {meta['names']} "
                f"{saved}, but this call asks for {names} "
                f"{shapes}. Pass the same SAE list to resume, or use a new checkpoint_dir."
            )
        self.members = [make_member(n, s, self.cfg, self.device) for n, s in zip(names, saes, strict=True)]
        for m in self.members:
            m.load_tensors(tensors)
        self.var_sum = tensors["run.var_sum"].to(self.device)
        self.saved_step = self.step
        self.batches = as_batches(source, self.cfg.batch_size, seed=self.cfg.seed, start=self.step)

    def _check_same_run(self, meta: dict[str, Any]) -> None:
        saved = {k: v for k, v in meta["train_config"].items() if k not in _OPERATIONAL}
        now = {k: v for k, v in self.cfg.to_dict().items() if k not in _OPERATIONAL}
        diff = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
        if diff or int(meta["n_steps"]) != self.n_steps:
            changes = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in diff)
            raise SaekitError(
                f"Cannot resume: the training settings differ from the checkpoint's "
                f"({changes or 'number of steps'}). Resume with the same TrainConfig and "
                "source, or start a new run in another checkpoint_dir."
            )

    # -- loop --------------------------------------------------------------------------

    def train(self, callbacks: list[Callback], progress: bool, stop_at: int | None) -> TrainResult:
        t0 = time.perf_counter()
        end = self.n_steps if stop_at is None else min(self.n_steps, stop_at)
        bar = tqdm(
            total=self.n_steps,
            initial=self.step,
            disable=not progress or not self.dp.is_main,
            desc="train_saes",
            unit="step",
        )
        try:
            self._loop(end, bar, callbacks)
        except KeyboardInterrupt:
            if not self._mid_step and self.folder is not None:
                self._save()  # interrupted between steps: nothing is lost
            raise
        finally:
            bar.close()
        if self.folder is not None and self.saved_step != self.step:
            self._save()
        return self._result(time.perf_counter() - t0)

    def _loop(self, end: int, bar: Any, callbacks: list[Callback]) -> None:
        while self.step < end:
            batch = self._next_batch()
            if batch is None:
                warnings.warn(
                    f"The activation source ran out after {self.step} of {self.n_steps} "
                    "steps; returning the SAEs as trained so far.",
                    stacklevel=4,
                )
                return
            self._mid_step = True
            self._train_step(batch)
            self.step += 1
            self._mid_step = False
            bar.update(1)
            if self.step % self.cfg.log_every == 0 or self.step == self.n_steps:
                event = self._log()
                bar.set_postfix_str(_postfix(event), refresh=False)
                for cb in callbacks:
                    cb(event)
            every = self.cfg.checkpoint_every
            if self.folder is not None and every and self.step % every == 0:
                self._save()

    def _next_batch(self) -> Tensor | None:
        if self.pending:
            batch = self.pending.pop(0)
            self._check_batch(batch, self.step)
            return batch
        fetched = next(self.batches, None)
        if fetched is not None:
            self._check_batch(fetched, self.step)
        return fetched

    def _check_batch(self, batch: Tensor, step: int) -> None:
        bad = int((~torch.isfinite(batch)).sum())
        if bad == 0:
            return
        b = self.cfg.batch_size
        kept = (
            f"The last good checkpoint, {self.last_checkpoint}, is intact"
            if self.last_checkpoint is not None
            else "No checkpoint was written yet"
        )
        raise SaekitError(
            f"Activation batch {step} (step {step + 1} of {self.n_steps}, vectors "
            f"{step * b}..{(step + 1) * b - 1} of the training order) contains {bad} "
            f"NaN/inf values; training stopped before using it. {kept}. Fix the "
            "activations (re-cache them; run the model in float32 to avoid overflow) and "
            "call train_saes(..., resume=True) to continue."
        )

    def _train_step(self, batch: Tensor) -> None:
        x = self.norm.apply(self.dp.shard(batch).to(self.device, torch.float32))  # [n_local, d_in]
        var_x = _global_var(x, self.dp)
        metric_w = self._metric_weight  # [d_in] or None: squared errors back on the raw axes
        var_raw = var_x if metric_w is None else _global_var(x * metric_w.sqrt(), self.dp)
        self._last_x = x if self._rest is not None else None
        lr_mult = self.cfg.lr_scale(self.step, self.n_steps)
        sparsity = self.cfg.sparsity_scale(self.step, self.n_steps)
        outs: list[StepOutput] = []
        for m in self.members:
            ctx = StepContext(m.since_fired >= self.window, sparsity, var_x, self.dp, self.n_steps,
                              metric_w)
            out = m.objective.loss(m.sae, x.to(m.sae.W_enc.dtype), ctx)
            m.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            outs.append(out)
        self._check_losses(outs)
        self.dp.average_grads([p for m in self.members for p in m.sae.parameters()])
        fired = self.dp.any(torch.cat([o.fired for o in outs]))
        offset = 0
        for m, out in zip(self.members, outs, strict=True):
            m.objective.before_step(m.sae)
            for group in m.optimizer.param_groups:
                group["lr"] = m.base_lr * lr_mult
            m.optimizer.step()
            m.objective.after_step(m.sae, out)
            f = fired[offset : offset + m.sae.d_sae]
            offset += m.sae.d_sae
            m.since_fired = torch.where(f, 0, m.since_fired + self.cfg.batch_size)
            stats = [out.loss.detach(), out.sse, out.active.to(out.sse), out.aux]
            m.sums += torch.stack(stats).to(m.sums)
        self.var_sum += var_raw * len(batch)

    def _check_losses(self, outs: list[StepOutput]) -> None:
        finite = torch.isfinite(torch.stack([o.loss.detach() for o in outs]))
        if bool(finite.all()):
            return
        bad = [m.name for m, ok in zip(self.members, finite.tolist(), strict=True) if not ok]
        raise SaekitError(
            f"The loss of {', '.join(bad)} became NaN/inf at step {self.step + 1} (batch "
            f"{self.step}); no update was applied. Lower TrainConfig.lr or check the "
            "activations' scale (normalize_activations=True), then resume from the last "
            "checkpoint."
        )

    # -- metrics, checkpoints, results --------------------------------------------------

    def _log(self) -> TrainStep:
        since_log = self.step - (int(self.records[-1]["step"]) if self.records else 0)
        sums = self.dp.sum(torch.stack([m.sums for m in self.members]))  # [members, 4]
        var_sum = float(self.var_sum)  # already global: var_x is reduced over ranks
        n_vec = since_log * self.cfg.batch_size
        lr_mult = self.cfg.lr_scale(self.step - 1, self.n_steps)
        metrics: dict[str, dict[str, float]] = {}
        for m, row in zip(self.members, sums.tolist(), strict=True):
            loss, sse, active, aux = row
            metrics[m.name] = {
                "loss": loss / (since_log * self.dp.world_size),
                "mse": sse / n_vec,
                "l0": active / n_vec,
                "explained_variance": 1.0 - sse / max(var_sum, 1e-30),
                "dead_fraction": float((m.since_fired >= self.window).float().mean()),
                "aux": aux / (since_log * self.dp.world_size),
                "lr": m.base_lr * lr_mult,
            }
            if self._rest is not None:
                metrics[m.name]["explained_variance_rest"] = self._ev_rest(m.sae)
            m.sums.zero_()
            for metric, value in metrics[m.name].items():
                self.records.append(
                    {
                        "step": self.step,
                        "tokens": self.step * self.cfg.batch_size,
                        "sae": m.name,
                        "d_sae": m.sae.d_sae,
                        "metric": metric,
                        "value": value,
                    }
                )
        self.var_sum.zero_()
        notes = {name: self._note(values) for name, values in metrics.items()}
        return TrainStep(self.step, self.n_steps, self.step * self.cfg.batch_size, metrics,
                         {k: v for k, v in notes.items() if v})

    @torch.no_grad()
    def _ev_rest(self, sae: SAE) -> float:
        """EV outside the massive dimensions, on the last batch (raw axes)."""
        assert self._rest is not None and self._last_x is not None
        x = self._last_x  # [n_local, d_in], normalised
        err = (sae(x.to(sae.W_enc.dtype)) - x).double().pow(2).sum(0)  # [d_in]
        dev = (x - x.mean(0)).double().pow(2).sum(0)  # local centring: a fine estimate
        sums = self.dp.sum(torch.stack([(err * self._rest).sum(), (dev * self._rest).sum()]))
        return 1.0 - float(sums[0] / sums[1].clamp_min(1e-30))

    def _note(self, values: dict[str, float]) -> str:
        if "explained_variance_rest" not in values:
            return ""
        return quality_note(values["explained_variance"], values["explained_variance_rest"],
                            self.norm.dominant, self.norm.dominant_share,
                            d_in=self.members[0].sae.d_in)

    def _save(self) -> None:
        assert self.folder is not None
        if self.dp.is_main:
            tensors: dict[str, Tensor] = {"run.var_sum": self.var_sum}
            if self.norm.dim_scale is not None:
                tensors["run.dim_scale"] = self.norm.dim_scale
            for m in self.members:
                tensors.update(m.tensors())
            meta = {
                "step": self.step,
                "n_steps": self.n_steps,
                "tokens": self.step * self.cfg.batch_size,
                "scale": self.norm.scale,
                "dominant": list(self.norm.dominant),
                "dominant_share": self.norm.dominant_share,
                "d_in": self.members[0].sae.d_in,
                "names": [m.name for m in self.members],
                "sae_configs": [m.sae.cfg.to_dict() for m in self.members],
                "train_config": self.cfg.to_dict(),
                "history": self.records,
            }
            self.last_checkpoint = save_checkpoint(
                self.folder, self.step, tensors, meta, self.cfg.keep_checkpoints
            )
        self.saved_step = self.step
        self.dp.barrier()

    def _result(self, seconds: float) -> TrainResult:
        tokens = self.step * self.cfg.batch_size
        saes = []
        for m in self.members:
            training = {
                **self.cfg.to_dict(),
                "trainer": "saekit",
                "lr": m.base_lr,
                "steps": self.step,
                "tokens": tokens,
                "normalization_scale": self.norm.scale,
                "normalization_folded": True,
                "dominant_dims": list(self.norm.dominant),
                "dominant_share": self.norm.dominant_share,
                "dims_rebalanced": self.norm.dim_scale is not None,
            }
            saes.append(finished_sae(m, self.norm, training))
        return TrainResult(
            saes=tuple(saes),
            names=tuple(m.name for m in self.members),
            history=history_frame(self.records),
            steps=self.step,
            n_steps=self.n_steps,
            tokens=tokens,
            seconds=seconds,
            checkpoint=self.last_checkpoint,
        )


def _shape(sae_cfg: dict[str, Any]) -> tuple[Any, ...]:
    """What must match to load an SAE's checkpointed state: architecture and sizes."""
    return tuple(sae_cfg.get(k) for k in ("architecture", "d_in", "d_sae", "k", "dtype"))


def _as_list(specs: Sequence[SAESpec] | SAESpec) -> list[SAESpec]:
    if isinstance(specs, (int, torch.nn.Module)) or not isinstance(specs, Sequence):
        return [specs]
    return list(specs)


def _postfix(event: TrainStep) -> str:
    cols = list(event.metrics.values())
    l0 = "/".join(f"{c['l0']:.0f}" for c in cols)
    ev = "/".join(f"{c['explained_variance']:.3f}" for c in cols)
    dead = "/".join(f"{c['dead_fraction']:.2f}" for c in cols)
    return f"L0 {l0} | EV {ev} | dead {dead}"
