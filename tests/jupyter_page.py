"""JupyterLab in Chromium, used the way a learner uses it: the Run menu, clicks, the keyboard.

``running_lab`` starts ``jupyter lab`` with the arguments ``make lab`` gives it
(the course folder as ``root_dir``, lesson 00 as ``default_url``,
``--allow-root`` when run as root) plus a free port and a token. It serves a
COPY of the course: running cells makes notebooks dirty and JupyterLab
autosaves, so the repository's notebooks (committed without outputs) are never
opened. With ``base_url`` and ``JUPYTERHUB_SERVICE_PREFIX`` it is what Binder
runs: a single-user server under ``/user/<name>/`` with jupyter-server-proxy.

``LabPage`` is JupyterLab loaded once in a Chromium tab; ``LabPage.open`` opens
a notebook in it (File ▸ Open from Path…) and ``Notebook.close`` shuts its kernel
down and closes its tab, so a module's notebooks take a second each to open
instead of reloading JupyterLab. What a test cannot see in the page it asks the
notebook's own kernel through the Jupyter kernel API (``jupyter_client`` on the connection file the server wrote), e.g. the
embedded model's record of each generation.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from jupyter_client import BlockingKernelClient

REPO = Path(__file__).resolve().parent.parent
#: What the browser tests saw, for people: `.ci/run` keeps artifacts/ as CI's artifact (git ignores it).
SCREENSHOTS = REPO / "artifacts" / "screenshots"
COURSE = ("notebooks", "labs", "solutions", "README.md")  # what a learner opens; links between them resolve
DEFAULT_URL = "/lab/tree/notebooks/00_start_here.ipynb"  # as in the Makefile's `lab` target
#: JupyterLab asks "get notified about official Jupyter news?" in a toast that lies over the
#: bottom right of every page (and the screenshots); this machine has no internet to fetch news from.
NO_NEWS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


def _prompts(panel: str) -> str:
    return f"() => [...document.querySelectorAll('{panel} .jp-CodeCell .jp-InputPrompt')].map(p => p.textContent)"


def _settled(panel: str) -> str:
    """Every code cell has run (or was dropped after an error) and the kernel is idle."""
    return f"""() => {{
  const prompts = ({_prompts(panel)})();
  const status = document.querySelector('{panel} .jp-Notebook-ExecutionIndicator')?.dataset.status;
  return prompts.length > 0 && !prompts.some(p => p.includes('*')) && status === 'idle';
}}"""


#: Run in a lesson's kernel: every generation recorded by an embedded model the lesson made (``llm.make_app``).
GENERATIONS = """
import json as _json
from fastapi import FastAPI as _FastAPI
print(_json.dumps([
    {"started": _g.started, "closed_at": _g.closed_at, "finished": _g.finished, "text": _g.text,
     "token_times": _g.token_times, "client_gone_at": _g.client_gone_at}
    for _app in list(globals().values()) if isinstance(_app, _FastAPI) and hasattr(_app.state, "generations")
    for _g in _app.state.generations
]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: ``url`` ends with its base URL (``/`` locally, ``/user/learner/`` on Binder)."""

    url: str
    token: str
    root: Path
    runtime_dir: Path

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"token {self.token}"}
        return httpx.request(method, f"{self.url}api/{path}", headers=headers, timeout=30, **kwargs)

    def kernel_of(self, notebook: str) -> dict[str, Any] | None:
        """The kernel model (id, execution_state) of the session that has ``notebook`` open."""
        for session in self.api("GET", "sessions").json():
            if session["path"] == notebook:
                return session["kernel"]
        return None

    def run_in_kernel(self, kernel_id: str, code: str, timeout: float = 60) -> str:
        """Execute ``code`` in a running kernel (after whatever it is running now); return what it printed."""
        client = BlockingKernelClient(connection_file=str(self.runtime_dir / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels()
        printed: list[str] = []

        def keep(message: dict[str, Any]) -> None:
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            elif message["msg_type"] == "error":
                printed.append("\n".join(message["content"]["traceback"]))

        try:
            reply = client.execute_interactive(code, timeout=timeout, output_hook=keep, allow_stdin=False)
        finally:
            client.stop_channels()
        assert reply["content"]["status"] == "ok", f"kernel code failed: {''.join(printed)}"
        return "".join(printed)


def _lab_command(root: Path, port: int, token: str, base_url: str) -> list[str]:
    command = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.default_url={DEFAULT_URL}",  # what `make lab` passes
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.base_url={base_url}",
    ]
    return command + (["--allow-root"] if os.getuid() == 0 else [])


def _wait_until_serving(lab: Lab, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if lab.api("GET", "status").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"jupyter lab did not answer within 90 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@contextmanager
def running_lab(home: Path, env: Mapping[str, str], base_url: str = "/") -> Iterator[Lab]:
    """``jupyter lab`` on a copy of the course in ``home``; ``env`` is added to a clean environment."""
    root = home / "course"
    for name in COURSE:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "OPENAI_", "MPLBACKEND", "STREAMCOURSE_"))
    }
    clean.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        **env,
    )  # no user settings, workspaces or kernels
    quiet = home / "config" / "labconfig" / "default_setting_overrides.json"
    quiet.parent.mkdir(parents=True)
    quiet.write_text(json.dumps(NO_NEWS))
    port, token = free_port(), "streamcourse-lab-test"
    lab = Lab(f"http://127.0.0.1:{port}{base_url}", token, root, home / "runtime")
    log = home / "jupyter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _lab_command(root, port, token, base_url),
            env=clean,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_serving(lab, process, log)
        yield lab
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server shuts its kernels down
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class LabPage:
    """JupyterLab loaded once in one browser tab; notebooks are opened in it as a learner opens them."""

    def __init__(self, lab: Lab, context: Any) -> None:
        self.lab = lab
        self.page = context.new_page()
        self.page.goto(f"{lab.url}lab?reset&token={lab.token}")  # `reset`: a fresh workspace, nothing open
        self.page.locator(".lm-MenuBar-itemLabel", has_text="File").wait_for(timeout=60_000)

    def menu(self, menu: str, item: str) -> None:
        self.page.locator(".lm-MenuBar-itemLabel", has_text=menu).click()
        self.page.locator(".lm-Menu-itemLabel").get_by_text(item, exact=True).click()

    def open(self, path: str) -> Notebook:
        """File ▸ Open from Path…: the notebook, once its kernel is up and idle."""
        panels = "() => [...document.querySelectorAll('.jp-NotebookPanel')].map(p => p.id)"
        before = self.page.evaluate(panels)
        self.menu("File", "Open from Path…")
        self.page.locator(".jp-Dialog input").fill(path)
        self.page.keyboard.press("Enter")
        new = self.page.wait_for_function(
            f"before => ({panels})().find(id => !before.includes(id))", arg=before, timeout=30_000
        ).json_value()
        return Notebook(self, path, f"#{new}")

    def close(self) -> None:
        self.page.close()


class Notebook:
    """One notebook open in a :class:`LabPage`, its kernel started and idle."""

    def __init__(self, tab: LabPage, path: str, css: str) -> None:
        """``css`` selects this notebook's panel (its id), whichever notebook is on show."""
        self.tab, self.lab, self.page, self.path, self._css = tab, tab.lab, tab.page, path, css
        self.panel = self.page.locator(css)
        self.panel.locator(".jp-Cell").first.wait_for(state="attached", timeout=30_000)
        self.kernel_id = self._wait_for_kernel()
        self.wait_until_settled(60)

    def _wait_for_kernel(self) -> str:
        deadline = time.monotonic() + 60
        while (kernel := self.lab.kernel_of(self.path)) is None or kernel["execution_state"] != "idle":
            if time.monotonic() > deadline:
                pytest.fail(f"the kernel of {self.path} was not idle within 60 s: {kernel}")
            time.sleep(0.2)
        return kernel["id"]

    @property
    def source(self) -> dict[str, Any]:
        """The notebook as saved on disk."""
        answer = self.lab.api("GET", f"contents/{self.path}", params={"type": "notebook", "content": "1"})
        assert answer.status_code == 200, f"reading {self.path}: HTTP {answer.status_code} {answer.text[:500]}"
        return answer.json()["content"]

    def cell(self, index: int) -> Any:
        return self.panel.locator(".jp-Cell").nth(index)

    def _starting_cells(self, act: Callable[[], None]) -> None:
        """Do ``act`` and wait until it has queued or run a cell (a prompt changed): no silent no-op."""
        before = self.page.evaluate(_prompts(self._css))
        act()
        self.page.wait_for_function(
            f"before => JSON.stringify(({_prompts(self._css)})()) !== JSON.stringify(before)",
            arg=before,
            timeout=10_000,
        )

    def run_all(self) -> None:
        """Run ▸ Run All Cells (returns once the cells are queued)."""
        self.show()
        self._starting_cells(lambda: self.tab.menu("Run", "Run All Cells"))

    def run_all_above(self, index: int) -> None:
        """Select cell ``index``, then Run ▸ Run All Above Selected Cell."""
        self.show()
        self.cell(index).locator(".jp-InputPrompt").click()
        self._starting_cells(lambda: self.tab.menu("Run", "Run All Above Selected Cell"))

    def run_selected(self, times: int = 1) -> None:
        """Shift+Enter ``times`` times: run the selected cell and move to the next."""

        def press() -> None:
            for _ in range(times):
                self.page.keyboard.press("Shift+Enter")

        self._starting_cells(press)

    def type_into(self, index: int, code: str) -> None:
        """Replace the code of cell ``index`` as a learner would: click in it, select all, type."""
        self.cell(index).locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(code)

    def wait_until_settled(self, seconds: float = 240) -> None:
        self.page.wait_for_function(_settled(self._css), timeout=seconds * 1000, polling=200)

    def show(self) -> None:
        """Make this notebook the one on show and active (click its tab, then one of its prompts)."""
        self.page.locator(f".lm-DockPanel-tabBar .lm-TabBar-tab[data-id='{self._css[1:]}']").click()
        self.cell(0).locator(".jp-InputPrompt").click()

    def save(self) -> None:
        """Ctrl+S, and wait until its tab no longer says it has unsaved changes."""
        self.show()
        self.page.keyboard.press("Control+s")
        tab = f".lm-DockPanel-tabBar .lm-TabBar-tab[data-id='{self._css[1:]}']"
        self.page.wait_for_function(
            f"() => !document.querySelector(\"{tab}\").classList.contains('jp-mod-dirty')", timeout=20_000
        )

    def saved(self) -> dict[str, Any]:
        """Save, and return the notebook with the outputs the page shows."""
        self.save()
        return self.source

    def in_kernel(self, code: str) -> str:
        return self.lab.run_in_kernel(self.kernel_id, code)

    def generations(self) -> list[dict[str, Any]]:
        """The embedded models' records of this lesson's generations (times are ``time.monotonic()``)."""
        return json.loads(self.in_kernel(GENERATIONS))

    def close(self) -> None:
        """Save it (no "save your work?" dialog), shut its kernel down (its servers go too), File ▸ Close Tab."""
        self.save()
        self.lab.api("DELETE", f"sessions/{self._session_id()}")
        self.tab.menu("File", "Close Tab")
        self.panel.wait_for(state="detached", timeout=20_000)

    def _session_id(self) -> str:
        return next(s["id"] for s in self.lab.api("GET", "sessions").json() if s["path"] == self.path)


def click_time(locator: Any) -> float:
    """Click ``locator`` with the mouse; return when its page saw the click, on this process's ``time.monotonic()``.

    The page stamps the click itself (a capture listener on its document), so the
    time is the event's, not when Playwright's call returned. Both clocks are the
    machine's: the page's wall clock is moved onto ``time.monotonic()`` by their offset.
    """
    locator.hover()  # Playwright's checks (visible, stable) happen here, not between the stamp and the click
    locator.evaluate(
        "el => el.ownerDocument.addEventListener('click', () => "
        "{ window.clickedAt = performance.timeOrigin + performance.now(); }, {capture: true, once: true})"
    )
    locator.click()
    offset = time.time() - time.monotonic()
    return locator.evaluate("el => el.ownerDocument.defaultView.clickedAt") / 1000 - offset


def running_at(generations: list[dict[str, Any]], moment: float) -> list[dict[str, Any]]:
    """The generations that had started and not yet closed at ``moment``."""
    return [g for g in generations if g["started"] <= moment and (g["closed_at"] is None or g["closed_at"] > moment)]
