"""Saving and loading :class:`~saekit.analysis.stats.FeatureStats` (parquet + safetensors + JSON).

A save is one folder written by :func:`saekit._storage.write_folder`: built complete
beside the old one and swapped in, so a failed save (disk full) leaves the previous save
loadable. Its ``manifest.json`` (size and SHA-256 of each file) is checked on load;
``stats.json`` holds the format, the info and the vocabulary. Folders written before
the manifest existed (``manifest.json`` holding the format) still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from saekit import _storage
from saekit.errors import FormatError

FORMAT = "saekit.feature_stats"
VERSION = 1
META = "stats.json"
MANIFEST = _storage.MANIFEST
FRAMES = ("summary", "examples", "histograms")
WINDOWS = "windows.safetensors"
_FIX = "Compute the statistics again and save them (stats.save(path))."


def save_parts(path: str | os.PathLike[str], frames: dict[str, pd.DataFrame], windows: dict[str, np.ndarray],
               manifest: dict[str, Any]) -> Path:
    """Write a folder atomically; the previous save stays intact if this one fails."""
    from safetensors.numpy import save_file

    files = {f"{name}.parquet": _parquet_writer(frames[name]) for name in FRAMES}
    files[WINDOWS] = lambda p: save_file({k: np.ascontiguousarray(v) for k, v in windows.items()}, str(p))
    body = json.dumps({"format": FORMAT, "version": VERSION, **manifest}, indent=1).encode()
    files[META] = lambda p: p.write_bytes(body)
    return _storage.write_folder(Path(path), files)


def _parquet_writer(frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    return lambda p: frame.to_parquet(p, index=False)


def load_parts(path: str | os.PathLike[str]) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray], dict]:
    """Read a folder written by :func:`save_parts`, checked against its manifest.

    Raises:
        FormatError: not a FeatureStats save, another format version, or a file
            missing, truncated or corrupt (saying which, and how to fix it).
    """
    from safetensors.numpy import load_file

    folder = Path(path)
    meta = _read_meta(folder)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise FormatError(
            f"{folder} describes format {meta.get('format')!r} version "
            f"{meta.get('version')!r}; expected {FORMAT!r} version {VERSION}. {_FIX}"
        )
    missing = [n for n in [*(f"{f}.parquet" for f in FRAMES), WINDOWS] if not (folder / n).is_file()]
    if missing:
        raise FormatError(f"Saved FeatureStats at {folder} lacks {missing}; save it again.")
    with _storage.reading(folder, "saved FeatureStats", _FIX):
        frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in FRAMES}
        windows = load_file(str(folder / WINDOWS))
    return frames, windows, meta


def _read_meta(folder: Path) -> dict[str, Any]:
    """The save's ``stats.json`` after checking the folder's manifest (or a legacy manifest)."""
    man = folder / MANIFEST
    if not man.is_file():
        raise FormatError(
            f"{folder} holds no {MANIFEST}: it is not a saved FeatureStats folder (or its save "
            "did not finish). Save one with stats.save(path), then load it with FeatureStats.load(path)."
        )
    first = _storage.read_json(man, "FeatureStats manifest", _FIX)
    if isinstance(first, dict) and first.get("format") == FORMAT and "files" not in first:
        return first  # written before saves carried a manifest of sizes and hashes
    try:
        _storage.verify(folder)
    except FormatError as err:
        raise FormatError(f"Saved FeatureStats at {folder} is damaged: {err} {_FIX}") from None
    meta = _storage.read_json(folder / META, "FeatureStats metadata", _FIX)
    if not isinstance(meta, dict):
        raise FormatError(f"{folder / META} does not hold a JSON object. {_FIX}")
    return meta
