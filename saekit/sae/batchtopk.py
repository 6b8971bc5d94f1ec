"""BatchTopK SAE (Bussmann, Leask & Nanda 2024, "BatchTopK Sparse Autoencoders").

Training keeps the ``k * n`` largest (ReLU'd) pre-activations across a batch of ``n``
vectors instead of ``k`` per vector, so busy tokens may use more latents than quiet
ones while the average stays ``k``. At inference a batch-independent rule is needed:
a single threshold ``theta`` (a scalar buffer) estimated during training as the running
mean of the smallest activation that survived each training batch. Then
``encode(x) = relu(pre) * (pre > theta)``, which is a JumpReLU with one shared
threshold (SAELens saves BatchTopK SAEs as JumpReLU for that reason).

Example:
    >>> import torch
    >>> from saekit.sae import BatchTopKSAE, SAEConfig, init_weights
    >>> sae = init_weights(BatchTopKSAE(SAEConfig(d_in=8, d_sae=32, k=4)), seed=0)
    >>> x = torch.randn(16, 8)
    >>> codes = sae.encode_batch_topk(x)            # training rule
    >>> int((codes > 0).sum()) <= 4 * 16
    True
    >>> _ = sae.update_threshold(codes)             # running estimate of theta
    >>> sae.encode(x).shape                         # inference rule
    torch.Size([16, 32])
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from saekit.sae.base import SAE, SAEConfig
from saekit.sae.topk import check_k

_UNSET = -1.0  # threshold value before the first update (dictionary_learning's convention)


class BatchTopKSAE(SAE):
    """Sparse autoencoder trained with batch-level top-k, run with a learned threshold.

    Attributes:
        threshold: scalar buffer, the inference threshold; ``-1`` until the first
            :meth:`update_threshold` (then ``encode`` behaves like a plain ReLU).
    """

    architecture: ClassVar[str] = "batchtopk"
    default_decoder_norm: ClassVar[float] = 1.0
    threshold: Tensor

    def __init__(self, cfg: SAEConfig) -> None:
        check_k(cfg, type(self).__name__)
        super().__init__(cfg)
        self.register_buffer("threshold", torch.tensor(_UNSET, dtype=torch.float32))

    @property
    def k(self) -> int:
        assert self.cfg.k is not None
        return self.cfg.k

    def encode(self, x: Tensor) -> Tensor:
        """Inference codes: ``relu(pre) * (pre > threshold)``; ``[..., d_in] -> [..., d_sae]``."""
        pre = self.pre_acts(x)
        return torch.relu(pre) * (pre > self.threshold.to(pre.dtype))

    def encode_batch_topk(self, x: Tensor) -> Tensor:
        """Training codes: the ``k * n`` largest ReLU'd pre-activations of the batch.

        ``n`` is the number of vectors (all leading dimensions together).
        """
        return self.batch_topk(torch.relu(self.pre_acts(x)))

    def batch_topk(self, acts: Tensor) -> Tensor:
        """Keep the ``k * n`` largest entries of non-negative ``acts [..., d_sae]``."""
        n_vec = acts.shape[:-1].numel()
        flat = acts.reshape(-1)
        vals, idx = flat.topk(min(self.k * n_vec, flat.numel()), sorted=False)
        return torch.zeros_like(flat).scatter_(0, idx, vals).reshape(acts.shape)

    @torch.no_grad()
    def update_threshold(self, codes: Tensor, beta: float = 0.999) -> float:
        """Fold one training batch into the running estimate of the threshold.

        The batch's value is the smallest positive activation among the batch-top-k
        ``codes``; the first batch sets the threshold, later ones move it by an
        exponential moving average ``theta = beta * theta + (1 - beta) * batch_min``.
        A batch with no positive activation leaves the threshold unchanged.

        Returns:
            The new threshold.
        """
        positive = codes[codes > 0]
        if positive.numel() == 0:
            return float(self.threshold)
        batch_min = positive.min().float()
        if float(self.threshold) < 0:
            self.threshold.fill_(batch_min)
        else:
            self.threshold.mul_(beta).add_((1.0 - beta) * batch_min)
        return float(self.threshold)

    def reset_thresholds(self) -> None:
        self.threshold.fill_(_UNSET)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, threshold={float(self.threshold):.4g}"
