"""Server settings: one dataclass built once from the environment and the command line, then passed down."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from stargate.engine.scheduling import Override
from stargate.executors.local_runner import DEFAULT_LOG_LIMIT
from stargate.executors.retention import DEFAULT_RETENTION_S, RETENTION_ENV, parse_retention
from stargate.server.defaults import DEFAULT_HOST, DEFAULT_INTERVAL_S, DEFAULT_PORT
from stargate.server.limits import (
    BODY_ENV,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_PLAN_BODY_BYTES,
    PLAN_BODY_ENV,
    SettingsError,
    bytes_from_env,
)
from stargate.store.database import DatabaseUrlError, default_url, sqlite_path

LOG_CAP_ENV = "STARGATE_MAX_LOG_BYTES"
_LOG_CAP_RANGE = (4096, 1 << 40)


def _log_cap(env: Mapping[str, str]) -> int:
    """``STARGATE_MAX_LOG_BYTES`` (4 KiB to 1 TiB; default 1 GiB); SettingsError for another value."""
    return bytes_from_env(env, LOG_CAP_ENV, DEFAULT_LOG_LIMIT, *_LOG_CAP_RANGE)


def _retention(env: Mapping[str, str]) -> float | None:
    """``STARGATE_RUN_RETENTION`` (1 h to 3650 d, or ``never``; default 7 d), s; SettingsError for another value."""
    raw = env.get(RETENTION_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_S
    try:
        return parse_retention(raw)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to know; no module globals.

    ``fleet_path`` None means: keep the fleet already applied in the database (or the bundled default fleet when
    the database has none).
    """

    home: Path
    database_url: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    fleet_path: Path | None = None
    scheduler_enabled: bool = True
    scheduler_interval_s: float = DEFAULT_INTERVAL_S
    cancel_grace_s: float = 10.0
    executor_threads: int = 8
    """Executor calls (submit, poll, cancel) the scheduler loop makes at once, after its transactions."""
    start_tries: int = 3
    """Times the scheduler asks an executor to start a placed job (one try per cycle) before failing the job."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """The largest request body the API reads, bytes (``STARGATE_MAX_BODY_BYTES``); a larger one gets 413."""
    max_plan_body_bytes: int = DEFAULT_MAX_PLAN_BODY_BYTES
    """The same for ``POST /api/v1/fleet/plan`` with a token (``STARGATE_MAX_PLAN_BODY_BYTES``)."""
    isolation: str = "auto"
    """How local jobs are kept from the server's state and each other: auto, users, sandbox or none (see
    :mod:`stargate.executors.isolation`); ``stargate up`` resolves ``auto`` to the mode it found."""
    single_team: str | None = None
    """Run only this team's jobs on the local executor (required by ``isolation`` none)."""
    job_uid_base: int | None = None
    """First uid/gid given to a team in ``users`` isolation; None: the one recorded in ``job-uids.json``, else one
    derived from the state directory's path (see :func:`stargate.executors.isolation.derived_uid_base`)."""
    max_log_bytes: int = DEFAULT_LOG_LIMIT
    """Most bytes of output one local run keeps in its ``output.log`` (``STARGATE_MAX_LOG_BYTES``, default 1 GiB);
    the rest is dropped, with a last line saying so."""
    run_retention_s: float | None = DEFAULT_RETENTION_S
    """How long executors keep a finished run's records and logs after its job ended, s (``STARGATE_RUN_RETENTION``,
    default 7 days, at least 1 hour); None: never pruned (see :mod:`stargate.executors.retention`)."""
    job_network: str = "host"
    """What network local jobs get: host (shared) or none (a loopback of their own; bubblewrap modes only)."""
    scheduling: Override = field(default_factory=Override)
    """``stargate up --policy/--set``: the scheduling policy over the fleet's ``scheduling:`` section."""
    installation_id: str | None = None
    """The database's installation id (filled in by :class:`~stargate.server.context.ServerContext` from the
    database): the local executor keeps runs under ``runs/<id>/`` and working directories under ``work/<id>/``."""

    @property
    def private_dirs(self) -> tuple[Path, ...]:
        """Directories no job may see: the state directory, and the SQLite database's directory when elsewhere."""
        hidden = [self.home]
        try:
            path = sqlite_path(self.database_url)
        except DatabaseUrlError:
            path = None
        if path is not None:
            hidden.append(path.absolute().parent)
        return tuple(hidden)

    @property
    def runs_dir(self) -> Path:
        """Where executors keep run logs and run records."""
        return self.home / "runs"

    @property
    def work_dir(self) -> Path:
        """Where local jobs get their working directories (``<team>/<job>/attempt-<n>``)."""
        return self.home / "work"

    @property
    def admin_token_path(self) -> Path:
        """Where the first start writes the first admin token (mode 0600; never to the log or the terminal)."""
        return self.home / "admin-token"

    def admin_token_file(self, installation_id: str | None) -> Path:
        """Where to write a new first admin token: ``admin-token``, or ``admin-token-<first 8 of the installation
        id>`` when ``admin-token`` exists already (another database's: it is never written over)."""
        path = self.admin_token_path
        if (path.exists() or path.is_symlink()) and installation_id:
            return path.with_name(f"{path.name}-{installation_id[:8]}")
        return path

    @property
    def lock_path(self) -> Path:
        """The scheduler's lock file on SQLite: beside the database file, so servers on one database share it and
        servers on two databases over one state directory do not."""
        try:
            database = sqlite_path(self.database_url)
        except DatabaseUrlError:
            database = None
        if database is None:
            return self.home / "scheduler.lock"
        return database.with_name(f"{database.name}.scheduler.lock")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        """Settings from ``STARGATE_HOME``, ``STARGATE_DATABASE_URL``, the body limits, the log cap, the run
        retention, then ``overrides``.

        Raises :class:`stargate.server.limits.SettingsError` (one located line) for an invalid value.
        """
        env = os.environ if env is None else env
        home = Path(env.get("STARGATE_HOME") or ".stargate")
        url = env.get("STARGATE_DATABASE_URL") or default_url(home)
        base = cls(
            home=home,
            database_url=url,
            max_body_bytes=bytes_from_env(env, BODY_ENV, DEFAULT_MAX_BODY_BYTES),
            max_plan_body_bytes=bytes_from_env(env, PLAN_BODY_ENV, DEFAULT_MAX_PLAN_BODY_BYTES),
            max_log_bytes=_log_cap(env),
            run_retention_s=_retention(env),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        """The address the API listens on."""
        return f"http://{self.host}:{self.port}"
