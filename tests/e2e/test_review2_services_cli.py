"""A second reviewer's attacks on inference services run as a user would (a real ``stargate up``, the CLI in
subprocesses): a first request to a service scaled to zero, and the simulator's sizing of a service whose first GPU
model is not where its replicas run. Each test marked xfail(strict) shows a defect while it is there."""

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from e2e_support import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "examples" / "services" / "local.yaml"
TINY_FLEET = ROOT / "tests" / "integration" / "server" / "fleet" / "tiny.yaml"


def _spec(**changes: Any) -> dict[str, Any]:
    """The example service on the tiny fleet (queue alpha-q), as 'chat', with ``changes`` (autoscaling merged)."""
    spec: dict[str, Any] = yaml.safe_load(LOCAL.read_text())
    spec.update(name="chat", queue="alpha-q")
    spec.pop("priority_class")
    spec["autoscaling"].update(changes.pop("autoscaling", {}))
    spec.update(changes)
    return spec


def test_the_first_request_to_a_service_at_zero_waits_for_its_replica(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = ServerProcess(home=home, fleet=TINY_FLEET).start()
    try:
        spec = _spec(min_replicas=0, cold_start_s=0, autoscaling={"upscale_delay_s": 12})
        spec["command"] = spec["command"].replace("--cold-start-s 2", "--cold-start-s 0")
        with server.client() as http:
            assert http.post("/api/v1/services", json=spec).status_code == 201
            started = time.monotonic()
            answer = http.post("/services/chat/v1/completions", json={"prompt_tokens": 10, "max_tokens": 3}, timeout=60)
            waited = time.monotonic() - started
            ready_at = None
            while time.monotonic() - started < 25 and ready_at is None:
                if http.get("/api/v1/services/chat").json()["ready_replicas"]:
                    ready_at = time.monotonic() - started
                time.sleep(0.2)
            http.delete("/api/v1/services/chat")
            time.sleep(2)
    finally:
        server.stop()
    assert ready_at is not None  # the autoscaler does bring a replica
    assert answer.status_code == 200, (
        f"{answer.status_code} after {waited:.1f} s: {answer.text}; "
        f"a replica was ready {ready_at:.1f} s after the request"
    )


def _trace(path: Path) -> Path:
    """60 s at 3 requests/s of 200 prompt and 50 output tokens (Azure format)."""
    start = datetime(2023, 11, 16, 18, 0, 0)
    stamps = [start + timedelta(seconds=i / 3) for i in range(180)]
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"] + [f"{t:%Y-%m-%d %H:%M:%S.%f},200,50" for t in stamps]
    path.write_text("\n".join(rows) + "\n")
    return path


def _simulated_events(tmp_path: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    path = tmp_path / "service.yaml"
    path.write_text(yaml.safe_dump(spec))
    args = ["--fleet", str(TINY_FLEET), "--services", str(path), "--requests", str(_trace(tmp_path / "t.csv"))]
    cmd = [sys.executable, "-m", "stargate", "simulate", *args, "--requests-format", "azure-llm", "--json"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    events: list[dict[str, Any]] = json.loads(done.stdout)["services"][0]["scale_events_detail"]
    return events


def test_the_simulator_sizes_replicas_by_the_gpu_model_they_run_on(tmp_path: Path) -> None:
    h100 = _spec()["profiles"][0]
    slow = dict(h100, gpu_model="A100-SXM4-80GB", prefill_tokens_per_s=500, decode_tokens_per_s=50)
    # the tiny fleet has no A100: every replica runs on H100-SXM, in both specs
    both = _spec(gpu_models=["A100-SXM4-80GB", "H100-SXM"], profiles=[slow, h100])
    only_h100 = [(e["from"], e["to"], e["reason"]) for e in _simulated_events(tmp_path, _spec())]
    listed_both = [(e["from"], e["to"], e["reason"]) for e in _simulated_events(tmp_path, both)]
    assert listed_both == only_h100
