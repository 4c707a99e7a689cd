"""How the local executor keeps a job away from the server's state and from other teams' runs.

Modes (``stargate up --isolation``):

- ``users`` (the server runs as root): every team runs under its own unprivileged uid/gid, assigned from
  ``uid_base`` and recorded in ``STARGATE_HOME/job-uids.json``; when bubblewrap works the job also runs in a sandbox
  (privileged ``bwrap``, then ``setpriv`` drops to the team's uid with no capabilities);
- ``sandbox`` (the server runs as a normal user): the job runs as the server's user inside an unprivileged
  bubblewrap sandbox that shows it the system directories read-only and its own working directory only;
- ``none``: no isolation; the server then runs the jobs of one team only (``--single-team``);
- ``auto``: ``users`` as root, else ``sandbox`` when bubblewrap works, else ``none``.

:func:`resolve` turns a requested mode into an :class:`Isolation` (probing bubblewrap once), or says why it cannot.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

DEFAULT_JOB_UID_BASE = 2_000_000_000
"""First uid (and gid) given to a team in ``users`` mode: above the ranges Linux distributions hand out (system
0-999, people 1000-60000, systemd 61184-65519, subordinate ids from 100000 up, systemd-nspawn up to 1879048191),
below 2^31 (some tools mishandle larger ids) and below systemd's foreign range (2147352576 up)."""
MAX_TEAMS = 65_536
"""Teams one ``users``-mode server can give a uid: the range is ``uid_base`` to ``uid_base + 65535``."""
DERIVED_SLOTS = 2_247
"""Ranges a state directory's default base is picked from: ``DEFAULT_JOB_UID_BASE + k * MAX_TEAMS`` for k below
this, so the highest range still ends below systemd's foreign range (2147352576)."""
UIDS_FILE = "job-uids.json"
_UID_LIMIT = 2**31 - 1
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SYSTEM_DIRS = ("/usr", "/etc", "/opt")
_LINKABLE = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEVICE_GLOBS = ("/dev/nvidia*", "/dev/nvidia-caps", "/dev/dri", "/dev/kfd")


class IsolationMode(StrEnum):
    """``--isolation``: what a job runs as and in."""

    AUTO = "auto"
    USERS = "users"
    SANDBOX = "sandbox"
    NONE = "none"


class JobNetwork(StrEnum):
    """``--job-network``: the network a job sees."""

    HOST = "host"
    """The host's network, shared with the server and every other job."""
    NONE = "none"
    """A network namespace of its own with only a loopback (bubblewrap ``--unshare-net``)."""


class IsolationError(ValueError):
    """The requested isolation cannot be had here (the message says why and what to do; ``option`` is the
    command-line option at fault)."""

    def __init__(self, message: str, option: str = "--isolation") -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True, slots=True)
class Isolation:
    """A resolved isolation: the mode, the tools it uses and the team restriction."""

    mode: IsolationMode = IsolationMode.NONE
    bwrap: str | None = None
    """Absolute path of ``bwrap`` when jobs run in a bubblewrap sandbox."""
    setpriv: str | None = None
    """Absolute path of ``setpriv`` (``users`` mode with bubblewrap: drops root inside the sandbox)."""
    env: str = "/usr/bin/env"
    """Absolute path of ``env``: sets the job's environment inside the sandbox, after every privileged step."""
    uid_base: int = DEFAULT_JOB_UID_BASE
    single_team: str | None = None
    """When set, only this team's jobs run on the local executor."""
    network: bool = True
    """False (``--job-network none``): the job gets a network namespace with only a loopback of its own."""

    @property
    def per_team_users(self) -> bool:
        """True when each team runs under a uid of its own."""
        return self.mode is IsolationMode.USERS

    def describe(self) -> str:
        """One line for the server's start-up output."""
        if self.mode is IsolationMode.USERS:
            box = " in a bubblewrap sandbox" if self.bwrap else " (no bubblewrap: shared /tmp, no sandbox)"
            top = self.uid_base + MAX_TEAMS - 1
            return f"jobs run as one unprivileged uid per team ({self.uid_base}-{top}){box}{self._net()}"
        if self.mode is IsolationMode.SANDBOX:
            return (
                "jobs run as the server's user in a bubblewrap sandbox (state directory and home directories hidden)"
                + self._net()
            )
        return f"no isolation: jobs run as the server's user; only team '{self.single_team}' may run jobs here"

    def _net(self) -> str:
        return "" if self.network else "; no network (a loopback of its own)"


def resolve(
    requested: str,
    *,
    single_team: str | None = None,
    uid_base: int | None = None,
    work_root: Path | None = None,
    euid: int | None = None,
    job_network: str = JobNetwork.HOST,
) -> Isolation:
    """The isolation ``requested`` (auto, users, sandbox, none) gives on this machine; IsolationError why not.

    ``work_root`` is the directory jobs' working directories go under: without bubblewrap, ``users`` mode needs every
    directory above it to be traversable by other users (the job's uid must reach its directory). ``job_network``
    ``none`` needs a bubblewrap sandbox (``--unshare-net``).
    """
    found = _resolve(requested, single_team=single_team, uid_base=uid_base, work_root=work_root, euid=euid)
    try:
        network = JobNetwork(job_network)
    except ValueError:
        raise IsolationError(f"found '{job_network}'; expected host or none", "--job-network") from None
    if network is JobNetwork.NONE and found.bwrap is None:
        raise IsolationError(
            f"none needs a bubblewrap sandbox to give jobs a network of their own, and isolation {found.mode.value} "
            "here has none: install bubblewrap (users or sandbox mode), or use --job-network host",
            "--job-network",
        )
    return replace(found, network=network is JobNetwork.HOST)


def _resolve(
    requested: str, *, single_team: str | None, uid_base: int | None, work_root: Path | None, euid: int | None
) -> Isolation:
    """:func:`resolve` without the network."""
    try:
        mode = IsolationMode(requested)
    except ValueError:
        raise IsolationError(f"found '{requested}'; expected auto, users, sandbox or none") from None
    if single_team is not None and not single_team.strip():
        raise IsolationError("found an empty team name; expected a team id", "--single-team")
    root = (os.geteuid() if euid is None else euid) == 0
    if mode is IsolationMode.AUTO:
        if root:
            mode = IsolationMode.USERS
        else:
            mode = IsolationMode.SANDBOX if probe_bwrap(root=False)[0] else IsolationMode.NONE
            if mode is IsolationMode.NONE and single_team is None:
                why = probe_bwrap(root=False)[1]
                raise IsolationError(
                    f"auto found neither root (for one uid per team) nor a working bubblewrap ({why}); install "
                    "bubblewrap, or start with --isolation none --single-team TEAM to run one team's jobs only"
                )
    if mode is IsolationMode.USERS:
        return _users(single_team, uid_base, work_root, root)
    if mode is IsolationMode.SANDBOX:
        if root:
            raise IsolationError(
                "sandbox runs jobs as the server's user, which is root here: use --isolation users "
                "(one unprivileged uid per team, sandboxed too when bubblewrap works)"
            )
        bwrap, why = probe_bwrap(root=False)
        if bwrap is None:
            raise IsolationError(f"sandbox needs a working bubblewrap (bwrap): {why}")
        return Isolation(IsolationMode.SANDBOX, bwrap=bwrap, env=_env_path(), single_team=single_team)
    if root:
        raise IsolationError(
            "none would run jobs as root (uid 0) here: use --isolation users (one unprivileged uid per team)"
        )
    if single_team is None:
        raise IsolationError(
            "none runs every job as the server's user, able to read the server's state; start with "
            "--single-team TEAM to run one team's jobs only, or use users (as root) or sandbox (bubblewrap)"
        )
    return Isolation(IsolationMode.NONE, single_team=single_team)


def _users(single_team: str | None, requested: int | None, work_root: Path | None, root: bool) -> Isolation:
    """The ``users`` isolation, checked: root, a free uid range, bubblewrap or reachable work directories."""
    if not root:
        raise IsolationError(
            f"users needs root to run jobs under other uids (the server runs as uid {os.geteuid()}); "
            "use --isolation sandbox, or none --single-team TEAM"
        )
    uid_base = effective_uid_base(work_root, requested)
    check_uid_range(uid_base)
    bwrap, _ = probe_bwrap(root=True)
    setpriv = shutil.which("setpriv") if bwrap else None
    if bwrap is None or setpriv is None:
        bwrap = None
        blocked = _untraversable_ancestor(work_root.parent) if work_root is not None else None
        if blocked is not None:
            raise IsolationError(
                f"users without bubblewrap needs every directory above {work_root} to be traversable by other users, "
                f"and {blocked} is not (mode {stat.S_IMODE(blocked.stat().st_mode):o}): install bubblewrap, "
                "or move STARGATE_HOME"
            )
    return Isolation(
        IsolationMode.USERS, bwrap=bwrap, setpriv=setpriv, env=_env_path(), uid_base=uid_base, single_team=single_team
    )


def derived_uid_base(home: Path) -> int:
    """The default first team uid of the state directory ``home``: one of :data:`DERIVED_SLOTS` ranges above
    :data:`DEFAULT_JOB_UID_BASE`, picked by a hash of its resolved path, so two servers on one host (two state
    directories) most likely get different uids for their teams (``--job-uid-base`` makes it certain)."""
    digest = hashlib.sha256(os.path.realpath(home).encode()).digest()
    return DEFAULT_JOB_UID_BASE + int.from_bytes(digest[:8], "big") % DERIVED_SLOTS * MAX_TEAMS


def recorded_uid_base(home: Path) -> int | None:
    """The base recorded in ``home/job-uids.json``: its ``base``, or :data:`DEFAULT_JOB_UID_BASE` for a file of an
    earlier release that holds teams but no base; None when there is none yet."""
    try:
        data = json.loads((home / UIDS_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        raise IsolationError(f"{home / UIDS_FILE} is not valid JSON: fix or remove it", "--job-uid-base") from None
    if isinstance(data, dict) and isinstance(data.get("base"), int):
        return int(data["base"])
    return DEFAULT_JOB_UID_BASE if isinstance(data, dict) and data.get("teams") else None


def effective_uid_base(home: Path | None, requested: int | None) -> int:
    """The first team uid for the state directory ``home``: the one recorded there (an explicit different one is
    refused: the teams' files belong to their recorded uids), else ``requested``, else derived from the path."""
    if home is None:
        return DEFAULT_JOB_UID_BASE if requested is None else requested
    recorded = recorded_uid_base(home)
    if recorded is not None:
        if requested is not None and requested != recorded:
            raise IsolationError(
                f"found {requested}, but the teams of {home} have uids from {recorded} ({UIDS_FILE}): "
                f"give {recorded} or leave the option out",
                "--job-uid-base",
            )
        return recorded
    return requested if requested is not None else derived_uid_base(home)


def check_uid_range(base: int) -> None:
    """IsolationError unless ``base`` to ``base + MAX_TEAMS - 1`` is free: no account, group or subordinate id in
    it, above the system ranges, below 2^31."""
    top = base + MAX_TEAMS - 1
    if base < 65_536 or top > _UID_LIMIT:
        raise IsolationError(
            f"found {base}; expected {65_536} to {_UID_LIMIT - MAX_TEAMS + 1} (the range holds {MAX_TEAMS} uids)",
            "--job-uid-base",
        )
    for entry in pwd.getpwall():
        if base <= entry.pw_uid <= top or base <= entry.pw_gid <= top:
            raise IsolationError(
                f"{base}-{top} holds the account '{entry.pw_name}' (uid {entry.pw_uid}); pick another",
                "--job-uid-base",
            )
    for group in grp.getgrall():
        if base <= group.gr_gid <= top:
            raise IsolationError(
                f"{base}-{top} holds the group '{group.gr_name}' (gid {group.gr_gid}); pick another", "--job-uid-base"
            )
    for path in ("/etc/subuid", "/etc/subgid"):
        for owner, start, count in _subordinate_ranges(Path(path)):
            if start <= top and base < start + count:
                raise IsolationError(
                    f"{base}-{top} overlaps the subordinate ids of '{owner}' in {path} "
                    f"({start}-{start + count - 1}); pick another",
                    "--job-uid-base",
                )


def _subordinate_ranges(path: Path) -> list[tuple[str, int, int]]:
    """``(owner, first id, count)`` from /etc/subuid or /etc/subgid (missing file: none)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    ranges = []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            ranges.append((parts[0], int(parts[1]), int(parts[2])))
    return ranges


def needs_traversal() -> bool:
    """True when ``users`` jobs here would run without bubblewrap, so their uids must walk to their directories
    through the state directory (which is then 0711: passable, not listable)."""
    return probe_bwrap(root=True)[0] is None or shutil.which("setpriv") is None


def _untraversable_ancestor(path: Path) -> Path | None:
    """The first directory from / down to ``path`` (those that exist) that others cannot traverse, or None."""
    current = Path("/")
    for part in path.absolute().parts[1:]:
        current = current / part
        try:
            mode = current.stat().st_mode
        except FileNotFoundError:
            return None
        if not mode & stat.S_IXOTH:
            return current
    return None


def _env_path() -> str:
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


def team_dir_name(team: str) -> str:
    """A file name for ``team``: the team id when it is a safe one, else ``t-`` and a digest of it."""
    if _SAFE_NAME.match(team):
        return team
    return "t-" + hashlib.sha256(team.encode()).hexdigest()[:16]


class TeamIdentities:
    """The uid/gid of each team (``users`` mode), kept in a private file so a restart keeps the mapping.

    The file is ``{"teams": {"alpha": 2000000000, ...}}``; a new team gets the lowest free id from the base. Several
    processes on one state directory agree through an exclusive lock on the file.
    """

    def __init__(self, path: Path, base: int = DEFAULT_JOB_UID_BASE) -> None:
        self.path = Path(path)
        self.base = base
        self._cache: dict[str, int] = {}
        self._lock = threading.Lock()

    def uid_of(self, team: str) -> int:
        """The team's uid (= gid), assigned and recorded now when it has none yet."""
        with self._lock:
            if team in self._cache:
                return self._cache[team]
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.fchmod(fd, 0o600)
                teams = _read_teams(fd)
                recorded = _read_base(fd)
                if recorded is not None and recorded != self.base:
                    raise RuntimeError(f"job-uids.json records the base {recorded}, not {self.base}")
                if team not in teams:
                    used = set(teams.values())
                    uid = next((u for u in range(self.base, self.base + MAX_TEAMS) if u not in used), None)
                    if uid is None:
                        raise RuntimeError(f"no free job uid left in {self.base}-{self.base + MAX_TEAMS - 1}")
                    teams[team] = uid
                    data = json.dumps({"base": self.base, "teams": teams}, indent=1, sort_keys=True).encode()
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, data, 0)
                    os.fsync(fd)
                self._cache = dict(teams)
                return teams[team]
            finally:
                os.close(fd)


def _read_base(fd: int) -> int | None:
    """The ``base`` recorded in the open file ``fd``, or None."""
    with contextlib.suppress(ValueError):
        data = json.loads(_read_all(fd) or b"{}")
        if isinstance(data, dict) and isinstance(data.get("base"), int):
            return int(data["base"])
    return None


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _read_teams(fd: int) -> dict[str, int]:
    """The team → uid map in the open file ``fd`` (empty for a new file)."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    if not chunks:
        return {}
    with contextlib.suppress(ValueError):
        data = json.loads(b"".join(chunks))
        teams = data.get("teams", {}) if isinstance(data, dict) else {}
        return {str(k): int(v) for k, v in teams.items() if isinstance(v, int)}
    raise RuntimeError("job-uids.json is not valid JSON: fix or remove it (teams keep their files by uid)")
