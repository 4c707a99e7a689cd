"""The one protocol every executor speaks: submit, poll, cancel, logs, with declared capabilities; and records,
prune for the retention of what it keeps of finished runs (see :mod:`stargate.executors.retention`).

The scheduler loop calls an executor only outside database transactions, with decisions already committed.
"""

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

MAX_ARG_STRLEN = 131072
"""Linux's limit on one argument or environment string (``KEY=value``) of a new process, bytes with its NUL."""
POINTER_BYTES = 8
"""What each argument and environment string also costs in the kernel's count against ARG_MAX, bytes."""
MAX_LOG_CHUNK = 1 << 20
"""Most bytes of log one executor ``logs`` call returns (1 MiB)."""


class EngineUnreachableError(RuntimeError):
    """The executor's engine did not answer (refused, timed out, controller down): try again later; never a reason to
    call a run lost. The scheduler takes it as a failed health check of that executor (see
    :mod:`stargate.server.scheduling.health`)."""


class RunGoneError(LookupError):
    """The executor keeps nothing of this run any more (its records and log were pruned after its job ended, or
    removed outside Stargate): :meth:`Executor.logs` raises it instead of answering an empty log."""


class RunState(StrEnum):
    """What an executor knows of a run it started."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    """The executor has no trace of the run (e.g. its process vanished without an exit code)."""
    INTERRUPTED = "interrupted"
    """The engine's infrastructure ended the run, not the job (a node failed, the engine preempted or requeued it):
    the job runs again from its last checkpoint."""

    def is_final(self) -> bool:
        """True once the run will not change again."""
        return self is not RunState.RUNNING


@dataclass(frozen=True, slots=True)
class ArgumentLimits:
    """Linux's limits on the arguments and environment of a new process on this host, which bound a job's command
    and environment on an executor that passes them on an exec."""

    string_bytes: int
    """Most bytes of one argument or ``KEY=value`` environment string, without its NUL."""
    total_bytes: int
    """Most bytes of the command and environment in all, each string counted with its NUL and a pointer
    (:meth:`cost`): half of this host's ARG_MAX, leaving the other half to the executor's own arguments, the
    inherited environment and Stargate's variables."""

    @staticmethod
    def cost(string_bytes: int) -> int:
        """What one string of ``string_bytes`` bytes counts against :attr:`total_bytes`."""
        return string_bytes + 1 + POINTER_BYTES

    @classmethod
    def of_this_host(cls) -> "ArgumentLimits":
        """This host's limits: MAX_ARG_STRLEN for one string, half of ARG_MAX in all (2 MiB on a default Linux, so
        1 MiB; 128 KiB when the host does not say)."""
        try:
            arg_max = os.sysconf("SC_ARG_MAX")
        except (ValueError, OSError, AttributeError):
            arg_max = -1
        return cls(string_bytes=MAX_ARG_STRLEN - 1, total_bytes=(arg_max if arg_max > 0 else 256 * 1024) // 2)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an executor can do, declared by type rather than guessed from its name: submit checks a job against the
    capabilities of every executor it may run on (see :func:`stargate.executors.capabilities_of`)."""

    images: bool = False
    """Runs a container image (a job with an image and no command); False: shell commands only."""
    argument_limits: ArgumentLimits | None = None
    """The OS limits a job's command and environment must fit (the executor passes them on an exec on this host);
    None: no such limit."""
    on_server_host: bool = False
    """Runs jobs as processes on the server's own machine, under the server's ``--isolation`` and
    ``--single-team``."""
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
    gpus: int = 0
    """GPUs the run holds in all (``len(gpu_ids)``)."""
    nodes: int = 1
    """Nodes its GPUs are on (a gang over several nodes asks the engine for that many)."""
    gpus_per_node: int = 0
    """GPUs it holds on each node (``gpus // nodes``)."""
    image: str | None = None
    """The job's container image (executors that run images); None: its command runs in the engine's default."""
    name: str = ""
    """The job's name (shown by the engine next to the job id), or empty."""


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


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One thing an executor keeps of one run (a record file, a withdrawn marker, a log, the engine's job), as
    :meth:`KeepsRecords.records` lists it."""

    job_id: str
    """The run's job (public id, e.g. ``j-000123``)."""
    attempt: int
    what: str
    """Which record, in the executor's own terms (e.g. ``jobs/<name>``, ``log/<name>``): :meth:`KeepsRecords.prune`
    is given it back."""
    active: bool = False
    """The engine says the run is still going (pending or running): it is never pruned."""


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one :meth:`KeepsRecords.prune` removed, and what it could not (one line each)."""

    removed: int = 0
    problems: tuple[str, ...] = ()


@runtime_checkable
class KeepsRecords(Protocol):
    """What an executor keeps of the runs it started, listed and removed for retention (see
    :mod:`stargate.executors.retention`); the server's housekeeping step calls both, outside transactions."""

    def records(self) -> list[RunRecord]:
        """What this executor keeps of the runs of its installation now: files and markers it wrote, logs, and the
        engine's jobs it submitted. Raises :class:`EngineUnreachableError` when it cannot tell which runs are still
        going (nothing is pruned then)."""
        ...

    def prune(self, records: Sequence[RunRecord]) -> Pruned:
        """Remove these records (which :meth:`records` listed and the retention rule let go); a record already gone
        is not a problem. Never removes anything but what a record names, and nothing of a run still going."""
        ...


@runtime_checkable
class Executor(KeepsRecords, Protocol):
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
        """Log text from byte ``offset`` and the offset to continue from; :class:`RunGoneError` when the executor
        keeps nothing of the run any more (pruned)."""
        ...


@dataclass(frozen=True, slots=True)
class Health:
    """What one health check of an executor's engine found."""

    reachable: bool
    """The engine answered."""
    reason: str = ""
    """Why it is not healthy (unreachable, failed nodes), on one line; empty when healthy."""
    nodes: int | None = None
    """Nodes the engine reports (None: it does not say)."""
    failed_nodes: int = 0
    """Nodes the engine reports down or failed."""

    def down(self) -> bool:
        """True when the engine cannot run work: unreachable, or every node it reports failed."""
        return not self.reachable or (self.nodes is not None and self.failed_nodes >= self.nodes > 0)

    def degraded(self) -> bool:
        """True when some (not all) of its nodes failed."""
        return not self.down() and self.failed_nodes > 0


@runtime_checkable
class ChecksHealth(Protocol):
    """An executor that can tell whether its engine is reachable and its nodes are up (the server's health step
    asks it every ``health.interval_s`` and marks its clusters down after ``health.down_after_s``)."""

    def health(self) -> Health:
        """Check the engine now (a bounded wait: a few seconds at most); never raises for an unreachable engine."""
        ...


@runtime_checkable
class ReportsChanges(Protocol):
    """An executor that says which runs ended instead of being polled run by run (optional; the scheduler polls
    every running job of an executor without it).

    The scheduler calls :meth:`changes` once per cycle: with nothing ended, a cycle costs one call, whatever the
    number of running jobs. Runs this executor started are watched from their submit; runs started before (another
    server process, a restart) are handed to :meth:`watch` when the scheduler reads the running jobs in full."""

    def watch(self, handles: Sequence[RunHandle]) -> None:
        """Report the end of these runs too (a run already watched, or already reported as ended, is ignored
        until it is watched again)."""
        ...

    def changes(self) -> "list[RunChange]":
        """The watched runs that ended since the last call, with their final status; each reported once (it is
        watched no more)."""
        ...


@dataclass(frozen=True, slots=True)
class RunChange:
    """A run that ended, as :meth:`ReportsChanges.changes` reports it: which job and attempt, its handle, its
    final status."""

    job_id: str
    attempt: int
    handle: RunHandle
    status: RunStatus
