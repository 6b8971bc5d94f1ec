"""Per-architecture training losses and constraints.

Each :class:`Objective` knows how to compute one SAE's loss on a batch, what to do to
its gradients and weights around the optimizer step, and how to fold the input
normalisation scale into its weights at the end. :func:`objective_for` picks one by
the SAE's class.

Losses (``x`` normalised so that ``E||x||^2 = d_in``; ``mse`` is the squared error
summed over ``d_in`` and averaged over the batch, as in SAELens):

- TopK / BatchTopK: ``mse + auxk_coefficient * var(x) * auxk`` where ``auxk`` is
  OpenAI's normalised AuxK loss (dead latents reconstructing the residual, divided by
  the residual's variance); ``var(x)`` puts it on the ``mse`` scale, so the ratio of the
  two terms is the paper's. Decoder rows kept at unit norm.
- ReLU: ``mse + l1_coefficient * sum_i f_i ||W_dec[i]||`` (Anthropic, April 2024).
- JumpReLU: ``mse + l0_coefficient * L0`` with straight-through estimators
  (Rajamanoharan et al. 2024); thresholds kept positive, decoder rows at unit norm.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from saekit.errors import SaekitError
from saekit.sae.base import SAE
from saekit.sae.batchtopk import BatchTopKSAE
from saekit.sae.jumprelu import JumpReLUSAE
from saekit.sae.relu import ReLUSAE
from saekit.sae.topk import TopKSAE
from saekit.train._sparse import SparsePattern, encoder_values, sparse_decode, topk_rows
from saekit.train.config import TrainConfig
from saekit.train.distributed import DataParallel

_SPARSE_DTYPES = (torch.float32, torch.float64)


@dataclass(frozen=True)
class StepContext:
    """What a loss needs besides the SAE and the batch.

    Attributes:
        dead: bool ``[d_sae]``, latents that have not fired within the dead window.
        sparsity_scale: multiplier of the sparsity coefficient (warm-up ramp).
        var_x: ``mean ||x - mean(x)||^2`` over the global batch (detached scalar).
        dp: the data-parallel group (reduces batch statistics across ranks).
        n_steps: steps of the whole run.
        metric_weight: ``[d_in]`` weights that put squared errors back on the raw
            axes for the reported ``sse`` (when massive dimensions were scaled down),
            or ``None``. The loss itself is the plain squared error of the inputs.
    """

    dead: Tensor
    sparsity_scale: float
    var_x: Tensor
    dp: DataParallel
    n_steps: int
    metric_weight: Tensor | None = None


@dataclass(frozen=True)
class StepOutput:
    """One SAE's loss on one (local) batch; all but ``loss`` detached.

    Attributes:
        loss: scalar to differentiate.
        sse: summed squared reconstruction error over the local batch.
        active: number of non-zero codes in the local batch.
        aux: the auxiliary / sparsity term (before its coefficient).
        fired: bool ``[d_sae]``, latents non-zero somewhere in the local batch.
    """

    loss: Tensor
    sse: Tensor
    active: Tensor
    aux: Tensor
    fired: Tensor


class Objective(Protocol):
    """How one architecture trains."""

    def loss(self, sae: SAE, x: Tensor, ctx: StepContext) -> StepOutput: ...

    def before_step(self, sae: SAE) -> None: ...

    def after_step(self, sae: SAE, out: StepOutput) -> None: ...

    def fold_scale(self, sae: SAE, scale: float) -> None: ...


def _squared_error(err: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
    """``(mse, sse)`` of ``err [n, d_in]``: summed over ``d_in``, mean / sum over rows.

    ``sse`` (reported, detached) is weighted by ``ctx.metric_weight`` when there is one.
    """
    sq = err.pow(2)
    sse = sq.sum()
    shown = sse.detach() if ctx.metric_weight is None else (sq.detach() * ctx.metric_weight).sum()
    return sse / err.shape[0], shown


def _output(loss: Tensor, sse: Tensor, codes_nonzero: Tensor, aux: Tensor) -> StepOutput:
    """``codes_nonzero``: bool ``[n, d_sae]``."""
    return StepOutput(
        loss=loss,
        sse=sse,
        active=codes_nonzero.sum(),
        aux=aux.detach(),
        fired=codes_nonzero.any(0),
    )


def _global_var(r: Tensor, dp: DataParallel) -> Tensor:
    """``mean ||r - mean(r)||^2`` over the global batch of ``r [n_local, d]`` (detached)."""
    r = r.detach()
    stats = dp.sum(torch.cat([r.sum(0), r.pow(2).sum().reshape(1), r.new_tensor([len(r)])]))
    n = stats[-1]
    mean = stats[:-2] / n
    return (stats[-2] / n - mean.pow(2).sum()).clamp_min(1e-12)


class _BaseObjective(abc.ABC):
    """Shared defaults: no constraint; fold the scale into biases."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    @abc.abstractmethod
    def loss(self, sae: SAE, x: Tensor, ctx: StepContext) -> StepOutput:
        """The loss of ``sae`` on the local batch ``x [n, d_in]``."""

    def before_step(self, sae: SAE) -> None:
        return None

    def after_step(self, sae: SAE, out: StepOutput) -> None:
        return None

    @torch.no_grad()
    def fold_scale(self, sae: SAE, scale: float) -> None:
        # Trained on s*x: pre' = pre/s and recon' = recon/s need b_enc/s, b_dec/s only.
        sae.b_enc.div_(scale)
        sae.b_dec.div_(scale)


class _UnitDecoderMixin:
    def before_step(self, sae: SAE) -> None:
        sae.remove_parallel_decoder_grad()

    def after_step(self, sae: SAE, out: StepOutput) -> None:
        sae.normalize_decoder()


class TopKObjective(_UnitDecoderMixin, _BaseObjective):
    """TopK with the AuxK dead-latent loss (Gao et al. 2024)."""

    def loss(self, sae: SAE, x: Tensor, ctx: StepContext) -> StepOutput:
        assert isinstance(sae, TopKSAE)
        if self.cfg.sparse_kernels and sae.W_enc.dtype in _SPARSE_DTYPES:
            return self._sparse_loss(sae, x, ctx)
        return self._dense_loss(sae, x, ctx)

    def _k_aux(self, sae: SAE, dead: Tensor) -> int:
        k_aux = self.cfg.k_aux if self.cfg.k_aux is not None else sae.d_in // 2
        return min(k_aux, int(dead.sum()))

    def _auxk_term(self, e_hat: Tensor, err: Tensor, ctx: StepContext) -> Tensor:
        residual = -err.detach()  # x - x_hat
        return (e_hat - residual).pow(2).sum(-1).mean() / _global_var(residual, ctx.dp)

    def _total(self, mse: Tensor, auxk: Tensor, ctx: StepContext) -> Tensor:
        return mse + self.cfg.auxk_coefficient * ctx.var_x * auxk

    def _sparse_loss(self, sae: TopKSAE, x: Tensor, ctx: StepContext) -> StepOutput:
        with torch.no_grad():
            xc = x - sae.b_dec  # [n, d_in]
            pre = torch.addmm(sae.b_enc, xc, sae.W_enc)  # [n, d_sae]
            vals, idx = topk_rows(pre, sae.k)  # [n, k]
        pattern = SparsePattern(idx, sae.d_sae)
        z = torch.relu(encoder_values(vals, xc, sae.W_enc, sae.b_enc, sae.b_dec, pattern))
        err = sparse_decode(z, pattern, sae.W_dec) + sae.b_dec - x  # [n, d_in]
        mse, sse = _squared_error(err, ctx)
        k_aux = self._k_aux(sae, ctx.dead)
        auxk = mse.new_zeros(())
        if k_aux > 0:
            with torch.no_grad():  # top k_aux among the dead columns only
                dead_idx = ctx.dead.nonzero().squeeze(1)  # ascending: keeps row order
                a_vals, a_sub = topk_rows(pre.index_select(1, dead_idx), k_aux)
                a_idx = dead_idx[a_sub]
            a_pat = SparsePattern(a_idx, sae.d_sae)
            za = torch.relu(encoder_values(a_vals, xc, sae.W_enc, sae.b_enc, sae.b_dec, a_pat))
            auxk = self._auxk_term(sparse_decode(za, a_pat, sae.W_dec), err, ctx)
        fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=x.device)
        fired[idx[z.detach() > 0]] = True
        return StepOutput(
            loss=self._total(mse, auxk, ctx),
            sse=sse,
            active=(z.detach() > 0).sum(),
            aux=auxk.detach(),
            fired=fired,
        )

    def _dense_loss(self, sae: TopKSAE, x: Tensor, ctx: StepContext) -> StepOutput:
        pre = sae.pre_acts(x)  # [n, d_sae]
        return self._dense_output(sae, x, pre, _dense_topk(pre, sae.k), ctx)

    def _dense_output(self, sae: SAE, x: Tensor, pre: Tensor, z: Tensor, ctx: StepContext) -> StepOutput:
        """Loss of dense codes ``z [n, d_sae]``; AuxK takes the dead latents' top ``pre``."""
        err = sae.decode(z) - x
        mse, sse = _squared_error(err, ctx)
        k_aux = self._k_aux(sae, ctx.dead)
        auxk = mse.new_zeros(())
        if k_aux > 0:
            masked = pre.masked_fill(~ctx.dead, float("-inf"))
            e_hat = _dense_topk(masked, k_aux) @ sae.W_dec
            auxk = self._auxk_term(e_hat, err, ctx)
        return _output(self._total(mse, auxk, ctx), sse, z.detach() > 0, auxk)


def _dense_topk(pre: Tensor, k: int) -> Tensor:
    """Dense codes keeping the ``k`` largest entries of each row, ReLU'd (autograd)."""
    vals, idx = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))


class BatchTopKObjective(TopKObjective):
    """BatchTopK (Bussmann et al. 2024): top ``k * n`` over the batch, then a threshold.

    The threshold is a running average of the smallest kept activation of each batch,
    with a time constant of at most a tenth of the run (``beta = 1 - 10 / n_steps``,
    between 0.9 and 0.999), so short runs forget their first batches too. Under data
    parallelism the top-k is taken within each rank's shard.
    """

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__(cfg)
        self._codes: Tensor | None = None  # this step's training codes
        self._beta = 0.999

    def loss(self, sae: SAE, x: Tensor, ctx: StepContext) -> StepOutput:
        assert isinstance(sae, BatchTopKSAE)
        pre = sae.pre_acts(x)  # [n, d_sae]
        z = sae.batch_topk(torch.relu(pre))
        self._codes = z.detach()
        self._beta = min(0.999, max(0.9, 1.0 - 10.0 / ctx.n_steps))
        return self._dense_output(sae, x, pre, z, ctx)

    def after_step(self, sae: SAE, out: StepOutput) -> None:
        super().after_step(sae, out)
        assert isinstance(sae, BatchTopKSAE) and self._codes is not None
        sae.update_threshold(self._codes, beta=self._beta)
        self._codes = None

    @torch.no_grad()
    def fold_scale(self, sae: SAE, scale: float) -> None:
        super().fold_scale(sae, scale)
        assert isinstance(sae, BatchTopKSAE)
        if float(sae.threshold) > 0:
            sae.threshold.div_(scale)


class ReLUObjective(_BaseObjective):
    """ReLU + decoder-norm-weighted L1 (Anthropic, April 2024); no decoder constraint."""

    def loss(self, sae: SAE, x: Tensor, ctx: StepContext) -> StepOutput:
        assert isinstance(sae, ReLUSAE)
        z = sae.encode(x)
        err = sae.decode(z) - x
        mse, sse = _squared_error(err, ctx)
        l1 = sae.l1_penalty(z)
        loss = mse + self.cfg.l1_coefficient * ctx.sparsity_scale * l1
        return _output(loss, sse, z.detach() > 0, l1)


class JumpReLUObjective(_UnitDecoderMixin, _BaseObjective):
    """JumpReLU with straight-through estimators for the thresholds (Rajamanoharan 2024)."""

    bandwidth = 0.001

    def loss(self, sae: SAE, x: Tensor, ctx: StepContext) -> StepOutput:
        assert isinstance(sae, JumpReLUSAE)
        z = sae.encode_ste(x, bandwidth=self.bandwidth)
        err = sae.decode(z) - x
        mse, sse = _squared_error(err, ctx)
        l0 = sae.l0_penalty(x, bandwidth=self.bandwidth)
        loss = mse + self.cfg.l0_coefficient * ctx.sparsity_scale * l0
        return _output(loss, sse, z.detach() > 0, l0)

    @torch.no_grad()
    def after_step(self, sae: SAE, out: StepOutput) -> None:
        super().after_step(sae, out)
        assert isinstance(sae, JumpReLUSAE)
        sae.threshold.clamp_(min=1e-6)

    @torch.no_grad()
    def fold_scale(self, sae: SAE, scale: float) -> None:
        super().fold_scale(sae, scale)
        assert isinstance(sae, JumpReLUSAE)
        sae.threshold.div_(scale)


_REGISTRY: tuple[tuple[type[SAE], type[_BaseObjective]], ...] = (
    (BatchTopKSAE, BatchTopKObjective),
    (TopKSAE, TopKObjective),
    (JumpReLUSAE, JumpReLUObjective),
    (ReLUSAE, ReLUObjective),
)


def objective_for(sae: SAE, cfg: TrainConfig) -> Objective:
    """The training objective for ``sae``'s architecture."""
    for cls, objective in _REGISTRY:
        if isinstance(sae, cls):
            return objective(cfg)
    known = ", ".join(c.__name__ for c, _ in _REGISTRY)
    raise SaekitError(f"saekit cannot train a {type(sae).__name__}; trainable architectures: {known}.")
