"""Reading named tensors from weight files, whole or only selected features.

:class:`TensorReader` is what every format adapter reads through. The safetensors
reader slices features straight from the file (``safe_open(...).get_slice``) without
reading the rest; the in-memory reader (for ``.pt`` / ``.npz``) just indexes.
Every failure becomes a :class:`~saekit.errors.FormatError` naming the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from saekit.errors import FormatError


class TensorReader(Protocol):
    """Named tensors in one file."""

    path: Path

    def keys(self) -> set[str]: ...

    def shape(self, name: str) -> tuple[int, ...]: ...

    def full(self, name: str) -> Tensor: ...

    def select(self, name: str, dim: int, index: Sequence[int]) -> Tensor: ...


def _runs(index: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted unique indices as half-open contiguous runs: [1,2,3,7] -> [(1,4),(7,8)]."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(index)):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


class SafetensorsReader:
    """Reads from an open ``safetensors.safe_open`` handle."""

    def __init__(self, path: Path, handle: Any) -> None:
        self.path = path
        self._f = handle

    def keys(self) -> set[str]:
        return set(self._f.keys())

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._f.get_slice(name).get_shape())

    def full(self, name: str) -> Tensor:
        return self._guard(name, lambda: self._f.get_tensor(name))

    def select(self, name: str, dim: int, index: Sequence[int]) -> Tensor:
        """Entries ``index`` along ``dim`` (0 or 1), in the order given."""

        def read() -> Tensor:
            sl = self._f.get_slice(name)
            parts = [sl[a:b] if dim == 0 else sl[:, a:b] for a, b in _runs(index)]
            return torch.cat(parts, dim=dim)

        block = self._guard(name, read)
        return _reorder(block, dim, index)

    def _guard(self, name: str, fn: Any) -> Tensor:
        try:
            return fn()
        except Exception as err:  # SafetensorError is not importable by a stable name
            raise FormatError(
                f"Could not read tensor {name!r} from {self.path}: {err}. The file may be "
                "truncated or corrupt; save or download it again."
            ) from err


class DictReader:
    """Tensors already in memory (from ``torch.load`` or ``numpy.load``)."""

    def __init__(self, path: Path, tensors: Mapping[str, Tensor]) -> None:
        self.path = path
        self._t = dict(tensors)

    def keys(self) -> set[str]:
        return set(self._t)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._t[name].shape)

    def full(self, name: str) -> Tensor:
        return self._t[name]

    def select(self, name: str, dim: int, index: Sequence[int]) -> Tensor:
        idx = torch.tensor(list(index), dtype=torch.long)
        return self._t[name].index_select(dim, idx).clone()


def _reorder(block: Tensor, dim: int, index: Sequence[int]) -> Tensor:
    """``block`` holds the sorted unique ``index`` along ``dim``; put them in ``index`` order."""
    pos = {v: i for i, v in enumerate(sorted(set(index)))}
    order = torch.tensor([pos[i] for i in index], dtype=torch.long)
    return block.index_select(dim, order)


@contextlib.contextmanager
def open_safetensors(path: Path) -> Iterator[SafetensorsReader]:
    """Open a safetensors file for reading, or raise :class:`FormatError`."""
    from safetensors import safe_open

    try:
        handle_cm = safe_open(str(path), framework="pt", device="cpu")
        handle = handle_cm.__enter__()
    except FileNotFoundError as err:
        raise FormatError(f"Weights file {path} does not exist.") from err
    except Exception as err:
        raise FormatError(
            f"{path} is not a readable safetensors file ({err}). It is probably truncated "
            "or corrupt (an interrupted save or download); write or download it again."
        ) from err
    try:
        yield SafetensorsReader(path, handle)
    finally:
        handle_cm.__exit__(None, None, None)


def require_keys(reader: TensorReader, names: Sequence[str], fmt: str) -> None:
    """Raise :class:`FormatError` if any of ``names`` is missing from the file."""
    missing = [n for n in names if n not in reader.keys()]
    if missing:
        raise FormatError(
            f"{reader.path} lacks tensor(s) {missing} that the {fmt} format needs "
            f"(it has {sorted(reader.keys())}). The file may come from another library "
            "or architecture, or be incomplete; re-export it."
        )


def read_tensors(
    reader: TensorReader, spec: Mapping[str, int | None], features: Sequence[int] | None
) -> dict[str, Tensor]:
    """Read each tensor in ``spec``: all of it, or ``features`` along its feature dim.

    ``spec`` maps tensor name -> the dimension that indexes features, or ``None`` for a
    tensor with no feature dimension (read whole).
    """
    out: dict[str, Tensor] = {}
    for name, dim in spec.items():
        if features is None or dim is None:
            out[name] = reader.full(name)
        else:
            out[name] = reader.select(name, dim, features)
    return out
