"""Why a job is where it is: one stable code per kind of status change, stored with every job and event, returned
by the API and shown by the CLI. The free text that goes with a code (a cluster, an exit code, an executor's error)
is the change's ``detail``, never part of the code.

The engine's rejection and preemption codes are members here too: :class:`stargate.engine.Reason` is this enum, and
:data:`ENGINE_REASONS` are the codes it decides with; the rest are the lifecycle codes the server writes.

:class:`WaitReason` is another thing: why a job that is pending *now* is not running yet, as the last scheduling cycle
judged it (see docs/reference/scheduling.md, "Why a job waits"). It is not a status change and is stored apart.
"""

from enum import StrEnum


class JobReason(StrEnum):
    """The code of a job's last status change; the values are stored and shown, so they never change."""

    # -- lifecycle (written by the server) ----------------------------------------------------------------------
    SUBMITTED = "submitted"
    """Pending: the job was accepted and waits in its queue."""
    PLACED = "placed"
    """Placed: the scheduler gave the job GPUs on a cluster; its executor starts it next (detail: where)."""
    STARTED = "started"
    """Running: the executor started the job's run (detail: the cluster)."""
    SUCCEEDED = "succeeded"
    """Succeeded: the command exited with code 0."""
    FAILED = "failed"
    """Failed: the command exited with a nonzero code or was killed (detail: the exit code or signal)."""
    CANCELLED = "cancelled"
    """Cancelled: a user cancelled the job (detail: by whom), or its run was cancelled outside Stargate."""
    LOST = "lost"
    """Failed: the executor lost the run (no record of it, or it ended without an exit code; detail: why)."""
    START_FAILED = "start_failed"
    """Failed: the executor refused or failed to start the run as many times as allowed (detail: the last error)."""
    UNSTARTABLE = "unstartable"
    """Failed: the job can never start where it was placed (no such executor, or one that cannot run it; detail)."""
    REQUEUED = "requeued"
    """Pending: a placed or running job could not be kept on its GPUs after a fleet change; it waits again (detail)."""
    CLUSTER_REMOVED = "cluster_removed"
    """Pending: the job's cluster is no longer in the fleet; it waits again and resumes from its last checkpoint."""
    OTHER = "other"
    """A reason this version of Stargate has no code for (an older release's text, a newer server's code; detail)."""

    # -- rejections (the engine's codes: the job can never run as asked; it fails) -----------------------------
    UNKNOWN_QUEUE = "unknown_queue"
    """Rejected: the job names a queue the fleet does not have."""
    INVALID_REQUEST = "invalid_request"
    """Rejected: the job asks for fewer than 1 GPU."""
    GPU_MODEL_UNAVAILABLE = "gpu_model_unavailable"
    """Rejected: none of the job's GPU models exists in any cluster."""
    NO_ALLOWED_CLUSTER = "no_allowed_cluster"
    """Rejected: no cluster has a GPU model, provider, region and executor (commands, images) the job accepts."""
    NO_CLUSTER_FITS = "no_cluster_fits"
    """Rejected: the job needs more GPUs than the largest acceptable cluster holds (a gang never spans clusters)."""
    EXCEEDS_QUOTA = "exceeds_quota"
    """Rejected: even an idle cohort could not admit the job under its queue's quotas and borrowing limits."""
    PRIORITY_CLASS_NOT_ALLOWED = "priority_class_not_allowed"
    """Rejected: the job names a priority class its queue does not allow or the fleet does not define."""
    DURATION_OUT_OF_RANGE = "duration_out_of_range"
    """Rejected (simulator): the trace job's run time is not between 0 and 100 years."""
    SUBMIT_OUT_OF_RANGE = "submit_out_of_range"
    """Rejected (simulator): the trace job's submission time, once scaled, is not a finite number."""
    OUTAGE_LIMIT = "outage_limit"
    """Failed: outages stopped its runs, none getting it past its last checkpoint, more often than max_outage_stops."""

    # -- preemptions (the engine's codes: the job goes back to pending, keeping its checkpointed progress) -------
    PRIORITY = "priority"
    """Preempted: a job of higher priority needed the GPUs; it resumes from its last checkpoint."""
    CLUSTER_DOWN = "cluster_down"
    """Preempted: its cluster went down; it resumes elsewhere from its last checkpoint."""
    CLUSTER_OFFLINE = "cluster_offline"
    """Preempted: its cluster left its online window or its contract ended; it resumes from its last checkpoint."""
    INTERRUPTED = "interrupted"
    """Pending: the infrastructure ended its run, not the job (a node failed); it resumes from its last checkpoint."""


class WaitReason(StrEnum):
    """Why a pending job is not running yet, as the engine's last cycle judged it; the values are stored and shown,
    so they never change. The rules are in :mod:`stargate.engine.waits`."""

    QUOTA = "quota"
    """Its queue's quota plus what its cohort lets it borrow cannot admit it now (other jobs hold it)."""
    CAPACITY = "capacity"
    """Admitted under quota, but no cluster it may use has enough free GPUs now."""
    POWER = "power"
    """GPUs are free on a cluster it may use, but the site's power cap forbids running them."""
    CLUSTERS_DOWN = "clusters_down"
    """Every cluster it could use is down."""
    OFFLINE = "offline"
    """Every cluster it could use is outside its online window (not yet online, or its contract ended)."""
    ORDER = "order"
    """Jobs ahead of it in policy order come first: the cycle did not reach it, or kept the GPUs for one of them."""


ENGINE_REASONS = frozenset(
    {
        JobReason.UNKNOWN_QUEUE,
        JobReason.INVALID_REQUEST,
        JobReason.GPU_MODEL_UNAVAILABLE,
        JobReason.NO_ALLOWED_CLUSTER,
        JobReason.NO_CLUSTER_FITS,
        JobReason.EXCEEDS_QUOTA,
        JobReason.PRIORITY_CLASS_NOT_ALLOWED,
        JobReason.DURATION_OUT_OF_RANGE,
        JobReason.SUBMIT_OUT_OF_RANGE,
        JobReason.OUTAGE_LIMIT,
        JobReason.PRIORITY,
        JobReason.CLUSTER_DOWN,
        JobReason.CLUSTER_OFFLINE,
        JobReason.INTERRUPTED,
    }
)
"""The codes the engine decides with: rejections (the job can never run as asked) and preemptions."""


def read_reason(code: str, detail: str) -> tuple[JobReason, str]:
    """A stored code and detail as the API shows them. A code this version does not know (written by a newer
    server, or by hand) reads as :attr:`JobReason.OTHER` with the stored code at the front of the detail, so
    reading it never fails and nothing stored is hidden."""
    try:
        return JobReason(code), detail
    except ValueError:
        return JobReason.OTHER, f"{code}: {detail}" if detail else code
