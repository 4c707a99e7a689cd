"""The work behind ``stargate up`` and ``stargate admin token create|list|revoke``, imported only when one of them runs.

Kept apart from :mod:`stargate.cli.server` so that every other command starts without importing the server stack
(FastAPI, uvicorn, SQLAlchemy, Alembic), which costs most of a second.
"""

import asyncio
import getpass
import json
import logging
import os
import socket
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from stargate.cli import policy_options
from stargate.cli.policy_options import Given, parse_settings
from stargate.cli.render import render_tokens
from stargate.cli.text import visible
from stargate.client import parse_expiry
from stargate.domain import Fleet
from stargate.engine import POLICIES
from stargate.executors.isolation import IsolationError
from stargate.fleetfile import FleetFileError, load_fleet
from stargate.server.app import create_app
from stargate.server.auth import Role
from stargate.server.bootstrap import NoDatabaseError, needs_fleet, open_database, prepare, resolve_isolation
from stargate.server.defaults import DEFAULT_FLEET
from stargate.server.errors import ServiceError
from stargate.server.limits import SettingsError
from stargate.server.schemas import name_problem
from stargate.server.services import fleet as fleet_service
from stargate.server.services import tokens as token_service
from stargate.server.settings import Settings
from stargate.store import Database
from stargate.store.database import DatabaseUrlError, sqlite_path

EXIT_REFUSED, EXIT_INPUT = 1, 2
"""Exit codes: refused (an unknown token, the last admin token); bad input (a flag, the fleet file, the database)."""


def _fail(message: str) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(EXIT_INPUT)


def up(
    host: str,
    port: int,
    fleet: Path | None,
    interval: float,
    scheduler: bool,
    log_level: str,
    isolation: str = "auto",
    single_team: str | None = None,
    job_uid_base: int | None = None,
    job_network: str = "host",
    policy: str | None = None,
    sets: list[str] | None = None,
) -> None:
    """Start the API server and the scheduler loop (see :func:`stargate.cli.server.up`)."""
    os.umask(0o077)  # everything the server writes (state, database, logs, runs) is its user's only
    if log_level not in ("debug", "info", "warning", "error"):
        raise _fail(f"--log-level: found '{log_level}'; expected debug, info, warning or error")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        settings = Settings.from_env(
            host=host, port=port, fleet_path=fleet, scheduler_enabled=scheduler, scheduler_interval_s=interval
        )
    except SettingsError as exc:
        raise _fail(str(exc)) from None
    options = _options(policy, sets or [])
    settings = replace(
        settings,
        isolation=isolation,
        single_team=single_team,
        job_uid_base=job_uid_base,
        job_network=job_network,
        scheduling=policy_options.override(policy, options),
    )
    try:
        settings, found = resolve_isolation(settings)
    except IsolationError as exc:
        raise _fail(f"{exc.option}: {exc}") from None
    typer.echo(f"isolation {found.mode.value}: {found.describe()}")
    given = _load_fleet(settings.fleet_path, policy, options) if settings.fleet_path else None  # before writing
    if given is None and _no_database_yet(settings) is not None:  # a first start: the default fleet is applied
        given = _load_fleet(default_fleet(), policy, options, default=True)  # a start refused must write nothing
    sock = _bind(settings)  # a start that cannot listen must write nothing (no database, token or fleet)
    try:
        db = _open_or_exit(settings)
        try:
            to_apply = given if given is not None else _default_fleet_if_needed(db, policy, options)
            prepared = prepare(settings, db, to_apply)
        except ServiceError as exc:  # the fleet in force does not fit --policy/--set, or --fleet strands live jobs
            raise _fail(f"{exc}; the server did not start") from None
        if prepared.fleet_changed:
            typer.echo(f"fleet version {prepared.fleet_version[:12]} applied")
        if prepared.admin_token is not None:
            url = _bound_url(settings.host, sock)
            path = _write_secret(settings.admin_token_file(prepared.ctx.settings.installation_id), prepared.admin_token)
            typer.echo(f"first admin token written to {path} (mode 0600; it is never printed or logged)")
            typer.echo(f"log in with: stargate login --url {url} --token-file {path}")
        _serve(create_app(prepared.ctx), settings, log_level, sock)
    finally:
        sock.close()


def token_create(
    team: str | None, role: str, name: str | None, expires: str | None = None, provider: str | None = None
) -> None:
    """Create an API token directly in the database and print it once."""
    try:
        parsed = Role(role)
    except ValueError:
        raise _fail(f"--role: found '{role}'; expected admin, member, viewer or provider") from None
    now = datetime.now(UTC)
    try:
        expires_at = parse_expiry(expires, now) if expires is not None else None
    except ValueError as exc:
        raise _fail(f"--expires: {exc}") from None
    if name is not None and (bad := name_problem(name)):
        raise _fail(f"--name: {bad}")
    settings = Settings.from_env()
    fresh = _no_database_yet(settings)
    if fresh is not None and parsed is Role.PROVIDER:  # a new database has no fleet: refuse before creating it
        raise _fail(
            f"--provider: found {'nothing' if provider is None else repr(provider)}, expected the id of a provider "
            f"(none: there is no database at {fresh} yet; set STARGATE_HOME or STARGATE_DATABASE_URL, or start "
            "`stargate up` first)"
        )
    if fresh is not None and parsed is not Role.ADMIN:  # a new database has no teams: refuse before creating it
        raise _fail(
            f"--team: found {'nothing' if team is None else repr(team)}, expected the id of a team (none: there is "
            f"no database at {fresh} yet; set STARGATE_HOME or STARGATE_DATABASE_URL, or start `stargate up` first)"
        )
    db = _open_or_exit(settings)
    if fresh is not None:
        sys.stderr.write(f"note: created a new database at {fresh} (no server has used this state yet)\n")
    label = name or (f"{parsed.value}-{team or provider}" if team or provider else parsed.value)
    try:
        with db.write() as session:
            row, secret = token_service.create(
                session, label, team, parsed, now, created_by=_admin_actor(), expires_at=expires_at, provider=provider
            )
    except ServiceError as exc:
        detail = exc.detail.replace("team:", "--team:", 1).replace("expires_at:", "--expires:", 1)
        raise _fail(detail.replace("provider:", "--provider:", 1)) from None
    finally:
        db.close()
    until = f", expires {_when(expires_at)}" if expires_at is not None else ""
    whose = f"provider {visible(provider)}" if provider else f"team {visible(team or '-')}"
    typer.echo(f"token {row.id} ({parsed.value}, {whose}, name {visible(label)}{until}): {secret}")
    typer.echo("(shown once; only a salted hash is stored)")


def token_list(as_json: bool) -> None:
    """Print every token from the database (never a secret: none is stored); exit 2 when there is no database."""
    settings = Settings.from_env()
    db = _open_or_exit(settings, create=False)
    now = datetime.now(UTC)
    try:
        with db.read() as session:
            items = [token_service.to_api(row, now) for row in token_service.list_all(session)]
    finally:
        db.close()
    shown = [item.model_dump(mode="json") for item in items]
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    render_tokens(shown)


def token_revoke(token_id: str) -> None:
    """Revoke a token in the database; exit 1 when it is unknown or the last live admin token."""
    settings = Settings.from_env()
    db = _open_or_exit(settings, create=False)
    try:
        with db.write() as session:
            row = token_service.revoke(session, token_id, datetime.now(UTC), _admin_actor())
            when, by, name = row.revoked_at, row.revoked_by, row.name
    except ServiceError as exc:
        sys.stderr.write(f"error: {visible(exc.detail)}\n")
        raise typer.Exit(EXIT_REFUSED) from None
    finally:
        db.close()
    typer.echo(
        f"token {visible(token_id)} ({visible(name)}) revoked at {_when(when)} by {visible(by)}; "
        "servers refuse it within 5 s"
    )


def _admin_actor() -> str:
    """``stargate admin (<OS user>)``: who made a change directly on the database."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"stargate admin ({user})"


def _when(value: datetime | None) -> str:
    """A time as ``2026-11-30T12:00:00Z``; ``-`` when unset."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_secret(path: Path, secret: str) -> Path:
    """Write ``secret`` to a new file readable by this user only (replacing a stale one from an earlier state)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.replace(tmp, path)
    return path


def _no_database_yet(settings: Settings) -> Path | None:
    """The SQLite file the settings point at when it does not exist yet (None when it does, or on PostgreSQL)."""
    try:
        path = sqlite_path(settings.database_url)
    except DatabaseUrlError:
        return None  # _open_or_exit reports it
    return path if path is not None and not path.exists() else None


def _open_or_exit(settings: Settings, *, create: bool = True) -> Database:
    os.umask(0o077)  # the database and its journal files are the server's user's only
    try:
        return open_database(settings, create=create)
    except NoDatabaseError as exc:
        raise _fail(str(exc)) from None
    except (SQLAlchemyError, OSError, ValueError, ImportError) as exc:  # a driver's own errors included
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(f"database {_redact(settings.database_url)}: cannot open or migrate it: {first}") from None


def _redact(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, user_pass = head.partition("//")
    return f"{scheme}//{user_pass.split(':', 1)[0]}:***@{tail}"


def default_fleet() -> Path:
    """The bundled fleet applied on a first start without ``--fleet``: ``examples/stargate-2025`` of the current
    directory when it is there, else of the source tree this package runs from (the package is ``src/stargate``,
    the examples are at the repository's root), so ``stargate up`` finds it from any directory."""
    if DEFAULT_FLEET.is_absolute() or DEFAULT_FLEET.exists():
        return DEFAULT_FLEET
    bundled = Path(__file__).resolve().parents[3] / DEFAULT_FLEET
    return bundled if bundled.exists() else DEFAULT_FLEET


def _default_fleet_if_needed(db: Database, policy: str | None, options: dict[str, Given]) -> Fleet | None:
    """The packaged default fleet when no fleet was ever applied to ``db`` (and none was given), else None."""
    return _load_fleet(default_fleet(), policy, options, default=True) if needs_fleet(db) else None


def _options(policy: str | None, sets: list[str]) -> dict[str, Given]:
    """``--set`` options by key (checked against a fleet once one is read); exit 2 for an unknown ``--policy``, a
    malformed setting or a setting given twice."""
    if policy is not None and policy not in POLICIES:
        raise _fail(f"--policy: found '{visible(policy)}'; expected one of {', '.join(sorted(POLICIES))}")
    try:
        return parse_settings(sets)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _load_fleet(path: Path, policy: str | None, options: dict[str, Given], *, default: bool = False) -> Fleet:
    """The fleet file at ``path``, loaded and checked against what the engine can schedule (with ``--policy`` and
    ``--set``); exit 2 otherwise. A problem of the options on a fleet that has none alone names the option."""
    label = "the default fleet" if default else "--fleet"
    try:
        fleet = load_fleet(path)
    except FleetFileError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        raise _fail(f"{label}: {len(exc.problems)} problem(s) in {visible(path)}; the server did not start") from None
    bad = policy_options.problems(fleet.scheduling, policy, options)
    if bad:
        for line in bad[:-1]:
            sys.stderr.write(f"error: {line}\n")
        alone = f"the {'default ' if default else ''}fleet {visible(path)} has no problem alone"
        raise _fail(f"{bad[-1]} ({alone}); the server did not start")
    unloadable = fleet_service.engine_problem(fleet, override=policy_options.override(policy, options))
    if unloadable is not None:  # what the scheduler could not load
        raise _fail(f"{label}: {visible(path)}: {unloadable}; the server did not start")
    return fleet


class _Server(uvicorn.Server):
    """Uvicorn that says ``listening on http://HOST:PORT`` (the real port, also for ``--port 0``) once bound."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Bind as uvicorn does, then print the address actually bound."""
        await super().startup(sockets)
        if self.started and self.servers:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            logging.getLogger("stargate.server").info("listening on http://%s:%s", host, port)
            sys.stdout.write(f"listening on http://{host}:{port} (the dashboard: http://{host}:{port}/ui)\n")
            sys.stdout.flush()


def _bind(settings: Settings) -> socket.socket:
    """A listening socket on the settings' host and port (port 0: a free one); exit 2 when it cannot be bound."""
    where = f"{settings.host}:{settings.port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, OverflowError) as exc:
        raise _fail(f"--host/--port: cannot listen on {where}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise _fail(f"--port: cannot listen on {where}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _bound_url(host: str, sock: socket.socket) -> str:
    """The API's URL with the port actually bound (``--port 0`` picks one)."""
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve(app: Any, settings: Settings, log_level: str, sock: socket.socket) -> None:
    config = uvicorn.Config(  # proxy_headers off: a job on this machine could claim any X-Forwarded-For/-Proto
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=log_level == "debug",
        proxy_headers=False,
    )
    server = _Server(config)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except OSError as exc:
        raise _fail(f"--port: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
    except SystemExit:  # uvicorn exits this way when it cannot bind
        if server.started:
            raise
    if not server.started:
        raise _fail(f"--host/--port: could not listen on {settings.host}:{settings.port} (see the log above)")
