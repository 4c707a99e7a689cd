"""CLI commands for contracts, procurement, the budget and costs through a running server: ``stargate contracts``,
``stargate procure request|requests|offers|respond|quote|override|events``, ``stargate budget`` and ``stargate
costs`` (see docs/reference/cli-client.md).

Exit codes: 0 ok; 1 the server refused (401, 403, 404) or failed, or ``costs --reconcile`` found differences; 2 bad
input, found here or by the server (409: a late or second answer, an override of a request not over budget; 422: a
bad field, a bill with an unknown column or another currency); 3 no server.
"""

import json
import math
import re
import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.table import Table

from stargate.cli.client import JsonOption, _client, _failures, _print_json, _refuse_input
from stargate.cli.render import console, when
from stargate.cli.text import cell, visible
from stargate.client import ConflictError, InvalidError

EXIT_DIFFERENCES = 1
"""``costs --reconcile`` exits 1 when the bill and the ledger differ."""
BY = ("team", "contract", "provider", "day", "queue", "job")

procure_app = typer.Typer(
    help="Capacity requests, offers to first-refusal holders, quotes, overrides.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    for command in (contracts, budget, costs):
        app.command()(command)
    app.add_typer(procure_app, name="procure")


class _BadInput:
    """Turns the server's 409 and 422 into exit 2 (bad input), with the server's message."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, ConflictError | InvalidError):
            typer.echo(f"error: {visible(str(exc))}", err=True)
            raise typer.Exit(2)


def _price(text: str | None, option: str) -> str | None:
    """A price as the server reads it (a decimal string), or exit 2."""
    if text is None:
        return None
    try:
        value = Decimal(text) if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text) else Decimal("NaN")
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        _refuse_input(f"{option}: found {json.dumps(text[:40])}; expected a price in USD per GPU-hour, 0 or more")
    return text


def _day(text: str | None, option: str) -> str | None:
    """A day as ISO 8601 (YYYY-MM-DD), or exit 2."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        _refuse_input(f"{option}: found {json.dumps(text[:40])}; expected a day such as 2027-01-01")


def _usd(value: str | None) -> str:
    """An amount for a table: thousands separated, cents."""
    if value is None:
        return "-"
    amount = Decimal(value)
    return f"{amount:,.2f}" if math.isfinite(amount) else str(amount)


def contracts(as_json: bool = JsonOption) -> None:
    """List the fleet's contracts: kind, term, price, what they commit and what was spent under them (admin)."""
    with _failures(), _client() as client:
        items = client.contracts()
    if as_json:
        _print_json(items)
        return
    table = Table(title=f"{len(items)} contract{'s' if len(items) != 1 else ''}", title_justify="left")
    for name in ("ID", "PROVIDER", "KIND", "TERM", "GPU MODEL", "GPUS", "USD/GPU-H", "VALUE/COMMIT USD", "SPENT USD"):
        table.add_column(name, no_wrap=name in {"ID", "TERM"})
    table.add_column("CLAUSES")
    for c in items:
        rofr, excl = c.get("right_of_first_refusal"), c.get("exclusivity")
        clauses = [f"first refusal to {rofr['holder']} ({rofr['response_window_days']} d)"] if rofr else []
        clauses += [f"exclusive until {excl['until']}"] if excl else []
        clauses += [f"award for {c['awarded_for']}"] if c.get("awarded_for") else []
        table.add_row(
            *map(
                cell,
                (
                    c["id"],
                    c["provider"],
                    c["kind"],
                    f"{c['start']} → {c['end']}",
                    c.get("gpu_model") or "any",
                    c.get("gpus") or "-",
                    c.get("price_per_gpu_hour_usd") or "-",
                    _usd(c.get("committed_spend_usd") or c.get("value_usd")),
                    _usd(c.get("spent_usd")),
                    "; ".join(clauses) or "-",
                ),
            )
        )
    console().print(table)


@procure_app.command("request")
def procure_request(
    gpu_model: str = typer.Option(..., "--gpu-model", help="GPU model wanted, e.g. GB200."),
    gpus: int = typer.Option(..., "--gpus", help="GPUs wanted, 1 to 10,000,000."),
    start: str = typer.Option(..., "--start", help="Earliest day wanted (YYYY-MM-DD)."),
    term_days: int = typer.Option(..., "--term-days", help="Term, days, 1 to 36,500."),
    reason: str = typer.Option("", "--reason", help="Why it is needed (recorded)."),
    as_json: bool = JsonOption,
) -> None:
    """Raise a capacity request (admin): offered to the first-refusal holder, else bought on the market."""
    if not 1 <= gpus <= 10_000_000:
        _refuse_input(f"--gpus: found {gpus}; expected 1 to 10,000,000 GPUs")
    if not 1 <= term_days <= 36_500:
        _refuse_input(f"--term-days: found {term_days}; expected 1 to 36,500 days")
    body = {"gpu_model": gpu_model, "gpus": gpus, "start": _day(start, "--start"), "term_days": term_days}
    with _failures(), _BadInput(), _client() as client:
        step = client.raise_request(body | {"reason": reason})
    _show_step(step, as_json)


@procure_app.command("requests")
def procure_requests(as_json: bool = JsonOption) -> None:
    """List the capacity requests, newest first, with their offers and awards."""
    with _failures(), _client() as client:
        items = client.capacity_requests()
    if as_json:
        _print_json(items)
        return
    table = Table(title=f"{len(items)} capacity request{'s' if len(items) != 1 else ''}", title_justify="left")
    for name in ("ID", "STATE", "GPUS", "MODEL", "START", "TERM D", "RAISED BY", "OFFER", "AWARD"):
        table.add_column(name, no_wrap=name in {"ID", "STATE", "START"})
    for r in items:
        offer, award = r.get("offer"), r.get("award")
        table.add_row(
            *map(
                cell,
                (
                    r["id"],
                    r["state"],
                    f"{r['gpus']:,}",
                    r["gpu_model"],
                    r["start"],
                    r["term_days"],
                    f"{r['raised_by']} ({r['actor']})",
                    f"{offer['holder']}: {offer['state']}" if offer else "-",
                    f"{award['provider']} {award['via']}, {_usd(award['cost_usd'])} USD" if award else "-",
                ),
            )
        )
    console().print(table)


@procure_app.command("offers")
def procure_offers(
    state: str | None = typer.Option(None, "--state", help="Only offers in this state (open, matched, declined, ...)."),
    as_json: bool = JsonOption,
) -> None:
    """List offers to first-refusal holders (a provider token: those made to its provider)."""
    with _failures(), _BadInput(), _client() as client:
        items = client.offers(state)
    if as_json:
        _print_json(items)
        return
    table = Table(title=f"{len(items)} offer{'s' if len(items) != 1 else ''}", title_justify="left")
    for name in ("ID", "STATE", "HOLDER", "GPUS", "MODEL", "FROM", "TERM D", "BENCHMARK", "DEADLINE"):
        table.add_column(name, no_wrap=name in {"ID", "STATE", "DEADLINE"})
    for o in items:
        bench = o.get("benchmark_price_per_gpu_hour_usd")
        table.add_row(
            *map(
                cell,
                (
                    o["id"],
                    o["state"],
                    o["holder"],
                    f"{o['gpus']:,}",
                    o["gpu_model"],
                    o["request_start"],
                    o["term_days"],
                    f"{bench} USD/GPU-h from {o['benchmark_start']}" if bench else "none",
                    when(o["deadline"]),
                ),
            )
        )
    console().print(table)


@procure_app.command("respond")
def procure_respond(
    offer_id: str = typer.Argument(..., help="The offer's id, e.g. offer-r-0123456789."),
    match: bool = typer.Option(False, "--match", help="Take the capacity (at the benchmark unless --price/--start)."),
    decline: bool = typer.Option(False, "--decline", help="Decline: the request goes to the market."),
    price: str | None = typer.Option(None, "--price", help="Your price with --match, USD per GPU-hour."),
    start: str | None = typer.Option(None, "--start", help="Your start day with --match (YYYY-MM-DD)."),
    as_json: bool = JsonOption,
) -> None:
    """Answer an offer (a provider token of the offer's holder only)."""
    if match == decline:
        _refuse_input("--match/--decline: expected exactly one of them")
    if decline and (price is not None or start is not None):
        _refuse_input("--price/--start: expected them only with --match")
    body: dict[str, Any] = {"answer": "match" if match else "decline"}
    if (p := _price(price, "--price")) is not None:
        body["price_per_gpu_hour_usd"] = p
    if (d := _day(start, "--start")) is not None:
        body["start"] = d
    with _failures(), _BadInput(), _client() as client:
        step = client.respond(offer_id, body)
    _show_step(step, as_json)


@procure_app.command("quote")
def procure_quote(
    provider: str = typer.Option(..., "--provider", help="The provider quoting."),
    site: str = typer.Option(..., "--site", help="The provider's site where capacity lands."),
    gpu_model: str = typer.Option(..., "--gpu-model", help="GPU model quoted."),
    gpus_per_node: int = typer.Option(..., "--gpus-per-node", help="GPUs per node, 1 to 1,024."),
    price: str = typer.Option(..., "--price", help="USD per GPU-hour."),
    valid_from: str = typer.Option(..., "--valid-from", help="First day it may be taken (YYYY-MM-DD)."),
    valid_until: str | None = typer.Option(None, "--valid-until", help="Last day (YYYY-MM-DD); default: open."),
    max_gpus: int | None = typer.Option(None, "--max-gpus", help="Most GPUs one award may take."),
    lead_time_days: int = typer.Option(0, "--lead-time-days", help="Days from the request to the earliest start."),
    as_json: bool = JsonOption,
) -> None:
    """Add a market quote (admin); requests waiting for one may be awarded at once."""
    body: dict[str, Any] = {
        "provider": provider,
        "site": site,
        "gpu_model": gpu_model,
        "gpus_per_node": gpus_per_node,
        "price_per_gpu_hour_usd": _price(price, "--price"),
        "valid_from": _day(valid_from, "--valid-from"),
        "valid_until": _day(valid_until, "--valid-until"),
        "max_gpus": max_gpus,
        "lead_time_days": lead_time_days,
    }
    with _failures(), _BadInput(), _client() as client:
        step = client.add_quote(body)
    if as_json:
        _print_json(step)
        return
    q = step["quote"]
    what = f"{visible(q['provider'])} {visible(q['gpu_model'])} at {q['price_per_gpu_hour_usd']} USD per GPU-hour"
    typer.echo(f"quote {visible(q['id'])}: {what}")
    _show_events(step["events"])


@procure_app.command("override")
def procure_override(
    request_id: str = typer.Argument(..., help="The request's id, e.g. r-0123456789."),
    reason: str = typer.Option(..., "--reason", help="Why the budget is overridden (recorded with who and when)."),
    as_json: bool = JsonOption,
) -> None:
    """Award a request that is over budget anyway (admin); the reason is recorded."""
    if not reason.strip():
        _refuse_input("--reason: found blank text; expected why the budget is overridden")
    with _failures(), _BadInput(), _client() as client:
        step = client.override(request_id, reason)
    _show_step(step, as_json)


@procure_app.command("events")
def procure_events(
    request_id: str | None = typer.Option(None, "--request", help="Only the steps of this request."),
    as_json: bool = JsonOption,
) -> None:
    """Every procurement step, oldest first: when, what, who, why."""
    items: list[dict[str, Any]] = []
    with _failures(), _BadInput(), _client() as client:
        after = None
        while True:
            page = client.procurement_events(request_id=request_id, after=after, limit=1000)
            items += page["items"]
            if (after := page["next_cursor"]) is None:
                break
    if as_json:
        _print_json(items)
        return
    _show_events(items)


def _show_step(step: dict[str, Any], as_json: bool) -> None:
    """A procurement step: the request's state, its award, the events."""
    if as_json:
        _print_json(step)
        return
    r = step["request"]
    what = f"{r['gpus']:,} {visible(r['gpu_model'])} GPUs from {r['start']}, {r['term_days']} days"
    typer.echo(f"request {visible(r['id'])}: {visible(r['state'])} ({what})")
    if (o := r.get("offer")) is not None and r["state"] == "offered":
        typer.echo(f"offered to {visible(o['holder'])} as {visible(o['id'])}: answer before {when(o['deadline'])}")
    if (a := r.get("award")) is not None:
        typer.echo(
            f"awarded to {visible(a['provider'])} ({visible(a['via'])}) at site {visible(a['site'])}: "
            f"{a['gpus']:,} GPUs, "
            f"{a['price_per_gpu_hour_usd']} USD per GPU-hour, {a['start']} → {a['end']}, {_usd(a['cost_usd'])} USD; "
            f"contract {visible(a['contract_id'])} in fleet version {visible((a.get('fleet_version') or '-')[:12])}"
        )
    _show_events(step["events"])


def _show_events(events: list[dict[str, Any]]) -> None:
    for e in events:
        who = f"{visible(e['request_id'])} by {visible(e['actor'])}"
        typer.echo(f"  {when(e['at'])} {visible(e['kind']):<11} {who}: {visible(e['reason'])}")


def budget(as_json: bool = JsonOption) -> None:
    """Show the budget: every draw, what is drawn, headroom, what is beyond the initial envelope, conflicts."""
    with _failures(), _client() as client:
        report = client.budget()
    if as_json:
        _print_json(report)
        return
    if report["ceiling_usd"] is None:
        typer.echo(f"no budget in the fleet; draws total {_usd(report['drawn_usd'])} USD")
    else:
        typer.echo(
            f"budget {report['start']} → {report['end']}: initial {_usd(report['initial_usd'])} USD, ceiling "
            f"{_usd(report['ceiling_usd'])} USD; drawn {_usd(report['drawn_usd'])} USD, headroom "
            f"{_usd(report['headroom_usd'])} USD, beyond initial {_usd(report['beyond_initial_usd'])} USD"
        )
    table = Table(title=f"{len(report['draws'])} draws", title_justify="left")
    for name in ("DAY", "KIND", "REF", "USD", "HOW"):
        table.add_column(name, no_wrap=name != "HOW")
    for d in report["draws"]:
        table.add_row(*map(cell, (d["day"], d["kind"], d["ref"], _usd(d["amount_usd"]), d["what"])))
    console().print(table)
    for c in report["conflicts"]:
        over = f"drawn {_usd(c['drawn_usd'])} USD, over by {_usd(c['over_usd'])} USD"
        typer.echo(f"conflict on {c['day']}: {c['kind']}, {over} ({', '.join(c['refs'])})")


def costs(
    by: str = typer.Option("team", "--by", help=f"Group by {', '.join(BY)}."),
    since: str | None = typer.Option(None, "--since", help="First UTC day counted (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, "--until", help="Last UTC day counted (YYYY-MM-DD)."),
    export: str | None = typer.Option(None, "--export", help="'focus': write the FOCUS 1.0 CSV instead."),
    output: Path | None = typer.Option(None, "--output", "-o", help="With --export: write to this file, not stdout."),
    billing_account: str | None = typer.Option(None, "--billing-account", help="With --export: BillingAccountId."),
    bill: Path | None = typer.Option(None, "--reconcile", help="A provider's FOCUS bill (CSV) to compare (admin)."),
    as_json: bool = JsonOption,
) -> None:
    """What runs cost (members and viewers: their team's): grouped, exported as FOCUS CSV, or reconciled with a
    provider's bill (exit 1 when they differ, 2 for a bill that cannot be read)."""
    if by not in BY:
        _refuse_input(f"--by: found {json.dumps(by[:40])}; expected one of {', '.join(BY)}")
    if export not in (None, "focus"):
        _refuse_input(f"--export: found {json.dumps(export[:40])}; expected focus")
    if export is not None and bill is not None:
        _refuse_input("--export/--reconcile: expected one of them, not both")
    if output is not None and export is None:
        _refuse_input("--output: expected it only with --export focus")
    first, last = _day(since, "--since"), _day(until, "--until")
    if bill is not None:
        _reconcile(bill, as_json)
    elif export is not None:
        _export(first, last, billing_account, output)
    else:
        with _failures(), _BadInput(), _client() as client:
            out = client.costs(by, first, last)
        if as_json:
            _print_json(out)
            return
        who = f"team {out['team']}" if out["team"] else "every team"
        span = f", {out['since'] or '…'} → {out['until'] or '…'}" if out["since"] or out["until"] else ""
        table = Table(title=f"costs by {by} ({who}{span}, as of {when(out['as_of'])})", title_justify="left")
        for name in (by.upper(), "USD", "GPU-HOURS"):
            table.add_column(name, justify="left" if name == by.upper() else "right")
        for r in out["rows"]:
            table.add_row(cell(r["key"]), _usd(r["cost_usd"]), f"{Decimal(r['gpu_hours']):,.2f}")
        table.add_row("total", _usd(out["total_usd"]), f"{Decimal(out['gpu_hours']):,.2f}")
        console().print(table)


def _export(since: str | None, until: str | None, account: str | None, output: Path | None) -> None:
    """Stream the FOCUS CSV to ``output`` (or stdout)."""
    with _failures(), _BadInput(), _client() as client:
        if output is None:
            client.focus_export(sys.stdout.buffer, since, until, account)
            sys.stdout.buffer.flush()
            return
        try:
            with output.open("wb") as out:
                written = client.focus_export(out, since, until, account)
        except OSError as exc:
            _refuse_input(f"--output: cannot write {output}: {exc.strerror or exc}")
    typer.echo(f"wrote {written:,} bytes of FOCUS 1.0 CSV to {output}", err=True)


def _reconcile(path: Path, as_json: bool) -> NoReturn:
    """Send the bill; print the differences; exit 0 when none, 1 when some, 2 for a bill that cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        _refuse_input(f"--reconcile: cannot read {path}: {exc.strerror or exc}")
    with _failures():
        try:
            with _client() as client:
                result = client.reconcile(data)
        except InvalidError as exc:  # the bill cannot be read: its line and column, in the file's name
            typer.echo(f"error: {visible(exc.detail.replace('body:', f'{path}:', 1))}", err=True)
            raise typer.Exit(2) from None
    if as_json:
        _print_json(result)
    else:
        typer.echo(str(result["text"]))
    raise typer.Exit(0 if result["ok"] else EXIT_DIFFERENCES)
