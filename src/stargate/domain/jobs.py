"""A unit of work as a user submits it: the job spec.

Every size is bounded (see :mod:`stargate.domain.limits` and docs/reference/job-spec.md): the command and the
environment must be something an operating system can start, so a spec that validates never fails to launch for
its own shape.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict, StringConstraints, ValidationInfo, field_validator, model_validator

from stargate.domain.base import Flag, GpuCount, Instant, MaxBytes, Model, Name, Printable, Seconds
from stargate.domain.ids import Id
from stargate.domain.limits import (
    MAX_COMMAND_BYTES,
    MAX_DURATION_S,
    MAX_ENV_ENTRIES,
    MAX_ENV_NAME_CHARS,
    MAX_ENV_TOTAL_BYTES,
    MAX_ENV_VALUE_BYTES,
    MAX_IMAGE_CHARS,
    MAX_JOB_GPUS,
    MAX_SMALL_LIST,
    MIN_DURATION_S,
)

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""An environment variable name: a letter or '_', then letters, digits or '_' (POSIX; no '=', never empty)."""

EnvName = Annotated[str, StringConstraints(max_length=MAX_ENV_NAME_CHARS, pattern=ENV_NAME_PATTERN)]
EnvValue = Annotated[str, Printable(controls=True, hidden=True), MaxBytes(MAX_ENV_VALUE_BYTES)]
Command = Annotated[str, Printable(controls=True), MaxBytes(MAX_COMMAND_BYTES)]
Image = Annotated[str, StringConstraints(min_length=1, max_length=MAX_IMAGE_CHARS), Printable()]


class JobKind(StrEnum):
    """``train``: a gang (all GPUs at once); ``serve``: a long-running service; ``batch``: a finite task."""

    TRAIN = "train"
    SERVE = "serve"
    BATCH = "batch"


class JobSpec(Model):
    """What to run, on what, for whom and with which guarantees."""

    name: Name = Field(description="Human-readable job name; printable, at most 200 characters.")
    queue: Id = Field(description="Id of the queue the job is submitted to.")
    kind: JobKind = Field(default=JobKind.BATCH, description="'train', 'serve' or 'batch'.")
    gpus: GpuCount = Field(
        ge=1,
        le=MAX_JOB_GPUS,
        description="GPUs the job needs at once (all in one cluster), GPUs; 1 to 1,000,000.",
    )
    gpu_models: list[Name] = Field(
        default_factory=list,
        max_length=MAX_SMALL_LIST,
        description="Acceptable GPU models (catalogue names), at most 1,000; empty means any.",
    )
    spread: Flag = Field(
        default=False,
        description="Whether the job may be split over partly free nodes (any free GPUs of one cluster); false: it "
        "runs on one node, or, when larger than a node, on whole nodes plus one node for the remainder.",
    )
    nodes: Annotated[int, Strict()] | None = Field(
        default=None,
        ge=1,
        le=MAX_JOB_GPUS,
        description="Exactly this many nodes, with gpus / nodes GPUs on each (gpus must be divisible by it), 1 to "
        "1,000,000; null: the default shape.",
    )
    priority_class: Id | None = Field(default=None, description="Priority class; null: the queue's default.")
    deadline: Instant | None = Field(
        default=None,
        description="When the job must be finished (ISO 8601 text, 1970 to 2200); stored in UTC, a time without an "
        "offset is read as UTC.",
    )
    estimated_duration_s: Seconds | None = Field(
        default=None,
        ge=MIN_DURATION_S,
        le=MAX_DURATION_S,
        description="Expected run time, s, from 1 to 3,153,600,000 (100 years); used for backfill and planning.",
    )
    checkpoint_interval_s: Seconds | None = Field(
        default=None,
        ge=MIN_DURATION_S,
        le=MAX_DURATION_S,
        description="The job checkpoints every this many seconds, from 1 to 3,153,600,000; null: never.",
    )
    preemptible: Flag = Field(default=True, description="Whether higher-priority work may preempt the job.")
    allowed_providers: list[Id] = Field(
        default_factory=list,
        max_length=MAX_SMALL_LIST,
        description="Provider ids it may run on, at most 1,000; empty: any.",
    )
    allowed_regions: list[Name] = Field(
        default_factory=list,
        max_length=MAX_SMALL_LIST,
        description="Site regions it may run in, at most 1,000; empty: any.",
    )
    command: Command | None = Field(
        default=None,
        description="Shell command to run (local, Slurm executors); at most 65,536 bytes of UTF-8, no NUL or "
        "bidirectional-override characters.",
    )
    image: Image | None = Field(
        default=None, description="Container image (Kubernetes executor); printable, at most 1,024 characters."
    )
    environment: dict[EnvName, EnvValue] = Field(
        default_factory=dict,
        max_length=MAX_ENV_ENTRIES,
        description="Extra environment variables, at most 256: names match [A-Za-z_][A-Za-z0-9_]* (at most 256 "
        "characters), values have no NUL and at most 32,768 bytes of UTF-8, all NAME=value strings together at "
        "most 262,144 bytes.",
    )

    @field_validator("deadline")
    @classmethod
    def _deadline_in_utc(cls, value: datetime | None) -> datetime | None:
        """The deadline in UTC; a naive time is taken to be UTC already."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("environment")
    @classmethod
    def _environment_size(cls, value: dict[str, str]) -> dict[str, str]:
        """All NAME=value strings together fit :data:`MAX_ENV_TOTAL_BYTES`."""
        size = sum(len(k) + 2 + len(v.encode("utf-8", "surrogatepass")) for k, v in value.items())
        if size > MAX_ENV_TOTAL_BYTES:
            raise ValueError(
                f"found {size:,} bytes as NAME=value strings, expected at most {MAX_ENV_TOTAL_BYTES:,} bytes"
            )
        return value

    @field_validator("nodes")
    @classmethod
    def _nodes_divide_gpus(cls, value: int | None, info: ValidationInfo) -> int | None:
        """``nodes`` divides ``gpus`` (each node gets the same number of GPUs), and the job is not also ``spread``."""
        gpus = info.data.get("gpus")
        if value is not None and info.data.get("spread") is True:
            raise ValueError(
                f"found {value} nodes with spread: true, expected either nodes (an exact shape) or spread (any free "
                "GPUs), not both"
            )
        if value is not None and isinstance(gpus, int) and gpus % value:
            raise ValueError(
                f"found {value} nodes for {gpus} GPUs, expected a number of nodes that divides gpus (each node gets "
                "gpus / nodes GPUs)"
            )
        return value

    @model_validator(mode="after")
    def _something_to_run(self) -> "JobSpec":
        """A job runs a shell command, a container image or both; a spec with neither has nothing to run."""
        if not self.command and not self.image:
            raise ValueError("found neither 'command' nor 'image', expected a shell command or a container image")
        return self
