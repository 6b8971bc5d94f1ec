"""Pieces of the real-browser harness (used by conftest.py and by tests directly)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

CHROMIUM = os.environ.get("SAEKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TIMEOUT_MS = 120_000  # first kernel start + imports can be slow on a shared 2-core machine

# User settings that keep JupyterLab quiet and offline in the browser.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


@dataclass
class JupyterServer:
    url: str
    root: Path
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _isolated_env(base: Path) -> dict[str, str]:
    env = dict(os.environ)
    # keep saekit's model/SAE cache where the rest of the test run has it (XDG_CACHE_HOME moves below)
    from saekit import cache_dir

    env.setdefault("SAEKIT_CACHE", str(cache_dir()))
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR",
                 "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR",
                 "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        path = base / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["HF_HUB_OFFLINE"] = env["TRANSFORMERS_OFFLINE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"])
    for rel, value in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    return env


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.25)
    raise RuntimeError(f"JupyterLab did not answer on {url} in {timeout} s:\n{log.read_text()[-3000:]}")

def start_jupyter(base: Path) -> JupyterServer:
    """Start JupyterLab serving ``base/root`` with every config/data dir under ``base``."""
    root = base / "root"
    root.mkdir(parents=True, exist_ok=True)
    env = _isolated_env(base)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "server.log"
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--allow-root", "--IdentityProvider.token=", "--ServerApp.password=",
        f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT)
    server = JupyterServer(url=url, root=root, process=proc, log=log)
    try:
        _wait_ready(url, proc, log)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class PageGuard:
    """Console errors, page errors, dialogs and non-local requests seen by a page."""

    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page, allow: Callable[[str], bool]) -> None:  # type: ignore[no-untyped-def]
        def route(r):  # type: ignore[no-untyped-def]
            if allow(r.request.url):
                r.continue_()
            else:
                self.external.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def problems(self) -> list[str]:
        return ([f"request left the machine: {u}" for u in self.external] + self.errors
                + [f"dialog opened: {d}" for d in self.dialogs])


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob", "about") or parsed.hostname in LOCAL_HOSTS


def copy_notebook(src: Path, dst: Path) -> None:
    """Copy a notebook, giving it the default Python kernel when it names none."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    nb.setdefault("metadata", {}).setdefault(
        "kernelspec", {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    )
    dst.write_text(json.dumps(nb, indent=1), encoding="utf-8")


# JavaScript run in the page (JupyterLab is started with expose_app_in_browser).
_JS_STATUS = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.sessionContext) return "no-panel";
  const prompts = [...document.querySelectorAll(".jp-Notebook .jp-CodeCell .jp-InputPrompt")];
  const running = prompts.some((p) => p.textContent.includes("*"));
  const unrun = prompts.filter((p) => !/\\d/.test(p.textContent)).length;
  return `${panel.sessionContext.kernelDisplayStatus}|${running ? "running" : "done"}|${unrun}`;
}"""
_JS_RUN_ALL = """() => { window.jupyterapp.commands.execute("notebook:run-all-cells"); }"""
_JS_APPEND_AND_RUN = """async (code) => {
  const app = window.jupyterapp;
  const nb = app.shell.currentWidget.content;
  nb.activeCellIndex = nb.widgets.length - 1;
  await app.commands.execute("notebook:insert-cell-below");
  nb.activeCell.model.sharedModel.setSource(code);
  app.commands.execute("notebook:run-cell");
  return nb.widgets.length - 1;
}"""


class NotebookPage:
    """A notebook open in JupyterLab, with helpers to run it and read it back."""

    def __init__(self, page, url: str, name: str, guard: PageGuard, out_dir: Path) -> None:  # type: ignore[no-untyped-def]
        self.page = page
        self.url = url
        self.name = name
        self.guard = guard
        self.out_dir = out_dir

    def open(self) -> None:
        # ?reset: a fresh workspace, so notebooks that earlier tests opened are not restored
        # beside this one (commands like run-all act on the current widget)
        self.page.goto(f"{self.url}/lab/tree/{self.name}?reset")
        self.page.wait_for_selector(".jp-Notebook")
        self.wait_idle()

    def wait_idle(self, timeout: float = TIMEOUT_MS / 1000, *, all_run: bool = False) -> None:
        """Wait until the kernel is idle and no cell shows ``[*]`` (``all_run``: none ``[ ]``)."""
        deadline = time.monotonic() + timeout
        status = ""
        while time.monotonic() < deadline:
            status = self.page.evaluate(_JS_STATUS)
            kernel, running, unrun = (status.split("|") + ["", ""])[:3]
            if kernel == "idle" and running == "done" and (not all_run or unrun == "0"):
                return
            self.page.wait_for_timeout(200)
        raise AssertionError(f"notebook not idle after {timeout} s (status {status!r})")

    def run_all(self) -> None:
        """Run every cell; fail on a cell that raised."""
        self.page.evaluate(_JS_RUN_ALL)
        self.wait_idle(all_run=True)
        self.assert_no_tracebacks()

    def execute(self, code: str) -> str:
        """Append a cell with ``code``, run it in the notebook's kernel, return its output."""
        index = self.page.evaluate(_JS_APPEND_AND_RUN, code)
        self.wait_idle(all_run=True)
        self.assert_no_tracebacks()
        return self.cell_output(index)

    def cell(self, index: int):  # type: ignore[no-untyped-def]
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def cell_output(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()

    def assert_no_tracebacks(self) -> None:
        errors = self.page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
        texts = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
        assert not texts, "a cell failed:\n" + "\n".join(texts)

    def screenshot(self, name: str) -> Path:
        path = self.out_dir / name
        self.page.screenshot(path=str(path), full_page=True)
        return path
