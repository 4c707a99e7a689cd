"""Prometheus metrics, one registry per app (no global state shared between apps or tests)."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CYCLE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
