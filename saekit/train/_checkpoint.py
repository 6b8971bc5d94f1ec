"""Training checkpoints: one folder per step, written atomically.

Layout of ``<dir>/step-00000120/``:

- ``state.safetensors``: every tensor of the run (SAE weights and buffers, Adam
  moments and step counts, dead-latent counters), keys ``"<member>.<kind>.<name>"``;
- ``meta.json``: step, tokens, normalisation scale, the training and SAE configs, and
  the metric history so far.

- ``manifest.json``: size and SHA-256 of both, checked when the checkpoint is read.

A checkpoint is written by :func:`saekit._storage.write_folder`: built in a hidden
temporary folder beside the final one and renamed into place, so a crash or a full disk
never leaves a half-written ``step-*`` folder (nor damages the one being re-saved), and
temporaries of a killed run are removed by the next one; the newest complete folder is
the one to resume from. Old checkpoints are pruned by renaming them away first. No pickle:
tensors go through safetensors, everything else through JSON. Training draws no random
numbers after initialisation (the data order is a function of the seed and the step),
so no RNG state is needed to resume exactly.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

from saekit import _storage
from saekit.errors import FormatError

log = logging.getLogger("saekit")
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
    final = folder / f"step-{step:08d}"
    state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    body = json.dumps({"format_version": FORMAT_VERSION, **meta})
    _storage.write_folder(final, {
        _TENSORS: lambda p: save_file(state, str(p)),
        _META: lambda p: p.write_text(body, encoding="utf-8"),
    }, keep_others=False)
    for stale in checkpoint_dirs(folder)[:-keep]:
        _storage.remove(stale)
    return final


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Read one checkpoint folder: ``(meta, tensors)``, checked against its manifest.

    Raises:
        FormatError: the folder is incomplete, truncated or corrupt.
    """
    fix = ("It may be truncated or corrupt: delete that folder to resume from the one before "
           "it, or pass resume=False to start over.")
    try:
        _storage.verify_if_saekit(path)  # checkpoints written before manifests: read as they are
    except FormatError as e:
        raise FormatError(f"Checkpoint {path} is damaged ({e}) {fix}") from None
    with _storage.reading(path, "checkpoint", fix):
        meta = json.loads((path / _META).read_text())
        tensors = load_file(path / _TENSORS)
    if meta.get("format_version") != FORMAT_VERSION:
        raise FormatError(
            f"Checkpoint {path} has format_version {meta.get('format_version')!r}; this "
            f"saekit reads version {FORMAT_VERSION}. Resume it with the saekit that wrote it."
        )
    return meta, tensors


def drop_broken(folder: Path) -> list[Path]:
    """Remove the newest checkpoints that fail their manifest check, until an intact one
    (or none) is newest; each removal is noted in one line on the ``saekit`` logger.

    For callers that treat checkpoints as a cache (the demo): training itself refuses a
    broken checkpoint rather than silently resuming from an older one.

    Returns:
        The folders removed.
    """
    removed: list[Path] = []
    for path in reversed(checkpoint_dirs(folder)):
        try:
            _storage.verify_if_saekit(path)
            return removed
        except FormatError as err:
            log.warning("saekit: checkpoint %s is broken (%s); resuming from the one before it.",
                        path, _storage.one_line(err))
            _storage.remove(path)
            removed.append(path)
    return removed


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint folder, or ``None``."""
    dirs = checkpoint_dirs(folder)
    return dirs[-1] if dirs else None
