"""Executor features decide placement: a job is placed only on clusters whose executor runs what it needs (a command,
a container image), through the driver as the server and the simulator use it; a job no cluster could ever run is
rejected as ``no_allowed_cluster``."""

from dataclasses import replace

from engine_builders import EPOCH, FleetBuilder, make_job, scheduler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stargate.domain import Fleet, KubernetesExecutorConfig, job_needs
from stargate.engine import Driver, FleetIndex, JobTerms, get_policy

COMMANDS, IMAGES = frozenset({"commands"}), frozenset({"images"})


def _fleet(k8s_image: str | None = None) -> Fleet:
    """Cluster 'proc' on the local executor (commands), 'pods' on a Kubernetes executor (images; commands too with
    a default image), 'batch' on the default Slurm executor (commands) by its own override."""
    fleet = (
        FleetBuilder()
        .owned("lab")
        .cluster("proc", nodes=1, price=1.0)
        .cloud("kube")
        .cluster("pods", nodes=1, price=2.0)
        .cluster("batch", nodes=1, price=3.0, executor="slurm")
        .build()
    )
    k8s = KubernetesExecutorConfig(id="k8s", kind="kubernetes", image=k8s_image)
    providers = [p if p.id != "kube" else p.model_copy(update={"executor": "k8s"}) for p in fleet.providers]
    return fleet.model_copy(update={"executors": [k8s], "providers": providers})


def test_the_fleet_knows_each_clusters_executor_and_the_index_its_features() -> None:
    fleet = _fleet()
    assert fleet.cluster_executor_ids() == {"proc": "local", "pods": "k8s", "batch": "slurm"}
    assert {c: e.kind for c, e in fleet.cluster_executors().items()} == {
        "proc": "local",
        "pods": "kubernetes",
        "batch": "slurm",
    }
    index = FleetIndex.from_fleet(fleet, EPOCH)
    assert index.features_of == [COMMANDS, IMAGES, COMMANDS]
    assert index.compatible((), (), (), IMAGES).tolist() == [False, True, False]
    assert index.compatible((), (), (), frozenset()).tolist() == [True, True, True]


def test_an_image_job_goes_to_the_kubernetes_cluster_even_when_a_cheaper_one_is_free() -> None:
    s = scheduler(_fleet(), "fifo")
    s.submit(replace(make_job("img").gpus(8).runs(10).build(), needs=IMAGES))
    s.submit(replace(make_job("cmd").gpus(8).runs(10).build(), needs=COMMANDS))
    s.submit(replace(make_job("any").gpus(8).runs(10).build(), needs=frozenset()))
    placed = {x.job_id: x.cluster_id for x in s.cycle(0.0).starts}
    assert placed["img"] == "pods"
    assert placed["cmd"] in {"proc", "batch"} and placed["any"] in {"proc", "batch"}


def test_a_job_no_executor_could_run_is_rejected_and_a_default_image_opens_kubernetes_to_commands() -> None:
    s = scheduler(_fleet(), "fifo")
    s.submit(make_job("cmd").gpus(8).only(providers=("kube",)).runs(10).build())  # needs nothing: any cluster
    s.submit(replace(make_job("cmd-k").gpus(8).only(providers=("kube",)).runs(10).build(), needs=COMMANDS))
    s.submit(replace(make_job("img-lab").gpus(8).only(providers=("lab",)).runs(10).build(), needs=IMAGES))
    res = s.cycle(0.0)
    assert sorted((r.job_id, r.reason) for r in res.rejections) == [("img-lab", "no_allowed_cluster")]
    assert {x.job_id: x.cluster_id for x in res.starts} == {"cmd": "pods", "cmd-k": "batch"}
    opened = scheduler(_fleet(k8s_image="busybox:1.36"), "fifo")
    opened.submit(replace(make_job("cmd").gpus(8).only(providers=("kube",)).runs(10).build(), needs=COMMANDS))
    opened.submit(replace(make_job("cmd2").gpus(8).only(providers=("kube",)).runs(10).build(), needs=COMMANDS))
    assert {x.cluster_id for x in opened.cycle(0.0).starts} == {"pods", "batch"}


def test_the_driver_carries_a_jobs_needs_from_its_terms() -> None:
    fleet = _fleet()
    driver = Driver(fleet, get_policy("fifo"), EPOCH)
    needs = job_needs(None, "ubuntu:24.04")
    driver.submit(JobTerms(id="img", queue="q", gpus=8, submit_s=0.0, estimate_s=10.0, needs=needs))
    driver.submit(JobTerms(id="lab-img", queue="q", gpus=8, submit_s=0.0, allowed_providers=("lab",), needs=needs))
    decided = driver.decide(0.0)
    assert [(x.job_id, x.cluster_id) for x in decided.starts] == [("img", "pods")]
    assert [(r.job_id, r.reason) for r in decided.rejections] == [("lab-img", "no_allowed_cluster")]


_NEEDS = st.sampled_from([frozenset(), COMMANDS, IMAGES, COMMANDS | IMAGES])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_NEEDS, st.integers(1, 8)), min_size=1, max_size=12), st.booleans())
def test_no_job_is_ever_placed_on_a_cluster_whose_executor_lacks_what_it_needs(
    jobs: list[tuple[frozenset[str], int]], default_image: bool
) -> None:
    fleet = _fleet(k8s_image="busybox:1.36" if default_image else None)
    features = dict(zip(fleet.cluster_executor_ids(), FleetIndex.from_fleet(fleet, EPOCH).features_of, strict=True))
    s = scheduler(fleet, "fifo")
    for i, (needs, gpus) in enumerate(jobs):
        s.submit(replace(make_job(f"j{i}").gpus(gpus).at(0.0).runs(100).build(), needs=needs))
    wanted = {f"j{i}": needs for i, (needs, _) in enumerate(jobs)}
    t = 0.0
    for _ in range(len(jobs) + 2):
        res = s.cycle(t)
        for start in res.starts:
            assert wanted[start.job_id] <= features[start.cluster_id]
        for rejection in res.rejections:  # only a job no cluster's executor could ever run is turned away
            assert not any(wanted[rejection.job_id] <= f for f in features.values())
        t += 200.0
