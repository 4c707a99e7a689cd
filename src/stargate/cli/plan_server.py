"""CLI commands for capacity plans stored on a running server: ``stargate plan submit|list|show|apply`` (added to
the ``plan`` group by :func:`register`; see docs/reference/cli-plan-server.md).

Exit codes: 0 ok; 1 the server refused (401, 403, 404), failed or was busy (503), or the scenario is infeasible
(the diagnosis in words); 2 bad input, found here or by the server (a scenario with located problems, an action
index out of range; 409: the plan was applied already, or every signing selected is in a month that has passed); 3
no server.
"""

import re
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from stargate.cli.client import JsonOption, _client, _failures, _print_json, _refuse_input
from stargate.cli.render import console, when
from stargate.cli.text import cell, visible
from stargate.client import ConflictError, InvalidError

EXIT_INFEASIBLE = 1
"""A scenario the server found infeasible: exit 1, as `stargate plan` does."""
MAX_SCENARIO_BYTES = 1_000_000
"""The largest scenario file the server computes, bytes."""
INFEASIBLE = "infeasible plan: "


def register(plan_app: typer.Typer) -> None:
    """Add ``submit``, ``list``, ``show`` and ``apply`` to the ``plan`` group."""
    plan_app.command("submit")(plan_submit)
    plan_app.command("list")(plan_list)
    plan_app.command("show")(plan_show)
    plan_app.command("apply")(plan_apply)


class _Refused:
    """The server's 409 and 422 as exit 2 (1 for an infeasible scenario), the file's path put where the server
    says 'scenario'."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, ConflictError | InvalidError):
            detail = exc.detail
            if self.path is not None:
                detail = re.sub(r"(?<![\w.-])scenario:(?=[0-9])", f"{self.path}:", detail)
            code = EXIT_INFEASIBLE if detail.startswith(INFEASIBLE) else 2
            typer.echo(f"error: {exc.status} {exc.label}: {visible(detail)}", err=True)
            raise typer.Exit(code)


def plan_submit(
    scenario: Path = typer.Option(..., "--scenario", help="The scenario file (YAML); its `fleet` key is ignored."),
    scenarios: int = typer.Option(0, "--scenarios", help="Monte Carlo scenarios run on the server, 0 to 1,000."),
    seed: int = typer.Option(0, "--seed", help="Seed of the Monte Carlo scenarios, 0 or more."),
    as_json: bool = JsonOption,
) -> None:
    """Compute a plan of the scenario on the server, against its fleet in force, and store it (admin or member)."""
    if not 0 <= scenarios <= 1_000:
        _refuse_input(f"--scenarios: found {scenarios}; expected 0 to 1,000 scenarios")
    if seed < 0:
        _refuse_input(f"--seed: found {seed}; expected 0 or more")
    try:
        data = scenario.read_bytes()
    except OSError as exc:
        _refuse_input(f"--scenario: cannot read {scenario}: {exc.strerror or exc}")
    if len(data) > MAX_SCENARIO_BYTES:
        _refuse_input(f"--scenario: found {len(data):,} bytes in {scenario}; expected at most {MAX_SCENARIO_BYTES:,}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse_input(f"{scenario}: found bytes that are not UTF-8 at byte {exc.start}; expected UTF-8 text")
    with _failures(), _Refused(scenario), _client() as client:
        plan = client.submit_plan(text, scenarios, seed)
    if as_json:
        _print_json(plan)
        return
    _show(plan)


def plan_list(
    limit: int = typer.Option(100, "--limit", help="Most plans listed, 1 to 1,000."), as_json: bool = JsonOption
) -> None:
    """List the plans stored on the server, newest first."""
    if not 1 <= limit <= 1_000:
        _refuse_input(f"--limit: found {limit}; expected 1 to 1,000")
    with _failures(), _client() as client:
        items = client.plans(limit)
    if as_json:
        _print_json(items)
        return
    table = Table(title=f"{len(items)} plan{'s' if len(items) != 1 else ''}", title_justify="left")
    for name in ("ID", "CREATED", "BY", "SCENARIO", "STATUS", "FIRST SHORTFALL", "UNMET GPU-H", "APPLIED"):
        table.add_column(name, no_wrap=name in {"ID", "CREATED", "STATUS"})
    for p in items:
        applied = f"{when(p['applied_at'])} by {p['applied_by']}" if p["applied"] else "-"
        table.add_row(
            *map(
                cell,
                (
                    p["id"],
                    when(p["created_at"]),
                    p["created_by"],
                    p["scenario"],
                    p["status"],
                    p["first_shortfall_month"] or "none",
                    f"{p['unmet_gpu_hours']:,.0f}",
                    applied,
                ),
            )
        )
    console().print(table)


def plan_show(
    plan_id: str = typer.Argument(..., help="The plan's id, e.g. p-0123456789."), as_json: bool = JsonOption
) -> None:
    """Show a plan stored on the server: headline figures, risk and actions (--json: all of it)."""
    with _failures(), _client() as client:
        plan = client.plan(plan_id)
    if as_json:
        _print_json(plan)
        return
    _show(plan)


def plan_apply(
    plan_id: str = typer.Argument(..., help="The plan's id, e.g. p-0123456789."),
    actions: list[int] | None = typer.Option(
        None, "--action", help="Apply only this action (its # in `plan show`); repeat for more. Default: every sign."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Apply a plan once (admin): a capacity request per 'sign' action, all or none, holder asked first."""
    for n in actions or []:
        if n < 0:
            _refuse_input(f"--action: found {n}; expected an action's # from `stargate plan show {plan_id}`")
    with _failures(), _Refused(), _client() as client:
        out = client.apply_plan(plan_id, actions or None)
    if as_json:
        _print_json(out)
        return
    raised = out["requests"]
    typer.echo(
        f"plan {visible(out['plan_id'])} applied: {len(raised)} capacity request{'s' if len(raised) != 1 else ''}"
    )
    for item in raised:
        r = item["request"]
        where = (
            f"offered to {visible(r['offer']['holder'])}"
            if r["state"] == "offered" and r.get("offer")
            else visible(r["state"])
        )
        typer.echo(
            f"  action {item['action']}: request {visible(r['id'])}, {r['gpus']:,} {visible(r['gpu_model'])} GPUs from "
            f"{r['start']} for {r['term_days']} days: {where}"
        )
    for item in out["not_applicable"]:
        typer.echo(f"  action {item['action']} ({visible(item['kind'])}): not applied, {visible(item['reason'])}")
    for warning in out.get("warnings") or []:
        typer.echo(f"warning: {visible(warning)}", err=True)


def _show(stored: dict[str, Any]) -> None:
    """A stored plan: its headline, its risk and its actions."""
    result = stored["result"]
    plan = result.get("plan") or {}
    status = f"applied {when(stored['applied_at'])} by {visible(stored['applied_by'])}" if stored["applied"] else ""
    typer.echo(
        f"plan {visible(stored['id'])}: scenario {visible(stored['scenario'])}, fleet version "
        f"{visible(stored['fleet_version'][:12])}, {status or visible(stored['status'])}"
    )
    shortfall = plan.get("first_shortfall_month") or "none"
    typer.echo(
        f"  spend {plan.get('spend_usd', 0):,.0f} USD, unmet {plan.get('unmet_gpu_hours', 0):,.0f} GPU-hours, first "
        f"shortfall {shortfall}, solver {visible(plan.get('status', '-'))}"
    )
    risk = result.get("risk")
    if risk:
        short, spend = risk["shortfall_gpu_hours"], risk["spend_usd"]
        typer.echo(
            f"  risk over {risk['scenarios']:,} scenarios (seed {risk['seed']}): shortfall P10/P50/P90 "
            f"{short['p10']:,.0f} / {short['p50']:,.0f} / {short['p90']:,.0f} GPU-hours, spend P50 "
            f"{spend['p50']:,.0f} USD, budget breach probability {risk['budget_breach_probability']:.1%}"
        )
    requests = stored.get("applied_requests") or {}
    actions = plan.get("actions") or []
    table = Table(title=f"{len(actions)} action{'s' if len(actions) != 1 else ''}", title_justify="left")
    for name in (
        "#",
        "KIND",
        "OPTION",
        "PROVIDER",
        "GPU MODEL",
        "GPUS",
        "FROM",
        "ONLINE",
        "TERM MO",
        "COST USD",
        "REQUEST",
    ):
        table.add_column(name, no_wrap=name in {"#", "FROM", "ONLINE"})
    for n, a in enumerate(actions):
        table.add_row(
            *map(
                cell,
                (
                    n,
                    a["kind"],
                    a["option"],
                    a["provider"],
                    a["gpu_model"],
                    f"{a['gpus']:,}",
                    a.get("month") or "-",
                    a.get("online_month") or "-",
                    a.get("term_months") or "-",
                    f"{a['cost_usd']:,.0f}",
                    requests.get(str(n), "-"),
                ),
            )
        )
    console().print(table)
