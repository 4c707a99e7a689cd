"""Which Unix account each Slurm job runs as, and an output file only that account (and the server) can use.

Slurm runs a job as the uid that submitted it. A server running as root therefore submits every job with
``sbatch --uid=<account> --gid=<its primary gid>``: the account ``team_users`` gives the run's team, else ``user``.
Each must be a real account of this host (and, with the same uid, of slurmctld's host and every node: slurmctld
cannot make a job credential for a uid without one, and requeues the job instead of starting it). As root, ``user``
is required: the executor is not built without it, so a job never runs as root by default; ``user: root`` runs
them as root on purpose (logged as a warning when the executor is built). A server not running as root cannot
submit as another account (``sbatch --uid`` needs root): ``user`` and ``team_users`` may then name only its own
account, and anything else refuses to build the executor.

Slurm opens a job's output file as the job's account, so a run of another account than the server's cannot write
into the server's private state directory. Its output then goes to ``log_dir``, which must be a directory whose
every parent others may pass, owned by the server's user and writable by it alone (made 0711 when missing). Each
run's file ``<log_dir>/<name>.log`` is made by the server before sbatch, owned by the run's account, mode 0600: Slurm
appends to it, other accounts can neither read it nor plant a file of that name, and the server reads it as root.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stargate.domain.executors import SlurmExecutorConfig

log = logging.getLogger(__name__)

LOG_DIR_MODE = 0o711
"""Mode of a ``log_dir`` the executor makes for runs of other accounts: they pass through it, never list it."""

Lookup = Callable[[str], pwd.struct_passwd]
"""How an account name is looked up (``pwd.getpwnam``: KeyError when there is none)."""


class AccountError(ValueError):
    """The accounts an executor's jobs would run as cannot be used here (the message says which and what to do)."""


@dataclass(frozen=True, slots=True)
class Account:
    """A Unix account a job runs as."""

    name: str
    uid: int
    gid: int
    """Its primary group."""


@dataclass(frozen=True, slots=True)
class JobAccounts:
    """The accounts one Slurm executor's jobs run as, checked against this host's accounts (see the module doc)."""

    executor: str
    user: str | None
    team_users: Mapping[str, str] = field(default_factory=dict)
    euid: int = 0
    """The server's effective uid: only 0 (root) submits as other accounts."""
    lookup: Lookup = pwd.getpwnam

    @classmethod
    def of(cls, config: SlurmExecutorConfig, euid: int | None = None, lookup: Lookup = pwd.getpwnam) -> JobAccounts:
        """The accounts ``config`` names, checked for a server of effective uid ``euid`` (default: this process's);
        AccountError when the server is root and ``user`` is not set, when an account does not exist here, or when
        a server that is not root names another account than its own."""
        found = cls(config.id, config.user, dict(config.team_users), os.geteuid() if euid is None else euid, lookup)
        if found.euid == 0 and config.user is None:
            raise AccountError(
                f"the server runs as root and executors[{config.id}].user is not set: set user to the Unix account "
                "its Slurm jobs run as (one that slurmctld and every node know, e.g. user: stargate-jobs), and "
                "team_users for an account per team; Slurm jobs never run as root unless user says root"
            )
        named = [(f"executors[{config.id}].user", config.user)] if config.user else []
        named += [
            (f"executors[{config.id}].team_users.{team}", name) for team, name in sorted(config.team_users.items())
        ]
        accounts = {where: found.account(name, where) for where, name in named}
        if found.euid != 0:
            for where, account in accounts.items():
                if account.uid != found.euid:
                    raise AccountError(
                        f"{where} names '{account.name}', but the server runs as {_own(found.euid)} and only root "
                        "can submit Slurm jobs as another account (sbatch --uid): start the server as root, or leave "
                        f"user and team_users out (jobs then run as {_own(found.euid)})"
                    )
        as_root = sorted({a.name for a in accounts.values() if a.uid == 0})
        if as_root:
            log.warning(
                "executor %s: Slurm jobs run as root (%s): they can read the server's state and every team's runs",
                config.id,
                ", ".join(as_root),
            )
        return found

    def account(self, name: str, where: str) -> Account:
        """The account ``name`` (named by the fleet file's field ``where``); AccountError when this host has none."""
        try:
            entry = self.lookup(name)
        except KeyError:
            raise AccountError(
                f"account '{name}' ({where}) does not exist on this host: create it (with the same uid on "
                "slurmctld's host and every node), or name another"
            ) from None
        return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)

    @property
    def names_others(self) -> bool:
        """True when some job runs as another account than the server's (then ``log_dir`` is required)."""
        names = [self.user, *self.team_users.values()] if self.euid == 0 else []
        return any(self._uid(name) != self.euid for name in names if name is not None)

    def _uid(self, name: str) -> int:
        try:
            return self.lookup(name).pw_uid
        except KeyError:
            return -1

    def for_team(self, team: str) -> Account | None:
        """The account a run of ``team`` is submitted as (``--uid``), or None: the server's own (no ``--uid``).
        AccountError when its account no longer exists here, or (root) none is named."""
        if self.euid != 0:
            return None
        name = self.team_users.get(team)
        where = f"executors[{self.executor}].team_users.{team}"
        if name is None:
            name, where = self.user, f"executors[{self.executor}].user"
        if name is None:
            raise AccountError(f"team '{team}' has no account to run as ({where} is not set); jobs never run as root")
        account = self.account(name, where)
        return None if account.uid == self.euid else account


def _own(euid: int) -> str:
    """The server's account in words: ``'alice' (uid 1000)``, or ``uid 1000`` when it has no name."""
    try:
        return f"'{pwd.getpwuid(euid).pw_name}' (uid {euid})"
    except KeyError:
        return f"uid {euid}"


def shared_log_dir(config: SlurmExecutorConfig, accounts: JobAccounts) -> Path:
    """The ``log_dir`` runs of other accounts write in: checked (made 0711 when missing); AccountError when it is
    not set, not a directory, writable by others than the server, or out of the accounts' reach."""
    where = f"executors[{config.id}].log_dir"
    if config.log_dir is None:
        raise AccountError(
            f"Slurm jobs run as other accounts than the server's, which cannot write into its private state "
            f"directory: set {where} to a directory outside STARGATE_HOME (on a filesystem the nodes share with the "
            "server when they are other machines), e.g. /var/log/stargate/slurm"
        )
    path = Path(config.log_dir)
    if not path.is_absolute():
        raise AccountError(f"{where} is {config.log_dir!r}: give an absolute path")
    try:
        _make_passable(path)
        info = path.stat()
    except OSError as exc:
        raise AccountError(f"{where} {path}: cannot make it: {exc.strerror or exc}") from None
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode):
        raise AccountError(f"{where} {path} is not a directory")
    if info.st_uid != accounts.euid or mode & 0o022:
        raise AccountError(
            f"{where} {path} is owned by uid {info.st_uid}, mode {mode:o}: it must be owned by the server's user "
            f"(uid {accounts.euid}) and writable by it alone (e.g. mode 711), or another account could plant a "
            "run's output file"
        )
    blocked = _unpassable(path)
    if blocked is not None:
        shown = f"{blocked} (mode {stat.S_IMODE(blocked.stat().st_mode):o})"
        raise AccountError(
            f"{where} {path}: the jobs' accounts cannot reach it, since others may not pass {shown}: choose a "
            "directory whose every parent others may pass (outside STARGATE_HOME), or chmod o+x it"
        )
    return path


def _make_passable(path: Path) -> None:
    """Make ``path`` and its missing parents with mode 0711 exactly, whatever the process's umask (the server runs
    under 077, which would leave them 0700: out of the jobs' accounts' reach). Existing directories are left as
    they are."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=LOG_DIR_MODE)
        except FileExistsError:  # made meanwhile by another process: checked like any existing one
            continue
        directory.chmod(LOG_DIR_MODE)


def _unpassable(path: Path) -> Path | None:
    """The first directory from / down to ``path`` that others may not pass (no execute bit for others), or None."""
    current = Path("/")
    for part in path.parts[1:]:
        current = current / part
        if not current.stat().st_mode & stat.S_IXOTH:
            return current
    return None


def own_log_file(path: Path, account: Account) -> None:
    """Make the output file ``path`` of a run of ``account`` (or keep it): owned by the account, mode 0600, never
    through a symbolic link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchown(fd, account.uid, account.gid)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
