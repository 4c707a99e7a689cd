"""Why a pending job waits, as the scheduler's last cycle judged it: a wait reason code (``quota``, ``capacity``,
``power``, ``clusters_down``, ``offline``, ``order``) and its detail, on the jobs table; NULL while no cycle has
judged the job, and once it leaves pending.

Revision ID: 20261203_0009
Revises: 20261203_0008
Create Date: 2026-12-03

Two nullable columns and an index on the code (the scheduler finds the rows holding one with it): an upgrade writes no
existing row. A pending job's ``detail`` no longer says "waits for <clusters> (down since ...)"; such a detail written
by an older server is given back its last status change's detail here, so the text is not shown twice.

Self-contained on purpose: a released migration never imports the models.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261203_0009"
down_revision: str | None = "20261203_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add jobs.wait_reason and jobs.wait_detail (nullable) and an index on wait_reason; give back the details older
    servers wrote for pending jobs waiting for down clusters."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("wait_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("wait_detail", sa.Text(), nullable=True))
    op.create_index("ix_jobs_wait_reason", "jobs", ["wait_reason"])
    op.execute(
        "UPDATE jobs SET detail = COALESCE((SELECT e.detail FROM job_events e WHERE e.job_id = jobs.id "
        "ORDER BY e.id DESC LIMIT 1), '') WHERE status = 'pending' AND detail LIKE 'waits for %'"
    )


def downgrade() -> None:
    """Drop the index and the two columns."""
    op.drop_index("ix_jobs_wait_reason", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("wait_detail")
        batch.drop_column("wait_reason")
