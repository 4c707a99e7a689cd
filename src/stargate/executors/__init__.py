"""Executors run placed jobs on real engines; ``local`` (subprocesses) is the embedded default.

:func:`build` is the registry: it builds the executor a fleet file's ``executors:`` entry describes (see
:mod:`stargate.domain.executors`) from that entry and the server settings. :func:`capabilities_of` says what an
executor can do without building one (submit checks read it). The Ray, Slurm and Kubernetes executors live in their
own modules, imported only when a fleet uses one (their client libraries are the ``engines`` extra).
"""

import importlib
from pathlib import Path

from stargate.domain.executors import DEFAULT_EXECUTORS, AnyExecutorConfig
from stargate.executors.base import (
    ArgumentLimits,
    Capabilities,
    EngineUnreachableError,
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
    "EngineUnreachableError",
    "Executor",
    "ExecutorBuildError",
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
    "build",
    "capabilities_of",
    "for_kind",
]


class UnknownExecutorError(ValueError):
    """No executor of the requested id or kind is available (unknown, or its module cannot be imported)."""


class ExecutorBuildError(UnknownExecutorError):
    """An executor's settings cannot build it here (a token variable not set, a file missing, a client library that
    refuses them): the message names the executor and what is wrong. It may build once the server's environment
    is mended, unlike a kind this installation does not have."""


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


_MODULES: dict[str, tuple[str, str]] = {
    "ray": ("stargate.executors.ray_jobs", "RayExecutor"),
    "slurm": ("stargate.executors.slurm", "SlurmExecutor"),
    "kubernetes": ("stargate.executors.kubernetes", "KubernetesExecutor"),
}
"""Executor kind → (module, class) of the executors imported on first use."""

FALLBACK_MULTINODE = True
"""Engines off the server's machine run gangs over several nodes (a fallback's ``multinode``)."""


def _executor_class(kind: str) -> type:
    """The class of the executors of ``kind`` (imported now); :class:`UnknownExecutorError` when it cannot be."""
    where = _MODULES.get(kind)
    if where is None:
        known = ", ".join(sorted(("local", *_MODULES)))
        raise UnknownExecutorError(f"unknown executor kind '{kind}' (known: {known})")
    module_name, class_name = where
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name:
            raise UnknownExecutorError(
                f"the {kind} executor is not available in this installation (no module {module_name})"
            ) from None
        raise UnknownExecutorError(
            f"the {kind} executor cannot be loaded ({exc}); install Stargate's 'engines' extra "
            "(pip install 'stargate[engines]')"
        ) from None
    found = getattr(module, class_name, None)
    if not isinstance(found, type):
        raise UnknownExecutorError(f"the {kind} executor is not available in this installation ({module_name})")
    return found


def build(config: AnyExecutorConfig, settings: object) -> Executor:
    """The executor ``config`` describes (a fleet file's ``executors:`` entry, or a default), built with the server
    ``settings`` (``home: Path``, ``installation_id``, the local executor's options). Never raises anything but
    :class:`UnknownExecutorError`: when its kind cannot be built here (its module or client library missing), or
    :class:`ExecutorBuildError` (a subclass) for any failure of its settings, e.g. ``executor 'ray-east':
    environment variable RAY_TOKEN is not set (token_env) ...``, so that callers (the scheduler loop) can go on
    with the other executors."""
    if config.kind == "local":
        return _local(settings)
    cls = _executor_class(config.kind)
    try:
        built: Executor = cls.from_config(config, settings)  # type: ignore[attr-defined]
    except UnknownExecutorError:
        raise
    except Exception as exc:  # any failure of an executor's settings: a located error, never a crashed caller
        raise ExecutorBuildError(_located(config, exc)) from None
    return built


def _located(config: AnyExecutorConfig, exc: Exception) -> str:
    """``exc``'s message naming the executor (once): ``executor '<id>' (<kind>): <what is wrong>``."""
    text = " ".join(str(exc).split())[:500] or type(exc).__name__
    if text.startswith(f"executor '{config.id}'"):
        return text
    return f"executor '{config.id}' ({config.kind}): {text}"


def capabilities_of(config: AnyExecutorConfig) -> Capabilities:
    """What the executor ``config`` describes can do, without building one (an instance may add isolation: see its
    ``capabilities``). When its module cannot be imported here, what every engine off the server's machine does:
    the images its settings allow, several nodes, no argument limits of this host."""
    if config.kind == "local":
        return LocalExecutor.CAPABILITIES
    try:
        found = getattr(_executor_class(config.kind), "CAPABILITIES", None)
    except UnknownExecutorError:
        found = None
    if isinstance(found, Capabilities):
        return found
    return Capabilities(images="images" in config.features(), multinode=FALLBACK_MULTINODE)


def for_kind(kind: str, settings: object) -> Executor:
    """The default executor of ``kind`` (the fleet file's defaults: see
    :data:`stargate.domain.executors.DEFAULT_EXECUTORS`) built from ``settings``; :class:`UnknownExecutorError` for
    a kind that does not exist or cannot be built here."""
    config = DEFAULT_EXECUTORS.get(kind)
    if config is None:
        known = ", ".join(sorted(DEFAULT_EXECUTORS))
        raise UnknownExecutorError(f"unknown executor kind '{kind}' (known: {known})")
    return build(config, settings)
