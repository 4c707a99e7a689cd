"""Reason codes: ``jobs.reason`` and ``job_events.reason`` hold a code (``placed``, ``priority``, ``exceeds_quota``,
...) and a new ``detail`` column the free text that went with it.

Revision ID: 20261130_0003
Revises: 20261130_0002
Create Date: 2026-11-30

Existing rows are converted by the texts the previous release wrote: ``preempted: X`` and ``rejected: X`` become
code ``X``; ``placed on lab-a (8 GPUs)`` becomes ``placed`` with detail ``on lab-a (8 GPUs)``; ``running on ...``
``started``; ``cancelled by alice`` ``cancelled`` (detail ``by alice``); ``requeued: ...`` ``cluster_removed`` or
``requeued``; ``exited with code N`` ``succeeded`` or ``failed`` by the status; ``run lost: ...`` ``lost``; ``could not
start on ...`` ``start_failed`` (after tries) or ``unstartable``; anything else ``other``, with the whole old text as
its detail. Plain ``UPDATE`` statements, one per kind of text, so a table of millions of rows converts in seconds on
SQLite and PostgreSQL alike; the columns are added without rebuilding a table.

Self-contained on purpose: a released migration never imports the models or the domain (the codes are listed here
as they were at this revision).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_0003"
down_revision: str | None = "20261130_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREEMPTIONS = ("priority", "cluster_down", "cluster_offline")
REJECTIONS = (
    "unknown_queue",
    "invalid_request",
    "gpu_model_unavailable",
    "no_allowed_cluster",
    "no_cluster_fits",
    "exceeds_quota",
    "priority_class_not_allowed",
    "duration_out_of_range",
    "submit_out_of_range",
)
LIFECYCLE = (
    "submitted",
    "placed",
    "started",
    "succeeded",
    "failed",
    "cancelled",
    "lost",
    "start_failed",
    "unstartable",
    "requeued",
    "cluster_removed",
    "other",
)
CODES = LIFECYCLE + REJECTIONS + PREEMPTIONS
TABLES = (("jobs", "status"), ("job_events", "to_status"))
"""Each table with a reason, and the column that holds the status its reason led to."""


Rule = tuple["sa.ColumnElement[bool]", "str | sa.ColumnElement[str]", "str | sa.ColumnElement[str]"]
"""Which rows, their new code, their new detail."""


def _rules(status: "sa.ColumnClause[str]", reason: "sa.ColumnClause[str]") -> list[Rule]:
    """(which rows, new code, new detail) for each kind of old text, in order; every new code is a code no later
    rule matches, so a row is converted once."""

    def starts(prefix: str) -> "sa.ColumnElement[bool]":
        # substr, not LIKE: SQLite's LIKE ignores case, PostgreSQL's does not
        return sa.func.substr(reason, 1, len(prefix)) == prefix

    def rest(prefix_chars: int) -> "sa.ColumnElement[str]":
        return sa.func.substr(reason, sa.literal_column(str(prefix_chars + 1)))

    exited = starts("exited with code ")
    unavailable = starts("executor kind ") | reason.like("the % executor runs commands; this job has only an image")
    return [
        (reason.in_([f"preempted: {c}" for c in PREEMPTIONS + REJECTIONS]), rest(len("preempted: ")), ""),
        (reason.in_([f"rejected: {c}" for c in PREEMPTIONS + REJECTIONS]), rest(len("rejected: ")), ""),
        (starts("placed on "), "placed", rest(len("placed "))),
        (starts("running on "), "started", rest(len("running "))),
        (starts("requeued: cluster ") & reason.like("% is no longer in the fleet"), "cluster_removed", rest(10)),
        (starts("requeued: "), "requeued", rest(len("requeued: "))),
        (starts("cancelled by "), "cancelled", rest(len("cancelled "))),
        (starts("run cancelled outside Stargate"), "cancelled", reason),
        (exited & (status == "succeeded"), "succeeded", reason),
        (exited, "failed", reason),
        (starts("run lost: "), "lost", rest(len("run lost: "))),
        (reason == "run lost", "lost", ""),
        (starts("could not start on ") & reason.like("% executor after % tries: %"), "start_failed", rest(16)),
        (starts("could not start on "), "unstartable", rest(len("could not start "))),
        (unavailable, "unstartable", reason),
        (starts("failed: "), "failed", rest(len("failed: "))),
        (reason.not_in(CODES), "other", reason),
    ]


def upgrade() -> None:
    """Add ``detail`` to jobs and job events, then turn every stored reason text into a code and its detail."""
    for name, status_column in TABLES:
        op.add_column(name, sa.Column("detail", sa.Text(), nullable=False, server_default=""))
        table = sa.table(name, *(sa.column(c, sa.Text()) for c in (status_column, "reason", "detail")))
        for where, code, detail in _rules(table.c[status_column], table.c.reason):
            op.execute(sa.update(table).where(where).values(reason=code, detail=detail))


def downgrade() -> None:
    """Join code and detail back into one text (``preempted: X`` and ``rejected: X`` as before; other codes as
    ``code: detail``, not the previous release's exact wording), then drop ``detail``."""
    for name, _ in TABLES:
        table = sa.table(name, sa.column("reason", sa.Text()), sa.column("detail", sa.Text()))
        reason, detail = table.c.reason, table.c.detail
        text = sa.case(
            (reason.in_(PREEMPTIONS), "preempted: " + reason),
            (reason.in_(REJECTIONS), "rejected: " + reason),
            (detail == "", reason),
            else_=reason + ": " + detail,
        )
        op.execute(sa.update(table).values(reason=text))
        op.drop_column(name, "detail")  # ALTER TABLE ... DROP COLUMN: SQLite 3.35+ drops it in place
