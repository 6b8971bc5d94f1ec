"""Storage: the one place that writes files and folders, and verifies what it reads.

- Every write is atomic: a file is written under a temporary name in its folder and
  renamed over the target; a folder is built complete as a temporary sibling (manifest
  last) and swapped in, so a failed write (disk full, kill -9) leaves the previous
  version intact.
- Temporary names carry the writer's PID (``.<name>.<pid>-<rand>.tmp``); the next write
  into the same folder removes those whose writer is gone, and puts back a previous
  version that a crash left moved aside.
- A folder's ``manifest.json`` records each file's size and SHA-256; :func:`verify`
  checks them, and :func:`load_or_rebuild` recomputes a broken entry with a one-line
  note instead of a traceback.
- :func:`safe_name` turns a user string (an SAE's name) into a file name once, here.

Example:
    >>> from pathlib import Path
    >>> write_folder(Path("/tmp/x"), {"a.txt": lambda p: p.write_text("hi")})  # doctest: +SKIP
    >>> verify(Path("/tmp/x"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from saekit.errors import FormatError, SaekitError

log = logging.getLogger("saekit")

Writer = Callable[[Path], None]  # writes one file at the given path
T = TypeVar("T")

MANIFEST = "manifest.json"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>tmp|old)$")
_LEGACY_TEMP = re.compile(r"^\.tmp-.*|^\..+\.tmp$")
_LEGACY_AGE_S = 3600.0
_SAFE = re.compile(r"[^A-Za-z0-9._=+@-]+")


# ----- names -----------------------------------------------------------------------------
def safe_name(name: str, max_len: int = 80) -> str:
    """A file name made from a user string: no separators, no leading dot, no traversal.

    Characters outside ``A-Za-z0-9._=+@-`` become ``_``; if anything changed, an 8-digit
    hash of the original is appended so two different names never share a file.

    Example:
        >>> safe_name("topk-2304@resid_post.15")
        'topk-2304@resid_post.15'
        >>> safe_name("../../etc/passwd")[:14]
        'etc_passwd-'
    """
    if not isinstance(name, str) or not name:
        raise SaekitError(f"A name must be a non-empty string; got {name!r}.")
    clean = _SAFE.sub("_", name).strip("._-")[:max_len] or "x"
    if clean != name:
        clean = f"{clean}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return clean


# ----- writing ---------------------------------------------------------------------------
def _temp_path(target: Path, kind: str = "tmp") -> Path:
    return target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write(target: Path, write: Writer) -> Path:
    """Write one file atomically: ``write(tmp)``, fsync, rename over ``target``.

    On any failure the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    tmp = _temp_path(target)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_bytes(target: Path, data: bytes) -> Path:
    """:func:`atomic_write` of raw bytes."""
    return atomic_write(target, lambda p: p.write_bytes(data))


def write_text(target: Path, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: Path, obj: Any) -> Path:
    """:func:`atomic_write` of an object as indented JSON (NaN refused)."""
    return write_text(target, json.dumps(obj, indent=1, allow_nan=False))


def write_folder(target: Path, files: Mapping[str, Writer], *, keep_others: bool = True) -> Path:
    """Write ``files`` (name -> writer) as folder ``target``, replacing it atomically.

    The new version is built in a temporary sibling with a manifest written last, then
    swapped in with two renames. A failure before the swap leaves the old folder as it
    was; a crash between the two renames leaves it moved aside, and the next write or
    :func:`clean_stale` of the parent puts it back.

    Args:
        target: the folder.
        files: file name -> a function that writes that file at the path it is given.
        keep_others: copy files of the old folder that ``files`` does not name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    tmp = _temp_path(target)
    tmp.mkdir()
    try:
        if keep_others and target.is_dir():
            for old in target.iterdir():
                if old.name not in files and old.name != MANIFEST and not _TEMP.match(old.name):
                    (shutil.copytree if old.is_dir() else shutil.copy2)(old, tmp / old.name)
        for name, write in files.items():
            if Path(name).name != name or name in (".", "..", MANIFEST):
                raise SaekitError(f"Bad file name {name!r} in a folder write (internal error).")
            write(tmp / name)
            _fsync_file(tmp / name)
            os.chmod(tmp / name, 0o644)
        _write_manifest(tmp)
        os.chmod(tmp, 0o755)
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap_in(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    old = _temp_path(target, "old")
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


def _write_manifest(folder: Path) -> None:
    entries = {p.name: _describe_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps({"version": 1, "files": entries}, indent=1))
    _fsync_file(folder / MANIFEST)


def _describe_file(path: Path) -> dict[str, Any]:
    return {"size": path.stat().st_size, "sha256": file_hash(path)}


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 8 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 23):
            h.update(block)
    return h.hexdigest()


# ----- stale temporaries -----------------------------------------------------------------
def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(folder: Path) -> list[str]:
    """Remove temporaries in ``folder`` left by writers that are gone; restore moved-aside
    folders whose target is missing. Returns the names handled."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    done = []
    for entry in folder.iterdir():
        m = _TEMP.match(entry.name)
        if m is None:
            if _LEGACY_TEMP.match(entry.name) and time.time() - entry.stat().st_mtime > _LEGACY_AGE_S:
                _remove(entry)
                done.append(entry.name)
            continue
        if _alive(int(m["pid"])):
            continue
        original = folder / m["name"]
        if m["kind"] == "old" and not original.exists():
            os.replace(entry, original)
            log.warning("saekit: restored %s, which an interrupted write had moved aside.", original)
        else:
            _remove(entry)
        done.append(entry.name)
    return done


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


# ----- reading ---------------------------------------------------------------------------
def verify(folder: Path, *, hashes: bool = True) -> None:
    """Check ``folder`` against its manifest (each file present, same size and hash).

    Raises:
        FormatError: no manifest, or a file missing, truncated or changed.
    """
    folder = Path(folder)
    man = folder / MANIFEST
    try:
        files = json.loads(man.read_text())["files"]
    except FileNotFoundError:
        raise FormatError(f"{folder} has no {MANIFEST}: it was not completely written.") from None
    except (ValueError, KeyError, TypeError) as err:
        raise FormatError(f"{man} is unreadable ({err}).") from None
    for name, want in files.items():
        p = folder / name
        if not p.is_file():
            raise FormatError(f"{folder} is missing {name}, listed in its manifest.")
        size = p.stat().st_size
        if size != want["size"]:
            raise FormatError(f"{p} has {size} bytes; its manifest says {want['size']} (truncated?).")
        if hashes and file_hash(p) != want["sha256"]:
            raise FormatError(f"{p} does not match the hash in its manifest (changed or corrupt).")


def load_or_rebuild(path: Path, load: Callable[[Path], T], build: Callable[[Path], Any], what: str) -> T:
    """``load(path)`` if ``path`` exists and loads; otherwise ``build(path)`` then load.

    A broken entry (``load`` raises :class:`FormatError` or a library's read error) is
    rebuilt with a one-line note on the ``saekit`` logger, not a traceback.
    """
    path = Path(path)
    clean_stale(path.parent) if path.parent.is_dir() else None
    if path.exists():
        try:
            return load(path)
        except FormatError as err:
            log.warning("saekit: %s at %s is broken (%s); recomputing it.", what, path, err)
    build(path)
    return load(path)
