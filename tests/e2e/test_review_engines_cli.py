"""Review of the fleet file's executors through the CLI and a real server: defects pinned as strict xfails.

A passing test here means the defect was fixed: remove its xfail mark.
"""

import os
import time
from pathlib import Path

import pytest
from e2e_support import ServerFactory, child_environment, run_cli

FLEET = """
name: review
providers:
  - {{id: here, name: This machine, kind: owned, executor: local}}
  - {{id: rayco, name: Ray cloud, kind: cloud, executor: ray-east}}
sites:
  - {{id: lab, provider: here, region: test}}
  - {{id: ray-1, provider: rayco, region: test}}
clusters:
  - {{id: lab-a, site: lab, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 1.0}}
  - {{id: ray-a, site: ray-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 3.0}}
teams:
  - {{id: alpha, name: Alpha}}
queues:
  - {{id: alpha-q, team: alpha, quotas: [{{gpu_model: "*", gpus: 16}}]}}
executors:
  - id: ray-east
    kind: ray
    address: {address}
    token_env: {token_env}
"""
MISSING = "SG_REVIEW_TOKEN_NEVER_SET"


def write_fleet(tmp_path: Path, address: str = "http://127.0.0.1:9", token_env: str = MISSING) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(address=address, token_env=token_env))
    return path


def validate(path: Path) -> tuple[int, str]:
    done = run_cli(["fleet", "validate", str(path)], child_environment({}))
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("secret", ["f14aa51726d992dab1b09f9d8779de6f", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"])
def test_fleet_validate_refuses_a_token_pasted_into_token_env_without_echoing_it(tmp_path: Path, secret: str) -> None:
    code, out = validate(write_fleet(tmp_path, token_env=secret))
    assert code != 0, out
    assert "token_env" in out and secret not in out


def test_fleet_validate_refuses_credentials_in_a_ray_address(tmp_path: Path) -> None:
    code, out = validate(write_fleet(tmp_path, address="http://admin:hunter2secret@ray-head:8265", token_env="RAY_T"))
    assert code != 0, out
    assert "executors[0].address" in out and "hunter2secret" not in out


def test_a_missing_ray_token_does_not_stop_jobs_on_the_other_clusters(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    assert MISSING not in os.environ
    server = make_server(fleet=write_fleet(tmp_path), interval_s=0.1).start()
    with server.client() as http:
        answer = http.post(
            "/api/v1/jobs",
            json={"name": "local", "queue": "alpha-q", "gpus": 1, "command": "true", "allowed_providers": ["here"]},
        )
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        deadline = time.monotonic() + 20
        job = http.get(f"/api/v1/jobs/{job_id}").json()
        while job["status"] != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.2)
            job = http.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
