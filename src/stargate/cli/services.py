"""CLI commands for inference services: ``stargate serve FILE``, ``stargate services``, ``stargate service NAME``
(see docs/reference/cli-services.md). Like the other client commands: ``--json`` for machine-readable output, one
line on stderr for an error, exit 0 ok, 1 the server refused or failed, 2 bad local input, 3 no server."""

import re
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import typer

from stargate.cli.client import DEFAULT_RETRY_S, EXIT_BAD_INPUT, JsonOption, _client, _failures, _print_json
from stargate.cli.render import gpu_count
from stargate.cli.render_services import render_service, render_services
from stargate.cli.text import visible
from stargate.client import ClientError, with_retries

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
"""A service name (an id)."""


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    for command in (serve, services, service):
        app.command()(command)


def serve(
    file: Path = typer.Argument(
        ..., help="A service spec YAML file (see examples/services/), or several under services:."
    ),
    retry_for: float = typer.Option(
        DEFAULT_RETRY_S,
        "--retry-for",
        help="Seconds to keep retrying when the server cannot be reached or fails (5xx), 0 to 3600; safe: sending "
        "the same spec again gives the same service.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Validate a service file locally, then create its services: the scheduler starts their replicas as jobs and
    keeps as many as each autoscaler asks for; requests to /services/NAME/... on the server reach them."""
    if not 0 <= retry_for <= 3600:
        _refuse(f"--retry-for: found {retry_for:g}; expected a number of seconds from 0 to 3600")
    from stargate.cli.servicefile import ServiceFileError, load_services_file  # on use: the domain and YAML

    try:
        specs = load_services_file(file)
    except ServiceFileError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None

    def said(error: ClientError, attempt: int, delay_s: float) -> None:
        if attempt == 1:
            typer.echo(f"warning: {error}; retrying for up to {retry_for:g} s", err=True)

    made = []
    with _failures(), _client() as client:
        for spec in specs:
            body = spec.model_dump(mode="json", exclude_none=True)
            found, new = with_retries(partial(client.create_service, body), retry_for, said)
            made.append(found)
            if not as_json:
                typer.echo(_created_text(found, new, client.url))
    if as_json:
        _print_json(made)


def _created_text(item: dict[str, Any], new: bool, url: str) -> str:
    """What ``serve`` says of a service it sent."""
    spec = item["spec"]
    what = "created" if new else "unchanged (this spec was sent before)"
    models = ", ".join(spec.get("gpu_models") or []) or "a profiled GPU model"
    return (
        f"service {visible(item['name'])}: {what}; {spec['min_replicas']} to {spec['max_replicas']} replicas of "
        f"{gpu_count(spec['gpus_per_replica'])} ({visible(models)}) in queue {visible(item['queue'])}, autoscaled "
        f"by {visible(spec['autoscaling']['policy'])}; requests to {visible(url)}{visible(item['url'])}"
    )


def services(as_json: bool = JsonOption) -> None:
    """List the services this token may see: state, replicas ready and wanted, rate, requests in flight, latency."""
    with _failures(), _client() as client:
        found = client.services()
    if as_json:
        _print_json(found)
        return
    render_services(found)


def service(
    name: str = typer.Argument(..., help="The service's name."),
    delete: bool = typer.Option(
        False, "--delete", help="Delete it: it takes no new request, its replicas drain, then their jobs stop."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Show a service: its replicas and their states, its recent scale decisions with the autoscaler's reasons, and
    its traffic (requests/s, in flight, latency p50/p99); with --delete, delete it."""
    if not _NAME.fullmatch(name):
        shown = "nothing (an empty name)" if not name else ascii(name[:70])
        _refuse(f"NAME: found {shown}; expected a service name (1 to 63 of a-z, 0-9, '.', '_', '-')")
    with _failures(), _client() as client:
        found = client.delete_service(name) if delete else client.service(name)
        url = client.url
    if as_json:
        _print_json(found)
        return
    if delete:
        count = len(found["replicas"])
        replicas = "its replica drains and stops" if count == 1 else f"its {count} replicas drain and stop"
        typer.echo(f"service {visible(found['name'])}: deleting; it takes no new request, {replicas}, then it goes")
        return
    render_service(found, url)


def _refuse(message: str) -> NoReturn:
    """Report bad local input and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)
