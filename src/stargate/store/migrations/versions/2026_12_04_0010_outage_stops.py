"""How many of a job's latest runs in a row an outage of their cluster stopped without getting it past its last
checkpoint: the engine fails a job past the policy's ``max_outage_stops`` (``outage_limit``) instead of requeuing it
for ever.

Revision ID: 20261204_0010
Revises: 20261203_0009
Create Date: 2026-12-04

One column with a server default of 0: an upgrade writes no existing row (every job starts with a clean count).

Self-contained on purpose: a released migration never imports the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261204_0010"
down_revision: str | None = "20261203_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add jobs.outage_stops (not null, 0 by default)."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("outage_stops", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop jobs.outage_stops."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("outage_stops")
