"""Training settings for :func:`saekit.train_saes`.

Example:
    >>> from saekit.train import TrainConfig
    >>> cfg = TrainConfig(steps=1000, batch_size=1024, k=32, warmup_steps=50)
    >>> round(cfg.lr_scale(25), 3), cfg.lr_scale(500), cfg.lr_scale(1000)
    (0.52, 1.0, 0.0)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from saekit.errors import SaekitError

BDecInit = Literal["geometric_median", "mean", "zeros"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (shared by every SAE of a family).

    Attributes:
        lr: Adam learning rate. ``None``: ``2e-4 / sqrt(d_sae / 2**14)`` for each SAE
            (the scaling of Gao et al. 2024, as in EleutherAI's sparsify). Inputs are
            normalised to a squared norm of ``d_in`` first, which is what lets one
            rate serve models of different widths and norms; no further scaling with
            ``d_in`` was added (not measured here: the Gemma gap came from the
            massive dimensions, see ``balance_dims``).
        batch_size: vectors per step (the global batch, split across ranks).
        steps: number of optimizer steps. Give ``steps`` or ``total_tokens``; with
            neither, one pass over a source of known length.
        total_tokens: training vectors; ``steps = total_tokens // batch_size``.
        warmup_steps: linear learning-rate warm-up from 0; ``None``: 5% of the steps,
            at most 1000.
        decay_fraction: the learning rate decays linearly to 0 over this last
            fraction of the steps (0.2: the last 20%).
        seed: seeds initialisation and data order; same seed + same data gives
            identical weights (on CPU).
        architecture: architecture for SAEs given as plain sizes (``"topk"``,
            ``"relu"``, ``"batchtopk"``, ``"jumprelu"``).
        k: active latents per vector (TopK / BatchTopK) for plain sizes.
        l1_coefficient: weight of ReLU's decoder-norm-weighted L1 penalty.
        l0_coefficient: weight of JumpReLU's L0 penalty.
        l1_warmup_fraction: the sparsity coefficient (L1 or L0) ramps up linearly
            over this first fraction of the steps (Anthropic, April 2024).
        auxk_coefficient: weight of the AuxK dead-latent loss (TopK; 1/32). It
            multiplies the AuxK loss normalised by the residual's variance, times the
            batch's variance, so it needs no rescaling with ``d_in`` or the data's
            norm.
        k_aux: latents in the AuxK reconstruction; ``None``: ``d_in // 2`` (scales
            with ``d_in``, as in Gao et al. 2024).
        dead_tokens: a latent that has not fired for this many training vectors is
            dead. ``None``: ``min(10_000_000, total vectors // 10)`` (scaled down for
            small runs).
        log_every: steps between metric records, callbacks and progress updates.
        checkpoint_every: steps between checkpoints (``None``: only at the end and on
            ``KeyboardInterrupt``, when a checkpoint folder is given).
        keep_checkpoints: how many most recent checkpoints to keep on disk.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        dtype: parameter dtype (``"float32"``).
        normalize_activations: scale inputs so that their median squared norm is
            ``d_in``, estimated on the ``init_tokens`` first vectors. The median, not
            the mean: 8 tokens in 8192 with 50x the norm (attention sinks) move a
            mean-based scale 3.4x and this one < 1%. Centring first changed nothing
            measurable (Gemma 3 270M layer 9: EV 0.812 against 0.814). The scale is
            folded into the weights at the end, so the returned SAEs work on raw
            activations.
        balance_dims: ``"auto"``: when a few "massive" dimensions (variance above 16x
            the median dimension's; Gemma, Llama and Qwen models have them) hold at
            least 25% of the variance, train on per-dimension standardised inputs
            (each dimension divided by its standard deviation over the
            ``init_tokens`` sample, folded back exactly at the end, so decoder rows
            are then unit-norm only in that space). ``True``: whenever there are
            massive dimensions; ``False``: never. Measured on Gemma 3 270M
            ``resid_post.9`` (2 of 640 dimensions hold 60% of the variance; 18.8k
            tokens x 8 epochs, TopK k 32, 2560 latents; 745 held-out tokens):
            unbalanced EV 0.71, loss recovered 0.85, KL 2.94; standardised EV 0.55,
            loss recovered 0.95, KL 1.10 (raw EV drops because it mostly measures the
            2 massive dimensions; EV outside them rises, 0.58 -> 0.64 on the training
            set). Capping the massive dimensions' variance at 16x the median instead
            gave EV 0.69, loss recovered 0.90, KL 1.96. SmolLM2-135M ``resid_post.15``
            (share 0.18) is left as it was.
        init_tokens: vectors read from the first batches (they are then trained on
            as usual) to estimate the normalisation and ``b_dec``; at most the run's
            own vectors.
        b_dec_init: ``"geometric_median"`` (of the ``init_tokens`` sample, in the
            normalised space), ``"mean"`` or ``"zeros"``. A data-centred ``b_dec``
            matters where activations have a large mean: SAELens's zero ``b_dec`` on
            Gemma 3 270M layer 9 (mean norm ~6,000, almost all along one dimension)
            ends with 97% dead latents and EV -3 at the budget above.
        adam_betas: Adam's betas.
        adam_eps: Adam's epsilon.
        sparse_kernels: TopK training uses sparse encoder-backward / decode kernels
            (only ``k`` of ``d_sae`` latents are non-zero); ``False`` uses dense
            autograd (same result to float tolerance; for checking and timing).
    """

    lr: float | None = None
    batch_size: int = 4096
    steps: int | None = None
    total_tokens: int | None = None
    warmup_steps: int | None = None
    decay_fraction: float = 0.2
    seed: int = 0
    architecture: str = "topk"
    k: int = 32
    l1_coefficient: float = 5.0
    l0_coefficient: float = 1.0
    l1_warmup_fraction: float = 0.05
    auxk_coefficient: float = 1 / 32
    k_aux: int | None = None
    dead_tokens: int | None = None
    log_every: int = 10
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    device: str = "auto"
    dtype: str = "float32"
    normalize_activations: bool = True
    balance_dims: bool | Literal["auto"] = "auto"
    init_tokens: int = 32768
    b_dec_init: BDecInit = "geometric_median"
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    sparse_kernels: bool = True

    def __post_init__(self) -> None:
        _check_positive(self, ("batch_size", "k", "log_every", "keep_checkpoints", "init_tokens"))
        if self.balance_dims not in (True, False, "auto"):
            raise SaekitError(
                f"TrainConfig.balance_dims must be True, False or 'auto', got {self.balance_dims!r}."
            )
        if self.steps is not None and self.total_tokens is not None:
            raise SaekitError(
                f"TrainConfig got both steps={self.steps} and total_tokens="
                f"{self.total_tokens}; give one of them."
            )
        for name in ("steps", "total_tokens", "checkpoint_every", "k_aux", "dead_tokens"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SaekitError(f"TrainConfig.{name} must be positive or None, got {value}.")
        if not 0.0 <= self.decay_fraction <= 1.0 or not 0.0 <= self.l1_warmup_fraction <= 1.0:
            raise SaekitError(
                "TrainConfig.decay_fraction and l1_warmup_fraction must lie in [0, 1], got "
                f"{self.decay_fraction} and {self.l1_warmup_fraction}."
            )
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise SaekitError(f"TrainConfig.warmup_steps must be >= 0, got {self.warmup_steps}.")
        if not isinstance(getattr(torch, self.dtype, None), torch.dtype):
            raise SaekitError(f"TrainConfig.dtype={self.dtype!r} is not a torch dtype; use 'float32'.")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (stored in checkpoints and SAE metadata)."""
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if "adam_betas" in kwargs:
            kwargs["adam_betas"] = tuple(kwargs["adam_betas"])
        return cls(**kwargs)

    def n_steps(self, n_available: int | None) -> int:
        """Optimizer steps of the run, given how many vectors the source holds (if known)."""
        if self.steps is not None:
            return self.steps
        tokens = self.total_tokens if self.total_tokens is not None else n_available
        if tokens is None:
            raise SaekitError(
                "The activation source has no known length, so the run length is unknown. "
                "Pass TrainConfig(steps=...) or TrainConfig(total_tokens=...)."
            )
        if tokens < self.batch_size:
            raise SaekitError(
                f"{tokens} training vectors is less than one batch of {self.batch_size}. "
                "Lower TrainConfig.batch_size or provide more activations."
            )
        return tokens // self.batch_size

    def lr_scale(self, step: int, n_steps: int | None = None) -> float:
        """Learning-rate multiplier at ``step`` (0-based): warm-up, flat, linear decay to 0.

        Args:
            step: the optimizer step about to be taken.
            n_steps: total steps (default :meth:`n_steps` with an unknown source).
        """
        total = self.n_steps(None) if n_steps is None else n_steps
        warmup = self.warmup(total)
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        decay_steps = int(round(self.decay_fraction * total))
        if decay_steps == 0:
            return warm
        decay = min(1.0, max(0.0, (total - step) / decay_steps))
        return min(warm, decay)

    def warmup(self, n_steps: int) -> int:
        """Warm-up steps of a run of ``n_steps``."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return min(1000, n_steps // 20)

    def sparsity_scale(self, step: int, n_steps: int) -> float:
        """Multiplier of the sparsity coefficient at ``step``: linear ramp, then 1."""
        ramp = int(round(self.l1_warmup_fraction * n_steps))
        return 1.0 if ramp == 0 else min(1.0, (step + 1) / ramp)

    def lr_for(self, d_sae: int) -> float:
        """The base learning rate of an SAE with ``d_sae`` latents."""
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(d_sae / 2**14)

    def dead_window(self, n_steps: int) -> int:
        """Vectors without firing after which a latent counts as dead."""
        if self.dead_tokens is not None:
            return self.dead_tokens
        return max(self.batch_size, min(10_000_000, n_steps * self.batch_size // 10))


def _check_positive(cfg: TrainConfig, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value <= 0:
            raise SaekitError(f"TrainConfig.{name} must be positive, got {value}.")
