"""A Ray job's log is always text, against a real Ray head on loopback (so its commands run sandboxed).

The UTF-8 relay Stargate runs each command under keeps the log live, the command's exit code, its stop (what it
writes on SIGTERM is kept) and its sandbox (the relay runs outside, unseen). A log Ray stored before, which Ray cannot
serve, and a log pruned with its run are both 410s that ``stargate logs`` reports at once, in plain words.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from engines.ray_head import RayHead, ray_head_fixture
from engines.runs import ray_executor_on, wait_final
from integration.server.services_support import live
from integration.server.stargate_harness import Harness
from stargate.cli import app as cli
from stargate.executors import RunRequest, RunState
from stargate.executors.ray_jobs import RayExecutor
from stargate.server.context import ExecutorRegistry
from stargate.store.models import RunRow, parse_job_id

pytestmark = pytest.mark.slow

head = ray_head_fixture(gpus=0)
TOKEN_ENV = "SG_TEST_RAY_LOG_TOKEN"


@pytest.fixture
def ray(head: RayHead, tmp_path: Path) -> Iterator[RayExecutor]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)  # a state directory there is to hide
    with ray_executor_on(head, home, "ray-x", TOKEN_ENV) as executor:
        assert executor.sandbox is not None  # a head on this machine: its commands run in the sandbox
        yield executor


def until(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)


def test_the_relay_keeps_the_log_live_the_exit_code_the_stop_and_the_sandbox(ray: RayExecutor) -> None:
    looks = (
        "echo relay=${STARGATE_UTF8_RELAY-unseen} pythons=$(for p in /proc/[0-9]*; do readlink $p/exe; done "
        "| grep -c python)"
    )
    going = ray.submit(
        RunRequest(
            "j-000001",
            1,
            f"{looks}; printf 'caf\\351 live\\n'; trap 'printf \"stopping \\377\\n\"; exit 9' TERM; "
            "i=0; while [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done",  # 2 min at most, should a test fail
            "ray-a",
            [],
            {},
        )
    )
    try:
        failing = ray.submit(RunRequest("j-000002", 1, "printf 'bad \\377\\n'; exit 7", "ray-a", [], {}))
        until(lambda: "caf\ufffd live" in ray.logs(going)[0], timeout_s=60.0)  # readable while it runs
        assert ray.poll(going).state is RunState.RUNNING
    finally:
        ray.cancel(going)
    assert wait_final(ray, going, timeout_s=60.0).state is RunState.CANCELLED
    log = ray.logs(going)[0]
    assert "relay=unseen pythons=0" in log, log  # the relay is outside the sandbox, and gives the command nothing
    until(lambda: "stopping \ufffd" in ray.logs(going)[0])  # written on SIGTERM, after Ray marked it stopped
    done = wait_final(ray, failing, timeout_s=60.0)
    assert (done.state, done.exit_code) == (RunState.FAILED, 7)
    assert "bad \ufffd" in ray.logs(failing)[0]


def test_a_log_ray_cannot_serve_and_a_pruned_one_are_410s_that_stargate_logs_reports_at_once(
    ray: RayExecutor, head: RayHead, make_harness: Callable[[str], Harness], sqlite_url: str
) -> None:
    old = f"sg-{uuid.uuid4().hex[:8]}-j-000001-a0"  # a run an older Stargate started: its command, as it is
    submitted = httpx.post(
        f"{head.address}/api/jobs/",
        json={"entrypoint": "printf 'caf\\351\\n'", "submission_id": old, "entrypoint_num_cpus": 0},
        headers={"Authorization": f"Bearer {head.token}"},
    )
    assert submitted.status_code == 200, submitted.text
    h = make_harness(sqlite_url)
    h.ctx.executors = ExecutorRegistry(h.ctx.settings, {"ray-x": ray})
    jobs = []
    for key in (old, f"sg-{uuid.uuid4().hex[:8]}-j-000002-a0"):  # the second: a run Ray keeps nothing of
        job = str(h.submit(command="true")["id"])
        assert h.client.post(f"/api/v1/jobs/{job}/cancel", headers=h.headers()).status_code == 200
        row = parse_job_id(job)
        assert row is not None
        with h.ctx.db.write() as session:
            now = datetime.now(UTC)
            session.add(RunRow(job_id=row, attempt=0, executor="ray-x", cluster="lab-h100", handle_key=key,
                               created_at=now, ended=True, ended_at=now))  # fmt: skip
        jobs.append(job)
    until(lambda: httpx.get(f"{head.address}/api/jobs/{old}/logs", headers={"Authorization": f"Bearer {head.token}"})
          .status_code == 500)  # fmt: skip
    declared = h.client.get("/openapi.json").json()["paths"]["/api/v1/jobs/{job_id}/logs"]["get"]["responses"]
    assert {"410", "503"} <= set(declared)
    with live(h, scheduler=False) as server:
        env = {"STARGATE_URL": server.url, "STARGATE_TOKEN": h.admin_token}
        began = time.monotonic()
        unreadable = CliRunner().invoke(cli, ["logs", jobs[0]], env=env)
        pruned = CliRunner().invoke(cli, ["logs", jobs[1]], env=env)
        took = time.monotonic() - began
    assert unreadable.exit_code == pruned.exit_code == 1, (unreadable.output, pruned.output)
    assert unreadable.output.startswith(
        f"error: 410 gone: the log of job {jobs[0]} cannot be read: executor 'ray-x': Ray at {head.address} cannot "
        f"serve the log of its job {old}: the log holds bytes that are not UTF-8 text"
    ), unreadable.output
    assert pruned.output.startswith(f"error: 410 gone: the log of job {jobs[1]} is no longer kept by executor 'ray-x'")
    assert "warning" not in unreadable.output + pruned.output and took < 10, (took, unreadable.output)
