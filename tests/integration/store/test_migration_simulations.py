"""The simulations migration: the table appears beside the existing jobs and holds a simulation's JSON, and a
downgrade drops it and keeps the jobs."""

from datetime import datetime

import sqlalchemy as sa

from stargate.store import create_engine, current_revision, downgrade, head_revision, upgrade

BEFORE = "20261202_0007"
AT = datetime(2026, 12, 3, 12, 0, 0)
ROW = {
    "id": "sim-0123456789", "created_at": AT, "created_by": "token:alice", "runner": "host:/srv", "status": "queued",
    "progress": 0.0, "request": {"trace": "philly/philly.csv", "seed": 1},
}  # fmt: skip


def test_upgrade_adds_the_table_and_a_downgrade_drops_it(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        assert "simulations" not in sa.inspect(engine).get_table_names()
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        simulations = sa.Table("simulations", sa.MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(simulations).values(ROW))
        with engine.connect() as conn:
            row = conn.execute(sa.select(simulations)).mappings().one()
        assert (row["request"], row["result"], row["error"], row["finished_at"]) == (ROW["request"], None, None, None)
        downgrade(engine, BEFORE)
        assert "simulations" not in sa.inspect(engine).get_table_names()
        assert current_revision(engine) == BEFORE
        upgrade(engine)
        assert "simulations" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
