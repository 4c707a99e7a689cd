"""How far an oldest-first page may go on PostgreSQL without passing a row that is still to commit.

Ids come from a sequence, and a transaction may take its id before another's and commit after it: a cursor past the
later id would skip the earlier one for ever. So a transaction's first insert into ``jobs`` or ``job_events`` takes
a shared advisory lock (the table's space, the sequence's last value: below any id it takes) before its id, held
until it ends (the id default ``stargate_next_id`` of migration 20261205_0012).

A reader reads the sequence's last value H, then the lowest such lock M, then the page, each in its own statement
(under READ COMMITTED each has a new snapshot). Every id at most H was taken before H was read, so its transaction
either still holds a lock below that id (then M is below it) or has ended (then the page's snapshot, taken after,
sees its rows). A page keeps the ids at most H and at most M.

The locks are the database's: another Stargate in another schema of the same database only makes the pages wait
for its transactions too. SQLite needs none of it: its writers take turns, so ids commit in their order.
"""

from typing import Protocol, TypeVar

from sqlalchemy import text
from sqlalchemy.orm import Session

SPACES = {"jobs": 1397227520, "job_events": 1397293056}
"""The lowest first key of each table's advisory locks (as in migration 20261205_0012): a lock on id v is
(space + v >> 31, v & 0x7FFF_FFFF), for ids below 2^47."""
R = TypeVar("R", bound="Row")


def settled_through(session: Session, table: str) -> int | None:
    """The highest id of ``table`` an oldest-first page may show now (every row at or below it that will ever be
    stored is visible to the next statement); None: no limit (SQLite)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    isolation, last = session.execute(
        text("SELECT current_setting('transaction_isolation'), pg_sequence_last_value(CAST(:seq AS regclass))"),
        {"seq": f"{table}_id_seq"},
    ).one()
    if isolation != "read committed":  # one snapshot for the whole transaction: the reads prove nothing
        raise RuntimeError(f"an oldest-first page needs a READ COMMITTED transaction, not {isolation}")
    lowest = session.execute(
        text(
            "SELECT min(((classid::text::bigint - :space) << 31) | objid::text::bigint) FROM pg_locks "
            "WHERE locktype = 'advisory' AND objsubid = 2 AND classid::text::bigint BETWEEN :space AND :space + 65535 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"space": SPACES[table]},
    ).scalar()
    through = int(last or 0)
    return through if lowest is None else min(through, int(lowest))


class Row(Protocol):
    """A row with an integer id."""

    id: int


def cut(rows: list[R], limit: int, through: int | None) -> tuple[list[R], int | None]:
    """``rows`` (up to ``limit`` + 1, oldest first) as a page: at most ``limit`` of them, none above ``through``;
    and the cursor of the next page (the last id kept, when rows were left out and one was kept; else None)."""
    kept = [r for r in rows if through is None or r.id <= through][:limit]
    return kept, (kept[-1].id if len(kept) < len(rows) and kept else None)
