"""CLI commands that talk to a running server: login, submit, jobs, job, logs, cancel, queues, token (see
docs/reference/cli-client.md).

Every command takes ``--json`` for machine-readable output. Errors are one line on stderr, never a traceback, and
the exit code says who refused: 0 ok, 1 the server refused (4xx) or failed, 2 bad local input, 3 no server.
"""

import json
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import typer

from stargate.cli.render import gpu_count, render_job, render_jobs, render_queues, render_tokens, when
from stargate.cli.text import visible
from stargate.client import (
    JOB_STATUSES,
    ClientError,
    StargateClient,
    UnauthorizedError,
    parse_expiry,
    with_retries,
)
from stargate.client_config import (
    DEFAULT_URL,
    ClientConfig,
    load_config,
    save_config,
    token_problem,
    url_problem,
)

EXIT_REFUSED, EXIT_BAD_INPUT = 1, 2
PAGE_SIZE = 100
DEFAULT_RETRY_S = 30.0
"""How long ``submit`` and ``logs`` keep retrying when the server cannot be reached or fails, s."""

JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


token_app = typer.Typer(
    help="API tokens through the server (needs an admin token; `stargate admin token` works on the database).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    for command in (login, submit, jobs, job, logs, cancel, queues):
        app.command()(command)
    app.add_typer(token_app, name="token")


def login(
    url: str = typer.Option(DEFAULT_URL, "--url", help="The server's address."),
    token: str | None = typer.Option(
        None, "--token", help="An API token (from `POST /api/v1/tokens` or `stargate admin token create`)."
    ),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="A file holding the token (e.g. STARGATE_HOME/admin-token): keeps it out of argv."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check a token against the server, then save the URL and token in the client config (mode 0600)."""
    if problem := url_problem(url):
        _refuse_input(f"--url: {problem}")
    if (token is None) == (token_file is None):
        _refuse_input("--token/--token-file: expected exactly one of them")
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            _refuse_input(f"--token-file: cannot read {token_file}: {getattr(exc, 'strerror', None) or exc}")
    assert token is not None
    if problem := token_problem(token):
        _refuse_input(f"{'--token' if token_file is None else f'--token-file: {token_file}'}: {problem}")
    with _failures(login=True):
        with StargateClient(url, token) as client:
            me = client.whoami()
        path = save_config(ClientConfig(url=url.rstrip("/"), token=token), os.environ)
    if as_json:
        _print_json({"url": url.rstrip("/"), "config": str(path), "whoami": me})
        return
    team = f"team {visible(me['team'])}" if me["team"] else "no team"
    typer.echo(
        f"logged in to {visible(url.rstrip('/'))} as {visible(me['name'])} ({team}, role {visible(me['role'])}); "
        f"config saved to {path}"
    )


def submit(
    file: Path = typer.Argument(..., help="A job spec YAML file (see examples/jobs/)."),
    idempotency_key: str | None = typer.Option(
        None,
        "--idempotency-key",
        help="Send this Idempotency-Key (1 to 255 printable ASCII characters) instead of a fresh random one: "
        "submitting again with the same key and file gets the same job.",
    ),
    retry_for: float = typer.Option(
        DEFAULT_RETRY_S,
        "--retry-for",
        help="Seconds to keep retrying when the server cannot be reached or fails (5xx), 0 to 3600; safe: the "
        "retries carry the same Idempotency-Key.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Validate a job file locally, then submit it; prints the new job's id. Retries on a lost connection without
    ever making a second job (each submission carries an Idempotency-Key)."""
    if idempotency_key is not None and (bad_key := _key_problem(idempotency_key)):
        _refuse_input(f"--idempotency-key: {bad_key}")
    _check_retry_for(retry_for)
    from stargate.cli.jobfile import JobFileError, load_job_file  # on use: pydantic, the domain and YAML are heavy

    try:
        spec = load_job_file(file)
    except JobFileError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    key = idempotency_key or str(uuid.uuid4())
    body = spec.model_dump(mode="json", exclude_none=True)

    def said(error: ClientError, attempt: int, delay_s: float) -> None:
        if attempt == 1:
            typer.echo(f"warning: {error}; retrying for up to {retry_for:g} s with Idempotency-Key {key}", err=True)

    with _failures(), _client() as client:
        new = with_retries(lambda: client.submit_job(body, idempotency_key=key), retry_for, said)
    if as_json:
        _print_json(new)
        return
    typer.echo(
        f"submitted {visible(new['id'])} ({visible(new['name'])}) to queue {visible(new['queue'])}: "
        f"{gpu_count(new['gpus'])}, {visible(new['status'])}"
    )


def _key_problem(key: str) -> str | None:
    """Why ``key`` is not an Idempotency-Key the server accepts; None when it is one."""
    if 1 <= len(key) <= 255 and all(" " <= c <= "~" for c in key):
        return None
    return f"found {json.dumps(key[:60])}; expected 1 to 255 printable ASCII characters"


def _check_retry_for(seconds: float) -> None:
    if not 0 <= seconds <= 3600:
        _refuse_input(f"--retry-for: found {seconds:g}; expected a number of seconds from 0 to 3600")


def jobs(
    status: str | None = typer.Option(None, "--status", help=f"Only jobs in this status: {', '.join(JOB_STATUSES)}."),
    queue: str | None = typer.Option(None, "--queue", help="Only jobs of this queue."),
    team: str | None = typer.Option(None, "--team", help="Only jobs of this team."),
    limit: int = typer.Option(50, "--limit", help="Show at most this many jobs (newest first), 1 to 500."),
    every: bool = typer.Option(False, "--all", help="Show every matching job (follows the pages; ignores --limit)."),
    as_json: bool = JsonOption,
) -> None:
    """List jobs, newest first."""
    if status is not None and status not in JOB_STATUSES:
        _refuse_input(f"--status: found '{status}'; expected one of {', '.join(JOB_STATUSES)}")
    if not 1 <= limit <= 500:
        _refuse_input(f"--limit: found {limit}; expected an integer from 1 to 500")
    with _failures(), _client() as client:
        if every:
            found = list(client.iter_jobs(status=status, queue=queue, team=team, page_size=PAGE_SIZE))
            page: dict[str, Any] = {"items": found, "next_cursor": None}
        else:
            page = dict(client.list_jobs(status=status, queue=queue, team=team, limit=limit))
    if as_json:
        _print_json(page)
        return
    render_jobs(page["items"], page["next_cursor"])


def job(job_id: str = typer.Argument(..., help="Job id, e.g. j-000123."), as_json: bool = JsonOption) -> None:
    """Show one job in full."""
    _check_job_id(job_id)
    with _failures(), _client() as client:
        found = client.get_job(job_id)
    if as_json:
        _print_json(found)
        return
    render_job(found)


def logs(
    job_id: str = typer.Argument(..., help="Job id, e.g. j-000123."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output until the job is final."),
    interval_s: float = typer.Option(0.5, "--interval", help="Seconds between polls with --follow, at least 0.05."),
    retry_for: float = typer.Option(
        DEFAULT_RETRY_S,
        "--retry-for",
        help="Seconds to keep reconnecting when the server goes away (e.g. restarts) or fails (5xx), 0 to 3600.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print each chunk as one JSON object per line."),
) -> None:
    """Print a job's whole output (its latest attempt; the server sends it in pages of up to 1 MiB); with -f,
    follow it until the job is final and its log complete, reconnecting from the last byte after a server restart."""
    _check_job_id(job_id)
    if not 0.05 <= interval_s <= 86_400:
        _refuse_input(f"--interval: found {interval_s:g}; expected a number of seconds from 0.05 to 86400")
    _check_retry_for(retry_for)
    offset = 0
    lost = False

    def said(error: ClientError, attempt: int, delay_s: float) -> None:
        nonlocal lost
        if attempt == 1:
            lost = True
            typer.echo(f"warning: {error}; reconnecting from byte {offset} for up to {retry_for:g} s", err=True)

    with _failures(), _client() as client:
        while True:
            chunk = with_retries(partial(client.job_logs, job_id, offset), retry_for, said)
            if lost:
                lost = False
                typer.echo(f"reconnected; continuing from byte {offset}", err=True)
            _emit_chunk(chunk, as_json, first=offset == 0)
            moved, offset = chunk["next_offset"] != offset, chunk["next_offset"]
            if chunk["complete"] or (not follow and not moved):
                return
            if not moved:
                time.sleep(interval_s)


def cancel(job_id: str = typer.Argument(..., help="Job id, e.g. j-000123."), as_json: bool = JsonOption) -> None:
    """Cancel a job: pending jobs end at once, running ones are stopped (SIGTERM, then SIGKILL after a grace)."""
    _check_job_id(job_id)
    with _failures(), _client() as client:
        after = client.cancel_job(job_id)
    if as_json:
        _print_json(after)
        return
    typer.echo(f"cancel requested for {visible(after['id'])}: status {visible(after['status'])}")


def queues(as_json: bool = JsonOption) -> None:
    """List the queues with their quotas and what is pending and running in them."""
    with _failures(), _client() as client:
        found = client.queues()
        scheduling = None if as_json else client.scheduling()
    if as_json:
        _print_json(found)
        return
    render_queues(found, scheduling)


@token_app.command("list")
def token_list(as_json: bool = JsonOption) -> None:
    """List every token with its state (live, expired, revoked); never a secret."""
    with _failures(), _client() as client:
        items = client.list_tokens()
    if as_json:
        _print_json(items)
        return
    render_tokens(items)


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., "--role", help="admin, member, viewer or provider."),
    team: str | None = typer.Option(None, "--team", help="Team of the token (required for member and viewer)."),
    provider: str | None = typer.Option(
        None, "--provider", help="The provider a provider token speaks for (required for --role provider, only then)."
    ),
    name: str | None = typer.Option(None, "--name", help="A name to recognise the token by; default: ROLE-TEAM."),
    expires: str | None = typer.Option(
        None, "--expires", help="When it stops working: a duration (30m, 12h, 7d, 2w) or an ISO 8601 time with a zone."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a token and print it once (only a salted hash is stored)."""
    if role not in ("admin", "member", "viewer", "provider"):
        _refuse_input(f"--role: found '{role}'; expected admin, member, viewer or provider")
    if (role == "provider") != (provider is not None):
        _refuse_input(
            f"--provider: found {'nothing' if provider is None else repr(provider)}; expected a provider id with "
            "--role provider and nothing with another role"
        )
    try:
        expires_at = parse_expiry(expires, datetime.now(UTC)) if expires is not None else None
    except ValueError as exc:
        _refuse_input(f"--expires: {exc}")
    label = name or (f"{role}-{team or provider}" if team or provider else role)
    with _failures(), _client() as client:
        made = client.create_token(label, role, team, expires_at, provider=provider)
    if as_json:
        _print_json(made)
        return
    until = f", expires {when(made.get('expires_at'))}" if made.get("expires_at") else ""
    whose = f"provider {visible(provider)}" if provider else f"team {visible(team or '-')}"
    shown = f"{visible(made['id'])} ({role}, {whose}, name {visible(label)}{until})"
    typer.echo(f"token {shown}: {made['token']}")
    typer.echo("(shown once; only a salted hash is stored)")


@token_app.command("revoke")
def token_revoke(
    token_id: str = typer.Argument(..., help="The token's id, e.g. t-0123456789abcdef."), as_json: bool = JsonOption
) -> None:
    """Revoke a token (idempotent): this server refuses it at once, every other within 5 s. The last live admin
    token is never revoked (409)."""
    if not _TOKEN_ID.fullmatch(token_id):
        shown = "nothing (an empty id)" if not token_id else ascii(token_id[:40] + ("…" if len(token_id) > 40 else ""))
        _refuse_input(f"TOKEN_ID: found {shown}; expected a token id such as t-0123456789abcdef")
    with _failures(), _client() as client:
        item = client.revoke_token(token_id)
    if as_json:
        _print_json(item)
        return
    typer.echo(
        f"token {visible(item['id'])} ({visible(item['name'])}) revoked at {when(item['revoked_at'])} "
        f"by {visible(item['revoked_by'])}"
    )


@contextmanager
def _client() -> Iterator[StargateClient]:
    """A client configured from the saved config and ``STARGATE_URL`` / ``STARGATE_TOKEN``."""
    try:
        config = load_config(os.environ)
    except ValueError as exc:
        _refuse_input(str(exc))
    with StargateClient(config.url, config.token) as client:
        yield client


@contextmanager
def _failures(login: bool = False) -> Iterator[None]:
    """Turn a client error into one line on stderr and its exit code (never a traceback)."""
    try:
        yield
    except UnauthorizedError as exc:
        message = f"{exc.status} unauthorised: {exc.detail}; check the token" if login else str(exc)
        typer.echo(f"error: {visible(message)}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except ClientError as exc:
        typer.echo(f"error: {visible(exc)}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _refuse_input(message: str) -> NoReturn:
    """Report bad local input and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


_JOB_ID = re.compile(r"j-[0-9]{1,18}")
_TOKEN_ID = re.compile(r"t-[0-9a-f]{8,32}")
"""A token id as the server makes them (``t-`` and hex digits; see ``stargate.store.repositories.tokens``)."""


def _check_job_id(job_id: str) -> None:
    """Exit 2 with one line unless ``job_id`` looks like a job id (``j-`` and 1 to 18 digits, as the server reads)."""
    if not _JOB_ID.fullmatch(job_id):
        shown = "nothing (an empty id)" if not job_id else ascii(job_id[:40] + ("…" if len(job_id) > 40 else ""))
        _refuse_input(f"JOB_ID: found {shown}; expected a job id such as j-000123")


def _print_json(data: object) -> None:
    """Pretty JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _emit_chunk(chunk: Any, as_json: bool, first: bool) -> None:
    """Write one log chunk: raw text, or one JSON line (empty chunks only when they are the first or the last)."""
    if as_json:
        if chunk["text"] or chunk["complete"] or first:
            sys.stdout.write(json.dumps(chunk, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(chunk["text"])
    sys.stdout.flush()
