"""The bubblewrap sandbox of a local job: whether bubblewrap works here, and the command line that makes it.

A sandbox shows the system directories read-only, a fresh /dev (plus GPU device nodes), its own /proc, /tmp, IPC
and hostname, and the job's working directory; the state directory and everything else are simply not there.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_SYSTEM_DIRS = ("/usr", "/etc", "/opt")
_LINKABLE = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEVICE_GLOBS = ("/dev/nvidia*", "/dev/nvidia-caps", "/dev/dri", "/dev/kfd")


def env_path() -> str:
    """Absolute path of ``env`` (it sets the job's environment inside the sandbox)."""
    return shutil.which("env", path="/usr/bin:/bin") or "/usr/bin/env"


_PROBED: dict[bool, tuple[str | None, str]] = {}
_PROBE_LOCK = threading.Lock()


def probe_bwrap(*, root: bool) -> tuple[str | None, str]:
    """``(path of bwrap, "")`` when a bubblewrap sandbox like the jobs' starts here, else ``(None, why)``; probed
    once per process."""
    with _PROBE_LOCK:
        if root not in _PROBED:
            _PROBED[root] = _probe(root)
        return _PROBED[root]


def _probe(root: bool) -> tuple[str | None, str]:
    found = shutil.which("bwrap")
    if found is None:
        return None, "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    setpriv = shutil.which("setpriv") if root else None
    if root and setpriv is None:
        return None, "setpriv (util-linux) is missing: it drops root inside the sandbox"
    drop = [*setpriv_args(setpriv, 65534, 65534), "--"] if setpriv else []
    with tempfile.TemporaryDirectory(prefix="stargate-probe-") as work:
        argv = [found, *sandbox_args(Path(work), root=root), "--", *drop, "/bin/sh", "-c", "exit 0"]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=20, check=False, env={"PATH": DEFAULT_PATH})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{found} did not run: {exc}"
    if done.returncode != 0:
        detail = " ".join(done.stderr.decode(errors="replace").split())[:300] or f"exit code {done.returncode}"
        return None, f"{found} cannot make a sandbox here: {detail}"
    return found, ""


def setpriv_args(setpriv: str, uid: int, gid: int) -> list[str]:
    """``setpriv`` options that become ``uid``/``gid`` with no supplementary group and no capability left."""
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]


_BOUND = ("/sys", "/run/systemd/resolve")
"""Host directories the sandbox shows besides the system directories (read-only)."""


def hidden_mounts(hidden: Sequence[Path | str]) -> list[str]:
    """The directories of ``hidden`` (the state directory, the database's directory) that a read-only system
    directory of the sandbox would show, resolved: each gets an empty tmpfs over it in the sandbox."""
    roots = {os.path.realpath(p) for p in (*_SYSTEM_DIRS, *_LINKABLE, *_BOUND) if os.path.exists(p)}
    found: list[str] = []
    for path in hidden:
        real = os.path.realpath(path)
        if real in ("/", *found):
            continue
        if any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
            found.append(real)
    return sorted(found, key=len)


def sandbox_args(
    work_dir: Path,
    *,
    root: bool,
    work_fd: str | None = None,
    hidden: Sequence[Path | str] = (),
    network: bool = True,
) -> list[str]:
    """bubblewrap options (without the program) for a job whose working directory is ``work_dir``.

    System directories read-only, a fresh /dev (plus GPU device nodes), /proc of its own pid namespace, private
    /tmp, IPC and hostname; the state directory, home directories and everything else are simply not there: the
    directories of ``hidden`` (the state directory, the database's) get an empty tmpfs over them when a system
    directory holds them (a STARGATE_HOME under /opt, say). The network is shared unless ``network`` is False
    (``--unshare-net``: a loopback of its own, nothing else). ``work_fd`` (root only): bind that open directory (a
    descriptor number, or the runner's placeholder for it), not the path: a job cannot swap its directory for a
    symlink in between.
    """
    args: list[str] = []  # no --die-with-parent: a run outlives its runner, as every local run does
    for path in _SYSTEM_DIRS:
        if os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _LINKABLE:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in _BOUND:
        args += ["--ro-bind-try", path, path]
    covered = hidden_mounts(hidden)
    for path in covered:  # after the binds that show them, before anything is made inside them
        args += ["--perms", "0755", "--tmpfs", path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for path in ("/dev/shm", "/tmp", "/var/tmp"):
        args += ["--perms", "1777", "--tmpfs", path]
    for pattern in _DEVICE_GLOBS:
        for device in sorted(glob.glob(pattern)):
            args += ["--dev-bind-try", device, device]
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "stargate-job"]
    if not network:
        args += ["--unshare-net"]
    if root:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
    host = (*_SYSTEM_DIRS, *_LINKABLE, "/dev", "/proc", "/sys", "/run/systemd/resolve")  # their subdirs exist
    mounted = ("/", "/tmp", "/var/tmp", "/dev/shm")
    target = Path(work_dir)
    real = Path(os.path.realpath(work_dir))
    if real != target and any(str(real).startswith(c + "/") for c in covered):
        target = real  # reached through a symlink into a hidden directory: make the real way (the link leads there)
    for parent in reversed(target.parents):  # the way down to the job's directory: traversable, empty
        where = str(parent)
        inside_hidden = any(where.startswith(c + "/") for c in covered)  # an empty tmpfs: make the way again
        shown = any(where == h or where.startswith(h + "/") for h in host)
        if where not in mounted and where not in covered and (inside_hidden or not shown):
            args += ["--perms", "0755", "--dir", where]
    if work_fd is not None:
        args += ["--bind-fd", work_fd, str(target)]
    else:
        args += ["--bind", str(work_dir), str(target)]
    return [*args, "--chdir", "/"]  # the job enters its directory after dropping root (``env -C``, see the runner)
