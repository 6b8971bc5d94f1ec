"""Reading a format's JSON config with errors that say what to fix."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saekit.errors import FormatError


def read_json(path: Path) -> dict[str, Any]:
    """Parse a JSON object from ``path``, or raise :class:`FormatError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FormatError(f"Config file {path} does not exist.") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FormatError(
            f"{path} is not valid JSON ({err}); it may be truncated. Restore the config "
            "file that was saved with the weights."
        ) from err
    if not isinstance(data, dict):
        raise FormatError(f"{path} holds a JSON {type(data).__name__}, expected an object.")
    return data


def require(cfg: Mapping[str, Any], keys: Sequence[str], path: Path, fmt: str) -> None:
    """Raise :class:`FormatError` naming the keys of ``keys`` missing from ``cfg``."""
    missing = [k for k in keys if cfg.get(k) is None]
    if missing:
        raise FormatError(
            f"{path} lacks {missing}, which a {fmt} config must have (it has "
            f"{sorted(cfg)}). Add them, or restore the config saved with the weights."
        )


def to_float(value: Any, key: str, path: Path) -> float:
    """``value`` as a positive float, or raise :class:`FormatError`."""
    try:
        as_float = float(value)
    except (TypeError, ValueError) as err:
        raise FormatError(f"{key}={value!r} in {path} is not a number.") from err
    if not as_float > 0:
        raise FormatError(f"{key}={value!r} in {path} must be positive.")
    return as_float


def to_int(value: Any, key: str, path: Path) -> int:
    """``value`` as an int (``32`` or ``32.0``), or raise :class:`FormatError`."""
    as_float = to_float(value, key, path)
    if as_float != int(as_float):
        raise FormatError(f"{key}={value!r} in {path} must be a positive whole number.")
    return int(as_float)
