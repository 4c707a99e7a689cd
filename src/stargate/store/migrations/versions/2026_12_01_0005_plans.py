"""Capacity plans: a scenario computed against the fleet in force (its YAML, the Monte Carlo settings and the
result as JSON), and when and by whom it was applied (the capacity requests it raised, by action index).

Revision ID: 20261201_0005
Revises: 20261130_0004
Create Date: 2026-12-01

A new table only: an upgrade touches no existing row.

Self-contained on purpose: a released migration never imports the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "20261201_0005"
down_revision: str | None = "20261130_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
ACTOR = sa.String(200)


def upgrade() -> None:
    """Create the plans table."""
    op.create_table(
        "plans",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("created_by", ACTOR, nullable=False),
        sa.Column("fleet_version", sa.String(64), nullable=False),
        sa.Column("scenario", sa.String(200), nullable=False),
        sa.Column("scenario_yaml", sa.Text(), nullable=False),
        sa.Column("scenarios", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("first_shortfall_month", sa.String(7), nullable=True),
        sa.Column("unmet_gpu_hours", sa.Float(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("applied_by", ACTOR, nullable=True),
        sa.Column("applied_requests", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_plans"),
    )
    op.create_index("ix_plans_created_at", "plans", ["created_at"])


def downgrade() -> None:
    """Drop the plans table."""
    op.drop_index("ix_plans_created_at", table_name="plans")
    op.drop_table("plans")
