"""What the API and the scheduler loop share in one server process: settings, database, metrics, executors and
the fleet in force (parsed once per version)."""

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from stargate.domain import Fleet
from stargate.executors import Executor, for_kind
from stargate.server.errors import NotFoundError
from stargate.server.metrics import Metrics
from stargate.server.settings import Settings
from stargate.store import Database
from stargate.store.repositories import fleet_versions


@dataclass
class FleetCache:
    """The parsed fleet in force, reloaded only when the stored version changes."""

    _version: str | None = None
    _fleet: Fleet | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, session: Session) -> tuple[str, Fleet]:
        """The version and the fleet in force; 404 before any fleet was applied."""
        version = fleet_versions.current_version(session)
        if version is None:
            raise NotFoundError("no fleet has been applied yet")
        with self._lock:
            if version != self._version or self._fleet is None:
                row = fleet_versions.current(session)
                assert row is not None
                self._fleet, self._version = Fleet.model_validate(row.document), row.version
            return self._version, self._fleet


@dataclass
class ExecutorRegistry:
    """One executor per kind, built on first use from the settings."""

    settings: Settings
    _built: dict[str, Executor] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, kind: str) -> Executor:
        """The executor of ``kind`` (raises ``UnknownExecutorError`` for a kind that does not exist)."""
        with self._lock:
            if kind not in self._built:
                self._built[kind] = for_kind(kind, self.settings)
            return self._built[kind]


@dataclass
class LoopState:
    """What the scheduler loop remembers between cycles to skip deciding when nothing changed.

    ``fingerprint`` is (fleet version, newest event id) after the last decision; every submission, status change
    and fleet change moves it. ``wakeup`` is the engine's next time-driven instant (None: none).
    """

    fingerprint: tuple[str, int] | None = None
    wakeup: datetime | None = None
    spec_terms: dict[int, Any] = field(default_factory=dict)
    """The engine-relevant terms of each live job's spec, by row id (specs never change; parsed once)."""
    index: tuple[str, Any] | None = None
    """(fleet version, the engine's read-only ``FleetIndex`` of that fleet): rebuilt only when the fleet changes."""


@dataclass
class ServerContext:
    """Everything one server process shares; built once in :func:`stargate.server.app.create_app`."""

    settings: Settings
    db: Database
    metrics: Metrics = field(default_factory=Metrics)
    fleet: FleetCache = field(default_factory=FleetCache)
    executors: ExecutorRegistry | None = None
    loop: LoopState = field(default_factory=LoopState)

    def __post_init__(self) -> None:
        if self.executors is None:
            self.executors = ExecutorRegistry(self.settings)

    def executor(self, kind: str) -> Executor:
        """The executor of ``kind``."""
        assert self.executors is not None
        return self.executors.get(kind)
