"""Saving and loading :class:`~saekit.analysis.stats.FeatureStats` (parquet + safetensors + JSON)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from saekit.errors import FormatError
from saekit.sae.formats._atomic import write_folder

FORMAT = "saekit.feature_stats"
VERSION = 1
MANIFEST = "manifest.json"
FRAMES = ("summary", "examples", "histograms")
WINDOWS = "windows.safetensors"


def save_parts(path: str | os.PathLike[str], frames: dict[str, pd.DataFrame], windows: dict[str, np.ndarray],
               manifest: dict[str, Any]) -> Path:
    """Write a folder atomically; the manifest is written last."""
    from safetensors.numpy import save_file

    files = {f"{name}.parquet": _parquet_writer(frames[name]) for name in FRAMES}
    files[WINDOWS] = lambda p: save_file({k: np.ascontiguousarray(v) for k, v in windows.items()}, str(p))
    body = json.dumps({"format": FORMAT, "version": VERSION, **manifest}, indent=1).encode()
    files[MANIFEST] = lambda p: p.write_bytes(body)
    write_folder(Path(path), files)
    return Path(path)


def _parquet_writer(frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    return lambda p: frame.to_parquet(p, index=False)


def load_parts(path: str | os.PathLike[str]) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray], dict]:
    """Read a folder written by :func:`save_parts`; clear errors for missing or foreign files."""
    from safetensors.numpy import load_file

    folder = Path(path)
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        raise FormatError(
            f"{folder} holds no {MANIFEST}: it is not a saved FeatureStats folder. "
            "Save one with stats.save(path), then load it with FeatureStats.load(path)."
        )
    try:
        manifest = json.loads(manifest_file.read_text())
    except json.JSONDecodeError as e:
        raise FormatError(f"{manifest_file} is not valid JSON ({e}); the save was damaged.") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise FormatError(
            f"{manifest_file} describes format {manifest.get('format')!r} version "
            f"{manifest.get('version')!r}; expected {FORMAT!r} version {VERSION}."
        )
    missing = [n for n in [*(f"{f}.parquet" for f in FRAMES), WINDOWS] if not (folder / n).is_file()]
    if missing:
        raise FormatError(f"Saved FeatureStats at {folder} lacks {missing}; save it again.")
    frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in FRAMES}
    windows = load_file(str(folder / WINDOWS))
    return frames, windows, manifest
