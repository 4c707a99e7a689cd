"""CLI: ``stargate plan --scenario FILE``: plan capacity over a horizon of months (see docs/reference/cli-plan.md).

The group also holds the server's plan commands (``submit``, ``list``, ``show``, ``apply``) that
:mod:`stargate.cli.plan_server` adds. The planning stack (the engine, HiGHS, NumPy, Plotly) is imported only when a
plan is computed, so ``stargate plan --help`` and the server subcommands start fast.

Exit codes: 0 the plan was made (and the report written); 1 no plan exists (the diagnosis in words) or the report
could not be written; 2 bad input (a scenario with located problems, a bad flag, Ray unreachable or missing).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from stargate.planning.run import PlanRun

EXIT_NO_PLAN, EXIT_INPUT = 1, 2
MAX_MONTHS, MAX_SCENARIOS = 240, 100_000
TABLE_EVERY = 6
"""The monthly table shows every 6th month (and the last)."""

plan_app = typer.Typer(
    help="Plan capacity over months: demand against supply by source, what to sign or build, spend against the "
    "budget, Monte Carlo risk.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``plan`` group to the root app."""
    app.add_typer(plan_app, name="plan")


def _refuse(message: str, code: int = EXIT_INPUT) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@plan_app.callback()
def plan(
    ctx: typer.Context,
    scenario: Path | None = typer.Option(
        None, "--scenario", help="The plan scenario file (YAML); its `fleet` key names the fleet.", show_default=False
    ),
    months: int | None = typer.Option(
        None, "--months", help="Months in the horizon, 1 to 240 (default: the scenario's).", show_default=False
    ),
    scenarios: int = typer.Option(0, "--scenarios", help="Monte Carlo scenarios of the plan's risk, 0 to 100,000."),
    seed: int = typer.Option(0, "--seed", help="Seed of the Monte Carlo scenarios, 0 or more."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        help="Ray workers for the scenarios: 0 runs them in this process without Ray (default: the machine's cores).",
        show_default=False,
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Run the scenarios on this Ray cluster (HOST:PORT) instead of a local Ray."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the plan as one JSON document on stdout (shape: docs/reference/cli-plan.md)."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Write the HTML report here (one offline file).", show_default=False
    ),
    png: Path | None = typer.Option(
        None, "--png", help="Write the charts as a PNG here (needs Chrome or Chromium).", show_default=False
    ),
) -> None:
    """Plan capacity for a scenario: `stargate plan --scenario examples/stargate-2025/plan.yaml`."""
    if ctx.invoked_subcommand is not None:
        if scenario is not None:
            _refuse(f"--scenario is an option of `stargate plan` itself, not of `plan {ctx.invoked_subcommand}`")
        return
    if scenario is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(EXIT_INPUT)
    _check_flags(months, scenarios, seed, workers, report, png)
    run = _compute(scenario, months, scenarios, seed, workers, ray_address, as_json)
    if as_json:
        from stargate.planning.run import run_to_dict

        typer.echo(json.dumps(run_to_dict(run), indent=2, ensure_ascii=False))
    else:
        _summary(run)
    _write(run, report, png, quiet=as_json)


def _check_flags(
    months: int | None, scenarios: int, seed: int, workers: int | None, report: Path | None, png: Path | None
) -> None:
    if months is not None and not 1 <= months <= MAX_MONTHS:
        _refuse(f"--months: found {months}; expected 1 to {MAX_MONTHS} months")
    if not 0 <= scenarios <= MAX_SCENARIOS:
        _refuse(f"--scenarios: found {scenarios}; expected 0 to {MAX_SCENARIOS:,} scenarios")
    if seed < 0:
        _refuse(f"--seed: found {seed}; expected 0 or more")
    if workers is not None and workers < 0:
        _refuse(f"--workers: found {workers}; expected 0 (in this process, no Ray) or more workers")
    for flag, path in (("--report", report), ("--png", png)):
        if path is not None and (path.is_dir() or not path.resolve().parent.is_dir()):
            what = "a directory" if path.is_dir() else f"a path whose directory {path.parent} does not exist"
            _refuse(f"{flag}: found {what}; expected a file path in an existing directory")
    if png is not None:
        from stargate.planning.report import find_chrome

        if find_chrome() is None:
            _refuse(
                "--png: no Chrome found (BROWSER_PATH, /usr/bin/chromium, chromium on PATH): install Chromium "
                "(e.g. `apt-get install chromium`) or set BROWSER_PATH to a Chrome executable"
            )


def _compute(
    path: Path,
    months: int | None,
    scenarios: int,
    seed: int,
    workers: int | None,
    ray_address: str | None,
    as_json: bool,
) -> PlanRun:
    """Load, plan and run the risk; every expected failure becomes a message and an exit code."""
    from stargate.engine.plan_checks import scenario_problems
    from stargate.engine.plan_solve import PlanInfeasible
    from stargate.planning.montecarlo import RayUnavailable
    from stargate.planning.run import compute
    from stargate.planning.scenario_file import ScenarioFileError, load_scenario

    try:
        loaded = load_scenario(path)
    except ScenarioFileError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        count = len(exc.problems)
        _refuse(f"{count} problem{'s' if count != 1 else ''} in {path}; no plan was made")
    for warning in loaded.warnings:
        typer.echo(f"warning: {warning}", err=True)
    scenario = loaded.scenario
    if months is not None and months != scenario.months:
        scenario = scenario.model_copy(update={"months": months})
        problems = scenario_problems(scenario, loaded.fleet, loaded.history)
        if problems:
            for p in problems:
                sys.stderr.write(f"{path}: {p.dotted()}: found {p.found}; expected {p.expected}\n")
            _refuse(f"{len(problems)} problem(s) in {path} with --months {months}; no plan was made")
    try:
        with _progress(scenarios, enabled=not as_json) as progress:
            return compute(
                scenario,
                loaded.fleet,
                loaded.history,
                scenarios=scenarios,
                seed=seed,
                workers=workers,
                ray_address=ray_address,
                progress=progress,
            )
    except PlanInfeasible as exc:
        _refuse(f"infeasible plan: {exc.message}", EXIT_NO_PLAN)
    except RayUnavailable as exc:
        _refuse(str(exc))
    except ValueError as exc:  # demand out of range, found while the inputs are built
        _refuse(f"{path}: {exc}")


class _progress:
    """A Rich progress bar on stderr over the Monte Carlo scenarios (nothing when disabled or with no scenarios)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled and total > 0
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("Monte Carlo"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("scenarios"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task("scenarios", total=self.total)
        return self.update

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _write(run: PlanRun, report: Path | None, png: Path | None, quiet: bool) -> None:
    from stargate.planning.report import ReportError, write_html, write_png

    def say(text: str) -> None:
        typer.echo(text, err=quiet)

    if report is not None:
        try:
            size = write_html(run, report)
        except OSError as exc:
            _refuse(f"--report: cannot write {report}: {exc.strerror or exc}", EXIT_NO_PLAN)
        say(f"report: {report} ({size / 1e6:.1f} MB)")
    if png is not None:
        try:
            write_png(run, png)
        except (ReportError, OSError) as exc:
            _refuse(f"--png: {exc}", EXIT_NO_PLAN)
        say(f"chart: {png}")


def _summary(run: PlanRun) -> None:
    """The plan on the terminal: headline figures, spend by year, the monthly table (condensed), the actions."""
    from rich.table import Table

    from stargate.cli.render import console
    from stargate.cli.text import cell
    from stargate.planning.run import headline, spend_by_year, usd_text

    out = console()
    plan, inputs = run.plan, run.inputs
    months = inputs.months
    out.print(
        f"[bold]Plan {cell(inputs.scenario)}[/]: {months[0]:%Y-%m} to {months[-1]:%Y-%m} ({len(months)} months), "
        f"{cell(plan.status)}, solved in {plan.solve_seconds:.2f} s"
    )
    heads = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    for label, text in headline(run):
        heads.add_row(f"[bold]{cell(label)}[/]", cell(text))
    out.print(heads)
    for note in plan.notes:
        out.print(f"note: {cell(note)}")

    years = Table(title="Spend by year against the budget", title_justify="left")
    for name in ("YEAR", "SPEND", "CUMULATIVE", "ENVELOPE", "HEADROOM"):
        years.add_column(name, justify="left" if name == "YEAR" else "right")
    for y in spend_by_year(plan):
        env = y.envelope_usd
        years.add_row(
            f"{y.year}" + (f" ({y.months} months)" if y.months < 12 else ""),
            usd_text(y.spend_usd),
            usd_text(y.cumulative_usd),
            usd_text(env) if env is not None else "no budget",
            usd_text(env - y.cumulative_usd) if env is not None else "-",
        )
    out.print(years)

    table = Table(title=f"Months (every {TABLE_EVERY}th, and the last; GPUs all models)", title_justify="left")
    for name in ("MONTH", "DEMAND GPUS", "SUPPLY GPUS", "USED GPUS", "SHORTFALL GPUS", "SPEND", "CUMULATIVE"):
        table.add_column(name, justify="left" if name == "MONTH" else "right")
    shown = [i for i in range(len(plan.rows)) if i % TABLE_EVERY == 0 or i == len(plan.rows) - 1]
    for i in shown:
        r = plan.rows[i]
        table.add_row(
            f"{r.month:%Y-%m}",
            f"{sum(r.demand_gpus.values()):,.0f}",
            f"{sum(r.supply_gpus.values()):,.0f}",
            f"{sum(r.used_gpus.values()):,.0f}",
            f"{sum(r.shortfall_gpus.values()):,.0f}",
            usd_text(r.spend_usd),
            usd_text(r.cumulative_spend_usd),
        )
    out.print(table)

    if not plan.actions:
        out.print("Actions: none (the fleet as it is serves what it can)")
        return
    acts = Table(title=f"Actions ({len(plan.actions)})", title_justify="left")
    for name in ("#", "ACTION", "OPTION", "PROVIDER", "GPU MODEL", "FROM", "ONLINE", "GPUS", "TERM", "COST"):
        acts.add_column(name, justify="right" if name in {"#", "GPUS", "COST"} else "left")
    for n, a in enumerate(plan.actions):  # numbered from 0, as the JSON `actions` and `plan apply --action N`
        online = months[0].replace(day=1)
        first = _month_text(online, a.month)
        start = _month_text(online, a.online_month)
        what = f"build {a.buildings}×" if a.kind == "build" else "sign"
        term = f"{a.term_months} months" if a.term_months is not None else "owned"
        acts.add_row(
            str(n),
            what,
            cell(a.option),
            cell(a.site or a.provider) if a.kind == "build" else cell(a.provider),
            cell(a.gpu_model),
            first,
            start,
            f"{a.gpus:,}",
            term,
            usd_text(a.cost_usd),
        )
    out.print(acts)


def _month_text(start: Any, index: int) -> str:
    total = start.year * 12 + start.month - 1 + index
    return f"{total // 12:04d}-{total % 12 + 1:02d}"


try:  # the server's plan commands (submit, list, show, apply), when that module is installed
    from stargate.cli.plan_server import register as _register_server
except ImportError:  # pragma: no cover - only before the server's plan commands exist
    pass
else:
    _register_server(plan_app)
