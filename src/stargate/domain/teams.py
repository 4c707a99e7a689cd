"""Who submits work and how much they may use: priority classes, teams and their queues (as in Kueue)."""

from pydantic import Field

from stargate.domain.base import Count, Flag, GpuCount, Model, Name
from stargate.domain.ids import Id
from stargate.domain.limits import MAX_FLEET_GPUS, MAX_SMALL_LIST

ANY_GPU = "*"
"""Quota key that counts GPUs of any model."""


class PriorityClass(Model):
    """A named priority; a higher ``value`` may preempt a lower one when ``preempts_lower`` is set."""

    name: Id = Field(description="Priority class name, e.g. 'production'.")
    value: Count = Field(ge=0, le=1_000_000, description="Priority, 0 to 1,000,000; higher runs first.")
    preempts_lower: Flag = Field(default=True, description="Whether jobs of this class may preempt lower ones.")


class Quota(Model):
    """A queue's guaranteed share of one GPU class and how far it may borrow past it."""

    gpu_model: Name = Field(description="GPU model (catalogue name), or '*' for any model.")
    gpus: GpuCount = Field(
        ge=0, le=MAX_FLEET_GPUS, description="Nominal quota: GPUs the queue may always use, GPUs, at most 100,000,000."
    )
    borrowing_limit_gpus: GpuCount | None = Field(
        default=None,
        ge=0,
        le=MAX_FLEET_GPUS,
        description="GPUs it may borrow from its cohort on top of the quota, at most 100,000,000; null: no limit.",
    )


class Team(Model):
    """A group of people who submit work."""

    id: Id = Field(description="Team id, e.g. 'research'.")
    name: Name = Field(description="Display name; at most 200 characters.")


class Queue(Model):
    """A team's queue: quotas per GPU class, its cohort for borrowing, the priority classes it may use."""

    id: Id = Field(description="Queue id, e.g. 'research-training'.")
    team: Id = Field(description="Id of the team that owns the queue.")
    cohort: Id | None = Field(
        default=None, description="Cohort name: queues in one cohort lend each other unused quota."
    )
    quotas: list[Quota] = Field(
        default_factory=list, max_length=MAX_SMALL_LIST, description="Quotas per GPU class, at most 1,000."
    )
    priority_classes: list[Id] = Field(
        default_factory=list,
        max_length=MAX_SMALL_LIST,
        description="Priority classes jobs may use, at most 1,000; empty means all.",
    )
    default_priority_class: Id | None = Field(
        default=None, description="Priority class for jobs that name none; null: the lowest the queue may use."
    )


DEFAULT_PRIORITY_CLASSES: tuple[PriorityClass, ...] = (
    PriorityClass(name="low", value=100, preempts_lower=False),
    PriorityClass(name="normal", value=500),
    PriorityClass(name="high", value=1000),
)
"""The priority classes a fleet gets when it declares none."""
