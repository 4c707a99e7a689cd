"""Engine health: each cluster's observed status (``cluster_health``, one row per cluster the health step has seen
change) and the log of its changes (``cluster_events``); ``runs.executor`` widened to 64 characters, since it holds
an executor id (up to 63 characters) rather than a kind.

Revision ID: 20261201_0006
Revises: 20261201_0005
Create Date: 2026-12-01

New tables and a wider column: an upgrade changes no stored value. On SQLite the widening rebuilds ``runs`` (batch
mode copies every row; no table references ``runs``).

Self-contained on purpose: a released migration never imports the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201_0006"
down_revision: str | None = "20261201_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the health tables and widen ``runs.executor``."""
    op.create_table(
        "cluster_health",
        sa.Column("cluster", sa.String(63), nullable=False),
        sa.Column("executor", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("since", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("cluster", name="pk_cluster_health"),
    )
    op.create_table(
        "cluster_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("cluster", sa.String(63), nullable=False),
        sa.Column("executor", sa.String(64), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_cluster_events"),
    )
    op.create_index("ix_cluster_events_cluster", "cluster_events", ["cluster"])
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("executor", existing_type=sa.String(32), type_=sa.String(64), existing_nullable=False)


def downgrade() -> None:
    """Drop the health tables; ``runs.executor`` back to 32 characters (longer executor ids are cut)."""
    runs = sa.table("runs", sa.column("executor", sa.String(64)))
    cut = sa.func.substr(runs.c.executor, 1, 32)
    op.execute(runs.update().where(sa.func.length(runs.c.executor) > 32).values(executor=cut))
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("executor", existing_type=sa.String(64), type_=sa.String(32), existing_nullable=False)
    op.drop_index("ix_cluster_events_cluster", table_name="cluster_events")
    op.drop_table("cluster_events")
    op.drop_table("cluster_health")
