"""Inference services: ``services`` (a service's spec, the replica count asked for and ready, its recent scale
decisions and measured traffic), ``service_replicas`` (each replica's job, state and port) and ``service_traffic``
(each server process's cumulative proxy counters per service).

Revision ID: 20261202_0007
Revises: 20261201_0006
Create Date: 2026-12-02

New tables only: an upgrade changes no stored value.

Self-contained on purpose: a released migration never imports the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "20261202_0007"
down_revision: str | None = "20261201_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    """Create the services tables."""
    op.create_table(
        "services",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("team_id", sa.String(63), nullable=False),
        sa.Column("queue_id", sa.String(63), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("desired_replicas", sa.Integer(), nullable=False),
        sa.Column("current_replicas", sa.Integer(), nullable=False),
        sa.Column("next_number", sa.Integer(), nullable=False),
        sa.Column("decisions", JSON, nullable=False),
        sa.Column("stats", JSON, nullable=False),
        sa.Column("problem", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_services"),
    )
    op.create_index("ix_services_team_id", "services", ["team_id"])
    op.create_table(
        "service_replicas",
        sa.Column("service", sa.String(63), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("job_id", BIG_ID, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["service"], ["services.name"], name="fk_service_replicas_service_services", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_service_replicas_job_id_jobs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("service", "number", name="pk_service_replicas"),
    )
    op.create_index("ix_service_replicas_job_id", "service_replicas", ["job_id"])
    op.create_table(
        "service_traffic",
        sa.Column("service", sa.String(63), nullable=False),
        sa.Column("process", sa.String(40), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("counters", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["service"], ["services.name"], name="fk_service_traffic_service_services", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("service", "process", name="pk_service_traffic"),
    )


def downgrade() -> None:
    """Drop the services tables (their replicas' jobs stay, as jobs)."""
    op.drop_table("service_traffic")
    op.drop_index("ix_service_replicas_job_id", table_name="service_replicas")
    op.drop_table("service_replicas")
    op.drop_index("ix_services_team_id", table_name="services")
    op.drop_table("services")
