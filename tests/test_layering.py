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


# -- views only format: no arithmetic on analysis frames under saekit/widgets -----------------

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

WIDGETS = Path(__file__).resolve().parents[1] / "saekit" / "widgets"
#: pandas methods that compute (group, sort, aggregate, reshape, join, filter) rather than read.
FRAME_COMPUTE = {"groupby", "sort_values", "agg", "aggregate", "pivot", "pivot_table", "merge",
                 "mean", "sum", "nlargest", "nsmallest", "value_counts", "query", "melt", "rank",
                 "crosstab", "cut", "resample", "rolling",
                 "transform", "apply", "drop_duplicates", "cumsum", "diff", "idxmax", "idxmin", "iloc", "loc"}


def frame_arithmetic(source: str) -> list[str]:
    """``line: call`` for every frame-computing method used, and every import of a private
    ``saekit.analysis`` helper module (``saekit.analysis._x``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in FRAME_COMPUTE:
            found.append(f"{node.lineno}: .{node.attr}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("saekit.analysis._"):
            found.append(f"{node.lineno}: from {node.module} import ...")
    return found


def test_the_scan_finds_frame_arithmetic() -> None:
    bad = 'import pandas as pd\nfrom saekit.analysis._stats_pass import run_pass\n' \
          'x = frame.groupby("feature").agg(a=("a", "sum")).sort_values("a")\n'
    assert sorted(frame_arithmetic(bad)) == sorted(["3: .sort_values", "3: .agg", "3: .groupby",
                                                    "2: from saekit.analysis._stats_pass import ..."])


@pytest.mark.parametrize("path", sorted(WIDGETS.glob("*.py")), ids=lambda p: p.name)
def test_widgets_do_no_arithmetic_on_analysis_frames(path: Path) -> None:
    """Views read what the analysis produced (columns to arrays); grouping, sorting,
    aggregating and filtering frames belong in saekit.analysis."""
    assert frame_arithmetic(path.read_text(encoding="utf-8")) == []


def test_analysis_results_leave_views_unimported() -> None:
    code = ("import sys, pandas as pd; from saekit.analysis.results import LogitEffects; "
            "r = LogitEffects(pd.DataFrame({'feature': [1], 'direction': ['top'], 'rank': [0], "
            "'token_id': [2], 'token': ['a'], 'logit': [1.0]}), 's'); str(r); r.refs; "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
