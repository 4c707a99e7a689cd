"""Money: capacity requests, offers to right-of-first-refusal holders, market quotes, awards and their events; what
each run costs (GPUs, charged and list price, contract, provider, GPU model, region, when it started); the provider
a ``provider`` token speaks for.

Revision ID: 20261130_0004
Revises: 20261130_0003
Create Date: 2026-11-30

Runs recorded before this revision keep null costs (they are left out of ``GET /api/v1/costs``). Columns are added
without rebuilding a table (SQLite's ``ALTER TABLE ... ADD COLUMN``), so an upgrade takes milliseconds whatever
the size of the history.

Self-contained on purpose: a released migration never imports the models.
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_0004"
down_revision: str | None = "20261130_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PRICE = sa.Numeric(12, 6)
MONEY = sa.Numeric(22, 6)
ACTOR = sa.String(200)

RUN_COLUMNS = (
    ("gpus", sa.Integer()),
    ("price_usd_per_gpu_hour", PRICE),
    ("list_price_usd_per_gpu_hour", PRICE),
    ("contract", sa.String(63)),
    ("provider", sa.String(63)),
    ("gpu_model", sa.String(63)),
    ("region", sa.String(200)),
    ("started_at", sa.DateTime(timezone=False)),
)


def _time(name: str, nullable: bool = False) -> "sa.Column[datetime]":
    return sa.Column(name, sa.DateTime(timezone=False), nullable=nullable)


def upgrade() -> None:
    """Create the procurement tables; add cost columns to runs and the provider to tokens."""
    op.create_table(
        "capacity_requests",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("gpu_model", sa.String(63), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("term_days", sa.Integer(), nullable=False),
        sa.Column("raised_by", sa.String(16), nullable=False),
        sa.Column("actor", ACTOR, nullable=False),
        _time("at"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_capacity_requests"),
    )
    op.create_index("ix_capacity_requests_state", "capacity_requests", ["state"])
    op.create_table(
        "procurement_offers",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("request_id", sa.String(63), nullable=False),
        sa.Column("holder", sa.String(63), nullable=False),
        sa.Column("contract_id", sa.String(63), nullable=False),
        sa.Column("match_rule", sa.String(32), nullable=False),
        _time("offered_at"),
        _time("deadline"),
        sa.Column("benchmark_price", PRICE, nullable=True),
        sa.Column("benchmark_start", sa.Date(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        _time("answered_at", nullable=True),
        sa.Column("answered_by", ACTOR, nullable=True),
        sa.Column("price", PRICE, nullable=True),
        sa.Column("start", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["capacity_requests.id"],
            name="fk_procurement_offers_request_id_capacity_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_procurement_offers"),
    )
    op.create_index("ix_procurement_offers_request_id", "procurement_offers", ["request_id"])
    op.create_index("ix_procurement_offers_holder", "procurement_offers", ["holder"])
    op.create_table(
        "procurement_quotes",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("provider", sa.String(63), nullable=False),
        sa.Column("site", sa.String(63), nullable=False),
        sa.Column("gpu_model", sa.String(63), nullable=False),
        sa.Column("gpus_per_node", sa.Integer(), nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("max_gpus", sa.Integer(), nullable=True),
        sa.Column("lead_time_days", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        _time("added_at"),
        sa.Column("added_by", ACTOR, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_procurement_quotes"),
    )
    op.create_table(
        "procurement_awards",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("request_id", sa.String(63), nullable=False),
        sa.Column("provider", sa.String(63), nullable=False),
        sa.Column("site", sa.String(63), nullable=False),
        sa.Column("gpu_model", sa.String(63), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("gpus_per_node", sa.Integer(), nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=False),
        sa.Column("cost_usd", MONEY, nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("quote_id", sa.String(63), nullable=True),
        _time("at"),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("override_by", ACTOR, nullable=True),
        sa.Column("fleet_version", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["capacity_requests.id"],
            name="fk_procurement_awards_request_id_capacity_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_procurement_awards"),
        sa.UniqueConstraint("request_id", name="uq_procurement_awards_request_id"),
    )
    op.create_table(
        "procurement_events",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        _time("at"),
        sa.Column("request_id", sa.String(63), nullable=False),
        sa.Column("offer_id", sa.String(63), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", ACTOR, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_procurement_events"),
    )
    op.create_index("ix_procurement_events_request_id", "procurement_events", ["request_id"])
    for name, kind in RUN_COLUMNS:
        op.add_column("runs", sa.Column(name, kind, nullable=True))
    op.add_column("tokens", sa.Column("provider", sa.String(63), nullable=True))


def downgrade() -> None:
    """Drop the procurement tables and the added columns (ALTER TABLE ... DROP COLUMN: SQLite 3.35+ in place)."""
    op.drop_column("tokens", "provider")
    for name, _ in reversed(RUN_COLUMNS):
        op.drop_column("runs", name)
    for table in ("procurement_events", "procurement_awards", "procurement_quotes", "procurement_offers"):
        op.drop_table(table)
    op.drop_table("capacity_requests")
