"""Shape of the front-end modules under saekit/widgets/static (no browser needed).

Each view's ``render`` is a short composition of named functions over one explicit state
object (issue #10): no top-level function is long, and ``render`` declares no mutable
closure variables (``let``). The browser test ``tests/browser/test_dom_snapshot.py``
checks what they build.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from saekit.widgets import _bundle

STATIC = Path(_bundle.__file__).parent / "static"
MODULES = sorted(p.name for p in STATIC.glob("*.js"))
ENTRIES = [m for m in MODULES if not m.startswith("_")]
MAX_LINES = 60

_FUNCTION = re.compile(r"^(?:export )?(?:async )?function\*? ([A-Za-z0-9_$]+)\(", re.M)


def _functions(source: str) -> dict[str, list[str]]:
    """Top-level functions (declared at column 0, closed by a ``}`` at column 0)."""
    lines = source.splitlines()
    out: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        match = _FUNCTION.match(line)
        if not match:
            continue
        end = next(j for j in range(i, len(lines)) if lines[j].startswith("}"))
        out[match.group(1)] = lines[i:end + 1]
    return out


@pytest.mark.parametrize("name", MODULES)
def test_top_level_functions_are_short(name: str) -> None:
    long = {f: len(body) for f, body in _functions((STATIC / name).read_text("utf-8")).items()
            if len(body) > MAX_LINES}
    assert not long, f"{name}: functions over {MAX_LINES} lines: {long}; split them into named pieces"


@pytest.mark.parametrize("name", ENTRIES)
def test_render_keeps_state_in_one_object(name: str) -> None:
    body = _functions((STATIC / name).read_text("utf-8")).get("render")
    assert body, f"{name} has no top-level render()"
    assert not [ln for ln in body if re.match(r"\s*let\s", ln)], (
        f"{name}: render() declares mutable closure variables; keep them in its state object")


@pytest.mark.parametrize("name", ENTRIES)
def test_bundle_is_valid_module(name: str) -> None:
    src = _bundle.bundle(name)
    assert src.count("export default") == 1
    assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|eval\(", src)
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the syntax check of the bundled module needs it")
    proc = subprocess.run(["node", "--check", "--input-type=module"], input=src, text=True,
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr
