"""Read-only views of the scheduler's state, for tests, metrics and the server (no decision is made here)."""

from __future__ import annotations

from stargate.engine.index import FleetIndex
from stargate.engine.jobs import PENDING, RUNNING, JobTable


class StateViews:
    """Mixed into :class:`~stargate.engine.scheduler.Scheduler`: free GPUs, running and pending jobs, power."""

    index: FleetIndex
    jobs: JobTable
    free: list[int]
    draw_w: list[float]

    def free_gpus(self) -> dict[str, int]:
        """Free GPUs per cluster id (GPUs), whatever the cluster's status."""
        return dict(zip(self.index.cluster_ids, self.free, strict=True))

    def running_jobs(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Running job id → (cluster id, GPU ids)."""
        t = self.jobs
        return {
            t.ids[j]: (self.index.cluster_ids[t.cluster[j]], t.gpu_ids[j])
            for j in range(len(t.ids))
            if t.state[j] == RUNNING
        }

    def pending_jobs(self, queue: str | None = None) -> list[str]:
        """Pending job ids (of one queue, or all) in submission order."""
        t, qi = self.jobs, self.index.queue_ix.get(queue, -2) if queue is not None else -1
        return [t.ids[j] for j in range(len(t.ids)) if t.state[j] == PENDING and qi in (-1, t.queue[j])]

    def site_power_draw_w(self) -> dict[str, float]:
        """Facility power drawn by running GPUs per site (GPUs × TDP × PUE), W."""
        return {s: float(self.draw_w[i]) for i, s in enumerate(self.index.sites)}

    def progress_s(self, job_id: str) -> float:
        """Checkpointed progress of a job, s."""
        return self.jobs.progress[self.jobs.ix[job_id]]
