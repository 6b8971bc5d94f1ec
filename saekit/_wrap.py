"""Turning whatever the user passes to ``load_model`` into a :class:`saekit.Model`."""

from __future__ import annotations

import os
from typing import Any

import torch

from saekit import _loading
from saekit._sites import find_structure
from saekit.errors import ModelLoadError


def wrap(
    model: Any,
    *,
    tokenizer: Any,
    device: str | torch.device | None,
    dtype: torch.dtype | str | None,
    remote: bool | str,
) -> Any:
    import nnsight

    from saekit.model import Model

    dt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if remote:
        return _remote(model, remote, dt)
    dev = _loading.resolve_device(device)
    if isinstance(model, nnsight.Envoy):
        if getattr(model, "tokenizer", None) is None:
            raise ModelLoadError("This nnsight model has no tokenizer; wrap it with one.")
        return Model(model, name=_name_of(model._module), remote=False)
    if model is None:
        folder = _loading.default_model_folder()
        hf, tok = _loading.load_hf(str(folder), dt or torch.float32)
        name = _loading.DEFAULT_MODEL
    elif isinstance(model, (str, os.PathLike)):
        hf, tok = _loading.load_hf(str(model), dt)
        name = str(model)
    elif isinstance(model, torch.nn.Module):
        if tokenizer is None:
            raise ModelLoadError(
                f"Got a {type(model).__name__} without a tokenizer. Pass it too: "
                "load_model(hf_model, tokenizer=tok)."
            )
        hf, tok, name = model, tokenizer, _name_of(model)
    else:
        raise ModelLoadError(
            f"load_model got a {type(model).__name__}. Expected None (the default model), "
            "a hub id or folder (str), a transformers model with tokenizer=, or an nnsight model."
        )
    find_structure(hf)  # fail early, with saekit's message, on a non-decoder model
    hf = hf.to(device=dev, dtype=dt) if dt else hf.to(dev)
    hf.eval()
    lm = nnsight.TransformersModel(hf, tokenizer=tok, task="text-generation")
    return Model(lm, name=name, remote=False)


def _remote(model: Any, remote: bool | str, dtype: torch.dtype | None) -> Any:
    import nnsight

    from saekit.model import Model

    if not isinstance(model, str) or os.path.isdir(model) or model.count("/") != 1:
        raise ModelLoadError(
            f"remote=True needs a Hugging Face repo id like 'meta-llama/Llama-3.1-8B', got "
            f"{model!r}. A model loaded from a local folder or object cannot run on NDIF; "
            "use remote=False to run it here."
        )
    if remote is True and not (os.environ.get("NDIF_API_KEY") or nnsight.CONFIG.API.APIKEY):
        raise ModelLoadError(
            "remote=True needs an NDIF API key. Get one at https://login.ndif.us and set "
            "NDIF_API_KEY in the environment (or nnsight.CONFIG.set_default_api_key(key))."
        )
    kw = {"dtype": dtype} if dtype else {}
    try:
        lm = nnsight.TransformersModel(model, task="text-generation", **kw)
    except OSError as e:
        raise ModelLoadError(
            f"Could not fetch the config of {model!r} from the hub ({e}). Remote models need "
            "the hub for their config and tokenizer; check the id and your connection."
        ) from e
    return Model(lm, name=model, remote=remote)


def _name_of(module: torch.nn.Module) -> str:
    cfg = getattr(module, "config", None)
    return str(getattr(cfg, "_name_or_path", "") or type(module).__name__)
