"""What the API and the scheduler loop share in one server process: settings, database, metrics, executors and
the fleet in force (parsed once per version)."""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from stargate.domain import DEFAULT_EXECUTORS, AnyExecutorConfig, Fleet, PressureSettings
from stargate.engine import FleetIndex, JobTerms, Policy
from stargate.engine.pressure import PressureGauge
from stargate.engine.scheduling import policy_in_force
from stargate.executors import Executor, UnknownExecutorError, build
from stargate.server.auth import TokenCache
from stargate.server.errors import NotFoundError
from stargate.server.inference.runtime import InferenceRuntime
from stargate.server.metrics import Metrics
from stargate.server.services.jobs import SubmitRules
from stargate.server.settings import Settings
from stargate.server.terms import SpecTerms
from stargate.server.writer import SubmissionWriter
from stargate.store import Database
from stargate.store.repositories import fleet_versions, installation

log = logging.getLogger("stargate.scheduler")

if TYPE_CHECKING:  # the scheduling package reads the context: its types only, to avoid an import cycle
    from stargate.server.scheduling.decide import Kept


@dataclass
class FleetCache:
    """The parsed fleet in force (and its submission rules), reloaded only when the stored version changes."""

    _version: str | None = None
    _fleet: Fleet | None = None
    _rules: SubmitRules | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _configs: tuple[str | None, dict[str, AnyExecutorConfig]] | None = None
    single_team: str | None = None
    """``stargate up --single-team``: added to the rules, so other teams' local jobs are refused at submit."""

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
                self._rules = None
            return self._version, self._fleet

    def rules(self, session: Session) -> tuple[str, SubmitRules]:
        """The version in force and the rules submissions are checked with (one small query; parsed once)."""
        version, fleet = self.get(session)
        with self._lock:
            if self._rules is None or self._version != version:
                self._rules = replace(SubmitRules.of(fleet), single_team=self.single_team)
            return version, self._rules

    def executor_configs(self) -> Mapping[str, AnyExecutorConfig]:
        """The executors of the fleet last read (defaults included), by id; only the defaults before any."""
        with self._lock:
            fleet = self._fleet
            if fleet is None:
                return DEFAULT_EXECUTORS
            if self._configs is None or self._configs[0] != self._version:
                self._configs = (self._version, fleet.executor_configs())
            return self._configs[1]

    def peek(self) -> tuple[str, SubmitRules] | None:
        """The last version seen and its rules, without asking the database (it may have moved on since: the
        submission writer checks again inside its transaction)."""
        with self._lock:
            if self._version is None or self._rules is None:
                return None
            return self._version, self._rules


RETRY_BUILD_S = 30.0
"""Seconds an executor that could not be built is not tried again with the same settings (its error is raised
again meanwhile)."""


@dataclass
class ExecutorRegistry:
    """One executor per executor id, built on first use from the settings of that id in the fleet in force (else a
    default executor of that id), and built again when those settings change (health settings aside). Executors
    given at construction (tests) are kept whatever the fleet says.

    An executor that cannot be built (``UnknownExecutorError``, e.g. its token variable is not set) is logged once
    as a warning naming it and what is wrong, and tried again at most every :data:`RETRY_BUILD_S` seconds (at once
    when its settings change); its callers go on with the other executors."""

    settings: Settings
    _built: dict[str, Executor] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _from: dict[str, AnyExecutorConfig] = field(default_factory=dict)
    """The settings each executor built here was built from, by id (absent: an executor given at construction)."""
    _failed: dict[str, tuple[AnyExecutorConfig, float, UnknownExecutorError]] = field(default_factory=dict)
    """(settings, when to try again (monotonic s), the error) of each executor that could not be built, by id."""

    def get(self, executor_id: str, configs: Mapping[str, AnyExecutorConfig] | None = None) -> Executor:
        """The executor of ``executor_id`` as ``configs`` (the fleet in force's executors by id; None: only the
        defaults) describe it; ``UnknownExecutorError`` for an id neither declared nor a default, or one whose
        kind cannot be built here."""
        config = (configs or {}).get(executor_id) or DEFAULT_EXECUTORS.get(executor_id)
        with self._lock:
            have = self._built.get(executor_id)
            before = self._from.get(executor_id)
            if have is not None and (before is None or config is None or _same(before, config)):
                return have
            if config is None:
                known = sorted({*(configs or {}), *DEFAULT_EXECUTORS})
                raise UnknownExecutorError(
                    f"unknown executor '{executor_id}' (the fleet in force has: {', '.join(known)})"
                )
            built = self._build(executor_id, config)
            if have is not None:
                log.info("executor %s: its settings changed; built again", executor_id)
            self._built[executor_id], self._from[executor_id] = built, config
            return built

    def _build(self, executor_id: str, config: AnyExecutorConfig) -> Executor:
        """``build`` with its failures remembered (lock held): the same settings are not tried again before
        :data:`RETRY_BUILD_S`, and each new error is logged once."""
        failed = self._failed.get(executor_id)
        now = time.monotonic()
        if failed is not None and _same(failed[0], config) and now < failed[1]:
            raise type(failed[2])(str(failed[2]))  # a fresh error: the same one raised again would grow its traceback
        try:
            built = build(config, self.settings)
        except UnknownExecutorError as exc:
            if failed is None or str(failed[2]) != str(exc):
                log.warning("%s; no job starts on the clusters using it until it can be built", exc)
            self._failed[executor_id] = (config, now + RETRY_BUILD_S, exc)
            raise
        if self._failed.pop(executor_id, None) is not None:
            log.info("executor %s: built; its clusters can run jobs again", executor_id)
        return built


def _same(a: AnyExecutorConfig, b: AnyExecutorConfig) -> bool:
    """Whether two settings build the same executor (health settings only tell the server when to check it)."""
    return a.model_dump(exclude={"health"}) == b.model_dump(exclude={"health"})


@dataclass
class ProcureState:
    """What the scheduler loop's procurement step remembers between cycles (see
    :mod:`stargate.server.scheduling.procure`)."""

    seen: int = -1
    """The newest procurement event id when the book was last read (-1: never)."""
    version: str | None = None
    """The fleet version seen last cycle."""
    deadline: datetime | None = None
    """The earliest deadline of an open offer (None: none)."""
    open_models: set[str] = field(default_factory=set)
    waiting: bool = False
    """Whether a request waits in the market for a quote (a new fleet version may bring one in its price book)."""
    gauge: PressureGauge | None = None
    settings: PressureSettings | None = None


@dataclass
class LoopState:
    """What the scheduler loop remembers between cycles to skip deciding when nothing changed.

    ``fingerprint`` is (fleet version, newest event id, recent events: see ``loop._fingerprint``) after the last
    decision; every submission, status change and fleet change moves it. ``wakeup`` is the engine's next
    time-driven instant (None: none).
    """

    fingerprint: tuple[str, int, int] | None = None
    wakeup: datetime | None = None
    spec_terms: dict[int, SpecTerms] = field(default_factory=dict)
    """The engine-relevant terms of each live job's spec, by row id (specs never change; parsed once)."""
    terms: dict[int, tuple[tuple[object, ...], JobTerms]] = field(default_factory=dict)
    """(inputs, driver terms) of each live job, by row id: rebuilt only when the job's stored inputs change."""
    index: tuple[str, FleetIndex] | None = None
    """(fleet version, the engine's read-only ``FleetIndex`` of that fleet): rebuilt only when the fleet changes."""
    driver: "Kept | None" = None
    """The engine's driver kept between cycles, with the fleet version it knows (None: build one next cycle)."""
    fence: Callable[[Session], bool] | None = None
    """Whether this process still holds the scheduler lock, asked inside the decision transaction before it commits
    (set by the scheduler thread; None: the caller makes sure it is the only scheduler, as tests do)."""
    procure: "ProcureState | None" = None
    """What the procurement step remembers between cycles (the pressure gauge, the next offer deadline)."""
    gauges: tuple[tuple[str, int, int], int] | None = None
    """(fingerprint, pending jobs) when the gauges were last refreshed on an idle cycle: refreshed again only when
    the fingerprint moves (a 20,000-cluster fleet made every idle cycle relabel 20,000 gauges)."""


@dataclass
class ServerContext:
    """Everything one server process shares; built once in :func:`stargate.server.app.create_app`."""

    settings: Settings
    db: Database
    metrics: Metrics = field(default_factory=Metrics)
    fleet: FleetCache = field(default_factory=FleetCache)
    executors: ExecutorRegistry | None = None
    loop: LoopState = field(default_factory=LoopState)
    tokens: TokenCache = field(default_factory=TokenCache)
    submissions: SubmissionWriter = field(init=False)
    inference: InferenceRuntime = field(init=False)
    """Inference services in this process: the proxy's routes and meters, the leader's services step state."""

    def __post_init__(self) -> None:
        if self.settings.installation_id is None:  # executors key their files outside the database by it
            with self.db.write() as session:
                self.settings = replace(self.settings, installation_id=installation.installation_id(session))
        if self.executors is None:
            self.executors = ExecutorRegistry(self.settings)
        self.fleet.single_team = self.settings.single_team
        self.submissions = SubmissionWriter(self.db, self.fleet.rules)
        self.inference = InferenceRuntime(self.db, self.metrics.registry)

    def policy_for(self, fleet: Fleet) -> Policy:
        """The policy the scheduler decides with: ``fleet``'s ``scheduling:`` section under ``stargate up
        --policy/--set``; when those do not fit (a fleet applied through another server started with other options),
        the section alone, and ``metrics.scheduler.policy_problem`` says so (``/healthz`` degraded)."""
        policy, problem = policy_in_force(fleet.scheduling, self.settings.scheduling)
        if problem is not None and problem != self.metrics.scheduler.policy_problem:
            log.warning("scheduler: %s", problem)
        self.metrics.scheduler.policy_problem = problem
        return policy

    def executor(self, executor_id: str) -> Executor:
        """The executor of ``executor_id`` as the fleet in force (last read by this process) declares it, else
        the default executor of that id (``UnknownExecutorError`` when there is none)."""
        assert self.executors is not None
        return self.executors.get(executor_id, self.fleet.executor_configs())
