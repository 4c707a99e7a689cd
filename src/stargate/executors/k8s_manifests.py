"""What the Kubernetes executor creates for a run: a ``batch/v1`` Job, or a JobSet for a gang over several nodes.

Pure: a :class:`~stargate.executors.base.RunRequest` and the executor's settings in, a manifest (plain dicts, as
the API server reads them) out; no client, no I/O.

- One node: a Job whose single pod runs the job (``backoffLimit: 0``, ``restartPolicy: Never``: Stargate decides
  retries, never Kubernetes).
- Several nodes: a JobSet (``jobset.x-k8s.io/v1alpha2``) with one replicated Job of ``parallelism = completions =
  nodes`` Indexed pods (each sees its rank in ``JOB_COMPLETION_INDEX``), ``failurePolicy.maxRestarts: 0``.
- With a Kueue queue: the ``kueue.x-k8s.io/queue-name`` label on the Job (or JobSet) and ``suspend: true``, so
  Kueue admits it (and unsuspends it) when the queue's quota allows.

The object's name is ``sg-<installation8>-<job_id>-a<attempt>`` (the name every executor gives a run) when that is
a valid Kubernetes name; otherwise its invalid characters become '-' and a short hash of the job id keeps names of
different jobs apart.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from stargate.domain.executors import KubernetesExecutorConfig
from stargate.executors.base import RunRequest

JOB_API = "batch/v1"
JOBSET_API = "jobset.x-k8s.io/v1alpha2"
JOBSET_GROUP, JOBSET_VERSION = JOBSET_API.split("/")
JOBS = "jobs"
JOBSETS = "jobsets"
"""The resources (plural names) a run is created as."""

LABEL_JOB = "stargate.dev/job-id"
LABEL_ATTEMPT = "stargate.dev/attempt"
LABEL_TEAM = "stargate.dev/team"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
"""The label the Job controller puts on a Job's pods (Kubernetes 1.27 and later)."""
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
"""The label the JobSet controller puts on its Jobs' pods."""
REPLICATED_JOB = "node"
"""The one replicated Job of a gang's JobSet: its Jobs are named ``<jobset>-node-0``."""
CONTAINER = "job"
SHELL = ("/bin/sh", "-c")

MAX_NAME = 63
"""A Job's name becomes a label value on its pods: 63 characters at most."""
MAX_JOBSET_NAME = MAX_NAME - len(f"-{REPLICATED_JOB}-0")
"""A JobSet's Jobs are named ``<jobset>-<replicated job>-<index>``, which must fit 63 characters too."""

_PLAIN_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class ManifestError(ValueError):
    """A run this executor cannot express as a Kubernetes object (no image for a command, no command nor image)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """One object to create: its resource (``jobs`` or ``jobsets``), namespace, name and body."""

    resource: str
    namespace: str
    name: str
    body: dict[str, Any]


def installation_prefix(installation: str | None) -> str:
    """The first 8 characters of the installation id, lowercase, '-' for anything a name cannot hold; ``local``
    when there is none."""
    return re.sub(r"[^a-z0-9]", "-", (installation or "local")[:8].lower())


def object_name(installation: str | None, job_id: str, attempt: int, limit: int = MAX_NAME) -> str:
    """``sg-<installation8>-<job_id>-a<attempt>``, made a valid DNS-1035 label of at most ``limit`` characters.

    A job id that is not lowercase letters, digits and inner '-' (or too long) is rewritten ('-' for other
    characters, cut to fit) and followed by 8 hex digits of its SHA-256, so two jobs never share a name."""
    head, tail = f"sg-{installation_prefix(installation)}-", f"-a{attempt}"
    name = f"{head}{job_id}{tail}"
    if _PLAIN_ID.match(job_id) and len(name) <= limit:
        return name
    digest = hashlib.sha256(job_id.encode()).hexdigest()[:8]
    room = max(limit - len(head) - len(tail) - len(digest) - 1, 0)
    safe = re.sub(r"[^a-z0-9-]", "-", job_id.lower())[:room].strip("-")
    return f"{head}{safe}-{digest}{tail}" if safe else f"{head}{digest}{tail}"


def build(request: RunRequest, config: KubernetesExecutorConfig, installation: str | None) -> Manifest:
    """The Job (one node) or JobSet (several) that runs ``request`` under ``config``; :class:`ManifestError` when
    it cannot be expressed."""
    if request.nodes < 1:
        raise ManifestError(f"{request.job_id}: nodes must be at least 1, found {request.nodes}")
    if request.nodes == 1:
        name = object_name(installation, request.job_id, request.attempt)
        return Manifest(JOBS, config.namespace, name, _job(request, config, name))
    name = object_name(installation, request.job_id, request.attempt, MAX_JOBSET_NAME)
    return Manifest(JOBSETS, config.namespace, name, _jobset(request, config, name))


def _labels(request: RunRequest) -> dict[str, str]:
    """Stargate's labels of every object and pod of a run (a team name a label cannot hold is left out; the
    annotations carry it)."""
    labels = {LABEL_JOB: request.job_id, LABEL_ATTEMPT: str(request.attempt), LABEL_TEAM: request.team}
    return {k: v for k, v in labels.items() if v and len(v) <= MAX_NAME and _LABEL_VALUE.match(v)}


def _annotations(request: RunRequest) -> dict[str, str]:
    found = {LABEL_JOB: request.job_id, LABEL_ATTEMPT: str(request.attempt)}
    if request.team:
        found[LABEL_TEAM] = request.team
    if request.name:
        found["stargate.dev/job-name"] = request.name
    return found


def _metadata(request: RunRequest, config: KubernetesExecutorConfig, name: str) -> dict[str, Any]:
    labels = _labels(request)
    if config.queue:
        labels[KUEUE_QUEUE_LABEL] = config.queue
    return {"name": name, "namespace": config.namespace, "labels": labels, "annotations": _annotations(request)}


def _image(request: RunRequest, config: KubernetesExecutorConfig) -> str:
    if request.image:
        return request.image
    if not request.command:
        raise ManifestError(f"{request.job_id}: the job has neither a command nor an image; nothing to run")
    if config.image:
        return config.image
    raise ManifestError(
        f"{request.job_id}: the job has a command and no image, and executor '{config.id}' has no image to run "
        "commands in; give the job an image, or set `image:` on the executor in the fleet file"
    )


def _environment(request: RunRequest) -> list[dict[str, str]]:
    """The job's environment, then STARGATE_JOB_ID and STARGATE_ATTEMPT (which win over the job's own)."""
    ours = {"STARGATE_JOB_ID": request.job_id, "STARGATE_ATTEMPT": str(request.attempt)}
    env = [{"name": k, "value": v} for k, v in sorted(request.environment.items()) if k not in ours]
    return env + [{"name": k, "value": v} for k, v in ours.items()]


def _gpus_per_node(request: RunRequest) -> int:
    return request.gpus_per_node or request.gpus // max(request.nodes, 1)


def _pod_template(request: RunRequest, config: KubernetesExecutorConfig) -> dict[str, Any]:
    container: dict[str, Any] = {"name": CONTAINER, "image": _image(request, config)}
    if request.command:
        container["command"] = [*SHELL, request.command]
    container["env"] = _environment(request)
    gpus = _gpus_per_node(request)
    if gpus > 0:
        container["resources"] = {"limits": {config.gpu_resource: str(gpus)}}
    spec = {"restartPolicy": "Never", "automountServiceAccountToken": False, "containers": [container]}
    return {"metadata": {"labels": _labels(request)}, "spec": spec}


def _job(request: RunRequest, config: KubernetesExecutorConfig, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"backoffLimit": 0, "template": _pod_template(request, config)}
    if config.queue:
        spec["suspend"] = True
    return {"apiVersion": JOB_API, "kind": "Job", "metadata": _metadata(request, config, name), "spec": spec}


def _jobset(request: RunRequest, config: KubernetesExecutorConfig, name: str) -> dict[str, Any]:
    job_spec = {
        "parallelism": request.nodes,
        "completions": request.nodes,
        "completionMode": "Indexed",
        "backoffLimit": 0,
        "template": _pod_template(request, config),
    }
    replicated = {
        "name": REPLICATED_JOB,
        "replicas": 1,
        "template": {"metadata": {"labels": _labels(request)}, "spec": job_spec},
    }
    spec: dict[str, Any] = {"failurePolicy": {"maxRestarts": 0}, "replicatedJobs": [replicated]}
    if config.queue:
        spec["suspend"] = True
    return {"apiVersion": JOBSET_API, "kind": "JobSet", "metadata": _metadata(request, config, name), "spec": spec}
