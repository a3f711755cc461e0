"""The grader's trust boundary: a learner's notebook runs in a sandbox the kernel enforces.

Learner code can rewrite anything in its own Python process, so the protection
is not in Python: the *runner* process (``streamcourse.runner``) is started by
bubblewrap (``bwrap``, what Flatpak runs every app in) with the command line that
:func:`runner_command` builds — one flag per promise, each with its reason.

How the pieces fit:

* The grader's *checker* for a submission (``streamcourse.checker``) first takes
  a network namespace of its own with only loopback (:func:`private_network`).
  The runner shares that loopback and nothing else: the checker's servers (the
  embedded model, upstreams) and the learner's servers reach each other on
  127.0.0.1 as they do in a lesson, and no submission can reach the machine's
  network, the instructor's services, or another job's loopback.
* The learner's processes never run as root. When the grader is root, bwrap
  (privileged) builds the sandbox and ``setpriv`` then becomes a uid of that job
  alone (``61000 + job``) with no capabilities and ``no_new_privs``: a real
  non-root user, so the process limit holds (the kernel never limits root's).
  Otherwise bwrap runs unprivileged in a user namespace, as the instructor.
* The runner sees a read-only root made only of the system's ``/usr``, a few
  files of ``/etc``, the Python installation and the ``streamcourse`` package — not
  the repository around it, so never ``solutions/``, ``tests/``, hidden checks,
  reports or other submissions — plus its own notebook (read-only), the folder
  where the check puts files it hands over (read-only), and small private
  ``/tmp`` and ``/dev/shm``.
* It gets new pid, ipc, uts, cgroup and user namespaces: it sees no process but
  its own, can signal none outside, and dies with its parent. Limits on address
  space, processes, open files, file size and CPU are set by ``prlimit`` before
  bwrap starts, so they hold for every process in the sandbox.

Runners are never forked from a warm process: each is a fresh ``python`` that
bwrap execs, so nothing of the checker's memory crosses (its checks, its
expected values), and its environment is cleared (``--clearenv``). Only one file
descriptor crosses: the runner's end of the channel.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import streamcourse

__all__ = [
    "IsolationError",
    "SandboxLimits",
    "INSTALL_HINT",
    "BOOT",
    "UID_BASE",
    "problem",
    "private_network",
    "runner_command",
    "sandbox",
]

PACKAGE = Path(streamcourse.__file__).resolve().parent
SUBMISSION_DIR = "/submission"  # where the runner finds its notebook
UID_BASE = 61000  # when grading as root, job N's learner code runs as uid UID_BASE + N
ETC_FILES = (
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/mime.types",
    "/etc/ssl",
)
ENV_KEEP = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "STREAMCOURSE_SPEED")
INSTALL_HINT = (
    "grading runs each notebook in a bubblewrap sandbox; install it (Debian/Ubuntu: `sudo apt-get install bubblewrap`, "
    "Fedora: `sudo dnf install bubblewrap`) and make sure user namespaces are enabled "
    "(`sysctl kernel.unprivileged_userns_clone=1` on older Debian kernels). To grade WITHOUT isolation — only for "
    "submissions you trust — pass --no-isolation; the reports will say so."
)


class IsolationError(RuntimeError):
    """The sandbox cannot be set up on this machine."""


@dataclass(frozen=True)
class SandboxLimits:
    """What one runner may use; ``prlimit`` enforces them for every process in its sandbox."""

    memory_mb: int = 2048  # address space of each process
    processes: int = 128  # threads count too
    files: int = 512  # open file descriptors
    file_mb: int = 64  # largest file it may write
    tmp_mb: int = 64  # its private /tmp
    shm_mb: int = 16  # its private /dev/shm
    cpu_seconds: int = 600  # CPU time of each process


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


def private_network() -> None:
    """Give this process a network namespace of its own with only loopback, up.

    As root it needs no more; as anyone else it takes a user namespace too (with
    its own uid mapped to itself), which gives it the right to configure that
    network and nothing beyond it.
    """
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if _libc().unshare(flags) != 0:
        raise IsolationError(f"cannot make a private network (unshare: {os.strerror(ctypes.get_errno())})")
    if flags & CLONE_NEWUSER:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    _loopback_up()


def _loopback_up() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH", fcntl.ioctl(sock, siocgifflags, request)[:18])[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH14s", b"lo", flags | iff_up, b""))


@lru_cache(maxsize=1)
def problem() -> str | None:
    """Why the sandbox cannot run here (with what to do), or None when it can."""
    if sys.platform != "linux":
        return f"the sandbox needs Linux (this is {sys.platform}). " + INSTALL_HINT
    needed = ("bwrap", "prlimit", "setpriv") if os.geteuid() == 0 else ("bwrap", "prlimit")
    for tool in needed:
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed. " + INSTALL_HINT
    probe = sandbox(None, None, SandboxLimits(), job=0) + ["/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=20)  # noqa: S603 - our own command
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap did not start ({exc}). " + INSTALL_HINT
    if done.returncode != 0:
        return f"bubblewrap cannot make a sandbox here ({done.stderr.strip()[:200]}). " + INSTALL_HINT
    return None


def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _binds(paths: list[str]) -> list[str]:
    """Read-only binds of ``paths`` at the same place, their parent folders made traversable."""
    args: list[str] = []
    made: set[str] = set()
    for path in paths:
        for parent in _ancestors(path):
            if parent not in made and not parent.startswith("/usr"):
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", path, path]
    return args


def _system() -> list[str]:
    """The system's programs and libraries, read-only; /bin and friends as the links they are."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    for name in ETC_FILES:
        args += ["--ro-bind-try", name, name]
    return args


def _python_paths() -> list[str]:
    """The Python installation and its environment, without anything else from around them."""
    found = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), str(PACKAGE)}
    return sorted(p for p in found if not p.startswith("/usr/"))


def runner_command(
    notebook: Path,
    shared: Path | None,
    channel_fd: int,
    limits: SandboxLimits,
    job: int,
    skip_cells: list[int],
    cell_seconds: float,
) -> list[str]:
    """The whole command that starts one runner: prlimit, bwrap (and setpriv as root), then a fresh Python."""
    return sandbox(notebook, shared, limits, job) + [
        sys.executable,
        "-I",
        "-c",
        BOOT,  # -I: no PYTHONPATH, no user site, no current folder on the path
        "--channel",
        str(channel_fd),
        "--notebook",
        f"{SUBMISSION_DIR}/{notebook.name}",
        "--skip",
        ",".join(map(str, skip_cells)),
        "--cell-seconds",
        f"{cell_seconds:g}",
    ]


def sandbox(notebook: Path | None, shared: Path | None, limits: SandboxLimits, job: int) -> list[str]:
    """The command that runs what follows it in the sandbox (the runner, or a probe in the tests)."""
    mib = 1024 * 1024
    as_root = os.geteuid() == 0
    return [
        shutil.which("prlimit") or "prlimit",
        f"--as={limits.memory_mb * mib}",  # each process's address space: a memory bomb fails with MemoryError
        f"--nproc={limits.processes if as_root else _processes_now(os.getuid()) + limits.processes}",  # a fork bomb stops here
        f"--nofile={limits.files}",  # open files and sockets
        f"--fsize={limits.file_mb * mib}",  # the largest file it may write anywhere
        f"--cpu={limits.cpu_seconds}",  # CPU seconds, a backstop behind the checker's wall clock
        "--core=0",  # no core dumps of learner processes
        "--",
        shutil.which("bwrap") or "bwrap",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",  # its own processes, IPC, host name
        *(
            [] if as_root else ["--unshare-user", "--disable-userns"]
        ),  # as a user: a user namespace, and no more of them
        "--die-with-parent",  # the sandbox ends when its checker does
        "--new-session",  # no controlling terminal: it cannot type into the instructor's
        "--cap-drop",
        "ALL",  # no capabilities inside...
        *(
            ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"] if as_root else []
        ),  # ...but setpriv's, to give up root below
        "--hostname",
        "runner",
        "--clearenv",
        *_env(),  # nothing of the grader's environment (keys, paths)
        "--dev",
        "/dev",  # a minimal /dev (null, zero, random, tty...)
        "--proc",
        "/proc",  # its own processes only
        "--perms",
        "1777",  # writable by the user it becomes, as a /tmp is
        "--size",
        str(limits.tmp_mb * mib),
        "--tmpfs",
        "/tmp",  # private scratch, capped (before the binds: one may be under /tmp)
        "--perms",
        "1777",
        "--size",
        str(limits.shm_mb * mib),
        "--tmpfs",
        "/dev/shm",  # shared memory is memory too: capped
        *_system(),
        *_binds(_python_paths()),  # Python and the support package, read-only
        *(
            [
                "--perms",
                "0755",
                "--dir",
                SUBMISSION_DIR,
                "--ro-bind",
                str(notebook),
                f"{SUBMISSION_DIR}/{notebook.name}",
            ]
            if notebook
            else []
        ),  # its own notebook, read-only
        *(_binds([str(shared)]) if shared else []),  # files the check hands over, read-only
        "--chdir",
        "/tmp",
        "--",
        *(_become(UID_BASE + job) if as_root else []),
    ]


def _become(uid: int) -> list[str]:
    """setpriv: from root to ``uid`` for good — no groups, no capabilities (not even bounding), no way back."""
    return [
        shutil.which("setpriv") or "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


# The package folder is bound at its real place; put its parent first on the path so
# `streamcourse` resolves to it whether the course is installed (editable or not) or not.
BOOT = (
    f"import sys; sys.path.insert(0, {str(PACKAGE.parent)!r}); "
    "from streamcourse.runner import main; sys.exit(main(sys.argv[1:]))"
)


def _env() -> list[str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "MPLBACKEND": "Agg",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MALLOC_ARENA_MAX": "2",
    }
    env.update({k: v for k, v in os.environ.items() if k in ENV_KEEP})
    return [arg for key, value in sorted(env.items()) for arg in ("--setenv", key, value)]


def _processes_now(uid: int) -> int:
    """Tasks (threads included) this uid runs now: RLIMIT_NPROC counts them all, the checker's too."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue  # it ended while we counted
    return count
