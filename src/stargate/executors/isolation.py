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
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import threading
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from stargate.executors.bwrap import env_path, probe_bwrap

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
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


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
        return Isolation(IsolationMode.SANDBOX, bwrap=bwrap, env=env_path(), single_team=single_team)
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
        IsolationMode.USERS, bwrap=bwrap, setpriv=setpriv, env=env_path(), uid_base=uid_base, single_team=single_team
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
