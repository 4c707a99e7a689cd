"""The failing streak of an executor's health checks is stored (``executor_checks``), with real engines: a real Slurm
(tests/engines/slurm_cluster.py) whose daemons are stopped and started, and a Ray executor whose address refuses
connections. Each failed check adds to the stored streak in the transaction that records it and a healthy check
deletes it; a call the engine did not answer starts it at once; ``GET /api/v1/fleet/health`` and ``stargate fleet
health`` show it on any server, a standby included; and a new leader counts ``down_after_s`` from the streak's first
failure, not from its own start."""

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engines.slurm_cluster import SlurmCluster, slurm_fixture
from integration.server.services_support import live
from integration.server.stargate_harness import Harness, build_harness
from stargate.cli import app as cli
from stargate.fleetfile import load_fleet
from stargate.server.app import create_app
from stargate.server.bootstrap import open_database, prepare
from stargate.server.scheduling import health
from stargate.server.settings import Settings
from stargate.store.repositories import health as health_repo
from stargate.store.repositories.health import Change, Streak

T0 = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
SECRET = "f14aa51726d992dab1b09f9d8779de6f"
TOKEN_ENV = "SG_TEST_STREAK_RAY_TOKEN"

FLEET = """
name: streaks
providers:
  - {{id: hpc, name: HPC, kind: owned, executor: slurm-test}}
  - {{id: rayco, name: Ray cloud, kind: cloud, executor: ray-x}}
  - {{id: lab, name: Lab, kind: owned, executor: local}}
sites:
  - {{id: hpc-1, provider: hpc, region: here}}
  - {{id: ray-1, provider: rayco, region: here}}
  - {{id: lab-1, provider: lab, region: here}}
clusters:
  - {{id: slurm-a, site: hpc-1, gpu_model: H100-SXM, gpus_per_node: 4, nodes: 1, price_per_gpu_hour_usd: 1.0}}
  - {{id: ray-a, site: ray-1, gpu_model: H100-SXM, gpus_per_node: 4, nodes: 1, price_per_gpu_hour_usd: 1.5}}
  - {{id: local-a, site: lab-1, gpu_model: H100-SXM, gpus_per_node: 4, nodes: 1, price_per_gpu_hour_usd: 2.0}}
teams:
  - {{id: alpha, name: Alpha}}
queues:
  - {{id: alpha-q, team: alpha, quotas: [{{gpu_model: "*", gpus: 12}}]}}
executors:
  - id: slurm-test
    kind: slurm
    slurm_conf: {conf}
    user: root  # health checks only: no job runs
    health: {{interval_s: 1, down_after_s: 20}}
  - id: ray-x
    kind: ray
    address: http://127.0.0.1:{port}
    token_env: {token_env}
    health: {{interval_s: 1, down_after_s: 30}}
"""


slurm = slurm_fixture(gpus_per_node=4)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fleet(slurm: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TOKEN_ENV, SECRET)  # the Ray executor's token: it must never be shown
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(conf=slurm.slurm_conf, port=_closed_port(), token_env=TOKEN_ENV))
    return path


@pytest.fixture
def made(db_url: str, tmp_path: Path, fleet: Path, slurm: SlurmCluster) -> Iterator[Harness]:
    h = build_harness(db_url, tmp_path / "home", fleet)
    yield h
    slurm.start_daemons()  # for the module's next test, whatever this one did
    h.client.close()
    h.ctx.db.close()


def _second_server(h: Harness, home: Path, fleet: Path) -> Harness:
    """Another server process over the same database (a standby, or the next leader): its own context, loop state
    and app, nothing of the first one's memory."""
    settings = Settings(home=home, database_url=h.ctx.settings.database_url, scheduler_enabled=False, isolation="none")
    prepared = prepare(settings, open_database(settings), load_fleet(fleet))
    app = create_app(prepared.ctx)
    return Harness(ctx=prepared.ctx, app=app, client=TestClient(app), admin_token=h.admin_token)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def _streaks(h: Harness) -> dict[str, Streak]:
    with h.ctx.db.read() as s:
        return health_repo.streaks(s)


def _clusters(h: Harness) -> dict[str, dict[str, Any]]:
    answer = h.client.get("/api/v1/fleet/health", headers=h.headers("viewer", "alpha"))
    assert answer.status_code == 200, answer.text
    return {c["cluster"]: c for c in answer.json()["clusters"]}


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_each_failed_check_adds_to_the_stored_streak_and_a_healthy_check_ends_it(
    made: Harness, slurm: SlurmCluster
) -> None:
    assert health.step(made.ctx, at(0), wait=True).checked == 2  # slurm-test healthy, ray-x refused
    assert set(_streaks(made)) == {"ray-x"} and _clusters(made)["slurm-a"]["failing"] is None
    slurm.stop_daemons()
    first = health.step(made.ctx, at(1), wait=True)
    assert first.changes == []  # failing for a second of its 20: not down yet
    streak = _streaks(made)["slurm-test"]
    assert (streak.checks, streak.unreachable, streak.since) == (1, True, streak.checked_at)
    assert at(1) <= streak.since < at(6)  # judged when its failure came: the check's start + the seconds it took
    assert streak.last_error.startswith("slurm (") and "\n" not in streak.last_error
    health.step(made.ctx, at(2), wait=True)
    second = _streaks(made)["slurm-test"]
    assert (second.checks, second.since) == (2, streak.since) and second.checked_at > streak.checked_at
    shown = _clusters(made)["slurm-a"]
    assert (shown["observed"], shown["status"]) == ("up", "up")
    assert shown["failing"]["checks"] == 2 and shown["failing"]["last_error"] == second.last_error
    assert _when(shown["failing"]["since"]) == second.since
    assert _when(shown["failing"]["last_check_at"]) == second.checked_at
    assert _when(shown["failing"]["down_at"]) == second.since + timedelta(seconds=20)  # its down_after_s
    assert _clusters(made)["local-a"]["failing"] is None  # another executor's cluster
    slurm.start_daemons()
    back = health.step(made.ctx, at(3), wait=True)
    assert back.changes == [] and "slurm-test" not in _streaks(made)
    assert _clusters(made)["slurm-a"]["failing"] is None
    assert _streaks(made)["ray-x"].checks == 4  # the Ray executor failed every check meanwhile


def test_a_call_the_engine_did_not_answer_starts_the_stored_streak_at_once(made: Harness, slurm: SlurmCluster) -> None:
    health.step(made.ctx, at(0), wait=True)
    assert "slurm-test" not in _streaks(made)
    failing = health.note_unreachable(made.ctx, {"slurm-test": "slurm (x): sbatch did not answer\nin 3 s"}, at(0.5))
    assert "slurm-test" in failing
    streak = _streaks(made)["slurm-test"]
    assert (streak.since, streak.checks, streak.unreachable) == (at(0.5), 1, True)
    assert streak.last_error == "slurm (x): sbatch did not answer in 3 s"  # one line
    health.note_unreachable(made.ctx, {"slurm-test": "again"}, at(0.7))  # still unreachable: not a new check
    assert _streaks(made)["slurm-test"].checks == 1
    slurm.stop_daemons()
    health.step(made.ctx, at(1), wait=True)
    then = _streaks(made)["slurm-test"]
    assert (then.since, then.checks) == (at(0.5), 2) and then.last_error.startswith("slurm (")


def test_a_new_leader_counts_down_after_from_the_streaks_first_failure(
    made: Harness, tmp_path: Path, fleet: Path
) -> None:
    health.step(made.ctx, at(0), wait=True)  # the first leader: ray-x refused, failing from about at(0)
    since = _streaks(made)["ray-x"].since
    standby = _second_server(made, tmp_path / "home-b", fleet)
    try:
        shown = _clusters(standby)["ray-a"]["failing"]  # a standby that never checked shows the stored streak
        assert shown is not None and _when(shown["since"]) == since and shown["checks"] == 1
        assert _when(shown["down_at"]) == since + timedelta(seconds=30)
        assert health.unreachable(standby.ctx) == frozenset()
        # The first leader is gone; the standby leads from 31 s after the first failure: one failed check of its own
        # is enough, as it would have been for the first leader.
        done = health.step(standby.ctx, since + timedelta(seconds=31), wait=True)
        assert [(c.cluster, c.from_status, c.to_status) for c in done.changes] == [("ray-a", "up", "down")]
        assert done.changes[0].reason.startswith("executor ray-x unreachable for 31 s: ray at http://127.0.0.1:")
        assert _streaks(standby)["ray-x"].checks == 2 and _streaks(standby)["ray-x"].since == since
        assert "ray-x" in health.unreachable(standby.ctx)  # its runs are left alone until Ray answers
    finally:
        standby.client.close()
        standby.ctx.db.close()


def test_a_new_leader_leaves_an_engine_stored_as_not_answering_alone_from_its_first_cycle(
    made: Harness, tmp_path: Path, fleet: Path
) -> None:
    health.step(made.ctx, at(0), wait=True)
    standby = _second_server(made, tmp_path / "home-b", fleet)
    try:
        health.step(standby.ctx, at(5))  # its checks start on their own thread; their answers are not in yet
        assert health.unreachable(standby.ctx) == {"ray-x"}  # it learned so from the stored streak
    finally:
        running = health.state_of(standby.ctx).running
        if running is not None and running.thread is not None:
            running.thread.join(10)
        standby.client.close()
        standby.ctx.db.close()


def test_fleet_health_shows_the_streak_escaped_and_never_the_executors_token(made: Harness) -> None:
    health.step(made.ctx, at(0), wait=True)  # ray-x refused, with its token set (SECRET)
    since = _streaks(made)["ray-x"].since
    with made.ctx.db.write() as s:  # slurm-a down, its engine's last error with a control sequence and Rich markup
        health_repo.keep_streaks(s, [Streak("slurm-test", at(1), 3, "refused \x1b[2J[red]boom[/]", at(3), True)])
        health_repo.record(s, [Change("slurm-a", "slurm-test", "up", "down", "executor slurm-test unreachable")], at(3))
    body = made.client.get("/api/v1/fleet/health", headers=made.headers()).text
    assert SECRET not in body and "refused \\u001b[2J[red]boom[/]" in body
    with live(made, scheduler=False) as server:
        env = {"STARGATE_URL": server.url, "STARGATE_TOKEN": made.admin_token}
        shown = CliRunner().invoke(cli, ["fleet", "health"], env=env)
    assert shown.exit_code == 0, shown.output
    assert SECRET not in shown.output and "\x1b" not in shown.output
    header, *lines = shown.output.splitlines()
    columns = ["cluster", "executor", "declared", "observed", "status", "failing", "since / reason"]
    assert [c.strip() for c in header.split("  ") if c.strip()] == columns, header
    row: dict[str, str] = {}  # spaces collapsed; the last column folds onto further lines (160 characters wide)
    name = ""
    for line in lines:
        if line[:1].strip():
            name = line.split()[0]
            row[name] = " ".join(line.split())
        else:
            row[name] += " " + " ".join(line.split())
    ray = f"since {since:%Y-%m-%dT%H:%M:%S}Z, 1 check down at {since + timedelta(seconds=30):%Y-%m-%dT%H:%M:%S}Z if"
    assert ray in row["ray-a"] and "go on failing; last failed check: ray at http://127.0.0.1:" in row["ray-a"]
    assert "since 2026-12-04T12:00:01Z, 3 checks 2026-12-04T12:00:03Z: executor slurm-test" in row["slurm-a"]
    assert "down at" not in row["slurm-a"]  # it is down already
    assert row["slurm-a"].endswith("; last failed check: refused \\x1b[2J[red]boom[/]"), row["slurm-a"]
    assert row["local-a"].split() == ["local-a", "local", "up", "up", "up"]


def test_the_streak_of_an_executor_the_fleet_no_longer_uses_is_deleted(
    made: Harness, tmp_path: Path, fleet: Path
) -> None:
    health.step(made.ctx, at(0), wait=True)
    assert "ray-x" in _streaks(made)
    text = fleet.read_text().split("  - id: ray-x")[0]  # the Ray executor, its provider, site and cluster gone
    without = tmp_path / "without-ray.yaml"
    without.write_text("\n".join(line for line in text.splitlines() if not any(r in line for r in ("rayco", "ray-"))))
    prepare(made.ctx.settings, made.ctx.db, load_fleet(without))  # applied, as a fleet change is
    health.step(made.ctx, at(1), wait=True)
    assert set(_streaks(made)) == set() and set(_clusters(made)) == {"slurm-a", "local-a"}
