"""A unit of work as a user submits it: the job spec."""

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from stargate.domain.base import Model
from stargate.domain.ids import Id


class JobKind(StrEnum):
    """``train``: a gang (all GPUs at once); ``serve``: a long-running service; ``batch``: a finite task."""

    TRAIN = "train"
    SERVE = "serve"
    BATCH = "batch"


class JobSpec(Model):
    """What to run, on what, for whom and with which guarantees."""

    name: str = Field(min_length=1, max_length=200, description="Human-readable job name.")
    queue: Id = Field(description="Id of the queue the job is submitted to.")
    kind: JobKind = Field(default=JobKind.BATCH, description="'train', 'serve' or 'batch'.")
    gpus: int = Field(
        ge=1, le=1_000_000, description="GPUs the job needs at once (all in one cluster), GPUs; at least 1."
    )
    gpu_models: list[str] = Field(
        default_factory=list, description="Acceptable GPU models (catalogue names); empty means any."
    )
    priority_class: Id | None = Field(default=None, description="Priority class; null: the queue's default.")
    deadline: datetime | None = Field(
        default=None,
        description="When the job must be finished (ISO 8601); stored in UTC, a time without an offset is read as UTC.",
    )
    estimated_duration_s: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Expected run time, s; used for backfill and planning."
    )
    checkpoint_interval_s: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="The job checkpoints every this many seconds; null: never.",
    )
    preemptible: bool = Field(default=True, description="Whether higher-priority work may preempt the job.")
    allowed_providers: list[Id] = Field(default_factory=list, description="Provider ids it may run on; empty: any.")
    allowed_regions: list[str] = Field(default_factory=list, description="Site regions it may run in; empty: any.")
    command: str | None = Field(default=None, description="Shell command to run (local, Slurm executors).")
    image: str | None = Field(default=None, description="Container image (Kubernetes executor).")
    environment: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")

    @field_validator("deadline")
    @classmethod
    def _deadline_in_utc(cls, value: datetime | None) -> datetime | None:
        """The deadline in UTC; a naive time is taken to be UTC already."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _something_to_run(self) -> "JobSpec":
        """A job runs a shell command, a container image or both; a spec with neither has nothing to run."""
        if not self.command and not self.image:
            raise ValueError("found neither 'command' nor 'image', expected a shell command or a container image")
        return self
