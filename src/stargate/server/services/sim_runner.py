"""Where simulations asked through the API run: one at a time per server process, in a worker thread of that
process, behind a short queue (``STARGATE_SIM_MAX_WAITING``, 4 by default; one more is answered 429).

The worker is started when a simulation is queued and ends when the queue is empty. It drives
:func:`stargate.sim.run_simulation` (the simulator's own loop, the one ``stargate simulate`` runs) and listens on
its progress hook (called every 20,000 events): the share of jobs settled is written to the row (at most twice a
second); a row no longer 'running' (cancelled) stops the run there, and so does the wall-time limit
(``STARGATE_SIM_MAX_WALL_S``, 600 s by default: the run fails, saying so).

The queue lives in the process's memory: a server that stops loses its queue and its running simulation. Each row
names the process that runs it (``runner``: host name and state directory), and :meth:`Runner.fail_stale` — run
when the app is built, i.e. at the server's next start — fails that process's rows still queued or running with
"server stopped", so none stays 'running' for ever.
"""

import logging
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stargate.domain import Fleet
from stargate.server.context import ServerContext
from stargate.server.errors import DATABASE_DOWN, ServiceError
from stargate.server.limits import SettingsError
from stargate.sim import SimConfig, run_simulation
from stargate.store.models import SimulationRow
from stargate.store.repositories import simulations as repo
from stargate.traces import TraceJob

log = logging.getLogger("stargate.server")

JOBS_ENV, WALL_ENV, WAITING_ENV = "STARGATE_SIM_MAX_JOBS", "STARGATE_SIM_MAX_WALL_S", "STARGATE_SIM_MAX_WAITING"
STOPPED = "server stopped: the server process running this simulation stopped before it ended"
WRITE_EVERY_S = 0.5
"""Progress is written to the row at most this often, s."""


class BusyError(ServiceError):
    """The server runs a simulation and its queue is full (429)."""

    status = 429


@dataclass(frozen=True)
class Limits:
    """How much simulating one server process takes on."""

    max_jobs: int = 200_000
    """Jobs one simulation may replay (after ``max_jobs`` of the request); the Philly trace's 82,247 take ~5 s."""
    max_wall_s: float = 600.0
    """Wall time one simulation may run, s; past it the run is stopped and fails."""
    max_waiting: int = 4
    """Simulations waiting behind the running one."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Limits":
        """The limits the environment sets; :class:`SettingsError` (one located line) for a bad value."""
        env = os.environ if env is None else env
        return cls(
            max_jobs=_whole(env, JOBS_ENV, cls.max_jobs, 1, 100_000_000),
            max_wall_s=float(_whole(env, WALL_ENV, int(cls.max_wall_s), 1, 7 * 86400)),
            max_waiting=_whole(env, WAITING_ENV, cls.max_waiting, 0, 1_000),
        )


def _whole(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise SettingsError(f"{name}: found '{raw[:40]}'; expected a whole number from {low:,} to {high:,}")
    return value


@dataclass
class Work:
    """One accepted simulation, ready to run: its row id, fleet, jobs, configuration and the trace's account."""

    id: str
    fleet: Fleet
    jobs: Sequence[TraceJob]
    config: SimConfig
    start: datetime | None
    trace: dict[str, Any]


class _Cancelled(Exception):
    """The row is no longer 'running': stop the run, write nothing."""


class _Stopped(Exception):
    """The run went past the wall-time limit."""


def runner_name(ctx: ServerContext) -> str:
    """This server process's name in ``runner``: host name and state directory (fits the column)."""
    return f"{socket.gethostname()}:{ctx.settings.home.resolve()}"[:200]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runner:
    """The simulations of one server process: a bounded queue and at most one worker thread."""

    ctx: ServerContext
    limits: Limits = field(default_factory=Limits)
    name: str = ""
    _waiting: deque[Work] = field(default_factory=deque)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.name = self.name or runner_name(self.ctx)

    def fail_stale(self) -> int:
        """Fail this process's rows left queued or running by a previous start; how many (0 when the database
        cannot be reached: logged)."""
        try:
            with self.ctx.db.write() as session:
                stale = repo.fail_stale(session, self.name, STOPPED, _now())
        except DATABASE_DOWN as exc:
            log.warning("simulations: could not fail the runs a stopped server left: %s", exc)
            return 0
        if stale:
            log.info("simulations: %d left queued or running by a stopped server marked failed", stale)
        return stale

    def submit(self, row: SimulationRow, work: Work) -> None:
        """Record ``row`` (queued) and queue ``work``; 429 when a simulation runs and the queue is full (nothing
        recorded)."""
        with self._lock:
            busy = self._thread is not None
            if busy and len(self._waiting) >= self.limits.max_waiting:
                raise BusyError(
                    f"this server runs one simulation at a time and {len(self._waiting)} are waiting, the most it "
                    f"queues ({WAITING_ENV}); try again when one has finished"
                )
            row.runner = self.name
            with self.ctx.db.write() as session:
                repo.add(session, row)
            self._waiting.append(work)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="stargate-simulations", daemon=True)
                self._thread.start()

    def idle(self) -> bool:
        """Whether nothing runs or waits (tests wait for it)."""
        with self._lock:
            return self._thread is None

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._waiting:
                    self._thread = None
                    return
                work = self._waiting.popleft()
            try:
                self._run(work)
            except Exception:  # a database failure while recording: the row is failed at the next start
                log.exception("simulations: %s could not be recorded", work.id)

    def _run(self, work: Work) -> None:
        with self.ctx.db.write() as session:
            if not repo.start(session, work.id, _now()):
                return  # cancelled while it waited
        work.config.progress = self._hook(work.id)
        try:
            out = run_simulation(work.fleet, work.jobs, work.config, start=work.start)[0]
        except _Cancelled:
            return
        except _Stopped:
            limit = self.limits.max_wall_s
            self._fail(work.id, f"stopped after {limit:g} s of wall time, this server's limit for one simulation "
                       f"({WALL_ENV}); replay fewer jobs (max_jobs) or stop earlier (until_s)")  # fmt: skip
            return
        except Exception as exc:  # the engine refused something the checks let through: say what, keep serving
            log.exception("simulation %s failed", work.id)
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            self._fail(work.id, f"simulation failed: {type(exc).__name__}: {first[:300]}")
            return
        out["trace"] = work.trace
        with self.ctx.db.write() as session:
            repo.succeed(session, work.id, out, _now())

    def _fail(self, simulation_id: str, error: str) -> None:
        with self.ctx.db.write() as session:
            repo.fail(session, simulation_id, error, _now(), ("running",))

    def _hook(self, simulation_id: str) -> Any:
        """The progress hook of one run: writes the share settled, stops the run when cancelled or over time."""
        deadline = time.monotonic() + self.limits.max_wall_s
        last = -math.inf

        def progress(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now > deadline:
                raise _Stopped
            if now - last < WRITE_EVERY_S:
                return
            last = now
            share = round(min(done / total, 0.9999), 4) if total else 0.0
            with self.ctx.db.write() as session:
                running = repo.advance(session, simulation_id, share)
            if not running:
                raise _Cancelled

        return progress
