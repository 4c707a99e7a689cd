"""What becomes of a job whose run the infrastructure ended (an executor reports it *interrupted*: a node failed or
did not boot, the engine's own scheduler preempted or requeued it) — the job was not at fault.

The rule, for both clocks: the job keeps its progress up to its last checkpoint, less the restart cost (the one
rule of every stop, :func:`~stargate.engine.jobs.checkpointed`), and waits in its queue again, as after an outage of
its whole cluster; once it has been interrupted ``policy.max_interruptions`` times before, it fails as lost instead
(a job that takes its nodes down is not retried for ever). Outages of a whole cluster are not counted: they are
the fleet's, not the job's.
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
