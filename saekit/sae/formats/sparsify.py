"""sparsify (EleutherAI/sparsify): one folder per hookpoint, ``cfg.json`` + ``sae.safetensors``.

A training run writes ``<run>/config.json`` (model, dataset, ...) and a folder per
hookpoint named after the module (``layers.6``, ``layers.6.mlp``), each holding
``cfg.json`` (``d_in``, ``k``, ``num_latents`` or ``expansion_factor``,
``activation``, ``transcode``, ``skip_connection``, ...) and ``sae.safetensors`` with
``encoder.weight [d_sae, d_in]``, ``encoder.bias [d_sae]``, ``W_dec [d_sae, d_in]``,
``b_dec [d_in]``. The SAE is a TopK SAE: ``topk(relu(encoder(x - b_dec)))``.
Load one hookpoint's folder; the run folder lists them in the error it raises.

Example:
    >>> from saekit.sae import load_sae
    >>> sae = load_sae("sae-run/layers.6")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from saekit.errors import FormatError
from saekit.sae.base import SAE
from saekit.sae.formats._build import Meta, Weights, build_sae, check_shapes, feature_list, find_beside_cfg
from saekit.sae.formats._hooks import module_to_site
from saekit.sae.formats._json import read_json, require, to_int
from saekit.sae.formats._tensors import open_safetensors, read_tensors, require_keys

NAME = "sparsify"
CFG = "cfg.json"
WEIGHTS = "sae.safetensors"
LOOKS_FOR = f"{CFG} + {WEIGHTS} (sparsify)"

_SPEC: dict[str, int | None] = {"encoder.weight": 0, "encoder.bias": 0, "W_dec": 0, "b_dec": None}


def find(path: Path) -> Path | None:
    """The weights file if ``path`` (a hookpoint folder, or its weights) is sparsify's."""
    return find_beside_cfg(path, WEIGHTS, CFG)


def load(weights: Path, features: Sequence[int] | None = None, device: Any = None) -> SAE:
    """Load one sparsify SAE (a hookpoint folder)."""
    cfg_path = weights.parent / CFG
    cfg = read_json(cfg_path)
    require(cfg, ["d_in", "k"], cfg_path, "sparsify")
    _check_supported(cfg, cfg_path)
    d_in = to_int(cfg["d_in"], "d_in", cfg_path)
    d_sae = _num_latents(cfg, d_in, cfg_path)
    with open_safetensors(weights) as reader:
        require_keys(reader, list(_SPEC), "sparsify")
        if "W_skip" in reader.keys():
            raise FormatError(f"{weights} has a skip connection (W_skip), which saekit's "
                              "SAEs do not have; use sparsify for this SAE.")
        check_shapes({n: reader.shape(n) for n in _SPEC},
                     {"encoder.weight": (d_sae, d_in), "encoder.bias": (d_sae,),
                      "W_dec": (d_sae, d_in), "b_dec": (d_in,)}, cfg_path)
        feats = feature_list(features, d_sae, weights.parent)
        t = read_tensors(reader, _SPEC, feats)
    w = Weights(W_enc=t["encoder.weight"].T, b_enc=t["encoder.bias"], W_dec=t["W_dec"],
                b_dec=t["b_dec"])
    return build_sae(w, _meta(cfg, weights.parent, cfg_path), path=weights.parent, fmt=NAME,
                     features=feats, full_d_sae=d_sae, device=device)


def _check_supported(cfg: dict[str, Any], path: Path) -> None:
    if cfg.get("activation", "topk") != "topk":
        raise FormatError(f"{path}: activation={cfg['activation']!r}; saekit reads sparsify's "
                          "'topk' SAEs only.")
    for flag in ("transcode", "skip_connection", "signed", "embed_skip", "gram_lookup"):
        if cfg.get(flag):
            raise FormatError(f"{path}: {flag}=true; that variant is not a plain SAE and "
                              "saekit cannot run it. Use sparsify for it.")


def _num_latents(cfg: dict[str, Any], d_in: int, path: Path) -> int:
    if cfg.get("num_latents"):
        return to_int(cfg["num_latents"], "num_latents", path)
    require(cfg, ["expansion_factor"], path, "sparsify (num_latents is 0)")
    return d_in * to_int(cfg["expansion_factor"], "expansion_factor", path)


def _meta(cfg: dict[str, Any], folder: Path, cfg_path: Path) -> Meta:
    run_cfg_path = folder.parent / "config.json"
    run = read_json(run_cfg_path) if run_cfg_path.is_file() else {}
    hookpoint = folder.name
    training = {"hookpoint": hookpoint, "sparsify_cfg": cfg}
    for key in ("dataset", "ctx_len", "lr", "auxk_alpha", "init_seeds"):
        if key in run:
            training[key] = run[key]
    return Meta("topk", to_int(cfg["k"], "k", cfg_path), str(run.get("model") or ""),
                module_to_site(hookpoint), training)
