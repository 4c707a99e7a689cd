"""CLI commands that read the clusters' health from a running server: ``stargate fleet health`` and ``stargate fleet
events`` (added to the ``fleet`` group by :func:`register`; see docs/reference/cli-fleet.md).

Exit codes as the other client commands: 0 ok, 1 the server refused (401, 403, 404) or failed, 2 bad input, 3 no
server.
"""

from typing import Any

import typer
from rich.table import Table

from stargate.cli.client import JsonOption, _client, _failures, _print_json, _refuse_input
from stargate.cli.render import console, when
from stargate.cli.text import cell, visible

MAX_EVENTS = 1000
"""Most events ``fleet events`` asks for in one page (the server's limit)."""


def register(fleet_app: typer.Typer) -> None:
    """Add ``health`` and ``events`` to the ``fleet`` group (once)."""
    if any(c.name == "health" for c in fleet_app.registered_commands):
        return
    fleet_app.command("health")(fleet_health)
    fleet_app.command("events")(fleet_events)


def fleet_health(as_json: bool = JsonOption) -> None:
    """Each cluster of the fleet in force: its executor, declared and observed status, the status the scheduler
    uses (the worse of the two), why and since when it is observed so, and while its executor's health checks
    fail, since when, how many, when it is taken down if they go on failing, and the last error."""
    with _failures(), _client() as client:
        health = client.fleet_health()
    if as_json:
        _print_json(health)
        return
    clusters: list[dict[str, Any]] = health["clusters"]
    if not clusters:
        typer.echo("no clusters in the fleet in force")
        return
    table = _table("cluster", "executor", "declared", "observed", "status", "failing", "since / reason")
    for c in clusters:
        notes = [f"{when(c['since'])}: {visible(c['reason'])}"] if c["since"] else []
        failing: dict[str, Any] | None = c.get("failing")
        streak = ""
        if failing is not None:
            checks = int(failing["checks"])
            streak = f"since {when(failing['since'])}, {checks:,} check{'s' if checks != 1 else ''}"
            if c["observed"] != "down":
                notes.append(f"down at {when(failing['down_at'])} if its checks go on failing")
            notes.append(f"last failed check: {visible(failing['last_error'])}")
        table.add_row(
            cell(c["cluster"]),
            cell(c["executor"]),
            _status(c["declared"]),
            _status(c["observed"]),
            _status(c["status"]),
            cell(streak),
            cell("; ".join(notes)),
        )
    console().print(table)


def fleet_events(
    limit: int = typer.Option(50, "--limit", help="Most events to show (the newest), 1 to 1,000."),
    cluster: str | None = typer.Option(None, "--cluster", help="Only the events of this cluster."),
    as_json: bool = JsonOption,
) -> None:
    """Changes of the clusters' observed status, newest first: when, which cluster, from, to, why."""
    if not 1 <= limit <= MAX_EVENTS:
        _refuse_input(f"--limit: found {limit}; expected 1 to {MAX_EVENTS:,}")
    with _failures(), _client() as client:
        page = client.cluster_events(limit=limit, cluster=cluster)
    items: list[dict[str, Any]] = page["items"]
    if as_json:
        _print_json(items)
        return
    if not items:
        typer.echo("no cluster events")
        return
    table = _table("at", "cluster", "executor", "from", "to", "reason")
    for e in items:
        table.add_row(
            cell(when(e["at"])),
            cell(e["cluster"]),
            cell(e["executor"]),
            _status(e["from"]),
            _status(e["to"]),
            cell(e["reason"]),
        )
    console().print(table)


_STATUS_STYLE = {"degraded": "yellow", "down": "red"}


def _status(value: str) -> str:
    """A cluster status for a table cell, coloured when it is not ``up`` (escaped like any text from the server)."""
    style = _STATUS_STYLE.get(value)
    return f"[{style}]{value}[/]" if style else cell(value)


def _table(*columns: str) -> Table:
    """A table with a plain header line and no borders: each column as wide as its header or widest value, the
    last one (the reason) folded when the line would pass the terminal's width."""
    table = Table(box=None, padding=(0, 2, 0, 0), header_style="bold")
    for column in columns:
        last = column == columns[-1]
        table.add_column(column, no_wrap=not last, overflow="fold")
    return table
