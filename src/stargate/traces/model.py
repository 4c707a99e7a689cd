"""The in-memory shape of a job trace: what every reader returns and the simulator replays.

Plain slotted dataclasses, not pydantic: a trace holds up to millions of jobs, and the readers validate each row
themselves (with located messages) before building a :class:`TraceJob`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, cast

FORMATS: tuple[str, ...] = ("philly", "alibaba-openb", "native")
"""The trace formats :func:`stargate.traces.read_trace` understands."""

JOB_KINDS: tuple[str, ...] = ("train", "serve", "batch")
"""The values of :attr:`TraceJob.kind` (the same as :class:`stargate.domain.jobs.JobKind`)."""

MAX_GPUS = 1_000_000
"""The largest GPU count a job may ask for (the same bound as ``JobSpec.gpus``)."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace, as the simulator submits it.

    ``duration_s`` is the run time without interruption; ``submit_s`` is counted from the trace start.
    Invariants (kept by every reader): ``id`` unique within the trace and non-empty, ``submit_s >= 0`` and finite,
    ``duration_s > 0`` and finite, ``1 <= gpus <= MAX_GPUS``, ``kind`` in :data:`JOB_KINDS`, optional floats > 0.
    """

    id: str
    submit_s: float
    duration_s: float
    gpus: int
    queue: str
    gpu_models: tuple[str, ...] = ()
    priority_class: str | None = None
    preemptible: bool = True
    checkpoint_interval_s: float | None = None
    allowed_providers: tuple[str, ...] = ()
    allowed_regions: tuple[str, ...] = ()
    kind: str = "batch"
    estimated_duration_s: float | None = None
    user: str | None = None
    """Who submitted it (None: the trace does not say); groups learned run-time estimates."""
    name: str | None = None
    """The job's name (None: the trace does not say); groups learned run-time estimates."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A malformed row: where it is (file, 1-based line) and what is wrong (column, found, expected)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        """``file:line: message`` (``file: message`` when the problem concerns the whole file, line 0)."""
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        return f"{where}: {self.message}"


@dataclass(slots=True)
class Trace:
    """A whole trace: its jobs in submission order and an account of every row that did not become a job.

    ``skipped`` counts rows left out on purpose, by reason (e.g. ``cpu_only``); ``bad_rows`` lists malformed rows;
    ``notes`` counts jobs kept but changed on the way in, by reason (e.g. ``shared_gpu_rounded_up``).
    """

    jobs: list[TraceJob]
    start: datetime | None
    skipped: Counter[str]
    bad_rows: list[BadRow]
    source: str
    notes: Counter[str] = field(default_factory=Counter)


class TraceError(Exception):
    """A trace could not be read: an unreadable file, a wrong header, or (strict mode) the first bad row."""

    def __init__(self, bad_row: BadRow) -> None:
        """Carry the located problem; ``str(error)`` is ``file:line: message``."""
        super().__init__(str(bad_row))
        self.bad_row = bad_row


class _UnfrozenJob:
    """Same slots as :class:`TraceJob`, plain assignment: built, then turned into a TraceJob by :func:`build_job`."""

    __slots__ = tuple(item.name for item in fields(TraceJob))

    def __init__(
        self,
        id: str,  # the field's name
        submit_s: float,
        duration_s: float,
        gpus: int,
        queue: str,
        gpu_models: tuple[str, ...],
        priority_class: str | None,
        preemptible: bool,
        checkpoint_interval_s: float | None,
        allowed_providers: tuple[str, ...],
        allowed_regions: tuple[str, ...],
        kind: str,
        estimated_duration_s: float | None,
        user: str | None = None,
        name: str | None = None,
    ) -> None:
        """Set every slot."""
        self.id = id
        self.submit_s = submit_s
        self.duration_s = duration_s
        self.gpus = gpus
        self.queue = queue
        self.gpu_models = gpu_models
        self.priority_class = priority_class
        self.preemptible = preemptible
        self.checkpoint_interval_s = checkpoint_interval_s
        self.allowed_providers = allowed_providers
        self.allowed_regions = allowed_regions
        self.kind = kind
        self.estimated_duration_s = estimated_duration_s
        self.user = user
        self.name = name


def build_job(*values: Any) -> TraceJob:
    """``TraceJob(*values)`` with the first 13 fields (or all 15) in declaration order, about five times faster;
    no checks.

    For the readers' hot loops (a million jobs). A frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``; here the slots are set by plain assignment on a class with the identical slot layout,
    and the object's class is then switched to :class:`TraceJob` (CPython allows it for identical layouts). The
    result is an ordinary, equal, hashable, immutable TraceJob. Callers validate the values first.
    """
    job = _UnfrozenJob(*values)
    job.__class__ = TraceJob  # type: ignore[assignment]
    return cast(TraceJob, job)
