"""The money migration: runs and tokens written before it are kept (their new columns null, so the costs leave the
old runs out), the procurement tables are created empty, and a downgrade removes them and the columns again."""

from datetime import UTC, datetime

import sqlalchemy as sa
import sqlalchemy.orm

from stargate.store import create_engine, current_revision, downgrade, head_revision, upgrade
from stargate.store.models import CapacityRequestRow
from stargate.store.repositories import costs as cost_repo
from stargate.store.repositories import procurement as procurement_repo

BEFORE = "20261130_0003"
THIS = "20261130_0004"
AT = datetime(2026, 11, 1, 12, 0, 0)
MONEY_TABLES = {
    "capacity_requests",
    "procurement_offers",
    "procurement_quotes",
    "procurement_awards",
    "procurement_events",
}


def _insert_old_rows(engine: sa.Engine) -> None:
    meta = sa.MetaData()
    jobs, runs, tokens = (sa.Table(t, meta, autoload_with=engine) for t in ("jobs", "runs", "tokens"))
    job = {
        "name": "j", "queue_id": "q", "team_id": "t", "kind": "batch", "gpus": 1, "gpu_models": [],
        "priority_class": "normal", "priority": 500, "preemptible": True, "spec": {}, "status": "succeeded",
        "reason": "succeeded", "detail": "", "attempt": 0, "progress_s": 0.0, "submitted_by": "test",
        "submitted_at": AT, "gpu_ids": [],
    }  # fmt: skip
    with engine.begin() as conn:
        row_id = conn.execute(sa.insert(jobs).values(job).returning(jobs.c.id)).scalar_one()
        run = {"job_id": row_id, "attempt": 0, "executor": "local", "cluster": "c", "created_at": AT, "ended": True}
        conn.execute(sa.insert(runs).values(run | {"note": "", "ended_at": AT}))
        token = {"id": "t-00000000", "name": "a", "role": "admin", "salt": "00", "secret_hash": "x", "created_at": AT}
        conn.execute(sa.insert(tokens).values(token))


def test_old_runs_and_tokens_are_kept_with_null_costs_and_a_downgrade_removes_the_money(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        _insert_old_rows(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            run = conn.execute(sa.text("SELECT gpus, price_usd_per_gpu_hour, started_at, contract FROM runs")).one()
            provider = conn.execute(sa.text("SELECT provider FROM tokens")).scalar_one()
            tables = set(sa.inspect(conn).get_table_names())
        assert tuple(run) == (None, None, None, None) and provider is None
        assert tables >= MONEY_TABLES
        with sa.orm.Session(engine) as session:
            assert list(cost_repo.runs(session)) == []  # an old run has no price: left out of the costs
            assert set(procurement_repo.counts(session).values()) == {0}
            session.add(_request_row())  # a request the downgrade drops with its table
            session.commit()
        downgrade(engine, BEFORE)
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            tables = set(inspector.get_table_names())
            run_columns = {c["name"] for c in inspector.get_columns("runs")}
            token_columns = {c["name"] for c in inspector.get_columns("tokens")}
            runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
        assert not tables & MONEY_TABLES
        assert "price_usd_per_gpu_hour" not in run_columns and "provider" not in token_columns and runs == 1
        upgrade(engine, THIS)  # and up again
    finally:
        engine.dispose()


def _request_row() -> CapacityRequestRow:
    return CapacityRequestRow(
        id="r-1",
        gpu_model="GB200",
        gpus=8,
        start=datetime(2027, 1, 1).date(),
        term_days=30,
        raised_by="user",
        actor="test",
        at=datetime(2026, 12, 1, tzinfo=UTC),
        reason="",
        state="market",
    )
