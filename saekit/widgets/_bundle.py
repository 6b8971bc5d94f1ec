"""Join the front-end ES modules under ``static/`` into one self-contained module.

anywidget loads a widget's ``_esm`` from a string, so a module cannot import a sibling
file by relative path. The files under ``static/`` are nevertheless real ES modules
(they run unchanged in a browser with a dev server); this helper inlines them without
a build step. Only one import form is understood, and anything else is an error:

    import { a, b } from "./_common.js";

Dependencies are inlined once each, in dependency order, with their ``export``
keywords dropped (they share one module scope, so exported names must be unique).

Example:
    >>> src = bundle("token_highlight.js")
    >>> src.count("export default")
    1
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from saekit.errors import SaekitError

STATIC = Path(__file__).parent / "static"

_IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"\./([A-Za-z0-9_]+\.js)";[ \t]*$', re.M)
_ANY_IMPORT = re.compile(r"^\s*import[\s{*]", re.M)
_EXPORT_DECL = re.compile(r"^export (?=(?:async )?function |const |let |class )", re.M)
_EXPORTED = re.compile(
    r"^export (?:async )?(?:function\*? |const |let |class )([A-Za-z0-9_$]+)", re.M
)


@functools.cache
def bundle(entry: str) -> str:
    """Return ``static/<entry>`` with its relative imports inlined.

    Args:
        entry: File name of the entry module, for example ``"token_highlight.js"``.

    Returns:
        One ES module source with a single ``export default``.

    Raises:
        SaekitError: On an unknown file, an import form this helper does not handle,
            or a name imported but not exported.
    """
    order: list[str] = []
    _collect(entry, order, stack=())
    parts = [_strip_exports(name) for name in order[:-1]]
    parts.append(_IMPORT.sub("", _read(entry)))
    return "\n".join(parts)


@functools.cache
def read_css(name: str = "saekit.css") -> str:
    """Return the text of a stylesheet under ``static/``."""
    return _read(name)


def _read(name: str) -> str:
    path = STATIC / name
    if not path.is_file():
        raise SaekitError(
            f"Front-end file {name!r} not found in {STATIC}. The package data is incomplete: "
            "reinstall saekit (`pip install -e .`)."
        )
    return path.read_text(encoding="utf-8")


def _collect(name: str, order: list[str], stack: tuple[str, ...]) -> None:
    if name in stack:
        raise SaekitError(f"Import cycle in front-end modules: {' -> '.join(stack + (name,))}.")
    if name in order:
        return
    source = _read(name)
    imports = _IMPORT.findall(source)
    remaining = _ANY_IMPORT.findall(_IMPORT.sub("", source))
    if remaining:
        raise SaekitError(
            f"{name}: only `import {{ ... }} from \"./file.js\";` is supported by the inliner; "
            "rewrite the other import statements in that form."
        )
    for names, dep in imports:
        _collect(dep, order, stack + (name,))
        exported = set(_EXPORTED.findall(_read(dep)))
        missing = {n.strip() for n in names.split(",") if n.strip()} - exported
        if missing:
            raise SaekitError(
                f"{name} imports {sorted(missing)} from {dep}, which does not export them."
            )
    order.append(name)


def _strip_exports(name: str) -> str:
    source = _read(name)
    if "export default" in source:
        raise SaekitError(f"{name} is imported by another module and must not `export default`.")
    return _EXPORT_DECL.sub("", _IMPORT.sub("", source))
