"""SQLAlchemy 2 models of the control plane's state: jobs and their events, runs, tokens, the fleet, procurement,
capacity plans, the clusters' observed health, simulations asked through the API.

Times are stored as UTC (naive in the database, aware in Python); money is ``Numeric``; free-form documents are
JSON. The schema is created by the Alembic migrations in ``stargate/store/migrations``, never by ``create_all``
outside tests.
"""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from stargate.domain.reasons import JobReason
from stargate.store.status import JobStatus

ACTOR_MAX = 200
"""Longest text of a column that says who acted (``jobs.submitted_by``, ``job_events.actor``, ``applied_by``,
``created_by``, ``revoked_by``), characters."""


def fit_actor(actor: str) -> str:
    """``actor`` as stored in an actor column: unchanged when it fits :data:`ACTOR_MAX`, else cut to
    ``ACTOR_MAX - 1`` characters and ``…`` (the one rule every writer of such a column follows)."""
    return actor if len(actor) <= ACTOR_MAX else actor[: ACTOR_MAX - 1] + "…"


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
"""JSON on SQLite, JSONB on PostgreSQL."""

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit integer key (SQLite's rowid alias must be declared INTEGER to autoincrement)."""


StatusType = Enum(
    JobStatus,
    native_enum=False,
    length=16,
    create_constraint=False,
    values_callable=lambda members: [m.value for m in members],
)
"""A job status stored as its lowercase value in a VARCHAR(16)."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned as an aware UTC ``datetime``."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware time to naive UTC; refuse naive input (its zone would be a guess)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: expected a timezone-aware time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to the stored naive time."""
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations and models name constraints alike."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TeamRow(Base):
    """A team, copied from the applied fleet."""

    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


class QueueRow(Base):
    """A queue, copied from the applied fleet (quotas and priority classes as JSON)."""

    __tablename__ = "queues"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    cohort: Mapped[str | None] = mapped_column(String(63))
    quotas: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    priority_classes: Mapped[list[str]] = mapped_column(JsonType, default=list)
    default_priority_class: Mapped[str | None] = mapped_column(String(63))


class FleetVersionRow(Base):
    """One applied fleet document; the row with the highest id is the current fleet."""

    __tablename__ = "fleet_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), index=True)
    document: Mapped[dict[str, Any]] = mapped_column(JsonType)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())
    applied_by: Mapped[str] = mapped_column(String(ACTOR_MAX))


class FleetPlanRow(Base):
    """A previewed fleet change; applying it is refused when the fleet moved past ``base_version``."""

    __tablename__ = "fleet_plans"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    base_version: Mapped[str | None] = mapped_column(String(64))
    new_version: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JsonType)
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(ACTOR_MAX))
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobRow(Base):
    """A submitted job and where it stands.

    ``status`` must be changed only through :func:`stargate.store.transitions.transition`, which also writes the
    event row in the same transaction.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_team_id_id", "team_id", "id"),
        Index("ix_jobs_queue_id_id", "queue_id", "id"),
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_wait_reason", "wait_reason"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    queue_id: Mapped[str] = mapped_column(String(63))
    team_id: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))
    gpus: Mapped[int] = mapped_column(Integer)
    gpu_models: Mapped[list[str]] = mapped_column(JsonType, default=list)
    priority_class: Mapped[str] = mapped_column(String(63))
    priority: Mapped[int] = mapped_column(Integer)
    preemptible: Mapped[bool] = mapped_column(Boolean)
    spec: Mapped[dict[str, Any]] = mapped_column(JsonType)
    status: Mapped[JobStatus] = mapped_column(StatusType, default=JobStatus.PENDING)
    reason: Mapped[str] = mapped_column(Text, default=JobReason.SUBMITTED.value)
    """The code of the last status change: a :class:`~stargate.domain.reasons.JobReason` value (read it with
    :func:`~stargate.domain.reasons.read_reason`: a row written by a newer server may hold a code this one lacks)."""
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")
    """The free text of the last status change (where it was placed, the exit code, the executor's error)."""
    wait_reason: Mapped[str | None] = mapped_column(String(32))
    """While pending: why it waits, as the scheduler's last cycle judged it (a
    :class:`~stargate.domain.reasons.WaitReason` value); None when no cycle has judged it, and once it left pending."""
    wait_detail: Mapped[str | None] = mapped_column(Text)
    """The detail of ``wait_reason`` (the GPU model and numbers of a quota, the largest free block, the clusters)."""
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    progress_s: Mapped[float] = mapped_column(Float, default=0.0)
    outage_stops: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Its latest runs in a row that an outage of their cluster stopped without getting it past its last checkpoint
    (the engine fails the job past the policy's ``max_outage_stops``: see :mod:`stargate.engine.interruptions`)."""
    submitted_by: Mapped[str] = mapped_column(String(ACTOR_MAX))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cluster: Mapped[str | None] = mapped_column(String(63))
    gpu_ids: Mapped[list[int]] = mapped_column(JsonType, default=list)
    price_usd_per_gpu_hour: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    contract_id: Mapped[str | None] = mapped_column(String(63))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    """``<token id>:<Idempotency-Key header>``: a retried submission with the same key finds this job."""
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the submitted spec, to refuse a different body sent with the same idempotency key (409)."""

    @property
    def public_id(self) -> str:
        """The job's URL-safe id, e.g. ``j-000123``."""
        return format_job_id(self.id)


class JobEventRow(Base):
    """One status change of a job: who, when, from, to, why (a reason code and its detail)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(ACTOR_MAX))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    """A :class:`~stargate.domain.reasons.JobReason` value (see :attr:`JobRow.reason`)."""
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")


class RunRow(Base):
    """One attempt of a job handed to an executor; ``handle_key`` is null until the executor accepted it."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("job_id", "attempt"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    executor: Mapped[str] = mapped_column(String(64))
    """The id of the executor it was handed to (``local``, ``slurm-east``, ...)."""
    cluster: Mapped[str] = mapped_column(String(63))
    handle_key: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    exit_code: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    start_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many times the executor refused or failed to start this run (bounded: the attempt then fails)."""
    gpus: Mapped[int | None] = mapped_column(Integer)
    """GPUs the run holds (null: a run written before costs were recorded)."""
    price_usd_per_gpu_hour: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    """What the run is charged, USD per GPU-hour (the engine's charged price when it was placed)."""
    list_price_usd_per_gpu_hour: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    """The cluster's list price when it was placed, USD per GPU-hour."""
    contract: Mapped[str | None] = mapped_column(String(63))
    """The contract it runs under (null: none, list price)."""
    provider: Mapped[str | None] = mapped_column(String(63))
    gpu_model: Mapped[str | None] = mapped_column(String(63))
    region: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the executor accepted it (its charges run from here to ``ended_at``, or to now while it runs)."""


class TokenRow(Base):
    """An API token. The secret is never stored: only ``secret_hash``, a SHA-256 keyed with the row's random
    ``salt``; the wire form ``sgt_<id>_<secret>`` carries the non-secret ``id`` that finds the row."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[str | None] = mapped_column(String(63))
    role: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str | None] = mapped_column(String(63))
    """The provider a ``provider`` token speaks for (it answers that provider's offers); null for other roles."""
    salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(ACTOR_MAX), default="", server_default="")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(ACTOR_MAX))


class InstallationRow(Base):
    """This database's installation id: a random UUID written once, by the migration that made the table.

    Executors key what they keep outside the database by it (the local executor's ``runs/<id>/`` and ``work/<id>/``),
    so a new database over an existing state directory never takes another database's runs for its own."""

    __tablename__ = "installation"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


MONEY = Numeric(22, 6)
"""An amount in USD with 6 decimal places, up to 10^16 (PostgreSQL keeps it exact; SQLite as a 64-bit float, about
15 significant digits)."""
PRICE = Numeric(12, 6)
"""A price in USD per GPU-hour with 6 decimal places."""


class CapacityRequestRow(Base):
    """A request for new capacity (raised by the queue pressure gauge, a plan or a user) and where it stands."""

    __tablename__ = "capacity_requests"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    gpu_model: Mapped[str] = mapped_column(String(63))
    gpus: Mapped[int] = mapped_column(Integer)
    start: Mapped[date] = mapped_column(Date)
    term_days: Mapped[int] = mapped_column(Integer)
    raised_by: Mapped[str] = mapped_column(String(16))
    """``pressure``, ``plan`` or ``user``."""
    actor: Mapped[str] = mapped_column(String(ACTOR_MAX))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), index=True)
    """offered, market, awarded, over_budget, unfilled or cancelled."""


class ProcurementOfferRow(Base):
    """An offer of a request to the holder of a right of first refusal, and its answer."""

    __tablename__ = "procurement_offers"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("capacity_requests.id", ondelete="CASCADE"), index=True)
    holder: Mapped[str] = mapped_column(String(63), index=True)
    contract_id: Mapped[str] = mapped_column(String(63))
    match_rule: Mapped[str] = mapped_column(String(32))
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    benchmark_price: Mapped[Decimal | None] = mapped_column(PRICE)
    benchmark_start: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))
    """open, matched, declined, expired or not_matched."""
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_by: Mapped[str | None] = mapped_column(String(ACTOR_MAX))
    price: Mapped[Decimal | None] = mapped_column(PRICE)
    start: Mapped[date | None] = mapped_column(Date)


class ProcurementQuoteRow(Base):
    """A market quote entered through the API (the fleet's price book is read from the fleet in force)."""

    __tablename__ = "procurement_quotes"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    provider: Mapped[str] = mapped_column(String(63))
    site: Mapped[str] = mapped_column(String(63))
    gpu_model: Mapped[str] = mapped_column(String(63))
    gpus_per_node: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(PRICE)
    max_gpus: Mapped[int | None] = mapped_column(Integer)
    lead_time_days: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())
    added_by: Mapped[str] = mapped_column(String(ACTOR_MAX))


class ProcurementAwardRow(Base):
    """Capacity awarded for a request (to the holder or on the market); ``fleet_version`` is the fleet version that
    added its contract and cluster."""

    __tablename__ = "procurement_awards"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("capacity_requests.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(String(63))
    site: Mapped[str] = mapped_column(String(63))
    gpu_model: Mapped[str] = mapped_column(String(63))
    gpus: Mapped[int] = mapped_column(Integer)
    gpus_per_node: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(PRICE)
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date] = mapped_column(Date)
    cost_usd: Mapped[Decimal] = mapped_column(MONEY)
    via: Mapped[str] = mapped_column(String(16))
    """``holder`` or ``market``."""
    quote_id: Mapped[str | None] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    override_reason: Mapped[str | None] = mapped_column(Text)
    override_by: Mapped[str | None] = mapped_column(String(ACTOR_MAX))
    fleet_version: Mapped[str | None] = mapped_column(String(64))


class ProcurementEventRow(Base):
    """One step of procurement (raised, offered, matched, declined, expired, awarded, overridden, ...): who, when,
    why. Append-only."""

    __tablename__ = "procurement_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    request_id: Mapped[str] = mapped_column(String(63), index=True)
    offer_id: Mapped[str | None] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(ACTOR_MAX))
    reason: Mapped[str] = mapped_column(Text, default="")


class PlanRow(Base):
    """A capacity plan computed on the server: the scenario (its YAML), the fleet version it was computed on, the
    result (:func:`stargate.planning.run.run_to_dict`) and, once applied, who applied it and the capacity request
    each applied action raised (``{"<action index>": "<request id>"}``)."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_by: Mapped[str] = mapped_column(String(ACTOR_MAX))
    fleet_version: Mapped[str] = mapped_column(String(64))
    scenario: Mapped[str] = mapped_column(String(200))
    scenario_yaml: Mapped[str] = mapped_column(Text)
    scenarios: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    """``computed`` or ``applied``."""
    result: Mapped[dict[str, Any]] = mapped_column(JsonType)
    first_shortfall_month: Mapped[str | None] = mapped_column(String(7))
    """``YYYY-MM`` of the plan's first month with unmet demand (null: none); kept apart for listings."""
    unmet_gpu_hours: Mapped[float] = mapped_column(Float)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    applied_by: Mapped[str | None] = mapped_column(String(ACTOR_MAX))
    applied_requests: Mapped[dict[str, str] | None] = mapped_column(JsonType)


class ClusterHealthRow(Base):
    """A cluster's status as the health step last observed it through its executor (``up``, ``degraded`` or
    ``down``), why, and since when; the scheduler takes the worse of this and the fleet's declared status."""

    __tablename__ = "cluster_health"

    cluster: Mapped[str] = mapped_column(String(63), primary_key=True)
    executor: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    since: Mapped[datetime] = mapped_column(UTCDateTime())


class ClusterEventRow(Base):
    """One change of a cluster's observed status: when, which executor saw it, from, to, why. Append-only."""

    __tablename__ = "cluster_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    cluster: Mapped[str] = mapped_column(String(63), index=True)
    executor: Mapped[str] = mapped_column(String(64))
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")


class SimulationRow(Base):
    """A what-if simulation asked through the API: what was asked (``request``), where it stands (``status``:
    queued, running, succeeded, failed, cancelled; ``progress`` 0 to 1), the summary once it succeeded, the error
    once it failed, and the server process that runs it (``runner``: its queue is in that process's memory)."""

    __tablename__ = "simulations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_by: Mapped[str] = mapped_column(String(ACTOR_MAX))
    runner: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float)
    request: Mapped[dict[str, Any]] = mapped_column(JsonType)
    result: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


JOB_ID_PREFIX = "j-"


def format_job_id(number: int) -> str:
    """The public id of job row ``number``: ``j-`` and at least six digits."""
    return f"{JOB_ID_PREFIX}{number:06d}"


def parse_job_id(public_id: str) -> int | None:
    """The row id inside a public job id, or None when ``public_id`` is not one."""
    digits = public_id.removeprefix(JOB_ID_PREFIX)
    if public_id == digits or not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        return None
    return int(digits)
