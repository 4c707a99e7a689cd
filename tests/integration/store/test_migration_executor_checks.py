"""The executor-checks migration: the table of failing streaks appears empty, takes a streak, refuses a second row
of one executor, and a downgrade drops it and keeps every other row."""

from datetime import datetime

import pytest
import sqlalchemy as sa

from stargate.store import create_engine, current_revision, downgrade, upgrade

BEFORE = "20261204_0010"
THIS = "20261204_0011"
AT = datetime(2026, 12, 4, 12, 0, 0)
STREAK = "INSERT INTO executor_checks (executor, failing_since, failed_checks, last_error, checked_at, unreachable) "


def test_upgrade_creates_the_empty_table_and_a_downgrade_drops_it(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        upgrade(engine, BEFORE)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO cluster_health (cluster, executor, status, reason, since) "
                    "VALUES ('a', 'ray-x', 'down', 'executor ray-x unreachable for 60 s', :at)"
                ),
                {"at": AT},
            )
        upgrade(engine, THIS)
        assert current_revision(engine) == THIS
        with engine.connect() as conn:
            columns = {c["name"]: c for c in sa.inspect(conn).get_columns("executor_checks")}
            assert conn.execute(sa.text("SELECT count(*) FROM executor_checks")).scalar_one() == 0
        assert set(columns) == {
            "executor", "failing_since", "failed_checks", "last_error", "checked_at", "unreachable",
        }  # fmt: skip
        assert all(not c["nullable"] for c in columns.values())
        with engine.begin() as conn:
            conn.execute(
                sa.text(STREAK + "VALUES ('ray-x', :at, 3, 'ray at http://ray-head:8265: refused', :at, true)"),
                {"at": AT},
            )
            streak = conn.execute(sa.text("SELECT executor, failed_checks, unreachable FROM executor_checks")).one()
        assert (streak[0], streak[1], bool(streak[2])) == ("ray-x", 3, True)
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # one streak per executor
            conn.execute(sa.text(STREAK + "VALUES ('ray-x', :at, 1, '', :at, false)"), {"at": AT})
        downgrade(engine, BEFORE)
        assert current_revision(engine) == BEFORE
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            kept = list(conn.execute(sa.text("SELECT cluster, status FROM cluster_health")))
        assert "executor_checks" not in tables
        assert [tuple(r) for r in kept] == [("a", "down")]
        upgrade(engine, THIS)  # and up again
        assert "executor_checks" in set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
