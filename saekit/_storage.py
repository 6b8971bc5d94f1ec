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

import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from saekit.errors import FormatError, SaekitError

log = logging.getLogger("saekit")

Writer = Callable[[Path], object]  # writes one file at the given path (its result is ignored)
T = TypeVar("T")

MANIFEST = "manifest.json"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>tmp|old|del)$")
_LEGACY_TEMP = re.compile(r"^\.tmp-.*|^\..+\.tmp$")
_LEGACY_AGE_S = 3600.0
_SAFE = re.compile(r"[^A-Za-z0-9._=+@-]+")
_ours: set[str] = set()  # temporaries this process is writing now
_verified: dict[str, tuple[int, int, int, str]] = {}  # file -> (size, mtime_ns, inode, sha256)
_SETTLED_NS = 3_000_000_000  # hashes of files changed more recently than this are not remembered


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
    path = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}"
    _ours.add(path.name)
    return path


def _done(tmp: Path) -> None:
    _ours.discard(tmp.name)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        _fsync_dir(target.parent)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        said = _write_error(err, target)
        if said is err:
            raise
        raise said from err
    finally:
        _done(tmp)
    return target


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _write_error(err: BaseException, target: Path) -> BaseException:
    """The error to raise for a failed write: a library's wrapped I/O error (safetensors
    says ``... (os error 28)``) becomes the ``OSError`` it wraps; a disk-full error gets a
    note saying what was kept and what to do. Anything else is raised as it is."""
    if not isinstance(err, OSError):
        m = _OS_ERROR.search(str(err)) if isinstance(err, Exception) else None
        if m is None:
            return err
        code = int(m[1])
        err = OSError(code, f"{os.strerror(code)} ({type(err).__name__}: {err})", str(target))
    if err.errno in _FULL and not any(n.startswith("saekit:") for n in getattr(err, "__notes__", [])):
        err.add_note(
            f"saekit: writing {target} failed ({os.strerror(err.errno)}); its previous version, if "
            "any, is intact and no temporary file is left. Free some space (or set SAEKIT_CACHE to "
            "a larger disk) and run again."
        )
    return err


def write_bytes(target: Path, data: bytes) -> Path:
    """:func:`atomic_write` of raw bytes."""
    return atomic_write(target, lambda p: p.write_bytes(data))


def write_text(target: Path, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: Path, obj: Any) -> Path:
    """:func:`atomic_write` of an object as indented JSON (NaN refused)."""
    return write_text(target, json.dumps(obj, indent=1, allow_nan=False))


def side_manifest(path: Path) -> Path:
    """The manifest of a single file written by :func:`write_checked`: ``<name>.manifest.json``."""
    path = Path(path)
    return path.with_name(f"{path.name}.manifest.json")


def write_checked(target: Path, write: Writer) -> Path:
    """:func:`atomic_write` of one file, then its side manifest (size and SHA-256), for a
    single-file cache entry; :func:`verify_file` checks it. A crash between the two
    writes leaves a manifest that does not match, so the entry is recomputed."""
    target = atomic_write(Path(target), write)
    write_json(side_manifest(target), {"version": 1, "files": {target.name: describe(target)}})
    return target


def write_folder(
    target: Path, files: Mapping[str, Writer], *, keep_others: bool = True, drop: Collection[str] = ()
) -> Path:
    """Write ``files`` (name -> writer) as folder ``target``, replacing it atomically.

    The new version is built in a temporary sibling with a manifest written last, then
    swapped in with two renames (see :func:`build_folder`). A failure before the swap
    leaves the old folder as it was.

    Args:
        target: the folder.
        files: file name -> a function that writes that file at the path it is given.
        keep_others: copy files (and subfolders) of the old folder that ``files`` does
            not name into the new version.
        drop: names of old files not to copy (they described what is being replaced).
    """
    target = Path(target)
    for name in files:
        if Path(name).name != name or name in (".", "..", MANIFEST):
            raise SaekitError(f"Bad file name {name!r} in a folder write (internal error).")

    def fill(tmp: Path) -> None:
        if keep_others and target.is_dir():
            for old in target.iterdir():
                skip = old.name in files or old.name in drop or old.name == MANIFEST
                if not skip and not _TEMP.match(old.name):
                    (shutil.copytree if old.is_dir() else shutil.copy2)(old, tmp / old.name)
        for name, write in files.items():
            write(tmp / name)

    return build_folder(target, fill)


def build_folder(target: Path, build: Callable[[Path], Any]) -> Path:
    """Build folder ``target`` atomically: ``build(tmp)`` fills an empty temporary sibling,
    then every file is synced, a manifest (size and SHA-256 of each file) written last, and
    the folder swapped in.

    A failure before the swap (disk full, an exception in ``build``) leaves the old folder
    as it was and removes the temporary one; a crash between the two renames of the swap
    leaves the old folder moved aside, and the next write or :func:`clean_stale` of the
    parent puts it back.

    Example:
        >>> build_folder(Path("/tmp/m"), lambda d: (d / "a.txt").write_text("hi"))  # doctest: +SKIP
    """
    target = Path(target)
    _refuse_cwd(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    tmp = _temp_path(target)
    try:
        tmp.mkdir()
        build(tmp)
        for f in _files(tmp):
            _fsync_file(f)
            os.chmod(f, 0o644)
        _write_manifest(tmp)
        os.chmod(tmp, 0o755)
        _swap_in(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        said = _write_error(err, target)
        if said is err:
            raise
        raise said from err
    finally:
        _done(tmp)
    return target


def _refuse_cwd(target: Path) -> None:
    """A folder write replaces the folder: never the one a shell or notebook is in."""
    where = target.resolve()
    if where == Path.cwd().resolve() or where in Path.cwd().resolve().parents:
        raise SaekitError(
            f"Writing into {target} would replace the current working folder (it is written "
            "whole, then swapped in). Pass a subfolder instead, e.g. ./my_sae."
        )


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder`` except its manifest, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / MANIFEST)


def _swap_in(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    old = _temp_path(target, "old")
    try:
        os.replace(target, old)
        try:
            os.replace(new, target)
        except BaseException:
            os.replace(old, target)
            raise
        _remove(old)
    finally:
        _done(old)


def remove(path: Path) -> None:
    """Remove a file or folder so that it disappears at once: renamed to a temporary
    name first, then deleted (a crash in between leaves a temporary that the next
    :func:`clean_stale` removes, never a half-deleted folder under the real name)."""
    path = Path(path)
    if not path.exists():
        return
    gone = _temp_path(path, "del")
    try:
        os.replace(path, gone)
        _remove(gone)
    finally:
        _done(gone)


def _write_manifest(folder: Path) -> None:
    entries = {p.relative_to(folder).as_posix(): describe(p) for p in _files(folder)}
    (folder / MANIFEST).write_text(json.dumps({"version": 1, "files": entries}, indent=1))
    _fsync_file(folder / MANIFEST)


def describe(path: Path) -> dict[str, Any]:
    """``{"size", "sha256"}`` of a file, as a manifest records it (and remembered as checked)."""
    path = Path(path)
    digest = file_hash(path)
    _remember(path, digest)
    return {"size": path.stat().st_size, "sha256": digest}


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


def _remember(path: Path, digest: str) -> None:
    """Remember a file's hash, unless its mtime is so recent that a change within the
    file system's timestamp granularity could keep the same stamp (as git does)."""
    stamp = _stamp(path)
    if time.time_ns() - stamp[1] > _SETTLED_NS:
        _verified[str(path.resolve())] = (*stamp, digest)


def known_hash(path: Path) -> str:
    """The file's SHA-256, hashed once per process while its size, mtime and inode stay
    the same."""
    key = str(path.resolve())
    seen = _verified.get(key)
    if seen is not None and seen[:3] == _stamp(path):
        return seen[3]
    digest = file_hash(path)
    _remember(path, digest)
    return digest


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 8 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 23):
            h.update(block)
    return h.hexdigest()


# ----- stale temporaries -----------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(folder: Path) -> list[str]:
    """Remove temporaries in ``folder`` left by writers that are gone; restore moved-aside
    folders whose target is missing. Returns the names handled.

    A temporary carrying this process's own PID but not being written by it is stale
    too: a container restarts its program under the same PID after a crash.
    Temporaries named by older saekit versions (``.tmp-*``, ``.*.tmp``) carry no PID and
    are removed once they are an hour old."""
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
        pid = int(m["pid"])
        if entry.name in _ours or (pid != os.getpid() and _alive(pid)):
            continue  # being written now (by this process, or by another one)
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
def read_errors() -> tuple[type[BaseException], ...]:
    """The exceptions libraries raise on a truncated or corrupt file: ``OSError``,
    ``ValueError`` (``JSONDecodeError``, pyarrow's ``ArrowInvalid``, numpy's bad
    headers), ``EOFError``, safetensors' ``SafetensorError``, pyarrow's ``ArrowException``."""
    errs: list[type[BaseException]] = [OSError, ValueError, EOFError]
    for module, name in (("safetensors", "SafetensorError"), ("pyarrow", "ArrowException")):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            errs.append(cls)
    return tuple(errs)


@contextmanager
def reading(path: Path, what: str, fix: str = "Delete it and run again to recompute it.") -> Iterator[None]:
    """Turn a library's read error inside the block into a :class:`FormatError` that
    says what was read, where, and how to fix it.

    Example:
        >>> with reading(Path("x/meta.json"), "activation cache metadata"):  # doctest: +SKIP
        ...     json.loads(Path("x/meta.json").read_text())
    """
    try:
        yield
    except FormatError:
        raise
    except read_errors() as err:
        if isinstance(err, SaekitError):
            raise
        raise FormatError(
            f"The {what} at {path} is unreadable ({type(err).__name__}: {err}); it is probably "
            f"truncated or corrupt. {fix}"
        ) from err


def read_json(path: Path, what: str, fix: str = "Delete it and run again to recompute it.") -> Any:
    """``json.loads`` of a file, with :class:`FormatError` for a missing, truncated or bad file."""
    with reading(path, what, fix):
        return json.loads(Path(path).read_text(encoding="utf-8"))


def verify(folder: Path, *, hashes: bool = True, skip: Collection[str] = ()) -> None:
    """Check ``folder`` against its manifest (each file present, same size and hash).

    ``skip`` names files not to check (a config a user may edit by hand; its reader
    checks it by parsing). A file's hash is computed once per process while its size and modification time
    stay the same (a 500 MB model is hashed in about 0.6 s).

    Raises:
        FormatError: no manifest, or a file missing, truncated or changed.
    """
    folder = Path(folder)
    _check_against(folder, folder / MANIFEST, hashes, skip)


def verify_file(path: Path) -> None:
    """Check one file written by :func:`write_checked` against its side manifest.

    Raises:
        FormatError: the file or its manifest missing, or the file truncated or changed.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"{path} does not exist.")
    _check_against(path.parent, side_manifest(path), True)


def _check_against(folder: Path, man: Path, hashes: bool, skip: Collection[str] = ()) -> None:
    try:
        files = json.loads(man.read_text())["files"]
        entries = [(str(name), int(want["size"]), str(want["sha256"])) for name, want in files.items()]
    except FileNotFoundError:
        raise FormatError(
            f"{man} is missing: {folder} was not completely written (or was written by an "
            "older saekit)."
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as err:
        raise FormatError(f"{man} is unreadable ({type(err).__name__}: {err}).") from None
    for name, size, sha in entries:
        if name in skip:
            continue
        p = folder / name
        if not p.is_file():
            raise FormatError(f"{folder} is missing {name}, listed in its manifest.")
        have = p.stat().st_size
        if have != size:
            raise FormatError(f"{p} has {have} bytes; its manifest says {size} (truncated or corrupt).")
        if hashes and known_hash(p) != sha:
            raise FormatError(
                f"{p} does not match the hash in its manifest (changed or corrupt). If you "
                f"edited it on purpose, delete {man}."
            )


def verify_if_saekit(folder: Path, skip: Collection[str] = ()) -> bool:
    """:func:`verify` ``folder`` if it carries a saekit manifest; ``False`` if it has none
    (a folder written by another library, or by an older saekit).

    A ``manifest.json`` of another shape (no ``files`` table) is another library's and is
    left alone; an unreadable one is reported as damage.
    """
    man = Path(folder) / MANIFEST
    if not man.is_file():
        return False
    try:
        body = json.loads(man.read_text())
    except (ValueError, OSError):
        body = {"files": None}
    if not (isinstance(body, dict) and "files" in body):
        return False
    verify(folder, skip=skip)
    return True


def load_or_rebuild(path: Path, load: Callable[[Path], T], build: Callable[[Path], Any], what: str) -> T:
    """``load(path)`` if ``path`` exists and loads; otherwise ``build(path)`` then load.

    A broken entry (``load`` raises :class:`FormatError` or a library's read error, see
    :func:`read_errors`) is rebuilt with a one-line note on the ``saekit`` logger, not a
    traceback. ``build`` should write ``path`` atomically (:func:`write_folder`,
    :func:`build_folder`, :func:`atomic_write`).
    """
    path = Path(path)
    clean_stale(path.parent) if path.parent.is_dir() else None
    if path.exists():
        try:
            return load(path)
        except read_errors() as err:  # FormatError is a ValueError
            log.warning("saekit: %s at %s is broken (%s); recomputing it.", what, path,
                        one_line(err))
    build(path)
    return load(path)


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()).rstrip(".")
    return text if len(text) <= 300 else text[:297] + "..."
