"""Where simulations asked through the API run: one at a time per server process, each in a process of its own,
behind a short queue in the server (``STARGATE_SIM_MAX_WAITING``, 4 by default; one more is answered 429).

A worker thread of the server is started when a simulation is queued and ends when the queue is empty. For each
run it starts a child process (:mod:`stargate.server.services.sim_child`), which runs
:func:`stargate.sim.run_simulation` (the simulator's own loop, the one ``stargate simulate`` runs), so that a
what-if never takes the server's CPU time (its GIL) or memory from the API and the scheduler. The thread supervises
it: the share of jobs settled the child reports is written to the row (at most twice a second); a row no longer
'running' (cancelled) has the child stopped at once (SIGTERM, then SIGKILL), and so does the wall-time limit
(``STARGATE_SIM_MAX_WALL_S``, 600 s by default: the run fails, saying so). The child's address space is capped
(``STARGATE_SIM_MAX_MEMORY_MB``, 4,096 MB by default): a run that needs more fails, saying so. The child dies with
the server (see :mod:`~stargate.server.services.sim_child`), and the server stops its children as it exits.

The queue lives in the server process's memory: a server that stops loses its queue and its running simulation.
Each row names the process that runs it (``runner``: host name and state directory), and
:meth:`Runner.fail_stale` — run when the app is built, i.e. at the server's next start — fails that process's rows
still queued or running with "server stopped", so none stays 'running' for ever.
"""

import atexit
import logging
import os
import signal
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
from stargate.server.services.sim_child import Child, Exited
from stargate.sim import SimConfig
from stargate.store.models import SimulationRow
from stargate.store.repositories import simulations as repo
from stargate.traces import TraceJob

log = logging.getLogger("stargate.server")

JOBS_ENV, WALL_ENV, WAITING_ENV = "STARGATE_SIM_MAX_JOBS", "STARGATE_SIM_MAX_WALL_S", "STARGATE_SIM_MAX_WAITING"
MEMORY_ENV = "STARGATE_SIM_MAX_MEMORY_MB"
STOPPED = "server stopped: the server process running this simulation stopped before it ended"
WRITE_EVERY_S = 0.5
"""Progress is written to the row at most this often, s."""
CHECK_EVERY_S = 0.25
"""How often the row is looked at for a cancellation while a run goes on, s."""


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
    max_memory_mb: int = 4096
    """Address space of the process one simulation runs in, MB; past it the run fails."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Limits":
        """The limits the environment sets; :class:`SettingsError` (one located line) for a bad value."""
        env = os.environ if env is None else env
        return cls(
            max_jobs=_whole(env, JOBS_ENV, cls.max_jobs, 1, 100_000_000),
            max_wall_s=float(_whole(env, WALL_ENV, int(cls.max_wall_s), 1, 7 * 86400)),
            max_waiting=_whole(env, WAITING_ENV, cls.max_waiting, 0, 1_000),
            max_memory_mb=_whole(env, MEMORY_ENV, cls.max_memory_mb, 256, 16 * 1024 * 1024),
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
        deadline = time.monotonic() + self.limits.max_wall_s
        work.config.progress = None  # the child has its own
        try:
            child = Child.start(self.limits.max_memory_mb)
        except OSError as exc:
            log.error("simulation %s: could not start its process: %s", work.id, exc)
            self._fail(work.id, f"simulation failed: could not start the process to run it: {exc}")
            return
        with _LIVE_LOCK:
            _LIVE.add(child)
        try:
            child.send_work(work.fleet, work.config, work.start, work.jobs)
            error = self._supervise(work.id, child, deadline, work.trace)
        finally:
            child.stop()
            with _LIVE_LOCK:
                _LIVE.discard(child)
        if error:
            self._fail(work.id, error)

    def _supervise(self, simulation_id: str, child: Child, deadline: float, trace: dict[str, Any]) -> str:
        """Follow ``child`` until it ends, is cancelled or runs out of time; the error to record ('' for none)."""
        last_check = last_write = time.monotonic()
        share = written = 0.0
        while True:
            now = time.monotonic()
            try:
                said = child.receive(max(min(CHECK_EVERY_S - (now - last_check), deadline - now), 0.0))
            except Exited as exc:
                return _died(exc.returncode, self.limits.max_memory_mb)
            if said is not None and said[0] == "result":
                said[1]["trace"] = trace
                with self.ctx.db.write() as session:
                    repo.succeed(session, simulation_id, said[1], _now())
                return ""
            if said is not None and said[0] == "memory":
                limit = self.limits.max_memory_mb
                return (f"stopped at {limit:,} MB of memory, this server's limit for one simulation ({MEMORY_ENV}); "
                        "replay fewer jobs (max_jobs) or stop earlier (until_s)")  # fmt: skip
            if said is not None and said[0] == "error":
                log.error("simulation %s failed:\n%s", simulation_id, said[2])
                return str(said[1])
            if said is not None and said[0] == "progress":
                done, total = said[1], said[2]
                share = round(min(done / total, 0.9999), 4) if total else 0.0
            now = time.monotonic()
            if now >= deadline:
                return (f"stopped after {self.limits.max_wall_s:g} s of wall time, this server's limit for one "
                        f"simulation ({WALL_ENV}); replay fewer jobs (max_jobs) or stop earlier (until_s)")  # fmt: skip
            if now - last_check < CHECK_EVERY_S:
                continue
            last_check = now
            if share != written and now - last_write >= WRITE_EVERY_S:
                last_write, written = now, share
                with self.ctx.db.write() as session:
                    running = repo.advance(session, simulation_id, share)
            else:
                with self.ctx.db.read() as session:
                    row = repo.get(session, simulation_id)
                    running = row is not None and row.status == "running"
            if not running:
                return ""  # cancelled: the child is stopped, nothing is written

    def _fail(self, simulation_id: str, error: str) -> None:
        with self.ctx.db.write() as session:
            repo.fail(session, simulation_id, error, _now(), ("running",))


def _died(returncode: int | None, memory_mb: int) -> str:
    """The error of a child that ended without a word."""
    if returncode is not None and returncode < 0:
        try:
            how = f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"ended with exit code {returncode}"
    return (f"simulation failed: the process running it {how} before it reported (out of memory? this server's "
            f"limit for one simulation is {memory_mb:,} MB, {MEMORY_ENV})")  # fmt: skip


_LIVE: set[Child] = set()
"""The children running now, in any runner of this process."""
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_children() -> None:
    """A server that exits kills the simulations it runs (they would be failed at its next start anyway)."""
    with _LIVE_LOCK:
        for child in _LIVE:
            child.proc.kill()
