"""CLI commands that read the clusters' health from a running server: ``stargate fleet health`` and ``stargate fleet
events`` (added to the ``fleet`` group by :func:`register`; see docs/reference/cli-fleet.md).

Exit codes as the other client commands: 0 ok, 1 the server refused (401, 403, 404) or failed, 2 bad input, 3 no
server.
"""

from typing import Any

import typer

from stargate.cli.client import JsonOption, _client, _failures, _print_json, _refuse_input
from stargate.cli.render import when
from stargate.cli.text import visible

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
    uses (the worse of the two), and why and since when it is observed so."""
    with _failures(), _client() as client:
        health = client.fleet_health()
    if as_json:
        _print_json(health)
        return
    clusters: list[dict[str, Any]] = health["clusters"]
    if not clusters:
        typer.echo("no clusters in the fleet in force")
        return
    width = max(len(visible(c["cluster"])) for c in clusters)
    ex_width = max(len(visible(c["executor"])) for c in clusters)
    typer.echo(f"{'cluster':<{width}}  {'executor':<{ex_width}}  declared  observed  status    since / reason")
    for c in clusters:
        note = f"{when(c['since'])}: {visible(c['reason'])}" if c["since"] else ""
        typer.echo(
            f"{visible(c['cluster']):<{width}}  {visible(c['executor']):<{ex_width}}  {c['declared']:<8}  "
            f"{c['observed']:<8}  {c['status']:<8}  {note}".rstrip()
        )


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
    for e in items:
        typer.echo(
            f"{when(e['at'])}  {visible(e['cluster'])} ({visible(e['executor'])}): {e['from']} -> {e['to']}: "
            f"{visible(e['reason'])}"
        )
