"""Submit chooses what a job may run on by its executors' declared capabilities, not by their names: images,
this host's argument limits and ``--single-team`` apply to the providers whose executor kind has them."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from integration.server.stargate_harness import TINY_FLEET
from stargate.domain import ExecutorKind, Fleet, JobSpec
from stargate.executors import Capabilities, LocalExecutor, UnknownExecutorError, capabilities_of
from stargate.fleetfile import load_fleet
from stargate.server.auth import Principal, Role
from stargate.server.errors import InvalidError
from stargate.server.services import jobs as job_service

ADMIN = Principal(token_id="t", name="admin", team=None, role=Role.ADMIN)
IMAGE_ONLY = JobSpec(name="x", queue="alpha-q", gpus=1, image="ubuntu:22.04")


def _mixed_fleet(tmp_path: Path) -> Fleet:
    """The tiny fleet plus a provider ``hpc`` on the slurm executor, with one cluster."""
    data = yaml.safe_load(TINY_FLEET.read_text())
    data["providers"].append({"id": "hpc", "name": "HPC centre", "kind": "owned", "executor": "slurm"})
    data["sites"].append({"id": "hpc-1", "provider": "hpc", "region": "local"})
    cluster = {"id": "hpc-h100", "site": "hpc-1", "gpu_model": "H100-SXM", "gpus_per_node": 8, "nodes": 2}
    data["clusters"].append({**cluster, "price_per_gpu_hour_usd": 1.0})
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_fleet(path)


def _check(spec: JobSpec, rules: job_service.SubmitRules) -> None:
    job_service.check(ADMIN, spec, rules, datetime.now(UTC))


def test_the_local_executor_runs_commands_only_under_this_hosts_argument_limits(tmp_path: Path) -> None:
    local = capabilities_of("local")
    assert local.images is False and local.on_server_host is True and local.multinode is False
    assert local.argument_limits is not None and local.argument_limits.string_bytes == 131_071
    built = LocalExecutor(tmp_path / "runs").capabilities  # what an instance declares adds only its isolation
    assert replace(built, team_isolation=False, sandbox=False) == local


@pytest.mark.parametrize("kind", ["ray", "slurm", "kubernetes"])
def test_the_planned_executors_run_images_on_several_nodes_off_the_server(kind: str) -> None:
    planned = capabilities_of(kind)
    assert planned.images is True and planned.multinode is True
    assert planned.argument_limits is None and planned.on_server_host is False


def test_every_executor_kind_a_fleet_may_name_has_capabilities_and_no_other_does() -> None:
    for kind in ExecutorKind:
        assert isinstance(capabilities_of(kind.value), Capabilities)
    with pytest.raises(UnknownExecutorError, match=r"^unknown executor kind 'nomad' \(known: kubernetes, local, "):
        capabilities_of("nomad")


def test_an_image_only_job_is_accepted_when_a_slurm_provider_may_run_it(tmp_path: Path) -> None:
    rules = job_service.SubmitRules.of(_mixed_fleet(tmp_path))
    assert rules.executors["hpc"] == ("slurm", capabilities_of("slurm"))
    _check(IMAGE_ONLY, rules)
    _check(IMAGE_ONLY.model_copy(update={"allowed_providers": ["hpc"]}), rules)
    with pytest.raises(InvalidError, match=r"runs on the local executor, which runs commands, not images$"):
        _check(IMAGE_ONLY.model_copy(update={"allowed_providers": ["lab"]}), rules)
    with pytest.raises(InvalidError, match=r"^body\.command: found only an image"):
        _check(IMAGE_ONLY, job_service.SubmitRules.of(load_fleet(TINY_FLEET)))


def test_only_jobs_that_may_run_on_the_local_executor_are_held_to_this_hosts_argument_limits(tmp_path: Path) -> None:
    rules = job_service.SubmitRules.of(_mixed_fleet(tmp_path))
    huge = JobSpec(name="x", queue="alpha-q", gpus=1, command="true").model_copy(update={"command": "x" * 200_000})
    _check(huge.model_copy(update={"allowed_providers": ["hpc"]}), rules)
    with pytest.raises(InvalidError, match=r"^body\.command: found 200,000 bytes, .*\(the local executor passes"):
        _check(huge, rules)  # any provider: the local one too


def test_single_team_refuses_other_teams_only_where_jobs_run_on_the_servers_machine(tmp_path: Path) -> None:
    rules = replace(job_service.SubmitRules.of(_mixed_fleet(tmp_path)), single_team="alpha")
    beta = JobSpec(name="x", queue="beta-q", gpus=1, command="true")
    _check(beta.model_copy(update={"allowed_providers": ["hpc"]}), rules)
    with pytest.raises(InvalidError, match=r"team 'alpha' on the local executor \(stargate up --single-team\)$"):
        _check(beta, rules)
    _check(JobSpec(name="x", queue="alpha-q", gpus=1, command="true"), rules)
