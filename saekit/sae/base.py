"""The SAE interface shared by every architecture.

An SAE is a plain ``torch.nn.Module`` with ``encode``, ``decode`` and ``forward`` and the
parameters ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``,
``b_dec [d_in]`` (SAELens's layout). Its :class:`SAEConfig` carries the metadata: which
model and site it reads, and how it was trained.

Example:
    >>> import torch
    >>> from saekit.sae import SAEConfig, TopKSAE
    >>> sae = TopKSAE(SAEConfig(d_in=8, d_sae=32, k=4))
    >>> sae(torch.randn(3, 8)).shape
    torch.Size([3, 8])
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from saekit.errors import CompatibilityError


@dataclass(frozen=True)
class SAEConfig:
    """What an SAE is and where it reads from.

    Attributes:
        d_in: width of the activations it encodes.
        d_sae: number of features (dictionary size).
        architecture: ``"relu"``, ``"topk"``, ``"batchtopk"`` or ``"jumprelu"``.
        k: active latents per vector (TopK / BatchTopK).
        model_name: the model the SAE was trained on (``""`` if unknown).
        site: saekit site name (``"resid_post.15"``), ``""`` if unknown.
        dtype: parameter dtype, as a string (``"float32"``).
        training: how it was trained (lr, l1 coefficient, tokens, seed...), and for a
            loaded file its ``source_format``, ``source_path`` and foreign metadata.
        name: the SAE's name (see :func:`saekit.ids.sae_name`); ``""``: named from its
            architecture, size and site.
    """

    d_in: int
    d_sae: int
    architecture: str = "topk"
    k: int | None = None
    model_name: str = ""
    site: str = ""
    dtype: str = "float32"
    training: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def replace(self, **changes: Any) -> SAEConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SAEConfig:
        """Build from :meth:`to_dict` output, ignoring unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class SAE(nn.Module, abc.ABC):
    """Abstract sparse autoencoder: subclasses define :meth:`encode`.

    ``forward(x)`` returns the reconstruction ``decode(encode(x))``. Subclasses add
    training losses in their own files; the interface here is all analysis needs.
    """

    architecture: ClassVar[str]
    default_decoder_norm: ClassVar[float] = 1.0  # decoder row norm used by init_weights

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        if cfg.d_in <= 0 or cfg.d_sae <= 0:
            raise CompatibilityError(
                f"SAE sizes must be positive, got d_in={cfg.d_in}, d_sae={cfg.d_sae}."
            )
        self.cfg = cfg.replace(architecture=self.architecture)
        dtype = getattr(torch, cfg.dtype)
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dtype))

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @property
    def device(self) -> torch.device:
        return self.W_dec.device

    def pre_acts(self, x: Tensor) -> Tensor:
        """Encoder pre-activations ``(x - b_dec) @ W_enc + b_enc``.

        Shapes: ``[..., d_in] -> [..., d_sae]``.
        """
        self._check_width(x)
        x = x.to(self.W_enc.dtype)
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    @abc.abstractmethod
    def encode(self, x: Tensor) -> Tensor:
        """Feature activations, ``[..., d_in] -> [..., d_sae]`` (non-negative, sparse)."""

    def decode(self, codes: Tensor) -> Tensor:
        """Reconstruction ``codes @ W_dec + b_dec``; ``[..., d_sae] -> [..., d_in]``."""
        return codes.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of ``x``; ``[..., d_in] -> [..., d_in]``."""
        return self.decode(self.encode(x))

    def sparse_matmul(self, values: Tensor, indices: Tensor) -> Tensor:
        """``sum_j values[..., j] * W_dec[indices[..., j]]``; ``[..., n] x2 -> [..., d_in]``.

        The decoder product of a sparse code (no ``b_dec``), touching only the named
        rows (``F.embedding_bag``); differentiable in ``values`` and ``W_dec``.
        """
        lead = values.shape[:-1]
        flat_idx = indices.reshape(-1, indices.shape[-1])  # [n_vec, n]
        flat_val = values.reshape(-1, values.shape[-1]).to(self.W_dec.dtype)
        out = F.embedding_bag(flat_idx, self.W_dec, per_sample_weights=flat_val, mode="sum")
        return out.reshape(*lead, self.d_in)

    def decode_sparse(self, values: Tensor, indices: Tensor) -> Tensor:
        """Reconstruction from a sparse code ``(values, indices)``, each ``[..., n]``.

        Equals ``decode`` of the dense code with those entries set.
        """
        return self.sparse_matmul(values, indices) + self.b_dec

    def reset_thresholds(self) -> None:
        """Reset architecture-specific thresholds to their start-of-training values.

        No-op here; BatchTopK and JumpReLU override it (``init_weights`` calls it).
        """

    @torch.no_grad()
    def init_b_dec_from(self, data: Tensor, method: str = "geometric_median") -> Tensor:
        """Set ``b_dec`` from a sample of activations ``[n, d_in]``; returns it.

        ``method``: ``"geometric_median"`` (a few Weiszfeld steps) or ``"mean"``.
        """
        from saekit.sae.initialization import data_center

        self._check_width(data)
        self.b_dec.copy_(data_center(data, method).to(self.b_dec))
        return self.b_dec.detach()

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Drop the part of ``W_dec.grad`` parallel to each (unit-norm) decoder row.

        Call between ``backward()`` and ``optimizer.step()`` when decoder rows are kept
        at unit norm, so the step does not fight the renormalisation.
        """
        if self.W_dec.grad is None:
            return
        w = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        along = (self.W_dec.grad * w).sum(-1, keepdim=True)  # [d_sae, 1]
        self.W_dec.grad.sub_(along * w)

    def _check_width(self, x: Tensor) -> None:
        if x.shape[-1] != self.d_in:
            where = f" at site {self.cfg.site!r}" if self.cfg.site else ""
            raise CompatibilityError(
                f"Activations have width {x.shape[-1]} but this SAE{where} expects "
                f"d_in={self.d_in}. Use an SAE trained on a site of width {x.shape[-1]}, "
                "or read activations from the site the SAE was trained on."
            )

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scale decoder rows (feature directions) to unit norm in place."""
        self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8))

    def extra_repr(self) -> str:
        c = self.cfg
        k = f", k={c.k}" if c.k is not None else ""
        where = f", site={c.site!r}" if c.site else ""
        return f"d_in={c.d_in}, d_sae={c.d_sae}{k}{where}"
