"""Costs: the ledger of the runs the caller may see (members and viewers: their team's; admins: all), grouped, as
a FOCUS export, or reconciled with a provider's bill.

Each run that started is charged from ``started_at`` to ``ended_at`` (a run still running: to now) at the price it
was placed with, by the engine's :class:`~stargate.engine.ledger.Ledger` (exact to the micro-dollar, split at UTC
midnights).
"""

import io
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import IO, cast

from sqlalchemy.orm import Session

from stargate.costs import BillError, read_bill, reconcile, write_focus
from stargate.engine.ledger import Ledger, RawItem, RunCharge, day_of
from stargate.server.auth import Principal
from stargate.server.errors import ForbiddenError, InvalidError
from stargate.server.schemas_money import CostRow, CostsOut
from stargate.store.repositories import costs as cost_repo

BY_KEYS = ("team", "contract", "provider", "day", "queue", "job")
"""What ``GET /costs?by=`` groups by."""
NO_CONTRACT = "(none)"
"""The key of runs under no contract (list price) in a grouping by contract."""


def team_of(who: Principal) -> str | None:
    """The only team whose costs ``who`` may see (None: every team, for an admin); 403 for a provider token."""
    who.require_not_provider()
    if who.is_admin:
        return None
    if who.team is None:
        raise ForbiddenError(f"token '{who.name}' has no team, so it may see no costs")
    return who.team


def ledger(
    session: Session,
    now: datetime,
    team: str | None,
    since: date | None,
    until: date | None,
    *,
    under_contract: bool = False,
    clip: bool = False,
) -> Ledger:
    """The ledger of the runs of ``team`` (None: all) that held GPUs between ``since`` and ``until`` (whole UTC days,
    inclusive; ``under_contract``: only runs under a contract); a run still running is charged up to ``now``.
    ``clip``: each run cut at the window's bounds (its line items inside the window only; each within a micro-dollar
    of the whole run's item for that day, as the ledger rounds a run's days cumulatively)."""
    start = None if since is None else datetime.combine(since, time(), UTC)
    end = None if until is None else datetime.combine(until + timedelta(days=1), time(), UTC)
    charges = []
    for run in cost_repo.runs(session, team=team, since=start, until=end, under_contract=under_contract):
        # never before its start: a run ended by a server whose clock ran behind the one that started it costs 0
        began, ended = run.started_at, max(run.ended_at if run.ended_at is not None else now, run.started_at)
        if clip:
            began = began if start is None else min(max(began, start), ended)
            ended = ended if end is None else max(min(ended, end), began)
        charges.append(
            RunCharge(
                run_id=run.run_id,
                job_id=run.job_id,
                queue=run.queue,
                team=run.team,
                provider=run.provider,
                contract=run.contract,
                cluster=run.cluster,
                region=run.region,
                gpu_model=run.gpu_model,
                gpus=run.gpus,
                start=began,
                end=ended,
                price=run.price,
                list_price=run.list_price,
            )
        )
    return Ledger(charges)


EPOCH_DAY = date(1970, 1, 1)
"""Day 0 of the ledger's raw line items."""


def _days(since: date | None, until: date | None) -> tuple[int | None, int | None]:
    """``since``..``until`` as the ledger's day numbers (days since 1970-01-01; None: open)."""
    lo = None if since is None else (since - EPOCH_DAY).days
    return lo, None if until is None else (until - EPOCH_DAY).days


def _key(by: str) -> Callable[[RawItem], object]:
    """The grouping key of a raw line item (its day number when grouping by day: named once per day)."""
    if by == "day":
        return lambda item: item[1]
    if by == "contract":
        return lambda item: item[0].contract or NO_CONTRACT
    attr = {"job": "job_id", "team": "team", "provider": "provider", "queue": "queue"}[by]
    return lambda item: getattr(item[0], attr)


def check_window(since: date | None, until: date | None) -> None:
    """422 when ``since`` is after ``until``."""
    if since is not None and until is not None and since > until:
        raise InvalidError(f"until: found {until.isoformat()}, expected a day on or after since ({since.isoformat()})")


def costs(
    session: Session, who: Principal, by: str, now: datetime, since: date | None = None, until: date | None = None
) -> CostsOut:
    """The costs the caller may see, grouped ``by`` (one of :data:`BY_KEYS`), within ``since``..``until``."""
    if by not in BY_KEYS:
        raise InvalidError(f"by: found '{by[:40]}', expected one of {', '.join(BY_KEYS)}")
    check_window(since, until)
    team = team_of(who)
    book = ledger(session, now, team, since, until)
    key, (lo, hi) = _key(by), _days(since, until)
    micro: dict[object, list[int]] = {}  # key → [micro-USD, micro-GPU-hours]
    for item in book.raw_items():
        if (lo is not None and item[1] < lo) or (hi is not None and item[1] > hi):
            continue
        sums = micro.setdefault(key(item), [0, 0])
        sums[0] += item[5]
        sums[1] += item[4]
    named = {(day_of(cast(int, k)).isoformat() if by == "day" else str(k)): v for k, v in micro.items()}
    cost = {k: Decimal(v[0]).scaleb(-6) for k, v in named.items()}
    hours = {k: Decimal(v[1]).scaleb(-6) for k, v in named.items()}
    rows = [CostRow(key=k, cost_usd=cost[k], gpu_hours=hours[k]) for k in sorted(cost, key=lambda k: (-cost[k], k))]
    return CostsOut(
        by=by,
        team=team,
        since=since,
        until=until,
        as_of=now,
        total_usd=sum(cost.values(), Decimal(0)),
        gpu_hours=sum(hours.values(), Decimal(0)),
        rows=rows,
    )


def spent_by_contract(session: Session, now: datetime) -> dict[str, Decimal]:
    """What runs under each contract have cost so far, USD, by contract id (runs still running: up to ``now``)."""
    return {k: v for k, v in ledger(session, now, None, None, None, under_contract=True).by("contract").items() if k}


SPOOL_BYTES = 8 * 1024 * 1024
"""A FOCUS export is kept in memory up to this size, then in a temporary file, while it streams out, bytes."""


def focus_export(
    session: Session, who: Principal, now: datetime, since: date | None, until: date | None, account: str
) -> IO[bytes]:
    """The FOCUS 1.0 CSV of the ledger the caller may see (from :func:`stargate.costs.write_focus`), in a spooled
    file rewound to its start; ``account`` fills BillingAccountId."""
    check_window(since, until)
    book = ledger(session, now, team_of(who), since, until, clip=True)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by the response)
    text = io.TextIOWrapper(spool, encoding="utf-8", newline="")
    write_focus(book, text, account)
    text.flush()
    text.detach()
    spool.seek(0)
    return spool


def reconcile_bill(session: Session, who: Principal, now: datetime, data: bytes) -> dict[str, object]:
    """A provider's FOCUS bill (CSV bytes) compared with the ledger (admin): every charge missing from the bill,
    extra in it, or off by more than 0.01 USD; 422 naming the line and column of a bill that cannot be read."""
    who.require_admin()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidError(
            f"body:{line}: found a byte that is not UTF-8 ({data[exc.start]:#04x}), expected CSV text"
        ) from None
    try:
        rows = read_bill(io.StringIO(text, newline=""), name="body")
    except BillError as exc:
        raise InvalidError(str(exc)) from None
    result = reconcile(ledger(session, now, None, None, None), rows)
    return result.as_dict() | {"text": result.to_text()}
