"""Training checkpoints: one folder per step, written atomically.

Layout of ``<dir>/step-00000120/``:

- ``state.safetensors``: every tensor of the run (SAE weights and buffers, Adam
  moments and step counts, dead-latent counters), keys ``"<member>.<kind>.<name>"``;
- ``meta.json``: step, tokens, normalisation scale, the training and SAE configs, and
  the metric history so far.

A checkpoint is written into a hidden temporary folder beside the final one and
renamed into place (``os.replace``), so a crash never leaves a half-written
``step-*`` folder; the newest complete folder is the one to resume from. No pickle:
tensors go through safetensors, everything else through JSON. Training draws no random
numbers after initialisation (the data order is a function of the seed and the step),
so no RNG state is needed to resume exactly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from saekit.errors import FormatError

FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step-(\d{8,})$")
_TENSORS = "state.safetensors"
_META = "meta.json"


def checkpoint_dirs(folder: Path) -> list[Path]:
    """Complete checkpoint folders under ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(
    folder: Path, step: int, tensors: dict[str, Tensor], meta: dict[str, Any], keep: int
) -> Path:
    """Write a checkpoint for ``step`` atomically; keep only the newest ``keep``.

    Returns:
        The checkpoint's folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}"
    tmp = folder / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp / _TENSORS)
    _write_synced(tmp / _META, json.dumps({"format_version": FORMAT_VERSION, **meta}))
    _fsync_file(tmp / _TENSORS)
    if final.exists():  # re-saving a step (after a resume): swap, then drop the old one
        old = folder / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    for stale in checkpoint_dirs(folder)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read one checkpoint folder: ``(meta, tensors)``.

    Raises:
        FormatError: the folder is incomplete, truncated or corrupt.
    """
    try:
        meta = json.loads((path / _META).read_text())
        tensors = load_file(path / _TENSORS)
    except (OSError, ValueError, SafetensorError) as e:
        raise FormatError(
            f"Checkpoint {path} is unreadable ({type(e).__name__}: {e}). It may be "
            "truncated or corrupt: delete that folder to resume from the one before it, "
            "or pass resume=False to start over."
        ) from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise FormatError(
            f"Checkpoint {path} has format_version {meta.get('format_version')!r}; this "
            f"saekit reads version {FORMAT_VERSION}. Resume it with the saekit that wrote it."
        )
    return meta, tensors


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint folder, or ``None``."""
    dirs = checkpoint_dirs(folder)
    return dirs[-1] if dirs else None


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
