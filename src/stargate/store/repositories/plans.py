"""Capacity plans computed on the server: stored once computed, listed newest first, marked applied once."""

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from stargate.store.models import PlanRow, RunRow, fit_actor


def add(session: Session, row: PlanRow) -> PlanRow:
    """Record a computed plan."""
    row.created_by = fit_actor(row.created_by)
    session.add(row)
    session.flush()
    return row


def get(session: Session, plan_id: str, *, for_update: bool = False) -> PlanRow | None:
    """The plan ``plan_id``, or None; ``for_update`` locks its row until the transaction ends (PostgreSQL)."""
    query = select(PlanRow).where(PlanRow.id == plan_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def newest(session: Session, limit: int) -> Sequence[PlanRow]:
    """Up to ``limit`` plans, newest first, without their YAML and result (a listing needs neither)."""
    query = (
        select(PlanRow)
        .options(defer(PlanRow.scenario_yaml), defer(PlanRow.result))
        .order_by(PlanRow.created_at.desc(), PlanRow.id.desc())
        .limit(limit)
    )
    return session.scalars(query).all()


def mark_applied(session: Session, row: PlanRow, actor: str, now: datetime, requests: dict[str, str]) -> None:
    """Record that ``row`` was applied by ``actor`` at ``now``, raising ``requests`` (action index → request id)."""
    row.status = "applied"
    row.applied_at = now
    row.applied_by = fit_actor(actor)
    row.applied_requests = requests
    session.flush()


def count(session: Session) -> int:
    """How many plans are stored (tests check that a refused computation stored nothing)."""
    return int(session.scalar(select(func.count()).select_from(PlanRow)) or 0)


def run_spans(session: Session, gpu_model: str) -> Iterator[tuple[int, datetime, datetime | None]]:
    """(GPUs, started, ended or None while running) of every run of ``gpu_model`` that started: the ledger a demand
    series fitted to the server's history reads."""
    query = select(RunRow.gpus, RunRow.started_at, RunRow.ended_at).where(
        RunRow.gpu_model == gpu_model, RunRow.started_at.is_not(None), RunRow.gpus.is_not(None)
    )
    for gpus, start, end in session.execute(query):
        if start is not None and gpus:
            yield int(gpus), start, end
