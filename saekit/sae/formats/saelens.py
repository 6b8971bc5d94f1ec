"""SAELens layout: ``cfg.json`` + ``sae_weights.safetensors`` (+ ``sparsity.safetensors``).

Tensors: ``W_enc [d_in, d_sae]``, ``b_enc``, ``W_dec [d_sae, d_in]``, ``b_dec``, and for
JumpReLU ``threshold [d_sae]``. ``cfg.json`` (SAELens 6.x): ``architecture``
(``"standard"``, ``"topk"``, ``"jumprelu"``), ``d_in``, ``d_sae``, ``dtype``,
``apply_b_dec_to_input``, ``normalize_activations``, ``reshape_activations``, ``k`` and
``rescale_acts_by_decoder_norm`` for TopK, and ``metadata`` (``model_name``,
``hook_name``, ...). SAELens saves BatchTopK SAEs as JumpReLU with one shared threshold
and ``metadata.training_architecture = "batchtopk"``; saekit does the same, and loads
such files back as :class:`~saekit.sae.BatchTopKSAE`. Pre-6.0 configs (``hook_point``,
``activation_fn_str``, keys at the top level) load too.

Loading folds SAELens options that saekit's SAEs do not have into the weights, with
identical outputs: ``apply_b_dec_to_input=False`` (into ``b_enc``),
``rescale_acts_by_decoder_norm`` (decoder norms into the encoder) and a legacy
``scaling_factor`` (into ``W_dec``).

Example:
    >>> from saekit.sae import load_sae, save_sae  # doctest: +SKIP
    >>> save_sae(sae, "out/my_sae"); sae2 = load_sae("out/my_sae")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from saekit._storage import write_folder
from saekit.errors import FormatError, SaekitError
from saekit.sae.base import SAE
from saekit.sae.formats._build import Meta, Weights, build_sae, check_shapes, feature_list, find_beside_cfg
from saekit.sae.formats._hooks import hook_to_site, site_to_hook
from saekit.sae.formats._json import read_json, require, to_float, to_int
from saekit.sae.formats._tensors import TensorReader, open_safetensors, read_tensors, require_keys

NAME = "saelens"
CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
SPARSITY = "sparsity.safetensors"
LOOKS_FOR = f"{CFG} + {WEIGHTS} (SAELens)"
FORMAT_VERSION = "6.0.0"  # the SAELens cfg layout saekit writes (metadata.sae_lens_version)

_ARCH_OUT = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "jumprelu"}
_SUPPORTED = ("standard", "topk", "jumprelu", "batchtopk", "matryoshka_batchtopk")


def find(path: Path) -> Path | None:
    """The weights file if ``path`` (a folder, or its weights file) is in SAELens's layout."""
    return find_beside_cfg(path, WEIGHTS, CFG)


def load(weights: Path, features: Sequence[int] | None = None, device: Any = None) -> SAE:
    """Load an SAE saved by SAELens (or by :func:`save`); see the module docstring."""
    folder = weights.parent
    cfg_path = folder / CFG
    cfg = read_json(cfg_path)
    require(cfg, ["d_in", "d_sae"], cfg_path, "SAELens")
    md = _metadata(cfg)
    arch = _architecture(cfg, md, cfg_path)
    training = _check_normalisation(cfg, cfg_path)
    d_in, d_sae = to_int(cfg["d_in"], "d_in", cfg_path), to_int(cfg["d_sae"], "d_sae", cfg_path)
    with open_safetensors(weights) as reader:
        spec = _spec(reader, arch)
        check_shapes({n: reader.shape(n) for n in spec}, _expected(spec, d_in, d_sae), cfg_path)
        feats = feature_list(features, d_sae, folder)
        t = read_tensors(reader, spec, feats)
    t = {n: v.to(_dtype(cfg, v.dtype)) for n, v in t.items()}
    w = _fold(t, cfg)
    meta = _meta(cfg, md, arch, training, cfg_path)
    if arch == "batchtopk":
        meta, w = _batchtopk_threshold(meta, w, t)
    return build_sae(w, meta, path=folder, fmt=NAME, features=feats, full_d_sae=d_sae,
                     device=device)


def save(sae: SAE, folder: Path, log_sparsity: Tensor | None = None) -> Path:
    """Write ``sae`` in SAELens's layout (atomically); returns the folder.

    Args:
        sae: any saekit SAE.
        folder: target folder (created; existing files of the same names are replaced).
        log_sparsity: optional ``[d_sae]`` log10 feature density, written to
            ``sparsity.safetensors`` as SAELens does.
    """
    from safetensors.torch import save_file

    tensors = _tensors_out(sae)
    cfg = _cfg_out(sae)
    files = {WEIGHTS: lambda p: save_file(tensors, str(p), metadata={"format": "pt"})}
    if log_sparsity is not None:
        sp = {"sparsity": log_sparsity.detach().float().cpu().contiguous()}
        if sp["sparsity"].shape != (sae.d_sae,):
            raise SaekitError(
                f"log_sparsity has shape {tuple(sp['sparsity'].shape)}; expected "
                f"({sae.d_sae},), one value per feature."
            )
        files[SPARSITY] = lambda p: save_file(sp, str(p))
    text = json.dumps(cfg, indent=2)
    files[CFG] = lambda p: p.write_text(text, encoding="utf-8")
    # an old sparsity file described the SAE being replaced: not carried over
    write_folder(Path(folder), files, drop=(SPARSITY,))
    return Path(folder)


def load_log_sparsity(folder: Path, features: Sequence[int] | None = None) -> Tensor | None:
    """The ``[d_sae]`` (or ``[len(features)]``) log10 feature density, if the folder has it."""
    path = Path(folder) / SPARSITY
    if not path.is_file():
        return None
    with open_safetensors(path) as reader:
        require_keys(reader, ["sparsity"], "SAELens sparsity")
        return read_tensors(reader, {"sparsity": 0}, features)["sparsity"]


# --- reading -------------------------------------------------------------------------


def _metadata(cfg: dict[str, Any]) -> dict[str, Any]:
    """6.x keeps metadata in ``cfg["metadata"]``; pre-6.0 at the top level."""
    md = dict(cfg.get("metadata") or {})
    for old, new in (("model_name", "model_name"), ("hook_name", "hook_name"),
                     ("hook_point", "hook_name"), ("hook_head_index", "hook_head_index"),
                     ("hook_point_head_index", "hook_head_index"),
                     ("context_size", "context_size"), ("dataset_path", "dataset_path")):
        if md.get(new) is None and cfg.get(old) is not None:
            md[new] = cfg[old]
    return md


def _architecture(cfg: dict[str, Any], md: dict[str, Any], path: Path) -> str:
    raw = cfg.get("architecture")
    if raw is None:  # pre-6.0
        act = cfg.get("activation_fn_str") or cfg.get("activation_fn") or "relu"
        raw = "topk" if act == "topk" else "standard"
    if raw not in _SUPPORTED:
        raise FormatError(
            f"{path} holds a SAELens {raw!r} SAE; saekit reads {list(_SUPPORTED)}. "
            "Convert it with SAELens, or use SAELens to work with it."
        )
    if raw == "jumprelu" and md.get("training_architecture") in ("batchtopk",
                                                                  "matryoshka_batchtopk"):
        return "batchtopk"
    return {"standard": "relu", "matryoshka_batchtopk": "batchtopk"}.get(raw, raw)


def _check_normalisation(cfg: dict[str, Any], path: Path) -> dict[str, Any]:
    norm = cfg.get("normalize_activations") or "none"
    if norm in (False, "none"):
        return {}
    if norm in (True, "expected_average_only_in"):
        warnings.warn(
            f"{path}: the SAE was trained on activations rescaled to an average norm of "
            "sqrt(d_in), and the scale factor is not in the file. saekit feeds it raw "
            "activations; multiply them by that factor yourself if you know it.",
            UserWarning,
            stacklevel=4,
        )
        return {"normalize_activations": "expected_average_only_in"}
    raise FormatError(
        f"{path} has normalize_activations={norm!r}: the SAE normalises each input at run "
        "time, which saekit's SAEs do not do. Fold the normalisation into the weights "
        "with SAELens first, or use SAELens for this SAE."
    )


def _spec(reader: TensorReader, arch: str) -> dict[str, int | None]:
    """Tensor name -> feature dimension, for the tensors this file should have."""
    require_keys(reader, ["W_enc", "b_enc", "W_dec", "b_dec"], "SAELens")
    spec: dict[str, int | None] = {"W_enc": 1, "b_enc": 0, "W_dec": 0, "b_dec": None}
    keys = reader.keys()
    if arch == "jumprelu" or (arch == "batchtopk" and "topk_threshold" not in keys):
        name = "log_threshold" if "log_threshold" in keys else "threshold"
        require_keys(reader, [name], "SAELens JumpReLU")
        spec[name] = 0
    elif arch == "batchtopk":
        spec["topk_threshold"] = None
    if "scaling_factor" in keys:
        spec["scaling_factor"] = 0
    return spec


def _expected(spec: dict[str, int | None], d_in: int, d_sae: int) -> dict[str, tuple[int, ...]]:
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in),
              "b_dec": (d_in,), "threshold": (d_sae,), "log_threshold": (d_sae,),
              "topk_threshold": (), "scaling_factor": (d_sae,)}
    return {n: shapes[n] for n in spec}


def _dtype(cfg: dict[str, Any], default: torch.dtype) -> torch.dtype:
    name = str(cfg.get("dtype") or "").removeprefix("torch.")
    dtype = getattr(torch, name, None)
    return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else default


@torch.no_grad()
def _fold(t: dict[str, Tensor], cfg: dict[str, Any]) -> Weights:
    """Fold SAELens-only options into plain weights (same encode/decode outputs)."""
    W_enc, b_enc, W_dec, b_dec = t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"]
    if cfg.get("apply_b_dec_to_input", True) is False:
        b_enc = (b_enc.double() + b_dec.double() @ W_enc.double()).to(b_enc.dtype)
    if cfg.get("rescale_acts_by_decoder_norm"):
        norms = W_dec.norm(dim=-1)  # [n]
        W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms[:, None]
    if "scaling_factor" in t:
        W_dec = W_dec * t["scaling_factor"][:, None]
    thr = t.get("threshold")
    if "log_threshold" in t:
        thr = t["log_threshold"].exp()
    return Weights(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec, threshold=thr)


def _meta(
    cfg: dict[str, Any], md: dict[str, Any], arch: str, training: dict[str, Any], path: Path
) -> Meta:
    hook = str(md.get("hook_name") or "")
    site = str(md.get("saekit_site") or hook_to_site(hook))
    train = dict(md.get("saekit_training") or {})
    train.update(training)
    train["saelens_metadata"] = {k: v for k, v in md.items() if not k.startswith("saekit_")}
    if hook and not site:
        train["hook_name"] = hook
    for key in ("reshape_activations", "hook_head_index"):
        value = cfg.get(key, md.get(key))
        if value not in (None, "none"):
            train[key] = value
    return Meta(architecture=arch, k=_k(cfg, md, arch, path), model_name=str(
        md.get("model_name") or ""), site=site, training=train, name=str(md.get("saekit_name") or ""))


def _k(cfg: dict[str, Any], md: dict[str, Any], arch: str, path: Path) -> int | None:
    if arch == "topk":
        k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
        require({"k": k}, ["k"], path, "SAELens TopK")
        return to_int(k, "k", path)
    if arch == "batchtopk":
        details = md.get("training_architecture_details") or {}
        k = cfg.get("k") or details.get("k")
        require({"k": k}, ["k"], path, "SAELens BatchTopK")
        return max(1, round(to_float(k, "k", path)))  # SAELens allows a fractional k
    return None


def _batchtopk_threshold(meta: Meta, w: Weights, t: dict[str, Tensor]) -> tuple[Meta, Weights]:
    """One shared threshold -> BatchTopK; per-feature thresholds stay JumpReLU."""
    if "topk_threshold" in t:
        return meta, Weights(w.W_enc, w.b_enc, w.W_dec, w.b_dec, t["topk_threshold"].float())
    thr = w.threshold
    assert thr is not None
    if bool((thr == thr[0]).all()):
        return meta, Weights(w.W_enc, w.b_enc, w.W_dec, w.b_dec, thr[0].float())
    training = dict(meta.training, trained_as="batchtopk")
    return Meta("jumprelu", None, meta.model_name, meta.site, training, meta.name), w


# --- writing -------------------------------------------------------------------------


def _tensors_out(sae: SAE) -> dict[str, Tensor]:
    state = {n: p.detach().cpu().contiguous().clone() for n, p in sae.state_dict().items()}
    out = {n: state[n] for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if sae.architecture == "jumprelu":
        out["threshold"] = state["threshold"]
    elif sae.architecture == "batchtopk":
        out["threshold"] = torch.full((sae.d_sae,), float(state["threshold"]),
                                      dtype=state["W_dec"].dtype)
    return out


def _cfg_out(sae: SAE) -> dict[str, Any]:
    c = sae.cfg
    training = {k: v for k, v in c.training.items() if k != "saelens_metadata"}
    md: dict[str, Any] = dict(c.training.get("saelens_metadata") or {})
    hook = site_to_hook(c.site) or str(c.training.get("hook_name") or c.site)
    md.update(model_name=c.model_name, hook_name=hook, sae_lens_version=FORMAT_VERSION,
              saekit_site=c.site, saekit_training=_jsonable(training))
    if c.name:
        md["saekit_name"] = c.name
    md.setdefault("hook_head_index", None)
    cfg: dict[str, Any] = {
        "architecture": _ARCH_OUT[sae.architecture], "d_in": c.d_in, "d_sae": c.d_sae,
        "dtype": c.dtype, "device": "cpu", "apply_b_dec_to_input": True,
        "normalize_activations": "none", "reshape_activations": "none",
    }
    if sae.architecture == "topk":
        cfg.update(k=c.k, rescale_acts_by_decoder_norm=False)
    if sae.architecture == "batchtopk":
        md.update(training_architecture="batchtopk", training_architecture_details={"k": c.k})
    cfg["metadata"] = md
    return cfg


def _jsonable(training: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(training)
    except (TypeError, ValueError) as err:
        bad = [k for k, v in training.items() if not _dumps_ok(v)]
        raise SaekitError(
            f"cfg.training must be JSON-serialisable to save the SAE; {bad} are not "
            f"({err}). Store plain numbers, strings, lists or dicts there."
        ) from err
    return training


def _dumps_ok(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
