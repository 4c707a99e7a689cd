"""CLI commands: ``stargate up`` (the API server and scheduler) and ``stargate admin token create|list|revoke``
(see docs/reference/cli-server.md).

Bad input (a flag, a fleet file, an unreachable database) prints a located error and exits with code 2. The server
stack is imported only when these commands run (:mod:`stargate.cli.server_run`), so other commands start fast.
"""

import sys
from pathlib import Path
from typing import NoReturn

import typer

from stargate.server.defaults import DEFAULT_FLEET, DEFAULT_HOST, DEFAULT_INTERVAL_S, DEFAULT_PORT

admin_app = typer.Typer(help="Administer a Stargate database directly (no server needed).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
admin_app.add_typer(token_app, name="token")


def register(app: typer.Typer) -> None:
    """Add ``up`` and the ``admin`` group to the root app."""
    app.command("up")(up)
    app.add_typer(admin_app, name="admin")


def up(
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port, 0 to 65535 (0: any free port)."),
    fleet: Path | None = typer.Option(
        None,
        "--fleet",
        help=f"Fleet file or directory to apply on start; default: keep the database's fleet, else {DEFAULT_FLEET}.",
        show_default=False,
    ),
    interval: float = typer.Option(
        DEFAULT_INTERVAL_S, "--interval", help="Scheduler cycle interval, s (0.01 to 3600)."
    ),
    scheduler: bool = typer.Option(True, "--scheduler/--no-scheduler", help="Run the scheduler loop here."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
    isolation: str = typer.Option(
        "auto",
        "--isolation",
        help="How local jobs are isolated: users (root: one uid per team), sandbox (bubblewrap), none (needs "
        "--single-team), auto (users as root, else sandbox, else refuse).",
    ),
    single_team: str | None = typer.Option(
        None, "--single-team", help="Run only this team's jobs on the local executor (required by --isolation none)."
    ),
    job_uid_base: int | None = typer.Option(
        None,
        "--job-uid-base",
        help="First uid/gid of the per-team job users (--isolation users); default: the one recorded in the state "
        "directory, else one derived from its path (2000000000 + a multiple of 65536).",
        show_default=False,
    ),
    job_network: str = typer.Option(
        "host",
        "--job-network",
        help="Network of local jobs: host (shared with this machine) or none (a loopback of their own; needs a "
        "bubblewrap sandbox).",
    ),
    policy: str | None = typer.Option(
        None,
        "--policy",
        help="Scheduling policy over the fleet's scheduling section: fifo, gittins, las, srtf or stargate (as stargate "
        "simulate; default: the fleet's scheduling.policy, else gittins).",
        show_default=False,
    ),
    sets: list[str] = typer.Option(
        [], "--set", help="A policy setting KEY=VALUE over the fleet's, e.g. restart_cost_s=120 (repeatable)."
    ),
) -> None:
    """Start the API server and the scheduler loop; migrate the database and create the first admin token."""
    if not 0 <= port <= 65535:
        _refuse(f"--port: found {port}; expected an integer from 0 to 65535")
    if not 0.01 <= interval <= 3600:
        _refuse(f"--interval: found {interval:g}; expected a number of seconds from 0.01 to 3600")
    from stargate.cli import server_run  # imported on use: the server stack is heavy (see module docstring)

    server_run.up(
        host,
        port,
        fleet,
        interval,
        scheduler,
        log_level,
        isolation,
        single_team,
        job_uid_base,
        job_network,
        policy,
        sets,
    )


def _refuse(message: str) -> NoReturn:
    """Report a bad option on one line and exit with code 2 (as every other input error)."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


@token_app.command("create")
def token_create(
    team: str | None = typer.Option(None, "--team", help="Team of the token (required for member and viewer)."),
    role: str = typer.Option(..., "--role", help="admin, member, viewer or provider."),
    provider: str | None = typer.Option(
        None, "--provider", help="The provider a provider token speaks for (required for --role provider, only then)."
    ),
    name: str | None = typer.Option(None, "--name", help="A name to recognise the token by; default: ROLE-TEAM."),
    expires: str | None = typer.Option(
        None, "--expires", help="When it stops working: a duration (30m, 12h, 7d, 2w) or an ISO 8601 time with a zone."
    ),
) -> None:
    """Create an API token directly in the database and print it once."""
    from stargate.cli import server_run  # imported on use: the server stack is heavy (see module docstring)

    server_run.token_create(team, role, name, expires, provider)


@token_app.command("list")
def token_list(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List every token (live, expired and revoked) from the database: ids, names, roles; never a secret."""
    from stargate.cli import server_run  # imported on use: the server stack is heavy (see module docstring)

    server_run.token_list(as_json)


@token_app.command("revoke")
def token_revoke(token_id: str = typer.Argument(..., help="The token's id, e.g. t-0123456789abcdef.")) -> None:
    """Revoke a token in the database (idempotent); every server refuses it within 5 s. The last live admin
    token is not revoked (exit 1): create another one first."""
    from stargate.cli import server_run  # imported on use: the server stack is heavy (see module docstring)

    server_run.token_revoke(token_id)
