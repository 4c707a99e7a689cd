"""Read-only views of the scheduler's state (tests, metrics, the server): no decision is made here."""

from __future__ import annotations

from stargate.engine.classes import Classes
from stargate.engine.index import FleetIndex
from stargate.engine.jobs import PENDING, RUNNING, JobTable
from stargate.engine.occupancy import Occupancy
from stargate.engine.pending import PendingQueues
from stargate.engine.waits import Wait, Waits
from stargate.engine.windows import CapacityWindows


class SchedulerViews:
    """What the scheduler holds, as plain dicts and lists (mixed into :class:`~stargate.engine.scheduler.Scheduler`)."""

    index: FleetIndex
    jobs: JobTable
    occupancy: Occupancy
    classes: Classes
    windows: CapacityWindows
    waits: Waits
    pending: PendingQueues

    @property
    def n_pending(self) -> int:
        """Jobs pending now."""
        return self.pending.n

    def free_gpus(self) -> dict[str, int]:
        """Free GPUs per cluster id (GPUs), whatever the cluster's status."""
        return self.occupancy.free_gpus()

    def running_jobs(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Running job id → (cluster id, GPU ids)."""
        t, ids = self.jobs, self.index.cluster_ids
        return {t.ids[j]: (ids[t.cluster[j]], t.gpu_ids[j]) for j in range(len(t.ids)) if t.state[j] == RUNNING}

    def pending_jobs(self, queue: str | None = None) -> list[str]:
        """Pending job ids (of one queue, or all) in submission order."""
        t, qi = self.jobs, self.index.queue_ix.get(queue, -2) if queue is not None else -1
        return [t.ids[j] for j in range(len(t.ids)) if t.state[j] == PENDING and qi in (-1, t.queue[j])]

    def site_power_draw_w(self) -> dict[str, float]:
        """Facility power drawn by running GPUs per site (GPUs × TDP × PUE), W."""
        return self.occupancy.power_draw_w()

    def progress_s(self, job_id: str) -> float:
        """Checkpointed progress of a job, s."""
        return self.jobs.progress[self.jobs.ix[job_id]]

    def wait_reasons(self) -> dict[str, Wait]:
        """Pending job id → why it waits, as the cycles so far judged it (see :mod:`stargate.engine.waits`); a job
        no cycle has judged yet is left out."""
        return self.waits.read(self.pending.rows())
