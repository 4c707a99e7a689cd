"""A reviewer's attacks on inference services through the CLI, run as a user would (subprocesses): the simulator's
scale-down against the server's, a health path that climbs out of the root, and the server's log at its default
level while a service runs. Each test marked xfail(strict) shows a defect while it is there."""

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from e2e_support import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "examples" / "stargate-2025"
LOCAL = ROOT / "examples" / "services" / "local.yaml"
TINY_FLEET = ROOT / "tests" / "integration" / "server" / "fleet" / "tiny.yaml"


def _stargate(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "stargate", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _burst_then_quiet(path: Path) -> Path:
    """60 s at 8 requests/s (200 prompt, 50 output tokens), then one request every 20 s for 300 s (Azure format)."""
    start = datetime(2023, 11, 16, 18, 0, 0)
    stamps = [start + timedelta(seconds=i / 8) for i in range(480)]
    stamps += [start + timedelta(seconds=60 + 20 * k) for k in range(1, 16)]
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"] + [f"{t:%Y-%m-%d %H:%M:%S.%f},200,50" for t in stamps]
    path.write_text("\n".join(rows) + "\n")
    return path


def _local(tmp_path: Path, name: str, **scaling: Any) -> Path:
    spec = yaml.safe_load(LOCAL.read_text())
    spec["name"] = name
    spec["autoscaling"].update(scaling)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _scale_events(tmp_path: Path, downscale_delay_s: int) -> list[tuple[int, int]]:
    service = _local(tmp_path, f"d{downscale_delay_s}", downscale_delay_s=downscale_delay_s)
    trace = _burst_then_quiet(tmp_path / "burst.csv")
    args = ["--fleet", str(FLEET), "--services", str(service), "--requests", str(trace)]
    done = _stargate("simulate", *args, "--requests-format", "azure-llm", "--json")
    assert done.returncode == 0, done.stderr
    events = json.loads(done.stdout)["services"][0]["scale_events_detail"]
    return [(e["from"], e["to"]) for e in events]


def test_the_simulator_scales_down_whenever_the_server_would(tmp_path: Path) -> None:
    for delay in (10, 15):  # a multiple of the tick, and not: the delays hold whatever the tick
        events = _scale_events(tmp_path, delay)
        assert events[0] == (1, 3) and events[-1][1] == 1, (delay, events)  # up for the burst, back down after


def test_a_health_path_that_climbs_out_of_the_root_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    spec = yaml.safe_load(LOCAL.read_text())
    spec["health_path"] = "/../../etc/passwd"
    path = tmp_path / "climb.yaml"
    path.write_text(yaml.safe_dump(spec))
    env_url = "http://127.0.0.1:9"  # nothing listens: a spec that passed the local checks would exit 3
    done = subprocess.run(
        [sys.executable, "-m", "stargate", "serve", str(path), "--retry-for", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "STARGATE_URL": env_url, "STARGATE_TOKEN": "sgt_t-0000000000000000_x"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "health_path" in done.stderr


@pytest.mark.slow
def test_the_server_log_at_info_does_not_carry_a_line_per_health_check(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = ServerProcess(home=home, fleet=TINY_FLEET, log_level="info").start()
    try:
        spec = yaml.safe_load(LOCAL.read_text())
        spec.update(name="chat", queue="alpha-q")
        spec.pop("priority_class")
        headers = {"Authorization": f"Bearer {server.admin_token}"}
        created = httpx.post(f"{server.url}/api/v1/services", json=spec, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            found = httpx.get(f"{server.url}/api/v1/services/chat", headers=headers, timeout=30).json()
            if found["ready_replicas"] == 1:
                break
            time.sleep(0.2)
        assert found["ready_replicas"] == 1, found
        time.sleep(5)
        httpx.delete(f"{server.url}/api/v1/services/chat", headers=headers, timeout=30)
        time.sleep(2)
    finally:
        server.stop()
    log = server.logs[-1].read_text(errors="replace")
    checks = [line for line in log.splitlines() if "httpx: HTTP Request: GET http://127.0.0.1:" in line]
    assert checks == [], f"{len(checks)} lines, e.g. {checks[:1]}"
