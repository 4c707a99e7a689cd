"""The service commands without a server: a bad service file is refused locally with located problems (exit 2,
the server never asked), a bad name likewise, the commands start without the server stack, and a service is
shown with its replicas, scale decisions and traffic in words with units."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import stargate
from stargate.cli import app
from stargate.cli.render_services import render_service, render_services, traffic_text

NOWHERE = {"STARGATE_URL": "http://127.0.0.1:9", "STARGATE_TOKEN": "sgt_t-0123456789abcdef_x", "COLUMNS": "200"}


def test_a_bad_service_file_is_refused_locally_with_located_problems(tmp_path: Path) -> None:
    bad = tmp_path / "svc.yaml"
    bad.write_text("name: chat\nqueue: q\ngpus_per_replica: two\nobjective: {}\nprofiles: []\n")
    result = CliRunner().invoke(app, ["serve", str(bad)], env=NOWHERE)
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert f"error: {bad}:3:1: gpus_per_replica: found 'two'; expected" in result.output, lines
    assert f"error: {bad}:5:1: profiles: found a list; expected a list of replica profiles" in result.output, lines
    missing = CliRunner().invoke(app, ["serve", str(tmp_path / "nope.yaml")], env=NOWHERE)
    assert missing.exit_code == 2 and "no such file" in missing.output


@pytest.mark.parametrize("name", ["Chat", "", "a" * 64, "chat\u202e"])
def test_a_bad_service_name_is_refused_locally(name: str) -> None:
    result = CliRunner().invoke(app, ["service", name], env=NOWHERE)
    assert result.exit_code == 2
    assert "expected a service name (1 to 63 of a-z, 0-9, '.', '_', '-')" in result.output


def test_the_service_commands_start_without_the_server_stack(tmp_path: Path) -> None:
    out = tmp_path / "modules.json"
    code = (
        "import json, sys, typer.main, stargate.cli\n"
        "group = typer.main.get_command(stargate.cli.app)\n"
        "ctx = typer.Context(group)\n"
        "for name in ('serve', 'services', 'service'):\n"
        "    assert group.get_command(ctx, name) is not None, name\n"
        f"json.dump(sorted(sys.modules), open({str(out)!r}, 'w'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(stargate.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    modules = set(json.loads(out.read_text()))
    heavy = {"numpy", "stargate.engine", "stargate.server", "stargate.store", "sqlalchemy", "fastapi", "yaml"}
    assert modules & heavy == set() and "stargate.cli.services" in modules


SERVICE: dict[str, Any] = {
    "name": "chat",
    "team": "product",
    "queue": "product-inference",
    "state": "active",
    "url": "/services/chat/",
    "desired_replicas": 2,
    "ready_replicas": 1,
    "replicas": [
        {"number": 0, "job": "j-000001", "state": "ready", "since": "2026-12-02T10:00:00Z", "port": 21001,
         "job_status": "running", "cluster": "lab-a"},
        {"number": 3, "job": "j-000007", "state": "starting", "since": "2026-12-02T10:01:00Z", "port": 21002,
         "job_status": "running", "cluster": "lab-a"},
    ],
    "decisions": [
        {"at": "2026-12-02T10:00:00Z", "from": 0, "to": 1, "wanted": 1, "reason": "created: min_replicas 1"},
        {"at": "2026-12-02T10:01:00Z", "from": 1, "to": 2, "wanted": 2,
         "reason": "up: 6.20 requests/s forecast × 1.10 s each = 6.8 sequences at 4 per replica and 80% utilization"},
    ],
    "traffic": {"window_s": 10.0, "requests_per_s": 6.2, "in_flight": 5.4, "completed": 60, "failed": 0,
                "ttft_p50_s": 0.012, "ttft_p99_s": 0.25, "e2e_p50_s": 0.64, "e2e_p99_s": 1.9,
                "decision": {"at": "2026-12-02T10:01:00Z", "replicas": 2, "wanted": 2, "reason": "up: ..."}},
    "problem": "",
    "spec": {"gpus_per_replica": 1, "gpu_models": ["H100-SXM"], "min_replicas": 1, "max_replicas": 3,
             "autoscaling": {"policy": "stargate", "window_s": 10.0, "downscale_delay_s": 10.0}},
}  # fmt: skip


def test_a_service_is_shown_with_its_replicas_decisions_and_traffic(capsys: pytest.CaptureFixture[str]) -> None:
    render_service(SERVICE, "http://127.0.0.1:8642/")
    shown = capsys.readouterr().out
    for text in (
        "http://127.0.0.1:8642/services/chat/",
        "1 ready of 2 wanted (1 to 3, 1 GPU each of H100-SXM)",
        "6.20 requests/s, 5.4 in flight over the last 10 s; 60 completed, 0 failed",
        "time to first token p50 12 ms, p99 0.25 s; end-to-end p50 0.64 s, p99 1.90 s",
        "j-000007",
        "1 -> 2",
        "6.8 sequences at 4 per replica",
    ):
        assert text in shown, text
    render_services([SERVICE])
    assert "6.20" in capsys.readouterr().out
    assert traffic_text(None).startswith("not measured yet")
