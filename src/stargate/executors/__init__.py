"""Executors run placed jobs on real engines; ``local`` (subprocesses) is the embedded default.

:func:`for_kind` is the registry: it builds the executor for a provider's executor kind from the server settings.
Ray, Slurm and Kubernetes executors come in later issues; asking for them now is a clear error.
"""

from collections.abc import Callable
from pathlib import Path

from stargate.executors.base import Capabilities, Executor, RunHandle, RunRequest, RunState, RunStatus
from stargate.executors.local import LocalExecutor, LocalExecutorError

__all__ = [
    "Capabilities",
    "Executor",
    "LocalExecutor",
    "LocalExecutorError",
    "RunHandle",
    "RunRequest",
    "RunState",
    "RunStatus",
    "UnknownExecutorError",
    "for_kind",
    "known_kinds",
]

PLANNED_KINDS = ("ray", "slurm", "kubernetes")
"""Executor kinds the fleet file accepts whose executors are not written yet."""


class UnknownExecutorError(ValueError):
    """No executor of the requested kind is available."""


def _local(settings: object) -> Executor:
    """The local executor over ``<STARGATE_HOME>/runs`` (or ``settings.runs_dir`` when the settings have one)."""
    runs_dir = getattr(settings, "runs_dir", None)
    if runs_dir is None:
        runs_dir = Path(getattr(settings, "home")) / "runs"  # noqa: B009 - settings is any object with a home
    grace_s = float(getattr(settings, "cancel_grace_s", 10.0))
    return LocalExecutor(Path(runs_dir), grace_s=grace_s)


_FACTORIES: dict[str, Callable[[object], Executor]] = {"local": _local}


def known_kinds() -> tuple[str, ...]:
    """The executor kinds :func:`for_kind` can build, sorted."""
    return tuple(sorted(_FACTORIES))


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
