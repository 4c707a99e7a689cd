"""GPUs held over time: every run that held GPUs in a window, with the cluster, how many and from when to when."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, case, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from stargate.store.models import JobRow, RunRow

HeldRun = tuple[str, int, int, int | None]
"""(cluster id, GPUs, from, to): times in whole microseconds since 1970-01-01T00:00Z; ``to`` None while held."""

_EPOCH = datetime(1970, 1, 1)  # naive UTC, as the columns store times
_US = timedelta(microseconds=1)


def _micros(value: Any) -> int:
    """A time column read raw (SQLite: ISO text; PostgreSQL: a naive datetime; both UTC) as microseconds since
    1970: no time zone attached, no aware datetime made (several times cheaper per value, exact)."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (when - _EPOCH) // _US


def held_between(session: Session, since: datetime, until: datetime) -> list[HeldRun]:
    """Every run that held GPUs at some instant from ``since`` to ``until`` (both included), in one query.

    A run holds its GPUs from when it was placed (``runs.created_at``) until it ended (``ended_at``: its executor
    reported it over) or its job finished (``jobs.finished_at``: cancelled, failed or succeeded), whichever comes
    first; ``to`` is None while neither happened (the run is placed or running). GPUs: the run's, else (a run
    written before runs recorded them) its job's. The times come raw and the earlier end is taken in SQL: 10,000
    runs cost a few milliseconds more than the query, not tens (see bench/fleet_usage.py).
    """
    ended, finished = RunRow.ended_at, JobRow.finished_at
    end = case(
        (ended.is_(None), finished),
        (finished.is_(None), ended),
        (finished < ended, finished),
        else_=ended,
    )
    query = (
        select(
            RunRow.cluster,
            func.coalesce(RunRow.gpus, JobRow.gpus),
            type_coerce(RunRow.created_at, Text),
            type_coerce(end, Text),
        )
        .join(JobRow, JobRow.id == RunRow.job_id)
        .where(
            RunRow.created_at <= until,
            or_(ended.is_(None), ended > since),
            or_(finished.is_(None), finished > since),
        )
    )
    return [
        (cluster, gpus or 0, _micros(start), None if stop is None else _micros(stop))
        for cluster, gpus, start, stop in session.execute(query)
    ]
