"""dictionary_learning (saprmarks/dictionary_learning): ``ae.pt`` + ``config.json``.

``ae.pt`` is a ``torch.save``d state dict; ``config.json`` is
``{"trainer": {"dict_class": ..., "activation_dim", "dict_size", "k", "lm_name",
"layer", "submodule_name", ...}, "buffer": {...}}``. Classes read:

==========================  ===========================================  ==========
dict_class                  state dict                                   saekit
==========================  ===========================================  ==========
``AutoEncoder``             ``encoder.weight [d_sae, d_in]``,            ReLU
                            ``encoder.bias``, ``decoder.weight
                            [d_in, d_sae]``, ``bias`` (input and output)
``AutoEncoderNew``          ``encoder.*``, ``decoder.weight``,           ReLU
                            ``decoder.bias`` (no input bias)
``AutoEncoderTopK``         ``encoder.*``, ``decoder.weight``, ``b_dec``,  TopK
                            ``k``, ``threshold``
``BatchTopKSAE``            same keys as TopK                            BatchTopK
``MatryoshkaBatchTopKSAE``  ``W_enc``, ``b_enc``, ``W_dec``, ``b_dec``,     BatchTopK
                            ``k``, ``threshold``, ``group_sizes``
``JumpReluAutoEncoder``     ``W_enc``, ``b_enc``, ``W_dec``, ``b_dec``,     JumpReLU
                            ``threshold [d_sae]`` (no input bias)
==========================  ===========================================  ==========

Weights are kept as trained (``from_pretrained``'s optional decoder normalisation is
not applied). The file is read with ``torch.load(weights_only=True)``: a ``.pt`` whose
pickle carries anything but tensors and plain containers is refused, never run.

Example:
    >>> from saekit.sae import load_sae
    >>> sae = load_sae("dictionaries/resid_post_layer_3/trainer_0")  # doctest: +SKIP
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from saekit.errors import FormatError
from saekit.sae.base import SAE
from saekit.sae.formats._build import Meta, Weights, build_sae, feature_list
from saekit.sae.formats._hooks import submodule_to_site
from saekit.sae.formats._json import read_json
from saekit.sae.formats._tensors import DictReader, read_tensors, require_keys

NAME = "dictionary_learning"
WEIGHTS = "ae.pt"
CFG = "config.json"
LOOKS_FOR = f"{WEIGHTS} (+ {CFG}) (dictionary_learning)"

# dict_class -> (saekit architecture, tensor name -> feature dim)
_LINEAR = {"encoder.weight": 0, "encoder.bias": 0, "decoder.weight": 1}
_PARAMS = {"W_enc": 1, "b_enc": 0, "W_dec": 0, "b_dec": None}
_CLASSES: dict[str, tuple[str, dict[str, int | None]]] = {
    "AutoEncoder": ("relu", {**_LINEAR, "bias": None}),
    "AutoEncoderNew": ("relu", {**_LINEAR, "decoder.bias": None}),
    "AutoEncoderTopK": ("topk", {**_LINEAR, "b_dec": None, "k": None}),
    "BatchTopKSAE": ("batchtopk", {**_LINEAR, "b_dec": None, "k": None, "threshold": None}),
    "MatryoshkaBatchTopKSAE": ("batchtopk", {**_PARAMS, "k": None, "threshold": None,
                                             "group_sizes": None}),
    "JumpReluAutoEncoder": ("jumprelu", {**_PARAMS, "threshold": 0}),
}


def find(path: Path) -> Path | None:
    """The ``.pt`` file if ``path`` is a dictionary_learning folder or checkpoint."""
    if path.is_dir():
        return path / WEIGHTS if (path / WEIGHTS).is_file() else None
    return path if path.suffix == ".pt" and path.is_file() else None


def load(weights: Path, features: Sequence[int] | None = None, device: Any = None) -> SAE:
    """Load a dictionary_learning SAE from its ``.pt`` (``config.json`` beside it)."""
    trainer = _trainer_config(weights)
    reader = DictReader(weights, _load_state(weights, mmap=features is not None))
    cls = _dict_class(reader, trainer)
    arch, spec = _CLASSES[cls]
    require_keys(reader, list(spec), f"dictionary_learning {cls}")
    d_sae = reader.shape("encoder.bias" if "encoder.bias" in spec else "b_enc")[0]
    feats = feature_list(features, d_sae, weights)
    t = read_tensors(reader, spec, feats)
    w = _weights(cls, t)
    meta = _meta(arch, t, trainer, cls)
    return build_sae(w, meta, path=weights, fmt=NAME, features=feats, full_d_sae=d_sae,
                     device=device)


def _load_state(path: Path, mmap: bool) -> dict[str, Tensor]:
    """``torch.load(weights_only=True)``, every failure as :class:`FormatError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise FormatError(
            f"Refused to load {path}: it contains Python objects other than tensors, and "
            "unpickling them could run arbitrary code. Only state dicts of tensors are "
            "read. If you trust the file, re-save just its tensors: "
            "torch.save(obj.state_dict(), 'ae.pt') (or safetensors)."
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        if mmap and "mmap" in str(err):
            return _load_state(path, mmap=False)  # legacy (non-zip) .pt cannot be mapped
        raise FormatError(
            f"Could not read {path} ({type(err).__name__}: {err}). The file is probably "
            "truncated or corrupt; save or download it again."
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise FormatError(
            f"{path} does not hold a state dict (a dict of tensors) but a "
            f"{type(state).__name__}; save the SAE with torch.save(ae.state_dict(), path)."
        )
    return state


def _trainer_config(weights: Path) -> dict[str, Any]:
    """``config.json``'s ``trainer`` section (next to the weights or one folder up)."""
    for folder in (weights.parent, weights.parent.parent):
        if (folder / CFG).is_file():
            return dict(read_json(folder / CFG).get("trainer") or {})
    return {}


def _dict_class(reader: DictReader, trainer: dict[str, Any]) -> str:
    named = trainer.get("dict_class")
    if named is not None:
        if named not in _CLASSES:
            raise FormatError(
                f"{reader.path}: dictionary_learning class {named!r} is not supported; "
                f"saekit reads {sorted(_CLASSES)}."
            )
        return str(named)
    keys = reader.keys()
    if {"k", "threshold"} <= keys and "encoder.weight" in keys:
        raise FormatError(
            f"{reader.path} holds a k and a threshold, which both AutoEncoderTopK and "
            f"BatchTopKSAE save, and there is no {CFG} saying which. Put the training "
            f'{CFG} next to it, or write one: {{"trainer": {{"dict_class": "BatchTopKSAE"}}}}.'
        )
    for cls, (_, spec) in _CLASSES.items():
        if set(spec) == keys:
            return cls
    raise FormatError(
        f"{reader.path} has tensors {sorted(keys)}, which match no dictionary_learning class "
        f"saekit reads ({sorted(_CLASSES)}); add the training {CFG} next to it."
    )


@torch.no_grad()
def _weights(cls: str, t: dict[str, Tensor]) -> Weights:
    if "encoder.weight" in t:
        W_enc, b_enc, W_dec = t["encoder.weight"].T, t["encoder.bias"], t["decoder.weight"].T
        b_dec = t.get("bias", t.get("b_dec", t.get("decoder.bias")))
        assert b_dec is not None
    else:
        W_enc, b_enc, W_dec, b_dec = t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"]
    if cls in ("AutoEncoderNew", "JumpReluAutoEncoder"):  # encoder sees x, not x - b_dec
        b_enc = (b_enc.double() + b_dec.double() @ W_enc.double()).to(b_enc.dtype)
    thr = t.get("threshold")
    if thr is not None and cls != "JumpReluAutoEncoder":
        thr = thr.float().reshape(())
    return Weights(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec, threshold=thr)


def _meta(arch: str, t: dict[str, Tensor], trainer: dict[str, Any], cls: str) -> Meta:
    k = int(t["k"].item()) if "k" in t else None
    training: dict[str, Any] = {"dict_class": cls}
    if trainer:
        training["dictionary_learning_trainer"] = trainer
    if "group_sizes" in t:
        training["group_sizes"] = [int(g) for g in t["group_sizes"].tolist()]
    submodule = str(trainer.get("submodule_name") or "")
    site = submodule_to_site(submodule)
    if not site and submodule:
        training["submodule_name"] = submodule
    return Meta(arch, k, str(trainer.get("lm_name") or ""), site, training)
