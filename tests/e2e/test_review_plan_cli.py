"""Review of ``stargate plan`` run as a user runs it: defects found by attacking the CLI, each pinned by a test that
fails while the defect is there (``xfail(strict=True)``)."""

import os
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import pytest

STARGATE = str(Path(sys.executable).parent / "stargate")
ROOT = Path(__file__).parents[2]
SCENARIO = ROOT / "examples" / "stargate-2025" / "plan.yaml"

FLEET = """\
name: review
providers:
  - {id: beta, name: Beta, kind: cloud}
sites:
  - {id: beta-1, provider: beta, region: x}
teams:
  - {id: t, name: T}
queues:
  - {id: q, team: t, quotas: [{gpu_model: "*", gpus: 8}]}
"""


def run(*args: str, cwd: Path = ROOT, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the stargate command; never raises on a non-zero exit."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [STARGATE, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd, env=env
    )


def test_review_report_stays_within_5_mb_for_a_plan_with_many_actions(tmp_path: Path) -> None:
    # Ten options of at most 10 GPUs a month with a 1-month term against 150 GPUs of demand over 240 months: the
    # plan signs every option every month (1,200 actions), a legitimate scenario of the documented format.
    options = "\n".join(
        f"    - {{id: o{i}, provider: beta, gpu_model: GB200, price_per_gpu_hour_usd: {2 + i / 100}, "
        "max_gpus: 10, min_term_months: 1}"
        for i in range(10)
    )
    (tmp_path / "fleet.yaml").write_text(FLEET, encoding="utf-8")
    (tmp_path / "plan.yaml").write_text(
        "name: many\nfleet: fleet.yaml\nstart: 2027-01\nmonths: 240\nunmet_penalty_usd_per_gpu_hour: 100\n"
        "demand:\n  - {id: d, kind: training, gpu_model: GB200, growth: {start_value: 150, monthly_growth: 0}}\n"
        f"market:\n  from_price_book: false\n  options:\n{options}\n",
        encoding="utf-8",
    )
    done = run("plan", "--scenario", "plan.yaml", "--report", "plan.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1200" in done.stdout.replace(",", "") or "(1200)" in done.stdout  # the actions are there
    assert (tmp_path / "plan.html").stat().st_size <= 5_000_000


def test_review_a_grpc_server_that_is_not_ray_fails_fast_with_exit_2() -> None:
    import grpc  # a dependency (pyproject.toml): never skipped

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))  # answers every call UNIMPLEMENTED
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    began = time.monotonic()
    try:
        done = run(
            "plan",
            "--scenario",
            str(SCENARIO),
            "--scenarios",
            "4",
            "--ray-address",
            f"127.0.0.1:{port}",
            "--json",
            timeout=90,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"stargate plan --ray-address 127.0.0.1:{port} still running after 90 s")
    finally:
        server.stop(grace=None)
    assert done.returncode == 2 and "--ray-address" in done.stderr
    assert time.monotonic() - began < 60
    assert done.stdout == ""
