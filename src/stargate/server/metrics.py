"""Prometheus metrics, one registry per app (no global state shared between apps or tests), and the scheduler's
health as ``/healthz`` reports it."""

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CYCLE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DEGRADED_AFTER_FAILURES = 3
"""Consecutive failed scheduler cycles after which ``/healthz`` reports ``degraded`` (one good cycle clears it)."""
STALLED_AFTER_S = 60.0
"""A scheduler cycle still running after this long makes ``/healthz`` report ``degraded`` (it is stuck), s."""


@dataclass
class SchedulerHealth:
    """Consecutive failed cycles of this process's scheduler (when the streak began, the last error) and the cycle
    running now, if any (a cycle that never ends is as bad as one that fails).

    Thread-safe: the scheduler thread records, request handlers read.
    """

    failures: int = 0
    since: datetime | None = None
    last_error: str = ""
    stalled_after_s: float = STALLED_AFTER_S
    policy_problem: str | None = None
    """Set while this server's ``--policy/--set`` do not fit the fleet in force (it decides with the fleet's
    section alone meanwhile)."""
    _running: tuple[float, datetime] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def began(self) -> None:
        """A cycle starts now."""
        with self._lock:
            self._running = (time.monotonic(), datetime.now(UTC))

    def succeeded(self) -> None:
        """A cycle finished: the streak ends."""
        with self._lock:
            self.failures, self.since, self.last_error, self._running = 0, None, "", None

    def failed(self, at: datetime, exc: BaseException) -> int:
        """A cycle raised ``exc`` at ``at``; returns the length of the streak now."""
        first = " ".join(str(exc).split())[:300]  # on one line: a validation error's location is on its second
        with self._lock:
            self.failures += 1
            self.since = self.since or at
            self.last_error = f"{type(exc).__name__}: {first}".rstrip(": ")
            self._running = None
            return self.failures

    def problem(self) -> str | None:
        """Why the scheduler is degraded, or None while it is healthy."""
        with self._lock:
            if self.failures >= DEGRADED_AFTER_FAILURES and self.since is not None:  # first: it is not deciding
                return f"scheduler: {self.failures} cycles failed in a row since {_iso(self.since)}: {self.last_error}"
            if self.policy_problem is not None:
                return f"scheduler: {self.policy_problem}"
            if self._running is not None and time.monotonic() - self._running[0] > self.stalled_after_s:
                ran = time.monotonic() - self._running[0]
                return (
                    f"scheduler: the cycle that started at {_iso(self._running[1])} is still running after {ran:.0f} s"
                )
            return None


def _iso(at: datetime) -> str:
    """``at`` in ISO 8601 UTC to the second, with a ``Z``."""
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Metrics:
    """The server's metrics: queue depth per team, running GPUs per cluster, placements, cycle latency, errors."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.queue_depth = Gauge("stargate_queue_depth_jobs", "Pending jobs per team, jobs.", ["team"], registry=r)
        self.running_gpus = Gauge(
            "stargate_running_gpus", "GPUs held by placed or running jobs per cluster, GPUs.", ["cluster"], registry=r
        )
        self.placements = Counter("stargate_placements", "Jobs placed on a cluster, jobs.", registry=r)
        self.preemptions = Counter("stargate_preemptions", "Jobs preempted back to their queue, jobs.", registry=r)
        self.finished = Counter("stargate_jobs_finished", "Jobs that reached a final status.", ["status"], registry=r)
        self.cycle_seconds = Histogram(
            "stargate_scheduler_cycle_seconds", "Scheduler cycle latency, s.", buckets=CYCLE_BUCKETS_S, registry=r
        )
        self.executor_errors = Counter(
            "stargate_executor_errors", "Executor calls that raised, calls.", ["executor", "operation"], registry=r
        )
        self.cycle_failures = Counter(
            "stargate_scheduler_cycle_failures", "Scheduler cycles that raised, cycles.", registry=r
        )
        self.consecutive_failures = Gauge(
            "stargate_scheduler_consecutive_failures",
            "Scheduler cycles that raised since the last one that finished, cycles.",
            registry=r,
        )
        self.start_failures = Counter(
            "stargate_start_failures", "Failed starts of placed jobs, starts.", ["executor"], registry=r
        )
        self.scheduler = SchedulerHealth()

    def cycle_succeeded(self) -> None:
        """Record a scheduler cycle that finished."""
        self.scheduler.succeeded()
        self.consecutive_failures.set(0)

    def cycle_failed(self, at: datetime, exc: BaseException) -> None:
        """Record a scheduler cycle that raised ``exc``."""
        self.cycle_failures.inc()
        self.consecutive_failures.set(self.scheduler.failed(at, exc))

    def set_queue_depth(self, per_team: dict[str, int]) -> None:
        """Replace the per-team pending counts (teams absent from ``per_team`` read 0)."""
        self.queue_depth.clear()
        for team, n in per_team.items():
            self.queue_depth.labels(team=team).set(n)

    def set_running_gpus(self, per_cluster: dict[str, int]) -> None:
        """Replace the per-cluster GPU counts."""
        self.running_gpus.clear()
        for cluster, n in per_cluster.items():
            self.running_gpus.labels(cluster=cluster).set(n)

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)
