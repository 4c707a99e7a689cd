"""Initial schema: teams and queues, fleet versions and plans, jobs and their events, runs, tokens.

Revision ID: 20261127_0001
Revises:
Create Date: 2026-11-27

Self-contained on purpose: a released migration never imports the models (they move on; this file does not).
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "20261127_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STATUS = sa.Enum(
    "pending", "placed", "running", "succeeded", "failed", "cancelled", name="jobstatus", native_enum=False, length=16
)


def _time(name: str, nullable: bool = False) -> "sa.Column[datetime]":
    return sa.Column(name, sa.DateTime(timezone=False), nullable=nullable)


def upgrade() -> None:
    """Create every table of the first release."""
    op.create_table(
        "teams",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_teams"),
    )
    op.create_table(
        "queues",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("team_id", sa.String(63), nullable=False),
        sa.Column("cohort", sa.String(63), nullable=True),
        sa.Column("quotas", JSON, nullable=False),
        sa.Column("priority_classes", JSON, nullable=False),
        sa.Column("default_priority_class", sa.String(63), nullable=True),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name="fk_queues_team_id_teams", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_queues"),
    )
    op.create_index("ix_queues_team_id", "queues", ["team_id"])
    op.create_table(
        "fleet_versions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("document", JSON, nullable=False),
        _time("applied_at"),
        sa.Column("applied_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fleet_versions"),
    )
    op.create_index("ix_fleet_versions_version", "fleet_versions", ["version"])
    op.create_table(
        "fleet_plans",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("base_version", sa.String(64), nullable=True),
        sa.Column("new_version", sa.String(64), nullable=False),
        sa.Column("document", JSON, nullable=False),
        sa.Column("changes", JSON, nullable=False),
        _time("created_at"),
        sa.Column("created_by", sa.String(200), nullable=False),
        _time("applied_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fleet_plans"),
    )
    _create_jobs()
    _create_job_events_and_runs()
    _create_tokens()


def _create_jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("queue_id", sa.String(63), nullable=False),
        sa.Column("team_id", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("gpu_models", JSON, nullable=False),
        sa.Column("priority_class", sa.String(63), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("preemptible", sa.Boolean(), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("progress_s", sa.Float(), nullable=False),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        _time("submitted_at"),
        _time("started_at", nullable=True),
        _time("finished_at", nullable=True),
        sa.Column("cluster", sa.String(63), nullable=True),
        sa.Column("gpu_ids", JSON, nullable=False),
        sa.Column("price_usd_per_gpu_hour", sa.Numeric(12, 6), nullable=True),
        sa.Column("contract_id", sa.String(63), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_queue_id_id", "jobs", ["queue_id", "id"])
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])
    op.create_index("ix_jobs_team_id_id", "jobs", ["team_id", "id"])


def _create_job_events_and_runs() -> None:
    op.create_table(
        "job_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", BIG_ID, nullable=False),
        _time("at"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_events_job_id_jobs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])
    op.create_table(
        "runs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", BIG_ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("cluster", sa.String(63), nullable=False),
        sa.Column("handle_key", sa.Text(), nullable=True),
        _time("created_at"),
        sa.Column("ended", sa.Boolean(), nullable=False),
        _time("ended_at", nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_runs_job_id_jobs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("job_id", "attempt", name="uq_runs_job_id_attempt"),
    )
    op.create_index("ix_runs_ended", "runs", ["ended"])
    op.create_index("ix_runs_job_id", "runs", ["job_id"])


def _create_tokens() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("team_id", sa.String(63), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("secret_sha256", name="uq_tokens_secret_sha256"),
    )
    op.create_index("ix_tokens_prefix", "tokens", ["prefix"])


def downgrade() -> None:
    """Drop every table of the first release."""
    for table in ("tokens", "runs", "job_events", "jobs", "fleet_plans", "fleet_versions", "queues", "teams"):
        op.drop_table(table)
