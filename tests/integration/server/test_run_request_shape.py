"""What an executor is asked to start: the run's GPU shape (GPUs, nodes, GPUs per node) from the cluster's node size,
and the job's image, name and needs from its spec."""

from hypothesis import given
from hypothesis import strategies as st

from stargate.server.scheduling.execute import request_for
from stargate.server.terms import SpecTerms
from stargate.store.repositories.runs import LiveRun


def _run(gpu_ids: list[int]) -> LiveRun:
    return LiveRun(7, 2, "slurm-east", "hpc", None, gpu_ids, "alpha", 0)


def test_a_gang_over_two_nodes_asks_for_two_nodes_of_eight_gpus() -> None:
    terms = SpecTerms.of({"command": "train", "image": "ghcr.io/x/train:1", "name": "big", "environment": {"A": "1"}})
    request = request_for(_run(list(range(8, 24))), terms, list(range(8, 24)), gpus_per_node=8)
    assert (request.gpus, request.nodes, request.gpus_per_node) == (16, 2, 8)
    assert (request.job_id, request.attempt, request.cluster, request.team) == ("j-000007", 2, "hpc", "alpha")
    assert (request.command, request.image, request.name, dict(request.environment)) == (
        "train",
        "ghcr.io/x/train:1",
        "big",
        {"A": "1"},
    )


def test_a_job_on_one_node_and_an_unknown_node_size() -> None:
    terms = SpecTerms.of({"command": "true"})
    one = request_for(_run([3, 4]), terms, [3, 4], gpus_per_node=8)
    assert (one.gpus, one.nodes, one.gpus_per_node, one.image, one.name) == (2, 1, 2, None, "")
    unknown = request_for(_run([0, 9, 17]), terms, [0, 9, 17])
    assert (unknown.gpus, unknown.nodes, unknown.gpus_per_node) == (3, 1, 3)


def test_what_a_job_needs_of_its_executor_follows_its_command_and_image() -> None:
    assert SpecTerms.of({"command": "true"}).needs == frozenset({"commands"})
    assert SpecTerms.of({"image": "busybox"}).needs == frozenset({"images"})
    assert SpecTerms.of({"command": "true", "image": "busybox"}).needs == frozenset()


@given(st.integers(1, 16), st.sets(st.integers(0, 255), min_size=1, max_size=64))
def test_the_shape_covers_every_gpu(gpn: int, ids: set[int]) -> None:
    request = request_for(_run(sorted(ids)), SpecTerms.of({"command": "true"}), sorted(ids), gpus_per_node=gpn)
    assert request.gpus == len(ids) and request.nodes == len({g // gpn for g in ids})
    assert request.gpus_per_node <= gpn and request.gpus_per_node * request.nodes >= request.gpus
