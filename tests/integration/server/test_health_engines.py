"""The health step against a real Slurm cluster (tests/engines/slurm_cluster.py): its daemons stopped, the cluster is
observed down only after down_after_s, with a reason naming the executor and how long; an event per change; up again
at the first healthy check once the daemons are back; checks at most every interval_s."""

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engines.slurm_cluster import SlurmCluster, slurm_fixture
from integration.server.stargate_harness import Harness, build_harness
from stargate.server.scheduling.health import step
from stargate.store.repositories import health as health_repo

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)

FLEET = """
name: health
providers:
  - {{id: hpc, name: HPC, kind: owned, executor: slurm-test}}
  - {{id: lab, name: Lab, kind: owned, executor: local}}
sites:
  - {{id: hpc-1, provider: hpc, region: here}}
  - {{id: lab-1, provider: lab, region: here}}
clusters:
  - {{id: slurm-a, site: hpc-1, gpu_model: H100-SXM, gpus_per_node: 4, nodes: 1, price_per_gpu_hour_usd: 1.0}}
  - {{id: local-a, site: lab-1, gpu_model: H100-SXM, gpus_per_node: 4, nodes: 1, price_per_gpu_hour_usd: 2.0}}
teams:
  - {{id: alpha, name: Alpha}}
queues:
  - {{id: alpha-q, team: alpha, quotas: [{{gpu_model: "*", gpus: 8}}]}}
executors:
  - id: slurm-test
    kind: slurm
    slurm_conf: {conf}
    user: root  # health checks only: no job runs
    health: {{interval_s: 1, down_after_s: 20}}
"""


slurm = slurm_fixture(gpus_per_node=4)


@pytest.fixture
def made(slurm: SlurmCluster, tmp_path: Path, sqlite_url: str) -> Iterator[Harness]:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET.format(conf=slurm.slurm_conf))
    h = build_harness(sqlite_url, tmp_path / "home", fleet)
    yield h
    h.client.close()
    h.ctx.db.close()


def _events(h: Harness) -> list[tuple[str, str, str, str]]:
    with h.ctx.db.read() as s:
        return [(e.cluster, e.from_status, e.to_status, e.reason) for e in reversed(health_repo.events(s, 100))]


def test_stopped_daemons_mark_the_cluster_down_after_the_delay_and_back_up(made: Harness, slurm: SlurmCluster) -> None:
    at: Callable[[float], datetime] = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    first = step(made.ctx, at(0), wait=True)
    assert (first.checked, first.changes) == (1, [])  # only slurm-test checks health; local does not
    assert step(made.ctx, at(0.5), wait=True).checked == 0  # not due before interval_s
    slurm.stop_daemons()
    try:
        # A failed check is judged when its failure came (its start + the real seconds it took, at most ~5 s).
        failing = step(made.ctx, at(1), wait=True)
        assert (failing.checked, failing.changes) == (1, [])  # failing for seconds: not down yet
        assert step(made.ctx, at(10), wait=True).changes == []
        # 20.5 s after the first failure: its time carries the real milliseconds that check took, this one's may be
        # fewer, so exactly 20 s later can fall short of down_after_s by a millisecond.
        down = step(made.ctx, at(21.5), wait=True)
        assert [(c.cluster, c.from_status, c.to_status) for c in down.changes] == [("slurm-a", "up", "down")]
        reason = down.changes[0].reason
        assert re.match(r"executor slurm-test unreachable for 2\d s: slurm \(", reason), reason
        assert len(reason.splitlines()) == 1
        health = made.client.get("/api/v1/fleet/health", headers=made.headers()).json()
        observed = {c["cluster"]: (c["executor"], c["observed"], c["status"]) for c in health["clusters"]}
        assert observed == {"slurm-a": ("slurm-test", "down", "down"), "local-a": ("local", "up", "up")}
        still = step(made.ctx, at(23), wait=True)
        assert (still.checked, still.changes) == (1, [])  # still down: no new event
    finally:
        slurm.start_daemons()
    up = step(made.ctx, at(24.5), wait=True)
    assert [(c.from_status, c.to_status, c.reason) for c in up.changes] == [
        ("down", "up", "executor slurm-test healthy again")
    ]
    assert [e[:3] for e in _events(made)] == [("slurm-a", "up", "down"), ("slurm-a", "down", "up")]
    text = made.ctx.metrics.exposition().decode()
    assert 'stargate_cluster_observed_status{cluster="slurm-a",executor="slurm-test"} 0.0' in text
