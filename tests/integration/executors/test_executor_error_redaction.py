"""The Ray and Kubernetes executors never put their token in an error, against a real HTTP server on loopback that
echoes the request's ``Authorization`` header back in its error bodies (as a misbehaving engine or proxy may).

The server answers in each engine's wire format: Ray's dashboard a ``text/plain`` Python traceback ending with a line
holding a lone '.', the Kubernetes API server a JSON ``Status`` object. The echoed line puts Ray's token where the
300-character cut of its message would split it, so a token taken out only after the cut would leave part of it.
"""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from stargate.domain.executors import KubernetesExecutorConfig
from stargate.executors.base import RunHandle, RunRecord, RunRequest
from stargate.executors.kubernetes import KubernetesExecutor, KubernetesExecutorError, api_client
from stargate.executors.ray_jobs import RayExecutor, RayExecutorError

TOKEN = "s3cr3t-token-0123456789abcdef0123456789abcdef"
TOKEN_ENV = "SG_TEST_ECHO_TOKEN"


class Echo(BaseHTTPRequestHandler):
    """Answers every request with an error whose body echoes the request's Authorization header."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        echoed = f"Authorization: {self.headers.get('Authorization')}"
        said = "x" * (280 - len("ValueError: ") - len(echoed) + len(TOKEN) - 1)  # Ray's token from character 280
        if self.path.startswith("/api/jobs") or self.path.startswith("/api/version"):  # Ray's dashboard
            status, kind = 500, "text/plain; charset=utf-8"
            body = f'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: {said} {echoed}\n.\n'
        else:  # the Kubernetes API server: 422 to a create (a refused manifest), 500 to anything else
            status = 422 if self.command == "POST" else 500
            kind = "application/json"
            body = json.dumps(
                {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
                 "reason": "Invalid" if status == 422 else "InternalError", "message": f"{said} {echoed}"}
            )  # fmt: skip
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Echo", echoed)  # in the headers too: the Kubernetes client's errors show them
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def clean(text: str) -> str:
    """``text``, asserted to hold no part of the token and to show where it was taken out."""
    assert TOKEN[:6] not in text and TOKEN[-6:] not in text, text
    return text


def test_the_ray_executor_never_shows_its_token_in_errors_or_health(echo: str, tmp_path: Path) -> None:
    ray = RayExecutor(echo, token=TOKEN, withdrawn_dir=tmp_path / "withdrawn", installation="0123abcd")
    handle = RunHandle("ray", "sg-0123abcd-j-000001-a1")
    calls = {
        "submit": lambda: ray.submit(RunRequest("j-000001", 1, "echo hi", "ray-a", [], {})),
        "poll": lambda: ray.poll(handle),
        "logs": lambda: ray.logs(handle),
        "cancel": lambda: ray.cancel(handle),
        "records": ray.records,
    }
    try:
        for name, call in calls.items():
            with pytest.raises(RayExecutorError) as caught:
                call()
            assert "Authorization: <redacted>" in clean(str(caught.value)), name  # the echo reached the message
        pruned = ray.prune([RunRecord("j-000001", 1, "job/sg-0123abcd-j-000001-a1")])
        assert len(pruned.problems) == 1 and "<redacted>" in clean(pruned.problems[0])
        health = ray.health()
        assert not health.reachable and "<redacted>" in clean(health.reason)
    finally:
        ray.close()


def test_the_kubernetes_executor_never_shows_its_token_in_errors_health_or_refusals(
    echo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    config = KubernetesExecutorConfig(id="k8s", kind="kubernetes", address=echo, token_env=TOKEN_ENV, image="busybox")
    k8s = KubernetesExecutor(config, api_client(config), tmp_path, "0123abcd")
    refused = k8s.submit(RunRequest("j-000001", 1, "echo hi", "k8s-a", [], {}))  # 422: a run that cannot start
    assert refused.key.startswith("refused/") and "<redacted>" in clean(refused.key)
    assert "<redacted>" in clean(k8s.poll(refused).reason)
    with pytest.raises(KubernetesExecutorError) as caught:
        k8s.poll(RunHandle("kubernetes", "jobs/default/sg-0123abcd-j-000002-a1"))
    assert "HTTP 500" in clean(str(caught.value)) and "<redacted>" in str(caught.value)
    health = k8s.health()
    assert not health.reachable and "<redacted>" in clean(health.reason)
