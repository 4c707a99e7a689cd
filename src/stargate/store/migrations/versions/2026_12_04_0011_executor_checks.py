"""The failing streak of each executor whose engine's health checks fail now (``executor_checks``: since when, how
many checks in a row, the last error, when the last one was made, whether the engine did not answer): the API and
every server read it, and a new scheduler leader counts ``health.down_after_s`` from the streak's first failure.

Revision ID: 20261204_0011
Revises: 20261204_0010
Create Date: 2026-12-04

A new table: an upgrade writes no row (a streak under way is counted again from the first check after it, as
before), and a downgrade drops the table with the streaks it holds.

Self-contained on purpose: a released migration never imports the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_0011"
down_revision: str | None = "20261204_0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``executor_checks``."""
    op.create_table(
        "executor_checks",
        sa.Column("executor", sa.String(64), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=False), nullable=False),
        sa.Column("failed_checks", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        sa.Column("checked_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("unreachable", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("executor", name="pk_executor_checks"),
    )


def downgrade() -> None:
    """Drop ``executor_checks``."""
    op.drop_table("executor_checks")
