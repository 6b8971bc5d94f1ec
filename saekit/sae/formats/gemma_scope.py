"""Gemma Scope (Google DeepMind): JumpReLU SAEs in ``params.npz`` or ``params.safetensors``.

Gemma Scope (Gemma 2) ships ``<release>/layer_L/width_W/average_l0_N/params.npz``;
Gemma Scope 2 (Gemma 3) ships ``params.safetensors`` (with a ``config.json``). Both
hold ``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_enc``, ``b_dec`` and
``threshold [d_sae]`` (Gemma Scope 2 spells the weights ``w_enc`` / ``w_dec``). The
encoder reads ``x`` itself, not ``x - b_dec``; loading folds ``b_dec @ W_enc`` into
``b_enc`` so saekit's encoder gives the same codes. Model and site are guessed from
the folder names and the config where present, and the path is kept in
``cfg.training``.

``.npz`` members are read with ``allow_pickle=False``; selecting features from an
``.npz`` reads the arrays whole (the format cannot be sliced), ``.safetensors`` not.

Example:
    >>> from saekit.sae import load_sae
    >>> sae = load_sae("gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71")  # doctest: +SKIP
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from saekit.errors import FormatError
from saekit.sae.base import SAE
from saekit.sae.formats._build import Meta, Weights, build_sae, check_shapes, feature_list
from saekit.sae.formats._hooks import module_to_site
from saekit.sae.formats._json import read_json
from saekit.sae.formats._tensors import (
    DictReader,
    TensorReader,
    open_safetensors,
    read_tensors,
    require_keys,
)

NAME = "gemma_scope"
NAMES = ("params.npz", "params.safetensors")
LOOKS_FOR = "params.npz or params.safetensors (Gemma Scope)"

_FEATURE_DIM: dict[str, int | None] = {"W_enc": 1, "W_dec": 0, "b_enc": 0, "b_dec": None,
                                       "threshold": 0}
# folder-name tag -> saekit site kind, used when no config.json names the hook point.
# Attention SAEs read the concatenated head outputs (hook_z), which is no saekit site.
_KINDS = (("resid_post", "resid_post"), ("mlp_out", "mlp_out"), ("-res", "resid_post"),
          ("-mlp", "mlp_out"))


def find(path: Path) -> Path | None:
    """The params file if ``path`` is a Gemma Scope SAE folder (or its params file)."""
    if path.is_dir():
        return next((path / n for n in NAMES if (path / n).is_file()), None)
    return path if path.name in NAMES and path.is_file() else None


def load(weights: Path, features: Sequence[int] | None = None, device: Any = None) -> SAE:
    """Load a Gemma Scope JumpReLU SAE as a :class:`~saekit.sae.JumpReLUSAE`."""
    if weights.suffix == ".npz":
        return _load(DictReader(weights, _read_npz(weights)), features, device)
    with open_safetensors(weights) as reader:
        return _load(reader, features, device)


def _load(reader: TensorReader, features: Sequence[int] | None, device: Any) -> SAE:
    names = _names(reader)
    require_keys(reader, list(names.values()), "Gemma Scope")
    if "affine_skip_connection" in reader.keys():
        raise FormatError(f"{reader.path} is a transcoder (it has an affine skip connection), "
                          "not an SAE; saekit does not run transcoders.")
    d_in, d_sae = reader.shape(names["W_enc"])
    check_shapes({k: reader.shape(v) for k, v in names.items()},
                 {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_enc": (d_sae,),
                  "b_dec": (d_in,), "threshold": (d_sae,)}, reader.path)
    feats = feature_list(features, d_sae, reader.path)
    raw = read_tensors(reader, {names[k]: d for k, d in _FEATURE_DIM.items()}, feats)
    t = {k: raw[v] for k, v in names.items()}
    with torch.no_grad():
        b_enc = (t["b_enc"].double() + t["b_dec"].double() @ t["W_enc"].double())
    w = Weights(W_enc=t["W_enc"], b_enc=b_enc.to(t["b_enc"].dtype), W_dec=t["W_dec"],
                b_dec=t["b_dec"], threshold=t["threshold"])
    return build_sae(w, _meta(reader.path), path=reader.path.parent, fmt=NAME,
                     features=feats, full_d_sae=d_sae, device=device)


def _names(reader: TensorReader) -> dict[str, str]:
    """saekit name -> name in the file (``W_enc`` or ``w_enc``)."""
    keys = reader.keys()
    return {k: (k if k in keys else k.lower()) for k in _FEATURE_DIM}


def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: torch.from_numpy(np.ascontiguousarray(data[k])) for k in data.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise FormatError(
                f"Refused to load {path}: it stores Python objects, and unpickling them could "
                "run arbitrary code. A Gemma Scope params.npz holds plain arrays only."
            ) from err
        raise FormatError(f"Could not read {path} ({err}); it may be corrupt.") from err
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise FormatError(
            f"Could not read {path} ({type(err).__name__}: {err}). It is probably truncated "
            "or corrupt; download it again."
        ) from err


def _meta(params: Path) -> Meta:
    folder = params.parent
    cfg_path = folder / "config.json"
    cfg = read_json(cfg_path) if cfg_path.is_file() else {}
    parts = [p.lower() for p in folder.parts[-4:]]
    training: dict[str, Any] = {"gemma_scope_path": "/".join(folder.parts[-4:])}
    if cfg:
        training["gemma_scope_config"] = cfg
    site = module_to_site(str(cfg.get("hf_hook_point_in") or ""))
    layer = next((m.group(1) for p in parts if (m := re.search(r"layer_(\d+)", p))), None)
    kind = next((k for p in parts for tag, k in _KINDS if tag in p), None)
    if not cfg and layer is not None and kind is not None:
        site = f"{kind}.{layer}"
    return Meta("jumprelu", None, str(cfg.get("model_name") or _model_from(parts)), site,
                training)


def _model_from(parts: list[str]) -> str:
    """``gemma-scope-2b-pt-res`` -> ``google/gemma-2-2b``; ``""`` when no part says."""
    for p in parts:
        m = re.match(r"gemma-scope-(\d+b)-(pt|it)", p)
        if m:
            return f"google/gemma-2-{m.group(1)}" + ("-it" if m.group(2) == "it" else "")
    return ""
