"""What runs cost: each run that started, with its job's queue and team, GPUs, prices, contract and provider."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from stargate.store.models import JobRow, RunRow, format_job_id


@dataclass(frozen=True, slots=True)
class RunCost:
    """One run that started (``started_at`` set) as the costs need it; ``ended_at`` None while it runs."""

    run_id: str
    """``j-000123/1``: the job and its attempt."""
    job_id: str
    queue: str
    team: str
    provider: str
    contract: str | None
    cluster: str
    region: str
    gpu_model: str
    gpus: int
    started_at: datetime
    ended_at: datetime | None
    price: Decimal
    list_price: Decimal


def runs(
    session: Session,
    *,
    team: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    under_contract: bool = False,
) -> Iterator[RunCost]:
    """Every run that started and was priced (runs recorded before costs were kept are left out), oldest first;
    ``team``: of that team's jobs only; ``since``/``until``: only runs that held GPUs at some time in between;
    ``under_contract``: only runs under a contract."""
    query = (
        select(
            RunRow.job_id,
            RunRow.attempt,
            JobRow.queue_id,
            JobRow.team_id,
            RunRow.provider,
            RunRow.contract,
            RunRow.cluster,
            RunRow.region,
            RunRow.gpu_model,
            RunRow.gpus,
            RunRow.started_at,
            RunRow.ended_at,
            RunRow.price_usd_per_gpu_hour,
            RunRow.list_price_usd_per_gpu_hour,
        )
        .join(JobRow, JobRow.id == RunRow.job_id)
        .where(RunRow.started_at.is_not(None), RunRow.gpus.is_not(None), RunRow.price_usd_per_gpu_hour.is_not(None))
        .order_by(RunRow.started_at, RunRow.id)
    )
    if team is not None:
        query = query.where(JobRow.team_id == team)
    if under_contract:
        query = query.where(RunRow.contract.is_not(None))
    if since is not None:
        query = query.where(RunRow.ended_at.is_(None) | (RunRow.ended_at > since))
    if until is not None:
        query = query.where(RunRow.started_at < until)
    for (
        job,
        attempt,
        queue,
        team_id,
        provider,
        contract,
        cluster,
        region,
        model,
        gpus,
        start,
        end,
        price,
        lp,
    ) in session.execute(query):
        yield RunCost(
            run_id=f"{format_job_id(job)}/{attempt}",
            job_id=format_job_id(job),
            queue=queue,
            team=team_id,
            provider=provider or "",
            contract=contract,
            cluster=cluster,
            region=region or "",
            gpu_model=model or "",
            gpus=gpus or 0,
            started_at=start,
            ended_at=end,
            price=Decimal(price),
            list_price=Decimal(lp if lp is not None else price),
        )


def ended_by_contract(session: Session, contracts: Sequence[str]) -> Iterator[tuple[str, Decimal, int, float]]:
    """(contract, price, GPUs, seconds held) of every run under one of ``contracts`` that started and ended."""
    if not contracts:
        return
    query = select(
        RunRow.contract, RunRow.price_usd_per_gpu_hour, RunRow.gpus, RunRow.started_at, RunRow.ended_at
    ).where(
        RunRow.contract.in_(list(contracts)),
        RunRow.started_at.is_not(None),
        RunRow.ended_at.is_not(None),
        RunRow.gpus.is_not(None),
        RunRow.price_usd_per_gpu_hour.is_not(None),
    )
    for contract, price, gpus, start, end in session.execute(query):
        if start is not None and end is not None and price is not None:
            yield contract or "", Decimal(price), gpus or 0, max((end - start).total_seconds(), 0.0)
