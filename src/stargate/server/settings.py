"""Server settings: one dataclass built once from the environment and the command line, then passed down."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from stargate.executors.isolation import DEFAULT_JOB_UID_BASE
from stargate.server.defaults import DEFAULT_HOST, DEFAULT_INTERVAL_S, DEFAULT_PORT
from stargate.store.database import default_url


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
    isolation: str = "auto"
    """How local jobs are kept from the server's state and each other: auto, users, sandbox or none (see
    :mod:`stargate.executors.isolation`); ``stargate up`` resolves ``auto`` to the mode it found."""
    single_team: str | None = None
    """Run only this team's jobs on the local executor (required by ``isolation`` none)."""
    job_uid_base: int = DEFAULT_JOB_UID_BASE
    """First uid/gid given to a team in ``users`` isolation."""

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

    @property
    def lock_path(self) -> Path:
        """The scheduler's lock file (SQLite)."""
        return self.home / "scheduler.lock"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        """Settings from ``STARGATE_HOME``, ``STARGATE_DATABASE_URL``, then ``overrides``."""
        env = os.environ if env is None else env
        home = Path(env.get("STARGATE_HOME") or ".stargate")
        url = env.get("STARGATE_DATABASE_URL") or default_url(home)
        base = cls(home=home, database_url=url)
        return replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        """The address the API listens on."""
        return f"http://{self.host}:{self.port}"
