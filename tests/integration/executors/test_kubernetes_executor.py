"""The Kubernetes executor against recorded exchanges in the API server's wire format.

No cluster runs here. The official client's HTTP layer is replaced by :class:`Replay`: the ``ApiClient``'s
``rest_client.pool_manager`` becomes an object speaking urllib3's ``request(method, url, ...)`` that checks each
request against the next recorded one (method, path, query, and the JSON body when one is recorded, compared whole)
and answers with the recorded status, headers and body as a real ``urllib3.HTTPResponse``. Everything above it (the
client's serialisation, its error handling, our executor) runs as it would against a cluster. The recordings, in
``k8s_recorded/``, were written from the Kubernetes API reference (1.31) and the JobSet v1alpha2 reference; every
Kubernetes object in them is checked against Kubernetes 1.31's schemas here.
"""

import importlib.resources
import io
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
import pytest
import urllib3

from stargate.domain.executors import KubernetesExecutorConfig
from stargate.executors.base import ChecksHealth, Executor, RunHandle, RunRequest, RunState
from stargate.executors.k8s_manifests import KUEUE_QUEUE_LABEL, build
from stargate.executors.kubernetes import (
    KubernetesExecutor,
    KubernetesExecutorError,
    KubernetesUnreachable,
    api_client,
)

RECORDED = Path(__file__).with_name("k8s_recorded")
INSTALLATION = "0f3a9c2e-77aa-4b1e-9d1c-5e2f7a8b9c0d"
NAME = "sg-0f3a9c2e-j-000123-a2"
GANG_NAME = "sg-0f3a9c2e-j-000124-a1"
TOKEN = "recorded-token"


class Replay:
    """urllib3's ``PoolManager.request`` answering from recorded exchanges, in order."""

    def __init__(self, *files: str) -> None:
        self.pending: list[dict[str, Any]] = []
        for name in files:
            self.pending += json.loads((RECORDED / name).read_text())["exchanges"]
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, body: Any = None, **kw: Any) -> urllib3.HTTPResponse:
        parts = urlsplit(url)
        sent = {"method": method, "path": parts.path, "query": parse_qs(parts.query), "timeout": kw.get("timeout")}
        sent["headers"] = kw.get("headers") or {}
        sent["body"] = json.loads(body) if body else None
        self.sent.append(sent)
        assert self.pending, f"unexpected request {method} {url}"
        recorded = self.pending.pop(0)
        want = recorded["request"]
        assert (method, parts.path, sent["query"]) == (want["method"], want["path"], want["query"])
        if "body" in want:
            assert sent["body"] == want["body"]
        assert sent["timeout"] is not None, "every call has a timeout"
        assert sent["headers"].get("authorization") == f"Bearer {TOKEN}"
        answer = recorded["response"]
        data = answer["body"] if isinstance(answer["body"], str) else json.dumps(answer["body"])
        return urllib3.HTTPResponse(
            body=io.BytesIO(data.encode()),
            status=answer["status"],
            headers=answer["headers"],
            reason={200: "OK", 201: "Created", 403: "Forbidden", 404: "Not Found", 409: "Conflict"}.get(
                answer["status"], "Unprocessable Entity"
            ),
            preload_content=False,
        )

    def done(self) -> None:
        assert not self.pending, f"{len(self.pending)} recorded exchanges were not asked for"


def config(**given: Any) -> KubernetesExecutorConfig:
    fields: dict[str, Any] = {
        "id": "k8s-west",
        "kind": "kubernetes",
        "address": "https://k8s.example.com:6443",
        "token_env": "K8S_TOKEN",
        "namespace": "ml",
        "image": "ghcr.io/org/trainer:1.0",
    }
    return KubernetesExecutorConfig(**{**fields, **given})


def request(**given: Any) -> RunRequest:
    fields: dict[str, Any] = {
        "job_id": "j-000123",
        "attempt": 2,
        "command": "python train.py --epochs 3",
        "cluster": "west-h100",
        "gpu_ids": list(range(8)),
        "environment": {"WANDB_PROJECT": "llm"},
        "team": "team-a",
        "gpus": 8,
        "nodes": 1,
        "gpus_per_node": 8,
    }
    return RunRequest(**{**fields, **given})


GANG = request(job_id="j-000124", attempt=1, command="torchrun train.py", environment={}, gpus=16, nodes=2)


@pytest.fixture
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KubernetesExecutor:
    monkeypatch.setenv("K8S_TOKEN", TOKEN)

    class Settings:
        home = tmp_path
        installation_id = INSTALLATION

    return KubernetesExecutor.from_config(config(), Settings())


def replay(executor: KubernetesExecutor, *files: str) -> Replay:
    fake = Replay(*files)
    executor.api.rest_client.pool_manager = fake
    return fake


def handle(name: str = NAME, resource: str = "jobs") -> RunHandle:
    return RunHandle("kubernetes", f"{resource}/ml/{name}")


def test_it_is_an_executor_with_health_and_declared_capabilities(executor: KubernetesExecutor) -> None:
    assert isinstance(executor, Executor) and isinstance(executor, ChecksHealth)
    caps = executor.capabilities
    assert (caps.images, caps.multinode, caps.reattach, caps.logs, caps.on_server_host) == (
        True,
        True,
        True,
        True,
        False,
    )


def test_submit_creates_exactly_the_manifest(executor: KubernetesExecutor) -> None:
    fake = replay(executor, "submit_job.json")
    assert executor.submit(request()) == handle()
    fake.done()
    (sent,) = fake.sent
    assert sent["body"] == build(request(), config(), INSTALLATION).body
    assert sent["query"] == {"fieldValidation": ["Strict"]}
    assert sent["headers"]["Content-Type"] == "application/json"
    assert KUEUE_QUEUE_LABEL not in sent["body"]["metadata"]["labels"]


def test_submit_of_an_existing_attempt_returns_the_same_handle(executor: KubernetesExecutor) -> None:
    fake = replay(executor, "submit_job.json", "submit_conflict.json")
    first = executor.submit(request())
    assert executor.submit(request()) == first
    fake.done()


def test_a_refused_manifest_fails_the_run_at_once(executor: KubernetesExecutor) -> None:
    fake = replay(executor, "submit_invalid.json")
    refused = executor.submit(request())
    fake.done()
    status = executor.poll(refused)
    assert status.state is RunState.FAILED and status.reason.startswith("cannot start")
    assert "must be an integer" in status.reason
    executor.cancel(refused)
    assert executor.logs(refused) == ("", 0)
    assert not fake.sent[1:]


def test_gang_with_queue_is_a_suspended_kueue_labelled_jobset(executor: KubernetesExecutor) -> None:
    executor.config = config(queue="team-a")
    fake = replay(executor, "submit_jobset_queue.json")
    assert executor.submit(GANG) == handle(GANG_NAME, "jobsets")
    fake.done()
    body = fake.sent[0]["body"]
    assert body == build(GANG, config(queue="team-a"), INSTALLATION).body
    assert body["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a" and body["spec"]["suspend"] is True
    assert fake.sent[0]["path"] == "/apis/jobset.x-k8s.io/v1alpha2/namespaces/ml/jobsets"


@pytest.mark.parametrize(
    ("recording", "state", "exit_code", "reason"),
    [
        ("poll_complete.json", RunState.SUCCEEDED, 0, ""),
        ("poll_failed.json", RunState.FAILED, 3, "BackoffLimitExceeded: Job has reached the specified backoff limit"),
        ("poll_active.json", RunState.RUNNING, None, ""),
        ("poll_suspended.json", RunState.RUNNING, None, ""),
        ("poll_missing.json", RunState.INTERRUPTED, None, f"the Job ml/{NAME} no longer exists"),
    ],
)
def test_poll_reads_the_job_conditions(
    executor: KubernetesExecutor, recording: str, state: RunState, exit_code: int | None, reason: str
) -> None:
    fake = replay(executor, recording)
    status = executor.poll(handle())
    fake.done()
    assert (status.state, status.exit_code, status.reason) == (state, exit_code, reason)


def test_poll_reads_the_jobset_conditions(executor: KubernetesExecutor) -> None:
    fake = replay(executor, "poll_jobset_completed.json", "poll_jobset_failed.json")
    assert executor.poll(handle(GANG_NAME, "jobsets")).state is RunState.SUCCEEDED
    failed = executor.poll(handle(GANG_NAME, "jobsets"))
    fake.done()
    assert (failed.state, failed.exit_code) == (RunState.FAILED, 137)
    assert failed.reason == "FailedJobs: jobset failed due to one or more job failures"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_api_server_raises_and_is_never_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_TOKEN", TOKEN)
    address = f"http://127.0.0.1:{closed_port()}"
    api = api_client(config(address=address))
    down = KubernetesExecutor(config(address=address), api, tmp_path, INSTALLATION)
    with pytest.raises(KubernetesUnreachable, match=r"127\.0\.0\.1.*unreachable"):
        down.poll(handle())
    with pytest.raises(KubernetesUnreachable):
        down.submit(request())
    health = down.health()
    assert not health.reachable and health.down() and "unreachable" in health.reason


def test_cancel_deletes_in_the_background_and_is_idempotent(executor: KubernetesExecutor) -> None:
    fake = replay(executor, "cancel.json")
    executor.cancel(handle())
    executor.cancel(handle())
    status = executor.poll(handle())
    fake.done()
    assert [s["query"] for s in fake.sent[:2]] == [{"propagationPolicy": ["Background"]}] * 2
    assert status.state is RunState.CANCELLED


def test_logs_page_by_byte_offset(executor: KubernetesExecutor) -> None:
    fake = replay(executor, "logs.json")
    text, offset = executor.logs(handle())
    assert text == "epoch 1 loss 2.31\népoque 2 ✓ loss 1.97\n"
    assert offset == len(text.encode())
    rest, end = executor.logs(handle(), 18)
    fake.done()
    assert rest == "époque 2 ✓ loss 1.97\n" and end == offset
    assert fake.sent[0]["query"] == {"labelSelector": [f"batch.kubernetes.io/job-name={NAME}"]}


def test_find_never_starts_and_a_withdrawn_attempt_never_starts_later(executor: KubernetesExecutor) -> None:
    fake = replay(executor, "find.json")
    assert executor.find("j-000123", 2) == handle()
    assert executor.find("j-000123", 3) is None
    fake.done()
    assert all(s["method"] == "GET" for s in fake.sent)
    with pytest.raises(KubernetesExecutorError, match="withdrawn"):
        executor.submit(request(attempt=3))
    assert len(fake.sent) == 5  # refused before any request


def test_health_counts_not_ready_nodes(executor: KubernetesExecutor) -> None:
    fake = replay(executor, "health_ready.json", "health_nodes_forbidden.json")
    found = executor.health()
    assert (found.reachable, found.nodes, found.failed_nodes) == (True, 3, 1)
    assert found.degraded() and found.reason == "1 of 3 nodes not Ready: gpu-node-02"
    limited = executor.health()
    fake.done()
    assert (limited.reachable, limited.nodes, limited.down(), limited.degraded()) == (True, None, False, False)
    assert all(s["timeout"].total is not None and s["timeout"].total <= 5.0 for s in fake.sent)


def test_a_missing_token_variable_is_named_at_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("K8S_TOKEN", raising=False)
    with pytest.raises(KubernetesExecutorError, match=r"executor 'k8s-west': environment variable K8S_TOKEN"):
        api_client(config())


def test_no_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "kubeconfig"
    with pytest.raises(KubernetesExecutorError, match=rf"no usable kubeconfig at {missing}.*address:"):
        api_client(config(address=None, token_env=None, kubeconfig=str(missing)))


def test_a_command_job_with_no_image_anywhere_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_TOKEN", TOKEN)
    bare = KubernetesExecutor(config(image=None), api_client(config(image=None)), tmp_path, INSTALLATION)
    fake = replay(bare, "submit_job.json")
    with pytest.raises(KubernetesExecutorError, match="no image to run commands in"):
        bare.submit(request())
    assert not fake.sent


def objects(value: Any) -> list[dict[str, Any]]:
    """Every Kubernetes object (with apiVersion and kind) in a recorded body, outermost first."""
    found = []
    if isinstance(value, dict):
        if "apiVersion" in value and "kind" in value:
            found.append(value)
        for item in value.get("items", []):
            found += objects({"apiVersion": value["apiVersion"], "kind": value["kind"][: -len("List")], **item})
    return found


@pytest.mark.parametrize("recording", sorted(p.name for p in RECORDED.glob("*.json")))
def test_recordings_are_valid_kubernetes_objects(recording: str) -> None:
    """Every Job, Pod, Node, Status and list in the recordings passes Kubernetes 1.31's schemas (strict: no field
    Kubernetes does not have); JobSets are checked in the manifest tests."""
    for exchange in json.loads((RECORDED / recording).read_text())["exchanges"]:
        for body in (exchange["request"].get("body"), exchange["response"]["body"]):
            for obj in objects(body):
                if obj["apiVersion"].startswith("jobset."):
                    continue
                if obj["kind"] == "Status":  # no schema file of its own: its definition, strict
                    jsonschema.Draft202012Validator(status_schema()).validate(obj)
                    continue
                assert kubernetes_validate.validate(obj, "1.31", strict=True) == "1.31"


def status_schema() -> dict[str, Any]:
    """meta/v1 Status from kubernetes-validate's strict 1.31 definitions."""
    schemas = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / "v1.31.0-local-strict"
    definitions = json.loads((schemas / "_definitions.json").read_text())
    return {**definitions, "$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.Status"}


def test_a_kubeconfig_gives_the_address_and_credentials(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: west\n"
        "clusters: [{name: west, cluster: {server: 'https://k8s.example.com:6443', insecure-skip-tls-verify: true}}]\n"
        f"users: [{{name: sg, user: {{token: {TOKEN}}}}}]\n"
        "contexts: [{name: west, context: {cluster: west, user: sg, namespace: ml}}]\n"
    )
    api = api_client(config(address=None, token_env=None, kubeconfig=str(kubeconfig)))
    built = KubernetesExecutor(config(address=None, token_env=None), api, tmp_path, INSTALLATION)
    assert api.configuration.host == "https://k8s.example.com:6443"
    fake = replay(built, "poll_active.json")
    assert built.poll(handle()).state is RunState.RUNNING
    fake.done()
