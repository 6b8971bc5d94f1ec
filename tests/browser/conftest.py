"""Real-browser harness: JupyterLab on 127.0.0.1 driven by Playwright with Debian's chromium.

Fixtures:
    ``jupyter_server``: one JupyterLab for the session (free port, no token, every
    Jupyter/IPython/XDG directory in a temp folder, news and update checks off).
    ``browser``: headless chromium (``/usr/bin/chromium``; Playwright never downloads one).
    ``jupyter_page``: a factory, ``nb = jupyter_page(path)``, that copies a notebook into
    the server's root, opens it, and returns a ``NotebookPage`` (run all cells, read
    outputs, run code in the same kernel, screenshots). Every request that leaves
    127.0.0.1/localhost is aborted and recorded, and every console error / page error /
    dialog is recorded; the fixture fails the test on any of them at teardown.

Example:
    def test_quickstart(jupyter_page):
        nb = jupyter_page(Path("notebooks/01_quickstart.ipynb"))
        nb.run_all()
        assert "Paris" in nb.execute("print(result)")
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from _harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    JupyterServer,
    NotebookPage,
    PageGuard,
    copy_notebook,
    is_local,
    start_jupyter,
)


@pytest.fixture(scope="session")
def jupyter_server() -> Iterator[JupyterServer]:
    if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("jupyterlab is not installed in this environment (pip install -e .[dev])")
    base = Path(tempfile.mkdtemp(prefix="saekit-lab-"))
    server = start_jupyter(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium (or set SAEKIT_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chrome
        chrome.close()


@pytest.fixture
def jupyter_page(jupyter_server: JupyterServer, browser, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Factory: ``jupyter_page(notebook_path, extra_files=())`` -> :class:`NotebookPage`."""
    contexts, guards = [], []

    def open_notebook(notebook: Path, extra_files: tuple[Path, ...] = ()) -> NotebookPage:
        notebook = Path(notebook)
        for src in extra_files:
            shutil.copy(src, jupyter_server.root / Path(src).name)
        copy_notebook(notebook, jupyter_server.root / notebook.name)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        guard = PageGuard()
        guard.attach(page, is_local)
        guards.append(guard)
        nb = NotebookPage(page, jupyter_server.url, notebook.name, guard, tmp_path)
        nb.open()
        return nb

    yield open_notebook
    for context in contexts:
        context.close()
    problems = [p for g in guards for p in g.problems()]
    if problems:
        pytest.fail("browser problems:\n" + "\n".join(problems), pytrace=False)
