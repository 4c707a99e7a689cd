"""Executors run placed jobs on real engines; ``local`` (subprocesses) is the embedded default.

:func:`for_kind` is the registry: it builds the executor for a provider's executor kind from the server settings.
:func:`capabilities_of` says what an executor kind can do without building one (submit checks read it). Ray, Slurm
and Kubernetes executors are not written yet: building one is a clear error; their capabilities are the ones they
will have.
"""

from collections.abc import Callable
from pathlib import Path

from stargate.executors.base import (
    ArgumentLimits,
    Capabilities,
    Executor,
    ReportsChanges,
    RunChange,
    RunHandle,
    RunRequest,
    RunState,
    RunStatus,
)
from stargate.executors.isolation import (
    Isolation,
    IsolationError,
    IsolationMode,
    JobNetwork,
    TeamIdentities,
    resolve,
)
from stargate.executors.local import LocalExecutor, LocalExecutorError
from stargate.executors.local_runner import DEFAULT_LOG_LIMIT

__all__ = [
    "ArgumentLimits",
    "Capabilities",
    "Executor",
    "Isolation",
    "IsolationError",
    "IsolationMode",
    "LocalExecutor",
    "LocalExecutorError",
    "ReportsChanges",
    "RunChange",
    "RunHandle",
    "RunRequest",
    "RunState",
    "RunStatus",
    "UnknownExecutorError",
    "capabilities_of",
    "for_kind",
    "known_kinds",
]

PLANNED_KINDS = ("ray", "slurm", "kubernetes")
"""Executor kinds the fleet file accepts whose executors are not written yet."""


class UnknownExecutorError(ValueError):
    """No executor of the requested kind is available."""


def _local(settings: object) -> Executor:
    """The local executor over ``<STARGATE_HOME>/runs`` (or ``settings.runs_dir`` when the settings have one), with
    the settings' ``isolation`` (default none), ``single_team`` and ``job_uid_base``."""
    home = Path(getattr(settings, "home"))  # noqa: B009 - settings is any object with a home
    runs_dir = getattr(settings, "runs_dir", None) or home / "runs"
    grace_s = float(getattr(settings, "cancel_grace_s", 10.0))
    mode = str(getattr(settings, "isolation", IsolationMode.NONE))
    single_team = getattr(settings, "single_team", None)
    given = getattr(settings, "job_uid_base", None)
    uid_base = int(given) if given is not None else None
    network = str(getattr(settings, "job_network", JobNetwork.HOST))
    work_root = home / "work"
    if mode == IsolationMode.NONE and network == JobNetwork.HOST:
        isolation = Isolation(IsolationMode.NONE, single_team=single_team)  # `stargate up` refuses it without a team
    else:
        try:
            isolation = resolve(mode, single_team=single_team, uid_base=uid_base, work_root=home, job_network=network)
        except IsolationError as exc:
            value = network if exc.option == "--job-network" else mode
            raise UnknownExecutorError(f"local executor: {exc.option} {value}: {exc}") from None
    identities = TeamIdentities(home / "job-uids.json", isolation.uid_base)
    return LocalExecutor(
        Path(runs_dir),
        grace_s=grace_s,
        isolation=isolation,
        work_root=work_root,
        identities=identities,
        hidden=tuple(getattr(settings, "private_dirs", (home,))),
        installation=getattr(settings, "installation_id", None),
        max_log_bytes=int(getattr(settings, "max_log_bytes", DEFAULT_LOG_LIMIT)),
    )


_FACTORIES: dict[str, Callable[[object], Executor]] = {"local": _local}

PLANNED_CAPABILITIES = Capabilities(images=True, multinode=True)
"""What the planned executors will do: run container images as well as commands, on several nodes, off the server's
machine (so neither its argument limits nor its ``--single-team`` apply)."""

_CAPABILITIES: dict[str, Capabilities] = {
    "local": LocalExecutor.CAPABILITIES,
    **dict.fromkeys(PLANNED_KINDS, PLANNED_CAPABILITIES),
}


def known_kinds() -> tuple[str, ...]:
    """The executor kinds :func:`for_kind` can build, sorted."""
    return tuple(sorted(_FACTORIES))


def capabilities_of(kind: str) -> Capabilities:
    """What executors of ``kind`` can do, whatever their settings (an instance may add isolation: see its
    ``capabilities``), without building one; the planned kinds' too. :class:`UnknownExecutorError` for a kind that
    does not exist."""
    found = _CAPABILITIES.get(kind)
    if found is None:
        raise UnknownExecutorError(f"unknown executor kind '{kind}' (known: {', '.join(sorted(_CAPABILITIES))})")
    return found


def for_kind(kind: str, settings: object) -> Executor:
    """The executor for ``kind`` built from ``settings`` (which has ``home: Path``, optionally ``runs_dir`` and
    ``cancel_grace_s``); :class:`UnknownExecutorError` for a kind that does not exist or is not written yet."""
    factory = _FACTORIES.get(kind)
    if factory is not None:
        return factory(settings)
    known = ", ".join(known_kinds())
    if kind in PLANNED_KINDS:
        raise UnknownExecutorError(f"executor kind '{kind}' is not available yet (available: {known})")
    raise UnknownExecutorError(f"unknown executor kind '{kind}' (available: {known}; planned: ray, slurm, kubernetes)")
