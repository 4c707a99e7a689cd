"""The health migration: the cluster health tables appear, ``runs.executor`` takes an executor id of 63 characters,
every existing run is kept, and a downgrade drops the tables again."""

from datetime import datetime

import sqlalchemy as sa

from stargate.store import create_engine, current_revision, downgrade, head_revision, upgrade

BEFORE = "20261201_0005"
THIS = "20261201_0006"
AT = datetime(2026, 12, 1, 12, 0, 0)
LONG_ID = "slurm-" + "e" * 57


def _add_job_with_run(engine: sa.Engine, executor: str) -> None:
    meta = sa.MetaData()
    jobs = sa.Table("jobs", meta, autoload_with=engine)
    runs = sa.Table("runs", meta, autoload_with=engine)
    job = {
        "name": "j", "queue_id": "q", "team_id": "t", "kind": "batch", "gpus": 1, "gpu_models": [],
        "priority_class": "normal", "priority": 500, "preemptible": True, "spec": {}, "status": "running",
        "reason": "started", "detail": "", "attempt": 0, "progress_s": 0.0, "submitted_by": "test",
        "submitted_at": AT, "gpu_ids": [],
    }  # fmt: skip
    with engine.begin() as conn:
        row_id = conn.execute(sa.insert(jobs).values(job).returning(jobs.c.id)).scalar_one()
        run = {"job_id": row_id, "attempt": 0, "executor": executor, "cluster": "c", "created_at": AT}
        conn.execute(sa.insert(runs).values(run | {"ended": False, "note": "", "handle_key": "k"}))


def test_upgrade_keeps_runs_and_takes_long_executor_ids(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        _add_job_with_run(engine, "local")
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        _add_job_with_run(engine, LONG_ID)
        with engine.connect() as conn:
            runs = list(conn.execute(sa.text("SELECT executor, handle_key FROM runs ORDER BY id")))
            tables = set(sa.inspect(conn).get_table_names())
            width = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns("runs")}["executor"]
        assert [tuple(r) for r in runs] == [("local", "k"), (LONG_ID, "k")]
        assert {"cluster_health", "cluster_events"} <= tables
        assert getattr(width, "length", None) == 64
    finally:
        engine.dispose()


def test_health_rows_are_written_and_a_downgrade_drops_the_tables(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, THIS)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO cluster_health (cluster, executor, status, reason, since) "
                    "VALUES ('a', 'slurm', 'down', 'executor slurm unreachable for 60 s', :at)"
                ),
                {"at": AT},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO cluster_events (at, cluster, executor, from_status, to_status, reason) "
                    "VALUES (:at, 'a', 'slurm', 'up', 'down', 'executor slurm unreachable for 60 s')"
                ),
                {"at": AT},
            )
        _add_job_with_run(engine, "slurm")
        downgrade(engine, BEFORE)
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            executors = list(conn.execute(sa.text("SELECT executor FROM runs")).scalars())
        assert not {"cluster_health", "cluster_events"} & tables
        assert executors == ["slurm"]
    finally:
        engine.dispose()
