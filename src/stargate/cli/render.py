"""How the client commands show things: tables and views of jobs, queues and tokens, times in local time.

User-controlled text goes through :func:`stargate.cli.text.cell` / :func:`~stargate.cli.text.visible`, so control
and bidi characters are shown escaped, never acted on by the terminal.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from stargate.cli.text import cell, visible
from stargate.client import (
    Job,
    Queue,
    Waiting,
)

_STATUS_STYLE = {"running": "green", "succeeded": "bold green", "failed": "red", "cancelled": "yellow"}


def console() -> Console:
    """A console for tables; wide when not a terminal, so ids are never cut."""
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


def when(value: str | None) -> str:
    """An API time as ``2026-11-27T14:22:11Z``; ``-`` when unset."""
    if not value:
        return "-"
    return value.split(".")[0].removesuffix("+00:00").removesuffix("Z") + "Z"


def status_text(value: str) -> str:
    """A status with its colour (escaped like any text from the server)."""
    style = _STATUS_STYLE.get(value)
    return f"[{style}]{value}[/]" if style else cell(value)


def render_jobs(items: list[Job], next_cursor: str | None) -> None:
    """Jobs as a table, with a note when more pages exist."""
    table = Table(title=f"{len(items)} job{'s' if len(items) != 1 else ''}", title_justify="left")
    names = ("ID", "NAME", "QUEUE", "STATUS", "GPUS", "CLUSTER", "ATTEMPT", "SUBMITTED", "REASON", "DETAIL", "WAITS")
    for name in names:
        table.add_column(name, no_wrap=name in {"ID", "STATUS", "SUBMITTED", "REASON", "WAITS"})
    for item in items:
        table.add_row(
            cell(item["id"]),
            cell(item["name"]),
            cell(item["queue"]),
            status_text(item["status"]),
            cell(item["gpus"]),
            cell(item["cluster"] or "-"),
            cell(item["attempt"]),
            cell(when(item["submitted_at"])),
            cell(item["reason"] or ""),
            cell(item.get("detail") or ""),
            cell(waiting["reason"] if (waiting := item.get("waiting")) else ""),
        )
    out = console()
    out.print(table)
    if next_cursor:
        out.print("more jobs exist: use --limit N for more, or --all for every one")


def render_job(item: Job) -> None:
    """One job as a two-column table."""
    spec: dict[str, Any] = item.get("spec") or {}
    rows: list[tuple[str, str]] = [
        ("id", item["id"]),
        ("name", item["name"]),
        ("status", status_text(item["status"])),
        ("reason", item["reason"] or "-"),
        ("detail", item.get("detail") or "-"),
        ("waiting", waiting_text(item.get("waiting"))),
        ("queue / team", f"{item['queue']} / {item['team']}"),
        ("kind", item["kind"]),
        ("request", gpu_count(item["gpus"]) + (f" of {', '.join(item['gpu_models'])}" if item["gpu_models"] else "")),
        ("priority class", item["priority_class"]),
        ("attempt", str(item["attempt"])),
        ("progress", progress_text(item.get("progress_s"))),
        ("cluster", item["cluster"] or "-"),
        ("GPU ids", ",".join(str(g) for g in item["gpu_ids"]) or "-"),
        ("exit code", "-" if item["exit_code"] is None else str(item["exit_code"])),
        ("submitted", when(item["submitted_at"])),
        ("started", when(item["started_at"])),
        ("finished", when(item["finished_at"])),
        ("command", str(spec.get("command") or "-")),
    ]
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value if key == "status" else cell(value))
    console().print(table)


def waiting_text(waiting: Waiting | None) -> str:
    """Why a pending job waits, e.g. ``capacity: largest free block ...``; ``-`` when not pending or not judged."""
    if not waiting:
        return "-"
    return f"{waiting['reason']}: {waiting['detail']}" if waiting.get("detail") else waiting["reason"]


def progress_text(progress_s: float | None) -> str:
    """Run time kept across stops: ``7,200 s kept``; a job stopped before its first checkpoint owes the policy's
    restart cost (its stored progress is negative): ``0 s kept (60 s to run again first)``."""
    value = float(progress_s or 0.0)
    if not math.isfinite(value):
        return "-"
    return f"{max(value, 0.0):,.0f} s kept" if round(value) >= 0 else f"0 s kept ({-value:,.0f} s to run again first)"


def quota_text(quota: dict[str, Any]) -> str:
    """``H100-SXM: 40,000 GPUs (+20,000 borrowable)``; ``*`` reads as ``any GPU``."""
    model = "any GPU" if quota.get("gpu_model") == "*" else visible(quota.get("gpu_model", "?"))
    borrow = quota.get("borrowing_limit_gpus")
    extra = " (+ unlimited borrowing)" if borrow is None else f" (+{borrow:,} borrowable)" if borrow else ""
    return f"{model}: {gpu_count(quota.get('gpus', 0))}{extra}"


def gpu_count(n: int) -> str:
    """``1 GPU``, ``40,000 GPUs``: thousands separated, singular for one."""
    return f"{n:,} GPU{'' if n == 1 else 's'}"


def render_queues(items: list[Queue], scheduling: dict[str, Any] | None = None) -> None:
    """Queues as a table, after the scheduling policy in force (``GET /api/v1/fleet/scheduling``) when given."""
    if scheduling is not None:
        console().print(cell(scheduling_text(scheduling)), highlight=False)
    table = Table(title=f"{len(items)} queue{'s' if len(items) != 1 else ''}", title_justify="left")
    for name in ("QUEUE", "TEAM", "COHORT", "QUOTAS", "PENDING", "RUNNING", "RUNNING GPUS"):
        table.add_column(name, justify="right" if name in {"PENDING", "RUNNING", "RUNNING GPUS"} else "left")
    for item in items:
        quotas = "; ".join(quota_text(q) for q in item["quotas"]) or "none"
        table.add_row(
            *map(
                cell,
                (
                    item["id"],
                    item["team"],
                    item["cohort"] or "-",
                    quotas,
                    item["pending_jobs"],
                    item["running_jobs"],
                    item["running_gpus"],
                ),
            )
        )
    console().print(table)


def scheduling_text(scheduling: dict[str, Any]) -> str:
    """``scheduling policy: stargate, burst_after_s=3600.0 (from the fleet file)`` or ``scheduling policy: srtf (from
    the fleet file and stargate up --policy srtf)``; says so when the server's options were set aside."""
    override, problem = scheduling.get("override"), scheduling.get("problem")
    if problem:
        source = f"the fleet file; this server's stargate up {override} set aside: {problem}"
    else:
        source = f"the fleet file and stargate up {override}" if override else "the fleet file"
    changed = ", ".join(f"{k}={v}" for k, v in sorted((scheduling.get("changed") or {}).items()))
    return f"scheduling policy: {scheduling.get('policy')}{', ' + changed if changed else ''} (from {source})"


def render_tokens(items: list[dict[str, Any]]) -> None:
    """Tokens as a table (the API's JSON shape), never a secret: none is stored."""
    table = Table(title=f"{len(items)} token{'s' if len(items) != 1 else ''}", title_justify="left")
    for column in ("ID", "NAME", "ROLE", "TEAM", "STATE", "CREATED", "CREATED BY", "EXPIRES", "REVOKED"):
        table.add_column(column, no_wrap=column in {"ID", "CREATED", "EXPIRES", "REVOKED"})
    for item in items:
        revoked = f"{when(item['revoked_at'])} by {item['revoked_by']}" if item["revoked_at"] else "-"
        table.add_row(
            *map(
                cell,
                (
                    item["id"],
                    item["name"],
                    item["role"],
                    item["team"] or (f"provider {item['provider']}" if item.get("provider") else "-"),
                    item["state"],
                    when(item["created_at"]),
                    item["created_by"] or "-",
                    when(item["expires_at"]),
                    revoked,
                ),
            )
        )
    console().print(table)
