"""Turning tensors read from a foreign file into a saekit SAE.

Adapters convert their file's tensors to saekit's layout (:class:`Weights`), then call
:func:`build_sae`, which checks shapes, records where the SAE came from and which
features were kept, and assembles the module without allocating its weights twice.
:func:`find_beside_cfg` finds the weights of the common "weights file + config file in
one folder" layout.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from saekit.errors import FormatError
from saekit.sae.base import SAE, SAEConfig
from saekit.sae.batchtopk import BatchTopKSAE
from saekit.sae.jumprelu import JumpReLUSAE
from saekit.sae.relu import ReLUSAE
from saekit.sae.topk import TopKSAE

#: architecture name (``SAEConfig.architecture``) -> class
ARCHITECTURES: dict[str, type[SAE]] = {
    "relu": ReLUSAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "jumprelu": JumpReLUSAE,
}


@dataclass
class Weights:
    """An SAE's tensors in saekit's layout (``n`` = number of features loaded)."""

    W_enc: Tensor  # [d_in, n]
    b_enc: Tensor  # [n]
    W_dec: Tensor  # [n, d_in]
    b_dec: Tensor  # [d_in]
    threshold: Tensor | None = None  # [n] (jumprelu) or [] (batchtopk)


@dataclass
class Meta:
    """What the file says about the SAE besides its weights."""

    architecture: str
    k: int | None = None
    model_name: str = ""
    site: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    name: str = ""


def find_beside_cfg(path: Path, weights: str, cfg: str) -> Path | None:
    """The weights file if ``path`` (a folder, or its weights file) holds both files.

    Args:
        path: A folder, or a file in it.
        weights: The weights file's name (``"sae_weights.safetensors"``).
        cfg: The name of the config file that must lie beside it (``"cfg.json"``).

    Example:
        >>> find_beside_cfg(Path("my_sae"), "sae.safetensors", "cfg.json")  # doctest: +SKIP
        PosixPath('my_sae/sae.safetensors')
    """
    file = path / weights if path.is_dir() else path
    if file.name == weights and file.is_file() and (file.parent / cfg).is_file():
        return file
    return None


def check_shapes(
    shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]], path: Path
) -> None:
    """Raise :class:`FormatError` if a tensor's shape is not what the config implies."""
    for name, want in expected.items():
        got = shapes[name]
        if tuple(got) != tuple(want):
            raise FormatError(
                f"Tensor {name!r} in {path} has shape {tuple(got)}, but the config implies "
                f"{tuple(want)}. The weights and the config do not belong together "
                "(mixed-up files or a different architecture); use matching files."
            )


def feature_list(features: Sequence[int] | None, d_sae: int, path: Path) -> list[int] | None:
    """Validate requested feature indices against ``d_sae``."""
    if features is None:
        return None
    idx = [int(i) for i in features]
    if not idx:
        raise FormatError("features=[] selects nothing; pass at least one feature index.")
    bad = [i for i in idx if not 0 <= i < d_sae]
    if bad:
        raise FormatError(
            f"Feature indices {bad[:10]} are out of range for the SAE in {path}, which has "
            f"d_sae={d_sae}; use indices in [0, {d_sae})."
        )
    if len(set(idx)) != len(idx):
        raise FormatError("features contains duplicates; pass each feature index once.")
    return idx


def build_sae(
    w: Weights,
    meta: Meta,
    *,
    path: Path,
    fmt: str,
    features: list[int] | None,
    full_d_sae: int,
    device: str | torch.device | None = None,
) -> SAE:
    """Assemble an SAE from converted tensors; records format, path and features."""
    cls = ARCHITECTURES[meta.architecture]
    n, d_in = w.W_dec.shape
    check_shapes(
        {"W_enc": tuple(w.W_enc.shape), "b_enc": tuple(w.b_enc.shape),
         "b_dec": tuple(w.b_dec.shape)},
        {"W_enc": (d_in, n), "b_enc": (n,), "b_dec": (d_in,)},
        path,
    )
    dtype = w.W_dec.dtype
    training = dict(meta.training)
    training.update(source_format=fmt, source_path=str(path))
    k = meta.k
    if features is not None:
        earlier = training.get("feature_indices")  # the file itself holds a subset
        if earlier is not None and len(earlier) == full_d_sae:
            training.update(feature_indices=[earlier[i] for i in features])
        else:
            training.update(feature_indices=list(features), full_d_sae=full_d_sae)
        k = _subset_k(meta, n)
    cfg = SAEConfig(
        d_in=d_in, d_sae=n, architecture=meta.architecture, k=k, model_name=meta.model_name,
        site=meta.site, dtype=str(dtype).removeprefix("torch."), training=training,
        name=meta.name,
    )
    state = {"W_enc": w.W_enc, "b_enc": w.b_enc, "W_dec": w.W_dec, "b_dec": w.b_dec}
    if w.threshold is not None:
        state["threshold"] = w.threshold
    with torch.device("meta"):
        sae = cls(cfg)
    state = {name: t.to(dtype).contiguous() for name, t in state.items()}
    if "threshold" in state and meta.architecture == "batchtopk":
        state["threshold"] = state["threshold"].float()
    sae.load_state_dict(state, assign=True)
    sae.eval()
    return sae.to(device) if device is not None else sae


def _subset_k(meta: Meta, n: int) -> int | None:
    """``k`` for an SAE holding ``n`` of the features (at most ``n``)."""
    if meta.k is None:
        return None
    if meta.architecture == "topk":
        warnings.warn(
            f"Loaded {n} features of a TopK SAE (k={meta.k}): the top-k now runs among the "
            "loaded features only, so their activations can differ from the full SAE's "
            "(a feature may win here and lose there). Encoder and decoder directions are "
            "exact. Load all features for exact TopK codes.",
            UserWarning,
            stacklevel=5,
        )
    return min(meta.k, n)
