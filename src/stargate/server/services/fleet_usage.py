"""The fleet's use over a window (``GET /api/v1/fleet/usage``): the window checked, the runs read in one query, the
samples computed by :mod:`stargate.engine.usage`.

Fleet-level figures: every role but ``provider`` sees the same answer (GPU counts are not team data), as the other
fleet reads.
"""

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from stargate.domain import Fleet
from stargate.engine import usage
from stargate.fleetfile.describe import found_text
from stargate.server.errors import InvalidError
from stargate.server.schemas_usage import DEFAULT_WINDOW_H, MAX_WINDOW_DAYS, BuildingOut, FleetUsage
from stargate.store.repositories import usage as usage_repo


def _iso(at: datetime) -> str:
    """``at`` in UTC with a ``Z``, as the API writes times."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc(at: datetime, where: str) -> datetime:
    """``at`` (aware) in UTC; 422 when UTC cannot hold it (a time within hours of year 1 or 9999 in another zone)."""
    try:
        return at.astimezone(UTC)
    except OverflowError:
        raise InvalidError(
            f"{where}: found {found_text(at.isoformat())}, expected a time from 0001-01-01 to 9999-12-31 in UTC"
        ) from None


def window(since: datetime | None, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The window asked for, in UTC: ``until`` defaults to ``now``, ``since`` to 24 h before ``until``; 422 located
    at the parameter given when ``until`` is not after ``since`` or the window is over 366 days."""
    end = now.astimezone(UTC) if until is None else _utc(until, "query.until")
    if since is None:
        try:
            start = end - timedelta(hours=DEFAULT_WINDOW_H)
        except OverflowError:
            raise InvalidError(
                f"query.until: found {found_text(_iso(end))}, expected a time at least {DEFAULT_WINDOW_H} h after "
                f"0001-01-01T00:00:00Z (without since, the window is the {DEFAULT_WINDOW_H} h before until)"
            ) from None
    else:
        start = _utc(since, "query.since")
    if end <= start:
        if until is not None:
            raise InvalidError(
                f"query.until: found {found_text(_iso(end))}, expected a time after since ({_iso(start)})"
            )
        raise InvalidError(
            f"query.since: found {found_text(_iso(start))}, expected a time before until (now, {_iso(end)})"
        )
    if end - start > timedelta(days=MAX_WINDOW_DAYS):
        days = (end - start) / timedelta(days=1)
        raise InvalidError(
            f"query.since: found {found_text(_iso(start))}, {days:,.1f} days before until ({_iso(end)}), expected "
            f"a window of at most {MAX_WINDOW_DAYS} days"
        )
    return start, end


def fleet_usage(
    session: Session,
    version: str,
    fleet: Fleet,
    since: datetime | None,
    until: datetime | None,
    points: int,
    now: datetime,
) -> FleetUsage:
    """GPUs held per cluster and IT power energised per site at ``points`` instants over the window asked for, and
    the fleet's buildings by the day their power counts from."""
    start, end = window(since, until, now)
    at = usage.sample_instants(start, end, points)
    runs = usage_repo.held_between(session, start, end)
    clusters = [c.id for c in fleet.clusters]
    buildings = sorted(fleet.buildings, key=lambda b: (b.energized_on(), b.id))
    return FleetUsage(
        version=version,
        since=start,
        until=end,
        now=now.astimezone(UTC),
        step_s=usage.step_seconds(start, end, points),
        at=at,
        gpus_in_use=usage.gpus_held(runs, at, clusters, now),
        gpus_total={c.id: c.gpus for c in fleet.clusters},
        energised_mw=usage.energised_mw(fleet, at),
        buildout=[
            BuildingOut(
                building=b.id,
                site=b.site,
                it_power_mw=b.it_power_mw,
                gpus=b.gpus,
                energised_on=b.energized_on(),
                actual=b.actual_energization is not None,
            )
            for b in buildings
        ],
    )
