"""What becomes of a job whose run the infrastructure ended (an executor reports it *interrupted*: a node failed or
did not boot, the engine's own scheduler preempted or requeued it) — the job was not at fault.

The rule, for both clocks: the job keeps its progress up to its last checkpoint, less the restart cost (the one
rule of every stop, :func:`~stargate.engine.jobs.checkpointed`), and waits in its queue again, as after an outage of
its whole cluster; once it has been interrupted ``policy.max_interruptions`` times before, it fails as lost instead
(a job that takes its nodes down is not retried for ever).

An outage of a whole cluster is the fleet's, not the job's, unless it keeps coming as soon as the job runs: a job
whose runs, ``policy.max_outage_stops`` + 1 times in a row, were stopped by an outage of their cluster before they
saved a checkpoint fails (``outage_limit``) instead of waiting again (:func:`after_outage`). A run that saved one
clears the count, so a long job on a flaky cluster never fails for it; a job that takes its engine down each time
it starts does (as Slurm holds a job past ``MaxBatchRequeue`` and Kueue deactivates one past ``backoffLimitCount``).
"""

from dataclasses import dataclass

from stargate.engine.jobs import checkpointed
from stargate.engine.policies import Policy


@dataclass(frozen=True, slots=True)
class AfterInterruption:
    """What the engine does with an interrupted job."""

    requeue: bool
    """True: the job waits again; False: it fails as lost (interrupted too many times)."""
    progress_s: float
    """The progress it keeps, s (negative: a restart still owed, see :func:`~stargate.engine.jobs.checkpointed`)."""
    interruptions: int
    """How many times the job has been interrupted, this one included."""


def after_interruption(
    policy: Policy, progress_s: float, ran_s: float, checkpoint_interval_s: float | None, before: int
) -> AfterInterruption:
    """The fate of a job interrupted after a run of ``ran_s`` that began at ``progress_s``, with ``before``
    interruptions of its earlier runs; ``checkpoint_interval_s`` None: the policy's default."""
    interval = checkpoint_interval_s or policy.default_checkpoint_interval_s
    kept = checkpointed(progress_s, ran_s, interval, policy.restart_cost_s)
    return AfterInterruption(before < policy.max_interruptions, kept, before + 1)


def saved_checkpoint(progress_s: float, kept_s: float, restart_cost_s: float) -> bool:
    """Whether a run that began at ``progress_s`` and stopped keeping ``kept_s`` (see
    :func:`~stargate.engine.jobs.checkpointed`) saved a checkpoint: it kept more than it began with, restart cost
    aside (a restart still owed counts as 0)."""
    return kept_s + restart_cost_s > max(progress_s, 0.0)


def after_outage(policy: Policy, outage_stops: int, progress_s: float, kept_s: float) -> tuple[int, bool]:
    """A job's count of outage stops in a row after an outage of its cluster stopped its run, which began at
    ``progress_s`` and keeps ``kept_s``; and whether the job waits again (False: it fails, ``outage_limit``). A run
    that saved a checkpoint (:func:`saved_checkpoint`) clears the count."""
    count = 0 if saved_checkpoint(progress_s, kept_s, policy.restart_cost_s) else outage_stops + 1
    return count, count <= policy.max_outage_stops
