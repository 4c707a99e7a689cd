"""The ``kubernetes`` executor: runs each placed job as a Job (a JobSet for a gang) through the API server.

Built with the official ``kubernetes`` client from the fleet file's executor entry
(:class:`~stargate.domain.executors.KubernetesExecutorConfig`): the API server's address with a bearer token read
from the environment variable ``token_env`` names (and ``ca_file``), or a kubeconfig. Every call has a timeout and
no retries of the client's own (the scheduler loop calls again next cycle). Manifests are built by
:mod:`stargate.executors.k8s_manifests`.

- ``submit`` creates the object; when it exists already (409 AlreadyExists) the run is that one: one object per
  (job id, attempt). The API refusing the manifest itself (400 or 422) is a run that fails at once (``cannot
  start``).
- ``find`` reads the object by name. When there is none it leaves a *withdrawn* marker,
  ``<home>/runs/kubernetes-withdrawn/<executor id>/<name>``, and ``submit`` never creates an object so marked (it
  checks before creating, and again after: an object created while ``find`` was looking is deleted).
- ``poll`` reads the Job's (JobSet's) conditions: Complete (Completed) is success, exit code 0; Failed is failure
  with Kubernetes' reason and the container's exit code when a pod still says it; anything else (suspended by
  Kueue, pending, active) is running. An object that is gone is lost (cancelled when Stargate deleted it: a marker
  in ``<home>/runs/kubernetes-cancelled/<executor id>/``). An API server that does not answer raises; it never
  makes a run lost.
- ``cancel`` deletes the object with background propagation (its pods go with it); a missing object is fine.
- ``logs`` reads the log of the run's first pod (by completion index, then name) and pages it by byte offset.
- ``health`` asks ``/version`` and lists the nodes when allowed (NotReady nodes count as failed), within 5 s.
- ``records`` lists this installation's withdrawn and cancelled markers and its Jobs and JobSets in the namespace
  (by the label ``stargate.dev/job-id``; active until a Complete or Failed condition), and ``prune`` removes those
  the server's housekeeping step lets go (see :mod:`stargate.executors.retention`): a marker file is deleted, an
  object with background propagation (its pods, and so its logs, go with it). Jobs are created without
  ``ttlSecondsAfterFinished``: Kubernetes would delete a finished Job before a server that was down meanwhile read
  its result (and the run would read as interrupted); Stargate deletes it once the database has recorded its end
  and the retention has passed. ``logs`` of a run whose object is gone raises
  :class:`~stargate.executors.base.RunGoneError`.
- Errors never hold the executor's credentials (its token, its kubeconfig's): an API server or a proxy that echoes
  the ``Authorization`` header in an error body has them taken out (:mod:`stargate.executors.redact`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s

from stargate.domain.executors import KubernetesExecutorConfig
from stargate.executors.base import (
    MAX_LOG_CHUNK,
    Capabilities,
    Health,
    Pruned,
    RunGoneError,
    RunHandle,
    RunRecord,
    RunRequest,
    RunState,
    RunStatus,
)
from stargate.executors.k8s_client import (
    KubernetesExecutorError,
    KubernetesUnreachable,
    api_client,
    brief,
    json_of,
    message_of,
    node_ready,
    reason_of,
    secrets_of,
)
from stargate.executors.k8s_manifests import (
    CONTAINER,
    JOB_NAME_LABEL,
    JOBS,
    JOBSET_GROUP,
    JOBSET_NAME_LABEL,
    JOBSET_VERSION,
    JOBSETS,
    LABEL_ATTEMPT,
    LABEL_JOB,
    MAX_JOBSET_NAME,
    MAX_NAME,
    Manifest,
    ManifestError,
    build,
    installation_prefix,
    object_name,
)
from stargate.executors.local_state import utf8_boundary
from stargate.executors.prune_files import names_in, remove_below
from stargate.executors.retention import run_of

__all__ = ["KIND", "KubernetesExecutor", "KubernetesExecutorError", "KubernetesUnreachable", "api_client"]

KIND = "kubernetes"
REFUSED = "refused"
"""The resource part of a handle whose manifest the API server refused (the run failed at once)."""
HEALTH_BUDGET_S = 5.0
LIST_PAGE = 500
"""Objects one list call of :meth:`KubernetesExecutor.records` asks for (it follows ``continue`` for more)."""
MARKERS = ("withdrawn", "cancelled")
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
_T = TypeVar("_T")
_CREATE: dict[str, Any] = {
    "field_validation": "Strict",
    "_headers": {"Content-Type": "application/json"},
    "_preload_content": False,
}
"""How objects are created: the API server refuses unknown fields (as the tests' strict validation does)."""


class KubernetesExecutor:
    """Runs jobs as Kubernetes Jobs and JobSets in one namespace of one cluster."""

    CAPABILITIES = Capabilities(images=True, multinode=True, reattach=True, logs=True)

    def __init__(
        self,
        config: KubernetesExecutorConfig,
        api: Any,
        home: Path,
        installation: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.kind = KIND
        self.capabilities = self.CAPABILITIES
        self.config = config
        self.api = api
        """The ``kubernetes.client.ApiClient`` every call goes through."""
        self.installation = installation
        self.timeout = (min(timeout_s, 5.0), timeout_s)
        self.withdrawn_dir = home / "runs" / "kubernetes-withdrawn" / config.id
        self.cancelled_dir = home / "runs" / "kubernetes-cancelled" / config.id
        # Any: every call asks for the raw response (``_preload_content=False``), not the typed model
        self._batch: Any = k8s.BatchV1Api(api)
        self._custom: Any = k8s.CustomObjectsApi(api)
        self._core: Any = k8s.CoreV1Api(api)

    @classmethod
    def from_config(cls, config: KubernetesExecutorConfig, settings: object) -> KubernetesExecutor:
        """The executor for ``config`` with the server's ``settings`` (``home``, ``installation_id``)."""
        home = Path(getattr(settings, "home"))  # noqa: B009 - settings is any object with a home
        return cls(config, api_client(config), home, getattr(settings, "installation_id", None))

    # -- the protocol --------------------------------------------------------------------------------------------

    def submit(self, request: RunRequest) -> RunHandle:
        """Create the run's Job (JobSet), or return the handle of the one created already for this attempt."""
        try:
            made = build(request, self.config, self.installation)
        except ManifestError as exc:
            raise KubernetesExecutorError(str(exc)) from None
        if self._withdrawn(made.name):
            raise KubernetesExecutorError(f"{request.job_id} attempt {request.attempt} was withdrawn; it never starts")
        try:
            self._call(lambda: self._create(made))
        except k8s.ApiException as exc:
            if exc.status == 409 and reason_of(exc) == "AlreadyExists":
                return self._handle(made.resource, made.name)
            if exc.status in (400, 422):
                why = message_of(exc, self._secrets())
                return RunHandle(KIND, f"{REFUSED}/{made.namespace}/{made.name}/{why}"[:2000])
            raise self._error(exc, f"create {made.resource[:-1]} {made.name}") from None
        if self._withdrawn(made.name):  # find looked while it was being created: it must not run
            self._delete(made.resource, made.name)
            raise KubernetesExecutorError(f"{request.job_id} attempt {request.attempt} was withdrawn; it never starts")
        return self._handle(made.resource, made.name)

    def find(self, job_id: str, attempt: int) -> RunHandle | None:
        """The run's Job (or JobSet) if it exists; otherwise None, and this attempt can never be created later."""
        for resource, name in self._names(job_id, attempt):
            if self._read(resource, name) is not None:
                return self._handle(resource, name)
        names = self._names(job_id, attempt)
        for _, name in names:
            self.withdrawn_dir.mkdir(parents=True, exist_ok=True)
            (self.withdrawn_dir / name).touch()
        for resource, name in names:  # created meanwhile: the run stands, the marker goes
            if self._read(resource, name) is not None:
                for _, marked in names:
                    (self.withdrawn_dir / marked).unlink(missing_ok=True)
                return self._handle(resource, name)
        return None

    def poll(self, handle: RunHandle) -> RunStatus:
        """The run's state from its object's conditions; interrupted when the object is gone; raises when the API
        server does not answer."""
        resource, namespace, name, refusal = _decode(handle)
        if resource == REFUSED:
            return RunStatus(RunState.FAILED, reason=f"cannot start: the API server refused the {name}: {refusal}")
        found = self._read(resource, name, namespace)
        if found is None:
            if (self.cancelled_dir / name).exists():
                return RunStatus(RunState.CANCELLED, reason="deleted by Stargate")
            what = "Job" if resource == JOBS else "JobSet"
            # deleted outside Stargate or lost with the cluster's state: not the job's doing, it runs again
            return RunStatus(RunState.INTERRUPTED, reason=f"the {what} {namespace}/{name} no longer exists")
        done, failed = ("Complete", "Failed") if resource == JOBS else ("Completed", "Failed")
        for condition in found.get("status", {}).get("conditions") or []:
            if condition.get("status") != "True":
                continue
            if condition.get("type") == done:
                return RunStatus(RunState.SUCCEEDED, exit_code=0)
            if condition.get("type") == failed:
                why = ": ".join(p for p in (condition.get("reason"), condition.get("message")) if p)
                return RunStatus(RunState.FAILED, exit_code=self._exit_code(resource, name, namespace), reason=why)
        return RunStatus(RunState.RUNNING)

    def cancel(self, handle: RunHandle) -> None:
        """Delete the run's object (its pods go with it, in the background); nothing to do when it is gone."""
        resource, namespace, name, _ = _decode(handle)
        if resource == REFUSED:
            return
        self.cancelled_dir.mkdir(parents=True, exist_ok=True)
        (self.cancelled_dir / name).touch()  # before the delete: a crash in between must not read as lost
        self._delete(resource, name, namespace)

    def logs(self, handle: RunHandle, offset: int = 0) -> tuple[str, int]:
        """Log text of the run's first pod from byte ``offset`` (at most 1 MiB) and the offset to continue from."""
        resource, namespace, name, _ = _decode(handle)
        if resource == REFUSED:
            return "", offset
        pods = self._pods(resource, name, namespace)
        if not pods:
            if self._read(resource, name, namespace) is None:  # pruned (its pods went with it), or deleted
                raise RunGoneError(f"the {resource[:-1]} {namespace}/{name} no longer exists")
            return "", offset
        pod = pods[0]["metadata"]["name"]
        limit = offset + MAX_LOG_CHUNK
        try:
            response = self._call(
                lambda: self._core.read_namespaced_pod_log(
                    pod,
                    namespace,
                    container=CONTAINER,
                    limit_bytes=limit,
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
            )
        except k8s.ApiException as exc:
            if exc.status in (400, 404):  # its container has not started yet, or the pod is gone
                return "", offset
            raise self._error(exc, f"read the log of pod {pod}") from None
        data = response.data[offset:limit]
        if len(response.data) >= limit:
            data = data[: utf8_boundary(data)]
        return data.decode("utf-8", errors="replace"), offset + len(data)

    def health(self) -> Health:
        """Whether the API server answers ``/version`` and how many of its nodes are Ready, within 5 s; never
        raises."""
        start = time.monotonic()
        try:
            k8s.VersionApi(self.api).get_code(_preload_content=False, _request_timeout=HEALTH_BUDGET_S / 2)
        except Exception as exc:
            why = brief(exc, self._secrets())
            return Health(reachable=False, reason=f"Kubernetes API server {self._host()} unreachable: {why}")
        left = HEALTH_BUDGET_S - (time.monotonic() - start)
        if left < 0.2:
            return Health(reachable=True)
        try:
            nodes = json_of(self._core.list_node(_preload_content=False, _request_timeout=left))["items"]
        except Exception:  # not allowed to list nodes (403), or slow: the API server answered, that is enough
            return Health(reachable=True)
        failed = [n["metadata"]["name"] for n in nodes if not node_ready(n)]
        reason = f"{len(failed)} of {len(nodes)} nodes not Ready: {', '.join(sorted(failed)[:5])}" if failed else ""
        return Health(reachable=True, reason=reason, nodes=len(nodes), failed_nodes=len(failed))

    # -- retention -------------------------------------------------------------------------------------------------

    def records(self) -> list[RunRecord]:
        """This installation's markers (``withdrawn/<name>``, ``cancelled/<name>``) and its Jobs and JobSets in the
        namespace (``jobs/<name>``, ``jobsets/<name>``; active until finished; a JobSet's own Jobs are its to
        remove); raises when the API server does not answer."""
        prefix = f"sg-{installation_prefix(self.installation)}-"
        found = [
            RunRecord(*run, f"{kind}/{name}")
            for kind, where in zip(MARKERS, (self.withdrawn_dir, self.cancelled_dir), strict=True)
            for name in names_in(where)
            if (run := run_of(name, prefix)) is not None
        ]
        for resource in (JOBS, JOBSETS):
            for item in self._list(resource):
                meta = item.get("metadata") or {}
                name = str(meta.get("name") or "")
                if not name.startswith(prefix) or meta.get("ownerReferences"):
                    continue
                marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
                attempt = str(marks.get(LABEL_ATTEMPT, ""))
                run = (str(marks[LABEL_JOB]), int(attempt)) if LABEL_JOB in marks and attempt.isdigit() else None
                run = run or run_of(name, prefix)
                if run is not None:
                    found.append(RunRecord(*run, f"{resource}/{name}", not _finished(resource, item)))
        return found

    def prune(self, records: Sequence[RunRecord]) -> Pruned:
        """Delete these markers, and these Jobs and JobSets with background propagation (their pods go with them;
        one already gone is fine)."""
        removed, problems = 0, []
        prefix = f"sg-{installation_prefix(self.installation)}-"
        for record in records:
            kind, _, name = record.what.partition("/")
            if kind not in (*MARKERS, JOBS, JOBSETS) or "/" in name or not name.startswith(prefix):
                problems.append(f"{record.what}: not a record of the Kubernetes executor '{self.config.id}'")
                continue
            try:
                if kind in MARKERS:
                    removed += remove_below(self.withdrawn_dir if kind == "withdrawn" else self.cancelled_dir, [name])
                else:
                    removed += self._delete(kind, name)
            except (OSError, ValueError, KubernetesExecutorError) as exc:
                problems.append(f"{record.what}: {exc}")
        return Pruned(removed, tuple(problems))

    def _list(self, resource: str) -> list[dict[str, Any]]:
        """Every Job (JobSet) of the namespace with Stargate's job label, page by page; none when the API server
        does not serve JobSets (no JobSet controller installed)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            try:
                page = self._list_page(resource, token)
            except k8s.ApiException as exc:
                if exc.status == 404 and resource == JOBSETS:
                    return items
                raise self._error(exc, f"list the {resource} of namespace {self.config.namespace}") from None
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    def _list_page(self, resource: str, token: str | None) -> dict[str, Any]:
        """One page of :meth:`_list` (``token``: where the last one ended)."""
        ns = self.config.namespace
        kw: dict[str, Any] = {"label_selector": LABEL_JOB, "limit": LIST_PAGE}
        kw.update({"_continue": token} if token else {})
        kw.update(_preload_content=False, _request_timeout=self.timeout)
        if resource == JOBS:
            return json_of(self._call(lambda: self._batch.list_namespaced_job(ns, **kw)))
        return json_of(
            self._call(
                lambda: self._custom.list_namespaced_custom_object(JOBSET_GROUP, JOBSET_VERSION, ns, JOBSETS, **kw)
            )
        )

    # -- API calls -------------------------------------------------------------------------------------------------

    def _create(self, made: Manifest) -> Any:
        if made.resource == JOBS:
            return self._batch.create_namespaced_job(
                made.namespace, made.body, **_CREATE, _request_timeout=self.timeout
            )
        return self._custom.create_namespaced_custom_object(
            JOBSET_GROUP,
            JOBSET_VERSION,
            made.namespace,
            JOBSETS,
            made.body,
            **_CREATE,
            _request_timeout=self.timeout,
        )

    def _read(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object as the API server returns it, or None when it does not exist."""
        ns = namespace or self.config.namespace
        kw: dict[str, Any] = {"_preload_content": False, "_request_timeout": self.timeout}
        try:
            if resource == JOBS:
                return json_of(self._call(lambda: self._batch.read_namespaced_job(name, ns, **kw)))
            return json_of(
                self._call(
                    lambda: self._custom.get_namespaced_custom_object(
                        JOBSET_GROUP, JOBSET_VERSION, ns, JOBSETS, name, **kw
                    )
                )
            )
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise self._error(exc, f"read {resource[:-1]} {ns}/{name}") from None

    def _delete(self, resource: str, name: str, namespace: str | None = None) -> bool:
        """Delete the object with background propagation; False when it was gone already."""
        ns = namespace or self.config.namespace
        kw: dict[str, Any] = {
            "propagation_policy": "Background",
            "_preload_content": False,
            "_request_timeout": self.timeout,
        }
        try:
            if resource == JOBS:
                self._call(lambda: self._batch.delete_namespaced_job(name, ns, **kw))
            else:
                self._call(
                    lambda: self._custom.delete_namespaced_custom_object(
                        JOBSET_GROUP, JOBSET_VERSION, ns, JOBSETS, name, **kw
                    )
                )
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise self._error(exc, f"delete {resource[:-1]} {ns}/{name}") from None
            return False
        return True

    def _pods(self, resource: str, name: str, namespace: str) -> list[dict[str, Any]]:
        """The run's pods, first by completion index then by name."""
        label = JOB_NAME_LABEL if resource == JOBS else JOBSET_NAME_LABEL
        try:
            response = self._call(
                lambda: self._core.list_namespaced_pod(
                    namespace, label_selector=f"{label}={name}", _preload_content=False, _request_timeout=self.timeout
                )
            )
        except k8s.ApiException as exc:
            raise self._error(exc, f"list the pods of {name}") from None
        pods: list[dict[str, Any]] = json_of(response).get("items") or []

        def order(pod: dict[str, Any]) -> tuple[int, str]:
            index = (pod["metadata"].get("labels") or {}).get(COMPLETION_INDEX, "0")
            return (int(index) if index.isdigit() else 0, pod["metadata"]["name"])

        return sorted(pods, key=order)

    def _exit_code(self, resource: str, name: str, namespace: str) -> int | None:
        """The first nonzero exit code of the run's container that its pods still show; None when none does."""
        try:
            pods = self._pods(resource, name, namespace)
        except KubernetesExecutorError:
            return None
        for pod in pods:
            for status in pod.get("status", {}).get("containerStatuses") or []:
                ended = (status.get("state") or {}).get("terminated") or {}
                if status.get("name") == CONTAINER and ended.get("exitCode"):
                    return int(ended["exitCode"])
        return None

    def _call(self, fn: Callable[[], _T]) -> _T:
        """``fn()``, with a connection that fails (refused, reset, timed out, TLS) raised as
        :class:`KubernetesUnreachable`."""
        try:
            return fn()
        except k8s.ApiException as exc:
            if exc.status == 0:  # the client's own wrapping of a TLS failure
                why = brief(exc, self._secrets())
                raise KubernetesUnreachable(f"Kubernetes API server {self._host()}: {why}") from None
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            why = brief(exc, self._secrets())
            raise KubernetesUnreachable(f"Kubernetes API server {self._host()} unreachable: {why}") from exc

    # -- helpers ---------------------------------------------------------------------------------------------------

    def _handle(self, resource: str, name: str) -> RunHandle:
        return RunHandle(KIND, f"{resource}/{self.config.namespace}/{name}")

    def _names(self, job_id: str, attempt: int) -> list[tuple[str, str]]:
        """The names a run of (job id, attempt) may have: as a Job, as a JobSet."""
        return [
            (JOBS, object_name(self.installation, job_id, attempt, MAX_NAME)),
            (JOBSETS, object_name(self.installation, job_id, attempt, MAX_JOBSET_NAME)),
        ]

    def _withdrawn(self, name: str) -> bool:
        return (self.withdrawn_dir / name).exists()

    def _host(self) -> str:
        return str(self.api.configuration.host)

    def _error(self, exc: Any, doing: str) -> KubernetesExecutorError:
        return KubernetesExecutorError(
            f"Kubernetes API server {self._host()}: {doing}: HTTP {exc.status} {message_of(exc, self._secrets())}"
        )

    def _secrets(self) -> tuple[str, ...]:
        """The credentials this executor sends (read at each use: a kubeconfig's token may be refreshed); taken
        out of every error text before it is cut short."""
        return secrets_of(self.api.configuration)


def _decode(handle: RunHandle) -> tuple[str, str, str, str]:
    """(resource, namespace, name, refusal) of a handle's key."""
    parts = handle.key.split("/", 3)
    if len(parts) < 3 or parts[0] not in (JOBS, JOBSETS, REFUSED):
        raise KubernetesExecutorError(f"not a Kubernetes run handle: {handle.key!r}")
    return parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else ""


def _finished(resource: str, found: dict[str, Any]) -> bool:
    """True once a Job (JobSet) has its Complete (Completed) or Failed condition."""
    done = ("Complete", "Failed") if resource == JOBS else ("Completed", "Failed")
    conditions = found.get("status", {}).get("conditions") or []
    return any(c.get("type") in done and c.get("status") == "True" for c in conditions)
