"""Submit chooses what a job may run on by the executors of the clusters it may use, as the fleet file declares
them: what each runs (commands, images), this host's argument limits and ``--single-team`` apply to the clusters
whose executor has them."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from integration.server.stargate_harness import TINY_FLEET
from stargate.domain import DEFAULT_EXECUTORS, Fleet, JobSpec, KubernetesExecutorConfig
from stargate.executors import Capabilities, LocalExecutor, capabilities_of
from stargate.fleetfile import load_fleet
from stargate.server.auth import Principal, Role
from stargate.server.errors import InvalidError
from stargate.server.services import jobs as job_service

ADMIN = Principal(token_id="t", name="admin", team=None, role=Role.ADMIN)
IMAGE_ONLY = JobSpec(name="x", queue="alpha-q", gpus=1, image="ubuntu:22.04")
COMMAND_ONLY = JobSpec(name="x", queue="alpha-q", gpus=1, command="true")


def _mixed_fleet(tmp_path: Path, **extra: Any) -> Fleet:
    """The tiny fleet plus a provider ``hpc`` on the slurm executor with one H100 cluster, and a provider ``kube``
    on a declared Kubernetes executor ``k8s`` (no default image: images only) with one H200 cluster; ``extra``
    updates the k8s executor's settings."""
    data = yaml.safe_load(TINY_FLEET.read_text())
    data["executors"] = [{"id": "k8s", "kind": "kubernetes", "namespace": "jobs", **extra}]
    data["providers"].append({"id": "hpc", "name": "HPC centre", "kind": "owned", "executor": "slurm"})
    data["providers"].append({"id": "kube", "name": "Kube cloud", "kind": "cloud", "executor": "k8s"})
    data["sites"].append({"id": "hpc-1", "provider": "hpc", "region": "east"})
    data["sites"].append({"id": "kube-1", "provider": "kube", "region": "west"})
    cluster = {"gpus_per_node": 8, "nodes": 2, "price_per_gpu_hour_usd": 1.0}
    data["clusters"].append({"id": "hpc-h100", "site": "hpc-1", "gpu_model": "H100-SXM", **cluster})
    data["clusters"].append({"id": "kube-h200", "site": "kube-1", "gpu_model": "H200", **cluster})
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_fleet(path)


def _check(spec: JobSpec, rules: job_service.SubmitRules) -> None:
    job_service.check(ADMIN, spec, rules, datetime.now(UTC))


def _only(spec: JobSpec, **update: Any) -> JobSpec:
    return spec.model_copy(update=update)


def test_the_local_executor_runs_commands_only_under_this_hosts_argument_limits(tmp_path: Path) -> None:
    local = capabilities_of(DEFAULT_EXECUTORS["local"])
    assert local.images is False and local.on_server_host is True and local.multinode is False
    assert local.argument_limits is not None and local.argument_limits.string_bytes == 131_071
    built = LocalExecutor(tmp_path / "runs").capabilities  # what an instance declares adds only its isolation
    assert replace(built, team_isolation=False, sandbox=False) == local


@pytest.mark.parametrize("kind", ["ray", "slurm", "kubernetes"])
def test_the_engine_executors_run_off_the_server_without_its_argument_limits(kind: str) -> None:
    found = capabilities_of(DEFAULT_EXECUTORS[kind])
    assert isinstance(found, Capabilities)
    assert found.argument_limits is None and found.on_server_host is False and found.multinode is True
    assert found.images is (kind == "kubernetes")


def test_the_rules_know_each_executor_the_fleet_uses_and_what_it_runs(tmp_path: Path) -> None:
    rules = job_service.SubmitRules.of(_mixed_fleet(tmp_path))
    assert {e: sorted(features) for e, (features, _) in rules.executors.items()} == {
        "k8s": ["images"],
        "local": ["commands"],
        "slurm": ["commands"],
    }
    assert rules.providers == {"lab": "local", "hpc": "slurm", "kube": "k8s"}
    assert rules.usable(COMMAND_ONLY) == ("k8s", "local", "slurm")
    assert rules.usable(_only(COMMAND_ONLY, gpu_models=["H200"])) == ("k8s",)
    assert rules.usable(_only(COMMAND_ONLY, allowed_regions=["east", "local"])) == ("local", "slurm")


def test_an_image_only_job_is_accepted_where_some_cluster_runs_images_and_refused_where_none_does(
    tmp_path: Path,
) -> None:
    rules = job_service.SubmitRules.of(_mixed_fleet(tmp_path))
    _check(IMAGE_ONLY, rules)
    _check(_only(IMAGE_ONLY, allowed_providers=["kube"]), rules)
    _check(_only(IMAGE_ONLY, gpu_models=["H200"]), rules)
    with pytest.raises(InvalidError, match=r"^body\.command: found only an image, expected a shell command: every "):
        _check(_only(IMAGE_ONLY, allowed_providers=["lab", "hpc"]), rules)
    with pytest.raises(InvalidError, match=r"runs on the local or slurm executor, which runs commands, not images$"):
        _check(_only(IMAGE_ONLY, gpu_models=["H100-SXM"]), rules)
    with pytest.raises(InvalidError, match=r"runs on the local executor, which runs commands, not images$"):
        _check(IMAGE_ONLY, job_service.SubmitRules.of(load_fleet(TINY_FLEET)))


def test_a_command_only_job_needs_a_cluster_that_runs_commands(tmp_path: Path) -> None:
    rules = job_service.SubmitRules.of(_mixed_fleet(tmp_path))
    _check(COMMAND_ONLY, rules)
    with pytest.raises(InvalidError, match=r"^body\.image: found nothing, expected a container image: every cluster "):
        _check(_only(COMMAND_ONLY, allowed_providers=["kube"]), rules)
    both = _only(COMMAND_ONLY, image="ubuntu:22.04", allowed_providers=["kube"])
    _check(both, rules)  # a command and an image: it runs in the image
    opened = job_service.SubmitRules.of(_mixed_fleet(tmp_path, image="busybox:1.36"))
    _check(_only(COMMAND_ONLY, allowed_providers=["kube"]), opened)  # the executor's default image runs commands


def test_a_cluster_overriding_its_providers_executor_is_what_counts(tmp_path: Path) -> None:
    fleet = _mixed_fleet(tmp_path)
    clusters = [c.model_copy(update={"executor": "k8s"}) if c.id == "hpc-h100" else c for c in fleet.clusters]
    rules = job_service.SubmitRules.of(fleet.model_copy(update={"clusters": clusters}))
    assert rules.usable(_only(IMAGE_ONLY, allowed_providers=["hpc"])) == ("k8s",)
    _check(_only(IMAGE_ONLY, allowed_providers=["hpc"]), rules)
    with pytest.raises(InvalidError, match=r"^body\.image: found nothing"):
        _check(_only(COMMAND_ONLY, allowed_providers=["hpc"]), rules)


def test_only_jobs_that_may_run_on_the_local_executor_are_held_to_this_hosts_argument_limits(tmp_path: Path) -> None:
    rules = job_service.SubmitRules.of(_mixed_fleet(tmp_path))
    huge = _only(COMMAND_ONLY, command="x" * 200_000)
    _check(_only(huge, allowed_providers=["hpc"]), rules)
    with pytest.raises(InvalidError, match=r"^body\.command: found 200,000 bytes, .*\(the local executor passes"):
        _check(huge, rules)  # any provider: the local one too


def test_single_team_refuses_other_teams_only_where_jobs_run_on_the_servers_machine(tmp_path: Path) -> None:
    rules = replace(job_service.SubmitRules.of(_mixed_fleet(tmp_path)), single_team="alpha")
    beta = JobSpec(name="x", queue="beta-q", gpus=1, command="true")
    _check(_only(beta, allowed_providers=["hpc"]), rules)
    with pytest.raises(InvalidError, match=r"team 'alpha' on the local executor \(stargate up --single-team\)$"):
        _check(beta, rules)
    _check(JobSpec(name="x", queue="alpha-q", gpus=1, command="true"), rules)


def test_a_declared_executor_with_a_default_id_replaces_the_default(tmp_path: Path) -> None:
    fleet = _mixed_fleet(tmp_path)
    local_k8s = KubernetesExecutorConfig(id="kubernetes", kind="kubernetes", image="busybox:1.36")
    providers = [p.model_copy(update={"executor": "kubernetes"}) if p.id == "kube" else p for p in fleet.providers]
    rules = job_service.SubmitRules.of(fleet.model_copy(update={"executors": [local_k8s], "providers": providers}))
    assert rules.executors["kubernetes"][0] == frozenset({"commands", "images"})
    _check(_only(COMMAND_ONLY, allowed_providers=["kube"]), rules)
