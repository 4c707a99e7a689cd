"""The fleet file's executors: each kind's settings, the defaults, providers and clusters naming an executor by id,
and every bad input as one located problem (file, line, column, path, found, expected)."""

from pathlib import Path
from textwrap import dedent
from typing import NamedTuple

import pytest

from stargate.domain import (
    DEFAULT_EXECUTORS,
    Fleet,
    KubernetesExecutorConfig,
    LocalExecutorConfig,
    RayExecutorConfig,
    SlurmExecutorConfig,
    fleet_problems,
)
from stargate.fleetfile import FleetFileError, LocatedProblem, load_fleet, loads_fleet

FLEET = """\
name: t
executors:
  - {id: ray-west, kind: ray, address: 'http://ray-head:8265', token_env: RAY_TOKEN}
  - {id: slurm-east, kind: slurm, partition: gpu, account: research, gres: null, health: {interval_s: 5}}
  - {id: k8s, kind: kubernetes, namespace: jobs, queue: team-q, image: 'ghcr.io/x/train:1.4'}
  - {id: here, kind: local}
providers:
  - {id: own, name: Own, kind: owned}
  - {id: hpc, name: HPC, kind: cloud, executor: slurm-east}
  - {id: kube, name: Kube, kind: cloud, executor: kubernetes}
sites:
  - {id: own-1, provider: own, region: r}
  - {id: hpc-1, provider: hpc, region: r}
  - {id: kube-1, provider: kube, region: r}
clusters:
  - {id: a, site: own-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 1}
  - {id: b, site: hpc-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 1}
  - {id: c, site: hpc-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 1, executor: ray-west}
  - {id: d, site: kube-1, gpu_model: H100-SXM, gpus_per_node: 8, nodes: 1, price_per_gpu_hour_usd: 1}
"""


def test_every_kind_loads_with_its_settings_and_defaults() -> None:
    fleet = loads_fleet(FLEET)
    ray, slurm, k8s, here = fleet.executors
    assert isinstance(ray, RayExecutorConfig) and ray.address == "http://ray-head:8265"
    assert (ray.token_env, ray.gpu_resource, ray.health.interval_s, ray.health.down_after_s) == (
        "RAY_TOKEN",
        "GPU",
        10,
        60,
    )
    assert isinstance(slurm, SlurmExecutorConfig) and (slurm.partition, slurm.account, slurm.gres) == (
        "gpu",
        "research",
        None,
    )
    assert slurm.health.interval_s == 5 and slurm.slurm_conf is None
    assert isinstance(k8s, KubernetesExecutorConfig) and (k8s.namespace, k8s.queue) == ("jobs", "team-q")
    assert k8s.features() == frozenset({"commands", "images"}) and k8s.gpu_resource == "nvidia.com/gpu"
    assert isinstance(here, LocalExecutorConfig)


def test_each_cluster_runs_on_its_own_executor_else_its_providers() -> None:
    fleet = loads_fleet(FLEET)
    assert fleet.cluster_executor_ids() == {"a": "local", "b": "slurm-east", "c": "ray-west", "d": "kubernetes"}
    configs = fleet.cluster_executors()
    assert configs["a"] is DEFAULT_EXECUTORS["local"] and configs["d"] is DEFAULT_EXECUTORS["kubernetes"]
    assert configs["c"].id == "ray-west" and configs["b"].kind == "slurm"
    assert set(fleet.executor_configs()) == {
        "local",
        "ray",
        "slurm",
        "kubernetes",
        "ray-west",
        "slurm-east",
        "k8s",
        "here",
    }


def test_a_declared_executor_with_a_default_id_replaces_the_default() -> None:
    fleet = loads_fleet(FLEET.replace("{id: k8s, kind: kubernetes,", "{id: kubernetes, kind: kubernetes,"))
    assert fleet.cluster_executors()["d"].features() == frozenset({"commands", "images"})


def test_a_fleet_without_executors_keeps_todays_behaviour() -> None:
    fleet = loads_fleet("name: t\nproviders:\n  - {id: own, name: Own, kind: owned, executor: ray}\n")
    assert fleet.executors == [] and fleet.providers[0].executor == "ray"
    assert Fleet(name="x").model_dump(mode="json")["executors"] == []


def test_the_fleet_round_trips_through_json() -> None:
    fleet = loads_fleet(FLEET)
    assert Fleet.model_validate(fleet.model_dump(mode="json")) == fleet


ENV_WORDS = (
    "the name of an environment variable (upper-case letters, digits and '_', not starting with a digit, at most 128 "
    "characters) whose value the server reads; never the secret itself, or null"
)
ADDRESS_WORDS = (
    "an http:// or https:// address with a host (and a port from 1 to 65535), optionally a path; no query, no "
    "credentials (user:password@: give a token with token_env)"
)


class Case(NamedTuple):
    """One bad executor setting and the one problem it gives."""

    text: str
    line: int
    column: int
    path: str
    found: str
    expected: str


HEAD = "name: t\nexecutors:\n"
"""Two lines; each case's entry is on line 3."""
ID_WORDS = "an id (1–63 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit)"
KINDS = "'local', 'ray', 'slurm', 'kubernetes'"

CASES = {
    "unknown kind": Case(
        "  - {id: n, kind: nomad}\n", 3, 13, "executors[0].kind", "'nomad'", f"one of {KINDS}"
    ),
    "kind missing": Case(
        "  - {id: n, address: 'http://x'}\n", 3, 5, "executors[0].kind", "nothing (the key is missing)",
        f"a value: one of {KINDS}",
    ),
    "not a mapping": Case(
        "  - ray\n", 3, 5, "executors[0]", "'ray'", f"a mapping with 'kind' one of {KINDS} (required keys: id, kind)"
    ),
    "a Slurm key on Ray": Case(
        "  - {id: r, kind: ray, partition: gpu}\n", 3, 24, "executors[0].partition", "unknown key 'partition'",
        "one of the keys of a Ray executor: id, health, kind, address, token_env, gpu_resource",
    ),
    "a secret is not a field": Case(
        "  - {id: r, kind: ray, token: abc123}\n", 3, 24, "executors[0].token", "unknown key 'token'",
        "a known key of a Ray executor; did you mean 'token_env'?",
    ),
    "a secret where a variable name goes is not echoed": Case(
        "  - {id: k, kind: kubernetes, token_env: 'sk-live-51Hx'}\n", 3, 31, "executors[0].token_env",
        "a value that is not an upper-case environment variable name (not shown: it may be a secret)",
        ENV_WORDS,
    ),
    "a variable name starting with a digit": Case(
        "  - {id: r, kind: ray, token_env: 9TOKEN}\n", 3, 24, "executors[0].token_env",
        "a value that is not an upper-case environment variable name (not shown: it may be a secret)",
        ENV_WORDS,
    ),
    "an address that is not http": Case(
        "  - {id: r, kind: ray, address: 'ftp://head'}\n", 3, 24, "executors[0].address", "'ftp://head'",
        ADDRESS_WORDS,
    ),
    "a pasted hex token as token_env": Case(
        "  - {id: r, kind: ray, token_env: f14aa51726d992da}\n", 3, 24, "executors[0].token_env",
        "a value that is not an upper-case environment variable name (not shown: it may be a secret)", ENV_WORDS,
    ),
    "credentials in an address": Case(
        "  - {id: k, kind: kubernetes, address: 'https://admin:s3cr3t@api:6443'}\n", 3, 31, "executors[0].address",
        "an address holding credentials before '@' (not shown: they may be secret)", ADDRESS_WORDS + ", or null",
    ),
    "a bad id": Case("  - {id: Ray_1, kind: ray}\n", 3, 6, "executors[0].id", "'Ray_1'", ID_WORDS),
    "a health interval under a second": Case(
        "  - {id: s, kind: slurm, health: {interval_s: 0.5}}\n", 3, 35, "executors[0].health.interval_s", "0.5",
        "a number at least 1 and at most 3,600 (s)",
    ),
    "a partition with a space": Case(
        "  - {id: s, kind: slurm, partition: 'gpu a'}\n", 3, 26, "executors[0].partition", "'gpu a'",
        "a name (letters, digits, '.', '_', '/', ':', '@' or '-', starting with a letter or digit, at most 253 "
        "characters), or null",
    ),
    "a duplicate id": Case(
        "  - {id: s, kind: slurm}\n  - {id: s, kind: ray}\n", 4, 6, "executors[1].id", "'s'",
        "an id not used by another entry of 'executors'",
    ),
    "a provider naming an unknown executor": Case(
        "  - {id: slurm-east, kind: slurm}\nproviders:\n  - {id: p, name: P, kind: owned, executor: slurm-west}\n",
        5, 35, "providers[0].executor", "'slurm-west' (provider 'p')",
        "the id of an executor declared under 'executors' or a default one (kubernetes, local, ray, slurm, slurm-east)",
    ),
    "a cluster naming an unknown executor": Case(
        "  - {id: r, kind: ray}\nproviders:\n  - {id: p, name: P, kind: owned}\nsites:\n"
        "  - {id: s, provider: p, region: x}\nclusters:\n  - {id: c, site: s, gpu_model: H200, gpus_per_node: 8, "
        "nodes: 1, price_per_gpu_hour_usd: 1, executor: nope}\n",
        9, 94, "clusters[0].executor", "'nope' (cluster 'c')",
        "the id of an executor declared under 'executors' or a default one (kubernetes, local, r, ray, slurm)",
    ),
    "a path that climbs with '..'": Case(
        "  - {id: s, kind: slurm, work_dir: /tmp/../root}\n", 3, 26, "executors[0].work_dir", "'/tmp/../root'",
        "an absolute path with no '..' part",
    ),
    "a GRES with a count": Case(
        "  - {id: s, kind: slurm, gres: 'gpu:8'}\n", 3, 26, "executors[0].gres", "'gpu:8'",
        "a GRES name, optionally with its type ('gpu', 'gpu:a100'), never a count: each job's GPUs per node are "
        "added, or null",
    ),
    "the server's own setting as a token variable": Case(
        "  - {id: r, kind: ray, token_env: STARGATE_ADMIN_TOKEN}\n", 3, 24, "executors[0].token_env",
        "'STARGATE_ADMIN_TOKEN'",
        "a variable holding the engine's token, not one of the server's own settings (STARGATE_*): its value would "
        "be sent to the engine",
    ),
    "a Kueue queue that is not a DNS name": Case(
        "  - {id: k, kind: kubernetes, queue: Team_Q}\n", 3, 31, "executors[0].queue", "'Team_Q'",
        "a DNS name (1 to 253 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit), "
        "or null",
    ),
    "executors not a list": Case(
        "  kind: ray\n", 2, 1, "executors", "a mapping",
        "a list of mappings, each describing a local executor, a Ray executor, a Slurm executor or a Kubernetes "
        "executor",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_a_bad_executor_setting_is_one_located_problem(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(HEAD + case.text, encoding="utf-8")
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    expected = LocatedProblem(str(path), case.line, case.column, case.path, case.found, case.expected)
    assert info.value.problems == [expected]


def test_a_typed_gres_and_absolute_paths_load() -> None:
    (slurm,) = loads_fleet(
        "name: t\nexecutors:\n  - {id: s, kind: slurm, gres: 'gpu:a100', slurm_conf: /etc/slurm/slurm.conf}\n"
    ).executors
    assert isinstance(slurm, SlurmExecutorConfig) and (slurm.gres, slurm.slurm_conf) == (
        "gpu:a100",
        "/etc/slurm/slurm.conf",
    )


def test_a_provider_naming_an_invalid_executor_is_not_reported_twice(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    east = "  - {id: east, kind: slurm, partition: 'a b'}\n"
    text = HEAD + east + "providers:\n  - {id: p, name: P, kind: owned, executor: east}\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    assert [p.path for p in info.value.problems] == ["executors[0].partition"]


def test_executors_in_one_file_of_a_directory_serve_providers_in_another(tmp_path: Path) -> None:
    files = {
        "00-fleet.yaml": "name: t\n",
        "10-executors.yaml": "executors:\n  - {id: east, kind: slurm}\n",
        "20-more.yaml": "executors:\n  - {id: west, kind: ray}\n  - {id: east, kind: ray}\n",
        "30-providers.yaml": "providers:\n  - {id: p, name: P, kind: owned, executor: west}\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(dedent(text), encoding="utf-8")
    with pytest.raises(FleetFileError) as info:
        load_fleet(tmp_path)
    (problem,) = info.value.problems  # the duplicate, located in the second file
    assert (Path(problem.file).name, problem.line, problem.path) == ("20-more.yaml", 3, "executors[2].id")
    (tmp_path / "20-more.yaml").write_text("executors:\n  - {id: west, kind: ray}\n", encoding="utf-8")
    fleet = load_fleet(tmp_path)
    assert [e.id for e in fleet.executors] == ["east", "west"] and fleet.providers[0].executor == "west"


def test_the_cross_checks_name_the_executor_problems_of_a_fleet_built_in_code() -> None:
    fleet = loads_fleet(FLEET)
    bad = fleet.model_copy(update={"executors": [*fleet.executors, RayExecutorConfig(id="k8s", kind="ray")]})
    clusters = [c.model_copy(update={"executor": "gone"}) if c.id == "a" else c for c in bad.clusters]
    found = {(p.path, p.found) for p in fleet_problems(bad.model_copy(update={"clusters": clusters}))}
    assert found == {(("executors", 4, "id"), "'k8s'"), (("clusters", 0, "executor"), "'gone' (cluster 'a')")}


@pytest.mark.parametrize("kind", ["ray", "slurm", "kubernetes"])
def test_one_line_per_provider_switches_the_example_fleet_to_an_engine(tmp_path: Path, kind: str) -> None:
    """As the how-tos say: `executor: <kind>` added under each provider of examples/stargate-2025 (one line each, no
    executors section) is a valid fleet whose every cluster runs on that kind's default executor."""
    example = Path(__file__).parents[3] / "examples" / "stargate-2025"
    copy = tmp_path / "fleet"
    copy.mkdir()
    for path in example.glob("*.yaml"):
        if path.name != "plan.yaml":
            (copy / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    providers = copy / "10-providers.yaml"
    text = providers.read_text(encoding="utf-8")
    switched = "".join(
        line + (f"    executor: {kind}\n" if line.startswith("    kind: ") else "") for line in text.splitlines(True)
    )
    added = switched.count(f"executor: {kind}")
    assert added == len(load_fleet(example).providers) and len(switched.splitlines()) == len(text.splitlines()) + added
    providers.write_text(switched, encoding="utf-8")
    fleet = load_fleet(copy)
    assert {fleet.cluster_executor_ids()[c.id] for c in fleet.clusters} == {kind}
