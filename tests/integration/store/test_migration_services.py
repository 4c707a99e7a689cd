"""The services migration: the three services tables appear beside the existing jobs, a replica row refers to its
job, deleting a service deletes its replicas' and traffic rows (never the jobs), and a downgrade drops the tables."""

from datetime import datetime

import sqlalchemy as sa

from stargate.store import create_engine, current_revision, downgrade, head_revision, upgrade

BEFORE = "20261201_0006"
THIS = "20261202_0007"
AT = datetime(2026, 12, 2, 12, 0, 0)
THIS_TABLES = ("services", "service_replicas", "service_traffic")
JOB = {
    "name": "chat", "queue_id": "q", "team_id": "t", "kind": "serve", "gpus": 1, "gpu_models": [],
    "priority_class": "normal", "priority": 500, "preemptible": False, "spec": {}, "status": "running",
    "reason": "started", "detail": "", "attempt": 0, "progress_s": 0.0, "submitted_by": "service:chat",
    "submitted_at": AT, "gpu_ids": [],
}  # fmt: skip
SERVICE = {
    "name": "chat", "team_id": "t", "queue_id": "q", "spec": {"name": "chat"}, "state": "active",
    "desired_replicas": 1, "current_replicas": 0, "next_number": 1, "decisions": [], "stats": {}, "problem": "",
    "created_at": AT, "created_by": "token:alice", "updated_at": AT,
}  # fmt: skip


def _count(conn: sa.Connection, table: str) -> int:
    return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_upgrade_keeps_jobs_and_service_rows_go_with_their_service(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        meta = sa.MetaData()
        jobs = sa.Table("jobs", meta, autoload_with=engine)
        with engine.begin() as conn:
            job_id = conn.execute(sa.insert(jobs).values(JOB).returning(jobs.c.id)).scalar_one()
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        meta = sa.MetaData()
        services, replicas, traffic = (sa.Table(t, meta, autoload_with=engine) for t in THIS_TABLES)
        with engine.begin() as conn:
            conn.execute(sa.insert(services).values(SERVICE))
            replica = {"service": "chat", "number": 0, "job_id": job_id, "state": "ready", "port": 20001, "since": AT}
            conn.execute(sa.insert(replicas).values(replica))
            row = {"service": "chat", "process": "p1", "started_at": AT, "updated_at": AT, "counters": {"arrived": 3}}
            conn.execute(sa.insert(traffic).values(row))
        with engine.connect() as conn:
            assert conn.execute(sa.select(traffic.c.counters)).scalar_one() == {"arrived": 3}
            assert conn.execute(sa.select(replicas.c.job_id)).scalar_one() == job_id
        with engine.begin() as conn:
            conn.execute(sa.delete(services).where(services.c.name == "chat"))
        with engine.connect() as conn:
            assert [_count(conn, t) for t in (*THIS_TABLES, "jobs")] == [0, 0, 0, 1]
    finally:
        engine.dispose()


def test_a_downgrade_drops_the_services_tables_and_keeps_the_jobs(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, THIS)
        meta = sa.MetaData()
        jobs = sa.Table("jobs", meta, autoload_with=engine)
        services = sa.Table("services", meta, autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(jobs).values(JOB))
            conn.execute(sa.insert(services).values(SERVICE))
        downgrade(engine, BEFORE)
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert not tables & set(THIS_TABLES)
            assert _count(conn, "jobs") == 1
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
