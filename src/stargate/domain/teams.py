"""Who submits work and how much they may use: priority classes, teams and their queues (as in Kueue)."""

from pydantic import Field

from stargate.domain.base import Model
from stargate.domain.ids import Id

ANY_GPU = "*"
"""Quota key that counts GPUs of any model."""


class PriorityClass(Model):
    """A named priority; a higher ``value`` may preempt a lower one when ``preempts_lower`` is set."""

    name: Id = Field(description="Priority class name, e.g. 'production'.")
    value: int = Field(ge=0, le=1_000_000, description="Priority; higher runs first.")
    preempts_lower: bool = Field(default=True, description="Whether jobs of this class may preempt lower ones.")


class Quota(Model):
    """A queue's guaranteed share of one GPU class and how far it may borrow past it."""

    gpu_model: str = Field(description="GPU model (catalogue name), or '*' for any model.")
    gpus: int = Field(ge=0, description="Nominal quota: GPUs the queue may always use, GPUs.")
    borrowing_limit_gpus: int | None = Field(
        default=None,
        ge=0,
        description="GPUs it may borrow from its cohort on top of the quota; null: no limit.",
    )


class Team(Model):
    """A group of people who submit work."""

    id: Id = Field(description="Team id, e.g. 'research'.")
    name: str = Field(min_length=1, description="Display name.")


class Queue(Model):
    """A team's queue: quotas per GPU class, its cohort for borrowing, the priority classes it may use."""

    id: Id = Field(description="Queue id, e.g. 'research-training'.")
    team: Id = Field(description="Id of the team that owns the queue.")
    cohort: Id | None = Field(
        default=None, description="Cohort name: queues in one cohort lend each other unused quota."
    )
    quotas: list[Quota] = Field(default_factory=list, description="Quotas per GPU class.")
    priority_classes: list[Id] = Field(
        default_factory=list, description="Priority classes jobs may use; empty means all."
    )
    default_priority_class: Id | None = Field(
        default=None, description="Priority class for jobs that name none; null: the lowest defined."
    )


DEFAULT_PRIORITY_CLASSES: tuple[PriorityClass, ...] = (
    PriorityClass(name="low", value=100, preempts_lower=False),
    PriorityClass(name="normal", value=500),
    PriorityClass(name="high", value=1000),
)
"""The priority classes a fleet gets when it declares none."""
