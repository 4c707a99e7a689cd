"""Trust: salted token hashes with a non-secret id, expiry and revocation by whom; idempotent submissions; a
bounded count of failed starts per run; the database's installation id (a random UUID, written once here).

Revision ID: 20261130_0002
Revises: 20261127_0001
Create Date: 2026-11-30

Tokens of the first release were stored as an unsalted SHA-256 of the whole secret with its first 12 characters in
clear; they cannot be converted (the secrets are not kept), so this migration removes them. The next ``stargate up``
finds no token and creates a new first admin token (see docs/reference/cli-server.md).

Self-contained on purpose: a released migration never imports the models.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_0002"
down_revision: str | None = "20261127_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Replace the tokens table; add idempotency columns to jobs and a failed-start count to runs; give the
    database its installation id."""
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_installation"),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(installation, [{"id": str(uuid.uuid4()), "created_at": now}])
    op.drop_index("ix_tokens_prefix", table_name="tokens")
    op.drop_table("tokens")
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("team_id", sa.String(63), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("expires_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=False), nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(300), nullable=True))
        batch.add_column(sa.Column("request_sha256", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_jobs_idempotency_key", ["idempotency_key"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("start_failures", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Back to the first release's schema (tokens are removed again: their hashes cannot be converted back)."""
    op.drop_table("installation")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("start_failures")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_idempotency_key", type_="unique")
        batch.drop_column("request_sha256")
        batch.drop_column("idempotency_key")
    op.drop_table("tokens")
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("team_id", sa.String(63), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=False), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("secret_sha256", name="uq_tokens_secret_sha256"),
    )
    op.create_index("ix_tokens_prefix", "tokens", ["prefix"])
