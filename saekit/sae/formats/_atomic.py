"""Writing a folder of files so that readers never see a half-written SAE."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

Writer = Callable[[Path], None]  # writes one file at the given path


def write_folder(path: Path, files: Mapping[str, Writer]) -> None:
    """Write ``files`` (name -> writer) into folder ``path`` atomically.

    A new folder is built as a hidden temporary sibling and renamed into place. An
    existing folder is updated file by file, each written to a temporary name in the
    same folder and renamed over the old one, in the given order (put the config last).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        try:
            for name, write in files.items():
                write(tmp / name)
                os.chmod(tmp / name, 0o644)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return
    for name, write in files.items():
        write_file(path / name, write)


def write_file(target: Path, write: Writer) -> None:
    """Write one file atomically: a temporary name in the same folder, then rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
