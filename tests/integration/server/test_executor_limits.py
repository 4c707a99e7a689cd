"""Submit checks a job's command and environment against the OS limits of the local executor that may run it: a
job refused at submit would never have started (shown on a host with a small ARG_MAX: a 256 KiB stack limit)."""

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from integration.server.stargate_harness import TINY_FLEET
from stargate.domain import DEFAULT_EXECUTORS, JobSpec, KubernetesExecutorConfig
from stargate.executors import capabilities_of
from stargate.fleetfile import load_fleet
from stargate.server.auth import Principal, Role
from stargate.server.errors import InvalidError
from stargate.server.services import jobs as job_service

BASE = JobSpec(name="x", queue="alpha-q", gpus=1, command="true")
"""A valid spec; ``model_copy(update=...)`` makes what the spec's own bounds would refuse (no validation)."""
ADMIN = Principal(token_id="t", name="admin", team=None, role=Role.ADMIN)
COMMAND = "echo " + "x" * 60_000  # within the spec's bounds (64 KiB)
ENVIRONMENT = {f"DATA{i}": "y" * 20_000 for i in range(5)}  # 160 kB in all: over the 128 KiB floor

LOCAL_LIMITS = capabilities_of(DEFAULT_EXECUTORS["local"]).argument_limits
assert LOCAL_LIMITS is not None

SMALL_STACK = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_STACK, (256 * 1024, resource.getrlimit(resource.RLIMIT_STACK)[1]))
    from datetime import UTC, datetime
    from stargate.domain import DEFAULT_EXECUTORS, JobSpec
    from stargate.executors import LocalExecutor, RunRequest, capabilities_of
    from stargate.fleetfile import load_fleet
    from stargate.server.auth import Principal, Role
    from stargate.server.errors import InvalidError
    from stargate.server.services import jobs as job_service
    fleet, runs, command, env = load_fleet(Path(sys.argv[1])), Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    spec = JobSpec(name="big", queue="alpha-q", gpus=1, command=command, environment=env)
    who = Principal(token_id="t", name="admin", team=None, role=Role.ADMIN)
    out = {"budget": capabilities_of(DEFAULT_EXECUTORS["local"]).argument_limits.total_bytes}
    try:
        job_service.check(who, spec, job_service.SubmitRules.of(fleet), datetime.now(UTC))
        out["submit"] = "accepted"
    except InvalidError as exc:
        out["submit"] = exc.detail
    executor = LocalExecutor(runs)
    try:  # what the executor would do with it on this host: refuse it, or record that it could not start it
        handle = executor.submit(RunRequest("j-000001", 0, command, "lab-h100", (0,), env, "alpha"))
        deadline = time.monotonic() + 30
        while not (status := executor.poll(handle)).state.is_final() and time.monotonic() < deadline:
            time.sleep(0.05)
        out["start"] = f"{status.state.value}: {status.reason}"
    except Exception as exc:
        out["start"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


def _check(spec: JobSpec) -> None:
    job_service.check(ADMIN, spec, job_service.SubmitRules.of(load_fleet(TINY_FLEET)), datetime.now(UTC))


def test_on_a_host_with_a_small_arg_max_submit_refuses_what_the_executor_could_not_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SMALL_STACK, str(TINY_FLEET), str(tmp_path / "runs"), COMMAND, json.dumps(ENVIRONMENT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["budget"] == 64 * 1024  # half of glibc's ARG_MAX floor (128 KiB) under a 256 KiB stack
    assert out["submit"].startswith("body: found a command and environment of 160,")
    assert out["submit"].endswith(
        f"expected at most {64 * 1024:,} bytes in all (half of this host's ARG_MAX: the "
        "local executor's limit on a command's arguments and environment)"
    )
    assert "Argument list too long" in out["start"]  # the executor indeed could not have started it


def test_on_this_host_the_same_job_is_accepted() -> None:
    assert LOCAL_LIMITS.total_bytes >= 64 * 1024
    if LOCAL_LIMITS.total_bytes > 100_000:
        _check(JobSpec(name="big", queue="alpha-q", gpus=1, command=COMMAND, environment=ENVIRONMENT))


def test_a_single_string_over_linux_max_arg_strlen_is_refused() -> None:
    # The spec's own bounds are tighter today; this is the executor's limit should they ever be raised.
    too_long = BASE.model_copy(update={"command": "x" * 131_072})
    with pytest.raises(InvalidError, match=r"^body\.command: found 131,072 bytes, expected at most 131,071 bytes"):
        _check(too_long)
    env = BASE.model_copy(update={"environment": {"BIG": "v" * 131_068}})
    with pytest.raises(InvalidError, match=r"^body\.environment\.BIG: found 131,072 bytes as KEY=value"):
        _check(env)


def test_a_job_that_may_not_use_the_local_executor_is_not_held_to_its_limits() -> None:
    fleet = load_fleet(TINY_FLEET)
    rules = job_service.SubmitRules.of(fleet)
    k8s = KubernetesExecutorConfig(id="k8s", kind="kubernetes", image="busybox:1.36")  # runs commands in an image
    providers = [p.model_copy(update={"executor": "k8s"}) for p in fleet.providers]
    elsewhere = job_service.SubmitRules.of(fleet.model_copy(update={"executors": [k8s], "providers": providers}))
    assert set(elsewhere.executors) == {"k8s"} and elsewhere.usable(BASE) == ("k8s",)
    huge = BASE.model_copy(update={"command": "x" * 200_000})
    job_service.check(ADMIN, huge, elsewhere, datetime.now(UTC))  # no local provider: nothing to refuse
    with pytest.raises(InvalidError, match=r"^body\.command: found 200,000 bytes.* \(the local executor passes"):
        job_service.check(ADMIN, huge, rules, datetime.now(UTC))  # the same job on the local executor is refused
