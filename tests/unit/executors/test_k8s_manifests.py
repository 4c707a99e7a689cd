"""The Kubernetes executor's manifests, validated as the API server would read them.

A Job is validated with kubernetes-validate against Kubernetes 1.31's OpenAPI schemas in strict mode (an unknown
field is an error, as with ``kubectl --validate=strict``). A JobSet is a custom resource kubernetes-validate has no
schema for: its own fields are checked against :data:`JOBSET_SCHEMA` (written from the JobSet v1alpha2 API reference,
unknown fields refused), and the Job its controller creates from the replicated Job's template (named
``<jobset>-node-0``, the JobSet's labels, the template's spec) is validated as a batch/v1 Job like any other.
"""

import copy
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stargate.domain.executors import KubernetesExecutorConfig
from stargate.executors.base import RunRequest
from stargate.executors.k8s_manifests import (
    JOBS,
    JOBSETS,
    KUEUE_QUEUE_LABEL,
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_TEAM,
    MAX_JOBSET_NAME,
    REPLICATED_JOB,
    ManifestError,
    build,
    object_name,
)

K8S_VERSION = "1.31"
"""The Kubernetes version every manifest is validated against (kubernetes-validate ships its schemas)."""

DNS_1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

JOBSET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "jobset.x-k8s.io/v1alpha2"},
        "kind": {"const": "JobSet"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["replicatedJobs"],
            "additionalProperties": False,
            "properties": {
                "replicatedJobs": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "template"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "pattern": DNS_1035, "maxLength": 63},
                            "groupName": {"type": "string"},
                            "replicas": {"type": "integer", "minimum": 0},
                            "template": {
                                "type": "object",
                                "required": ["spec"],
                                "additionalProperties": False,
                                "properties": {"metadata": {"type": "object"}, "spec": {"type": "object"}},
                            },
                            "dependsOn": {"type": "array"},
                        },
                    },
                },
                "network": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enableDNSHostnames": {"type": "boolean"},
                        "subdomain": {"type": "string"},
                        "publishNotReadyAddresses": {"type": "boolean"},
                    },
                },
                "successPolicy": {"type": "object"},
                "failurePolicy": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "maxRestarts": {"type": "integer", "minimum": 0},
                        "restartStrategy": {"enum": ["Recreate", "BlockingRecreate"]},
                        "rules": {"type": "array"},
                    },
                },
                "startupPolicy": {"type": "object"},
                "suspend": {"type": "boolean"},
                "coordinator": {"type": "object"},
                "managedBy": {"type": "string", "maxLength": 63},
                "ttlSecondsAfterFinished": {"type": "integer", "minimum": 0},
            },
        },
    },
}
"""The JobSet (jobset.x-k8s.io/v1alpha2) fields, from its API reference: JobSetSpec, ReplicatedJob, Network,
FailurePolicy (the nested policies and the Job template are checked elsewhere or not used)."""


def config(**given: Any) -> KubernetesExecutorConfig:
    fields: dict[str, Any] = {"id": "k8s-west", "kind": "kubernetes", "namespace": "ml", "image": "ghcr.io/org/t:1.0"}
    return KubernetesExecutorConfig(**{**fields, **given})


def request(**given: Any) -> RunRequest:
    fields: dict[str, Any] = {
        "job_id": "j-000123",
        "attempt": 2,
        "command": "python train.py --epochs 3",
        "cluster": "west-h100",
        "gpu_ids": list(range(8)),
        "environment": {"WANDB_PROJECT": "llm", "STARGATE_JOB_ID": "spoofed"},
        "team": "team-a",
        "gpus": 8,
        "nodes": 1,
        "gpus_per_node": 8,
    }
    return RunRequest(**{**fields, **given})


def validate_job(body: dict[str, Any]) -> None:
    """kubernetes-validate, strict, Kubernetes 1.31; plus the rules its schema leaves out that the API server
    enforces (name and label syntax)."""
    assert kubernetes_validate.validate(body, K8S_VERSION, strict=True) == K8S_VERSION
    assert re.match(DNS_1035, body["metadata"]["name"]) and len(body["metadata"]["name"]) <= 63
    for meta in (body["metadata"], body["spec"]["template"]["metadata"]):
        for value in meta["labels"].values():
            assert LABEL_VALUE.match(value) and len(value) <= 63, value
    names = [e["name"] for e in body["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert len(names) == len(set(names))


def validate_jobset(body: dict[str, Any]) -> None:
    """The JobSet's fields against :data:`JOBSET_SCHEMA`; its metadata and the Job it makes as batch/v1 Jobs."""
    jsonschema.validate(body, JOBSET_SCHEMA)
    (replicated,) = body["spec"]["replicatedJobs"]
    child_name = f"{body['metadata']['name']}-{replicated['name']}-0"
    child_meta = {**replicated["template"]["metadata"], "name": child_name, "namespace": body["metadata"]["namespace"]}
    job_spec = replicated["template"]["spec"]
    validate_job({"apiVersion": "batch/v1", "kind": "Job", "metadata": child_meta, "spec": job_spec})
    validate_job({"apiVersion": "batch/v1", "kind": "Job", "metadata": body["metadata"], "spec": job_spec})


def test_single_node_job_is_a_valid_batch_v1_job_with_no_kubernetes_retries() -> None:
    made = build(request(), config(), "0f3a9c2e-77aa-4b1e-9d1c-5e2f7a8b9c0d")
    assert (made.resource, made.namespace, made.name) == (JOBS, "ml", "sg-0f3a9c2e-j-000123-a2")
    validate_job(made.body)
    spec = made.body["spec"]
    assert spec["backoffLimit"] == 0 and "suspend" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/org/t:1.0"
    assert container["command"] == ["/bin/sh", "-c", "python train.py --epochs 3"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "8"}}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"WANDB_PROJECT": "llm", "STARGATE_JOB_ID": "j-000123", "STARGATE_ATTEMPT": "2"}
    labels = made.body["metadata"]["labels"]
    assert labels == {LABEL_JOB: "j-000123", LABEL_ATTEMPT: "2", LABEL_TEAM: "team-a"}
    assert KUEUE_QUEUE_LABEL not in labels


def test_kueue_queue_labels_and_suspends_job_and_jobset() -> None:
    job = build(request(), config(queue="team-a-queue"), None)
    assert job.name == "sg-local-j-000123-a2"
    assert job.body["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a-queue"
    assert job.body["spec"]["suspend"] is True
    validate_job(job.body)
    gang = build(request(gpus=16, nodes=2, gpus_per_node=8, gpu_ids=list(range(16))), config(queue="q"), None)
    assert gang.body["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "q" and gang.body["spec"]["suspend"] is True
    validate_jobset(gang.body)


def test_gang_over_several_nodes_is_a_jobset_of_indexed_pods() -> None:
    made = build(request(gpus=32, nodes=4, gpus_per_node=8, gpu_ids=list(range(32))), config(), "abc")
    assert made.resource == JOBSETS and made.name == "sg-abc-j-000123-a2"
    validate_jobset(made.body)
    assert made.body["spec"]["failurePolicy"] == {"maxRestarts": 0}
    (replicated,) = made.body["spec"]["replicatedJobs"]
    assert (replicated["name"], replicated["replicas"]) == (REPLICATED_JOB, 1)
    job = replicated["template"]["spec"]
    assert (job["parallelism"], job["completions"], job["completionMode"], job["backoffLimit"]) == (4, 4, "Indexed", 0)
    assert job["template"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}


def test_strict_validation_catches_what_the_api_server_would_refuse() -> None:
    """The validation is not vacuous: a misspelt field, a wrong type and a bad restart policy all fail it."""
    body = build(request(), config(), None).body
    broken = copy.deepcopy(body)
    broken["spec"]["backofLimit"] = 0
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    broken = copy.deepcopy(body)
    broken["spec"]["template"]["spec"]["containers"][0]["command"] = "python train.py"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    jobset = build(request(nodes=2, gpus=16, gpu_ids=list(range(16))), config(), None).body
    jobset["spec"]["replicatedJobs"][0]["replica"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_jobset(jobset)


def test_image_job_runs_its_own_entrypoint_and_a_cpu_job_asks_no_gpus() -> None:
    made = build(request(command="", image="nvcr.io/nvidia/pytorch:24.05", gpus=0, gpus_per_node=0), config(), None)
    (container,) = made.body["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "nvcr.io/nvidia/pytorch:24.05"
    assert "command" not in container and "resources" not in container
    validate_job(made.body)


def test_command_job_without_any_image_is_a_clear_error() -> None:
    with pytest.raises(ManifestError, match=r"j-000123: .*no image.*executor 'k8s-west'.*image:"):
        build(request(), config(image=None), None)
    with pytest.raises(ManifestError, match="neither a command nor an image"):
        build(request(command=""), config(), None)


def test_other_gpu_resource_names_are_asked_as_given() -> None:
    made = build(request(gpus=4, gpus_per_node=4), config(gpu_resource="amd.com/gpu"), None)
    assert made.body["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"amd.com/gpu": "4"}}
    validate_job(made.body)


IDS = st.from_regex(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")


@given(IDS, st.integers(min_value=0, max_value=10**6), st.text(max_size=12), st.booleans())
def test_every_job_id_makes_a_valid_unique_name(job_id: str, attempt: int, installation: str, gang: bool) -> None:
    limit = MAX_JOBSET_NAME if gang else 63
    name = object_name(installation or None, job_id, attempt, limit)
    assert re.match(DNS_1035, name) and len(name) <= limit
    assert name.endswith(f"-a{attempt}")
    other = job_id + "x" if len(job_id) < 63 else job_id[:-1]
    assert object_name(installation or None, other, attempt, limit) != name


@given(IDS, st.dictionaries(st.from_regex(r"^[A-Z_][A-Z0-9_]{0,20}\Z"), st.text(max_size=40), max_size=5))
def test_every_manifest_validates(job_id: str, environment: dict[str, str]) -> None:
    made = build(request(job_id=job_id, environment=environment), config(queue="q"), "inst-1234")
    validate_job(made.body)
    env = {e["name"]: e["value"] for e in made.body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["STARGATE_JOB_ID"] == job_id and env["STARGATE_ATTEMPT"] == "2"
    assert made.body["metadata"]["annotations"][LABEL_JOB] == job_id
