"""The one protocol every executor speaks: submit, poll, cancel, logs, with declared capabilities.

The scheduler loop calls an executor only outside database transactions, with decisions already committed.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class RunState(StrEnum):
    """What an executor knows of a run it started."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    """The executor has no trace of the run (e.g. its process vanished without an exit code)."""

    def is_final(self) -> bool:
        """True once the run will not change again."""
        return self is not RunState.RUNNING


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an executor can do, declared by type rather than guessed from its name."""

    multinode: bool = False
    gpu_isolation: bool = False
    reattach: bool = False
    logs: bool = True
    team_isolation: bool = False
    """A job cannot read the server's state nor another team's runs (its own uid per team, or a sandbox)."""
    sandbox: bool = False
    """A job runs in an OS sandbox: private /tmp, pid and IPC namespaces, only its working directory writable."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything an executor needs to start one placed job."""

    job_id: str
    attempt: int
    command: str
    cluster: str
    gpu_ids: Sequence[int]
    environment: Mapping[str, str] = field(default_factory=dict)
    team: str = ""
    """The team the job belongs to: executors that isolate jobs run each team under its own identity."""


@dataclass(frozen=True, slots=True)
class RunHandle:
    """How to find a run again after a restart: an executor-specific opaque key plus the executor's kind."""

    executor: str
    key: str


@dataclass(frozen=True, slots=True)
class RunStatus:
    """A run's state as last observed; ``exit_code`` and ``reason`` once final."""

    state: RunState
    exit_code: int | None = None
    reason: str = ""


@runtime_checkable
class Executor(Protocol):
    """Runs jobs on one kind of engine (local processes, Ray, Slurm, Kubernetes)."""

    kind: str
    capabilities: Capabilities

    def submit(self, request: RunRequest) -> RunHandle:
        """Start the run; return a handle that survives a restart of the server."""
        ...

    def find(self, job_id: str, attempt: int) -> RunHandle | None:
        """The run already started for this (job id, attempt), if any; never starts one. When it returns None, no
        run of this attempt can start later either (a submit still on its way is refused): the scheduler calls it
        to stop an attempt whose job moved on before it knew the run's handle."""
        ...

    def poll(self, handle: RunHandle) -> RunStatus:
        """The run's current state; never raises for a run that merely ended."""
        ...

    def cancel(self, handle: RunHandle) -> None:
        """Stop the run if it is still going; idempotent."""
        ...

    def logs(self, handle: RunHandle, offset: int = 0) -> tuple[str, int]:
        """Log text from byte ``offset`` and the offset to continue from."""
        ...
