"""On PostgreSQL, a transaction that inserts jobs or job events first marks the lowest id it may take (a shared
advisory lock held until it ends), so a reader paging oldest first never passes a row that is still to commit.

Revision ID: 20261205_0012
Revises: 20261204_0011
Create Date: 2026-12-05

Ids come from a sequence: a transaction may take its id before another's and commit after it, and a page cursor
that moved past the later id skipped the earlier one for ever. ``jobs.id`` and ``job_events.id`` now default to
``stargate_next_id(sequence, space)``: on its first insert into the table a transaction takes a shared advisory
lock on the sequence's last value (in the table's key space) before its id; the readers
(``stargate.store.repositories.horizon``) page only up to the lowest such lock and the sequence's last value read
before it. SQLite is left as it is: its writers take turns, so ids commit in their order.

An upgrade rewrites no row; a downgrade puts back the plain ``nextval`` defaults and drops the function.

Self-contained on purpose: a released migration never imports the models.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261205_0012"
down_revision: str | None = "20261204_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPACES = {"jobs": 1397227520, "job_events": 1397293056}
"""The lowest first key of each table's advisory locks (0x5348_0000 and 0x5349_0000; two-key locks are apart from
the single-key ones): a lock on id v is (space + v >> 31, v & 0x7FFF_FFFF), for ids below 2^47."""

FUNCTION = """
CREATE OR REPLACE FUNCTION stargate_next_id(seq regclass, space integer) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    below bigint;
BEGIN
    IF current_setting('stargate.inserting_' || space, true) IS DISTINCT FROM 'on' THEN
        below := LEAST(COALESCE(pg_sequence_last_value(seq), 0), 140737488355327);
        PERFORM pg_advisory_xact_lock_shared(space + (below >> 31)::integer, (below & 2147483647)::integer);
        PERFORM set_config('stargate.inserting_' || space, 'on', true);
    END IF;
    RETURN nextval(seq);
END
$$
"""


def upgrade() -> None:
    """Create ``stargate_next_id`` and make it the id default of ``jobs`` and ``job_events`` (PostgreSQL)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    for table, space in SPACES.items():
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT stargate_next_id('{table}_id_seq'::regclass, {space})"
        )


def downgrade() -> None:
    """Put back the plain ``nextval`` defaults and drop the function (PostgreSQL)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in SPACES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_seq'::regclass)")
    op.execute("DROP FUNCTION IF EXISTS stargate_next_id(regclass, integer)")
