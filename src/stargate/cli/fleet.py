"""CLI commands: ``fleet validate``, ``fleet show`` and ``schema fleet|job`` (see docs/reference/cli-fleet.md).

Bad input (a fleet file with problems, a malformed option) prints located errors and exits with code 2;
nothing is ever written.
"""

import json
import re
import sys
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from stargate.domain import Fleet, JobSpec
from stargate.fleetfile import FleetFileError, fleet_files, load_fleet
from stargate.fleetfile.summary import counts, default_months, energized_mw_by_month, show_document, totals

EXIT_INPUT = 2
"""Exit code for bad input: the fleet file or an option."""

fleet_app = typer.Typer(
    help="Check and show fleet files (YAML: one file or a directory); a server's cluster health and its events.",
    no_args_is_help=True,
)
schema_app = typer.Typer(help="Print the JSON Schema of an input format.", no_args_is_help=True)

PathArg = typer.Argument(..., help="A fleet YAML file, or a directory of *.yaml / *.yml files.", show_default=False)
JsonOpt = typer.Option(False, "--json", help="Print one JSON document on stdout (shape: docs/reference/cli-fleet.md).")


def register(app: typer.Typer) -> None:
    """Add the ``fleet`` and ``schema`` command groups to the root app (``fleet health`` and ``fleet events``, which
    ask a running server, come from :mod:`stargate.cli.fleet_server`)."""
    from stargate.cli.fleet_server import register as _register_server

    _register_server(fleet_app)
    app.add_typer(fleet_app, name="fleet")
    app.add_typer(schema_app, name="schema")


@fleet_app.command("validate")
def validate(path: Path = PathArg, as_json: bool = JsonOpt) -> None:
    """Check a fleet: every problem is listed at once (FILE:LINE:COL: PATH: found X; expected Y); exit code 2."""
    fleet = _load_or_exit(path, as_json)
    if as_json:
        _print_json({"valid": True, "errors": [], "summary": _summary(path, fleet, 0)})
        return
    n = counts(fleet)
    typer.echo(
        f"ok: {path}: {_count(n['providers'], 'provider')}, {_count(n['sites'], 'site')}, "
        f"{_count(n['buildings'], 'building')}, {_count(n['clusters'], 'cluster')} "
        f"({_count(n['gpus'], 'GPU')}), {_count(n['contracts'], 'contract')}"
    )


def _count(n: int, noun: str) -> str:
    """``1 provider``, ``2 providers``, ``12,345 GPUs``."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@fleet_app.command("show")
def show(
    path: Path = PathArg,
    as_json: bool = JsonOpt,
    start: str | None = typer.Option(
        None, "--from", help="First month of the energised-power table, YYYY-MM (default: earliest energisation)."
    ),
    months: int | None = typer.Option(
        None, "--months", help="Months in the energised-power table, 1 to 240 (default: up to the latest, ≤36)."
    ),
) -> None:
    """Show a fleet as tables: providers, sites, energised MW by month, buildings, clusters, contracts, budget.

    Also clauses, teams and queues with quotas, and totals; --json prints the documented JSON document instead.
    """
    first = _parse_month(start)
    if months is not None and not 1 <= months <= 240:
        sys.stderr.write(f"error: --months: found {months}; expected an integer from 1 to 240\n")
        raise typer.Exit(EXIT_INPUT)
    fleet = _load_or_exit(path, as_json)
    labels = default_months(fleet, first, months)
    if as_json:
        _print_json(show_document(fleet, labels))
        return
    _render(fleet, labels)


@schema_app.command("fleet")
def schema_fleet() -> None:
    """Print the JSON Schema of a fleet file (one file; a directory's files each hold a subset of its keys)."""
    _print_json(_schema(Fleet))


@schema_app.command("job")
def schema_job() -> None:
    """Print the JSON Schema of a job spec."""
    _print_json(_schema(JobSpec))


def _schema(model: type[Fleet] | type[JobSpec]) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}


def _print_json(doc: dict[str, Any]) -> None:
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def _parse_month(text: str | None) -> date | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if match is None or not 1 <= int(match[2]) <= 12:
        sys.stderr.write(f"error: --from: found '{text}'; expected a month as YYYY-MM, e.g. 2025-06\n")
        raise typer.Exit(EXIT_INPUT)
    return date(int(match[1]), int(match[2]), 1)


def _load_or_exit(path: Path, as_json: bool) -> Fleet:
    """Load the fleet; on problems print them (stderr, or the JSON document on stdout) and exit with code 2."""
    try:
        return load_fleet(path)
    except FleetFileError as exc:
        problems = exc.problems
    if as_json:
        errors = [p.to_json() for p in problems]
        _print_json({"valid": False, "errors": errors, "summary": _summary(path, None, len(problems))})
    else:
        for problem in problems:
            sys.stderr.write(f"{problem}\n")
        plural = "s" if len(problems) != 1 else ""
        sys.stderr.write(f"error: {len(problems)} problem{plural} in {path}; the fleet was not loaded\n")
    raise typer.Exit(EXIT_INPUT)


def _summary(path: Path, fleet: Fleet | None, errors: int) -> dict[str, Any]:
    try:
        files = [str(f) for f in fleet_files(path)] if path.exists() else []
    except OSError:  # an unreadable directory: the problem list already says so
        files = []
    empty = dict.fromkeys(("providers", "sites", "buildings", "clusters", "gpus", "contracts", "teams", "queues"))
    return {"path": str(path), "files": files, "errors": errors, **(counts(fleet) if fleet else empty)}


def _usd(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _mw(value: float | None) -> str:
    return "not limited" if value is None else f"{value:,.1f}"


_PIPED_WIDTH = 200
"""Table width when stdout is not a terminal (a pipe or a file), so ids are not folded."""
_NUMERIC = ("(TFLOP/s)", "(GiB)", "(W)", "(MW)", "(GPUs)", "(USD)", "(sq ft)", "(USD/GPU-h)", "(days)", " GPUs/node")


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        right = column == "GPUs" or column.endswith(_NUMERIC)
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    return table


def _render(fleet: Fleet, months: list[str]) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=_PIPED_WIDTH)
    header = f"[bold]{fleet.name}[/bold]" + (f" (as of {fleet.as_of.isoformat()})" if fleet.as_of else "")
    console.print(header + (f": {fleet.description}" if fleet.description else ""))
    for table in (
        _gpu_models(fleet),
        _providers(fleet),
        _executors(fleet),
        _sites(fleet),
        _power(fleet, months),
        _buildings(fleet),
        _clusters(fleet),
        _contracts(fleet),
        _clauses(fleet),
        _budget(fleet),
        _queues(fleet),
        _totals(fleet),
    ):
        if table.row_count:
            console.print(table)


def _gpu_models(fleet: Fleet) -> Table:
    t = _table("GPU models declared by the fleet", "name", "BF16 dense (TFLOP/s)", "HBM (GiB)", "TDP (W)", "source")
    for m in fleet.gpu_models:
        t.add_row(m.name, f"{m.bf16_dense_tflops:,g}", f"{m.hbm_gib:g}", f"{m.tdp_w:g}", m.source)
    return t


def _providers(fleet: Fleet) -> Table:
    t = _table("Providers", "id", "name", "kind", "executor", "on-demand limit (GPUs)")
    for p in fleet.providers:
        limit = "" if p.capacity_limit_gpus is None else f"{p.capacity_limit_gpus:,}"
        t.add_row(p.id, p.name, p.kind.value, p.executor, limit)
    return t


def _executors(fleet: Fleet) -> Table:
    t = _table("Executors declared by the fleet", "id", "kind", "where", "runs", "clusters")
    used = Counter(fleet.cluster_executor_ids().values())
    for e in fleet.executors:
        where = getattr(e, "address", None) or getattr(e, "partition", None) or getattr(e, "namespace", None) or ""
        t.add_row(e.id, e.kind, str(where), " and ".join(sorted(e.features())), str(used[e.id]))
    return t


def _sites(fleet: Fleet) -> Table:
    t = _table("Sites", "id", "provider", "region", "envelope (MW)", "PUE", "buildings", "clusters", "GPUs")
    for s in fleet.sites:
        buildings = sum(1 for b in fleet.buildings if b.site == s.id)
        clusters = [c for c in fleet.clusters if c.site == s.id]
        gpus = sum(c.gpus for c in clusters)
        t.add_row(
            s.id, s.provider, s.region, _mw(s.power_mw), f"{s.pue:g}", str(buildings), str(len(clusters)), f"{gpus:,}"
        )
    return t


def _power(fleet: Fleet, months: list[str]) -> Table:
    sites = [s for s in fleet.sites if s.power_mw is not None or any(b.site == s.id for b in fleet.buildings)]
    t = _table("Energised power by month", "month", *(f"{s.id} (MW)" for s in sites))
    t.caption = "facility MW = energised IT MW × PUE, at month end"
    if not sites:
        return t
    series = {s.id: energized_mw_by_month(fleet, s.id, months) for s in sites}
    for label in months:
        t.add_row(label, *(_mw(series[s.id][label]) for s in sites))
    return t


def _buildings(fleet: Fleet) -> Table:
    t = _table(
        "Buildings", "id", "site", "floor (sq ft)", "IT power (MW)", "GPUs", "model", "capex (USD)", "planned", "actual"
    )
    for b in fleet.buildings:
        actual = b.actual_energization.isoformat() if b.actual_energization else ""
        t.add_row(
            b.id, b.site, f"{b.floor_area_sq_ft:,}", f"{b.it_power_mw:,.1f}", f"{b.gpus:,}", b.gpu_model,
            _usd(b.capex_usd), b.planned_energization.isoformat(), actual,
        )  # fmt: skip
    return t


def _clusters(fleet: Fleet) -> Table:
    t = _table(
        "Clusters", "id", "site", "building", "model", "GPUs", "nodes × GPUs/node", "interconnect",
        "price (USD/GPU-h)", "contract", "online", "status",
    )  # fmt: skip
    for c in fleet.clusters:
        online = f"{_day(c.online_from)} → {_day(c.online_until)}" if c.online_from or c.online_until else ""
        t.add_row(
            c.id, c.site, c.building or "", c.gpu_model, f"{c.gpus:,}", f"{c.nodes:,} × {c.gpus_per_node}",
            c.interconnect, f"{c.price_per_gpu_hour_usd:,.4f}", c.contract or "", online, c.status.value,
        )  # fmt: skip
    return t


def _day(day: date | None) -> str:
    return day.isoformat() if day else "…"


def _contracts(fleet: Fleet) -> Table:
    t = _table(
        "Contracts", "id", "provider", "kind", "term", "model", "GPUs", "price (USD/GPU-h)", "value (USD)",
        "committed (USD)",
    )  # fmt: skip
    for k in fleet.contracts:
        price = "" if k.price_per_gpu_hour_usd is None else f"{k.price_per_gpu_hour_usd:,.4f}"
        t.add_row(
            k.id, k.provider, k.kind.value, f"{k.start.isoformat()} → {k.end.isoformat()}", k.gpu_model or "any",
            "" if k.gpus is None else f"{k.gpus:,}", price, _usd(k.value_usd), _usd(k.committed_spend_usd),
        )  # fmt: skip
    return t


def _clauses(fleet: Fleet) -> Table:
    t = _table("Clauses", "contract", "clause", "holder", "scope", "window (days)", "match rule", "valid")
    for k in fleet.contracts:
        r = k.right_of_first_refusal
        if r is not None:
            scope = ", ".join(r.gpu_models) or "all new capacity"
            valid = f"{r.valid_from.isoformat()} → {r.valid_until.isoformat()}"
            t.add_row(k.id, "right of first refusal", r.holder, scope, str(r.response_window_days), r.match_rule, valid)
        e = k.exclusivity
        if e is not None:
            scope = ", ".join(e.gpu_models) or "all"
            t.add_row(k.id, "exclusivity", k.provider, scope, "", "", f"until {e.until.isoformat()}")
    return t


def _budget(fleet: Fleet) -> Table:
    t = _table("Budget", "initial (USD)", "ceiling (USD)", "period")
    b = fleet.budget
    if b is not None:
        t.add_row(_usd(b.initial_usd), _usd(b.ceiling_usd), f"{b.start.isoformat()} → {b.end.isoformat()}")
    return t


def _queues(fleet: Fleet) -> Table:
    t = _table("Teams and queues", "queue", "team", "cohort", "quotas (GPUs, +borrowing limit)", "priority classes")
    teams = {tm.id: tm.name for tm in fleet.teams}
    for q in fleet.queues:
        quotas = ", ".join(
            f"{x.gpu_model}: {x.gpus:,}" + ("" if x.borrowing_limit_gpus is None else f" +{x.borrowing_limit_gpus:,}")
            for x in q.quotas
        )
        team = f"{q.team} ({teams[q.team]})" if q.team in teams else q.team
        t.add_row(q.id, team, q.cohort or "", quotas, ", ".join(q.priority_classes) or "all")
    return t


def _totals(fleet: Fleet) -> Table:
    t = _table("Totals", "what", "value")
    figures = totals(fleet)
    t.add_row("GPUs", f"{figures['gpus']:,} GPUs")
    for model, n in figures["gpus_by_model"].items():
        t.add_row(f"GPUs, {model}", f"{n:,} GPUs")
    for provider, n in figures["gpus_by_provider"].items():
        t.add_row(f"GPUs at {provider}", f"{n:,} GPUs")
    t.add_row("contract value", f"{Decimal(figures['contract_value_usd']):,.2f} USD")
    t.add_row("committed spend", f"{Decimal(figures['committed_spend_usd']):,.2f} USD")
    return t
