"""Lower layers never import upper ones (DESIGN.md): checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("anywidget", "ipywidgets", "plotly", "umap", "nnsight", "kaleido")


@pytest.mark.parametrize("module", ["saekit", "saekit.analysis", "saekit.sae", "saekit.train"])
def test_import_leaves_views_and_tracing_out(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"


def test_public_names_resolve() -> None:
    import saekit

    missing = [n for n in saekit.__all__ if not hasattr(saekit, n)]
    assert missing == []
