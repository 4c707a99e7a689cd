"""Simulations asked through the API: what was asked (JSON), where the run stands (status, progress 0 to 1), its
summary once done (the JSON ``stargate simulate --json`` prints) or its error, and the server process running it.

Revision ID: 20261203_0008
Revises: 20261202_0007
Create Date: 2026-12-03

A new table only: an upgrade touches no existing row.

Self-contained on purpose: a released migration never imports the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "20261203_0008"
down_revision: str | None = "20261202_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    """Create the simulations table."""
    op.create_table(
        "simulations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("runner", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("request", JSON, nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=False), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_simulations"),
    )
    op.create_index("ix_simulations_created_at", "simulations", ["created_at"])
    op.create_index("ix_simulations_runner", "simulations", ["runner"])


def downgrade() -> None:
    """Drop the simulations table."""
    op.drop_index("ix_simulations_runner", table_name="simulations")
    op.drop_index("ix_simulations_created_at", table_name="simulations")
    op.drop_table("simulations")
