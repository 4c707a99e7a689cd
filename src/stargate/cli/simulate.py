"""CLI command: ``stargate simulate`` replays a trace on a fleet under a policy (docs/reference/cli-simulate.md);
with ``--services``, services serve a request trace on the same fleet (:mod:`stargate.cli.simulate_services`).

Bad input (a fleet with problems, an unreadable trace, a malformed option) prints located errors on stderr and
exits with code 2; nothing is written. A Rich progress bar is shown on stderr when it is a terminal.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stargate.cli import policy_options
from stargate.cli.policy_options import Given, add, echo, parse_settings
from stargate.cli.simulate_services import check_service_options, emit, load_services, read_request_trace
from stargate.cli.simulate_services import run as run_services
from stargate.cli.text import visible
from stargate.domain import Fleet, Scheduling
from stargate.engine import POLICIES, Override
from stargate.engine import scheduling as engine_scheduling
from stargate.engine.scheduling import Setting
from stargate.fleetfile import FleetFileError, load_fleet
from stargate.sim import Failure, SimConfig, run_simulation
from stargate.sim.simulator import ESTIMATE_MODES
from stargate.traces import FORMATS, BadRow, TraceError, TraceJob, read_trace
from stargate.traces.requests import REQUEST_FORMATS

EXIT_INPUT = 2
"""Exit code for bad input: the fleet, the trace or an option."""

SHOWN_BAD_ROWS = 5
"""Malformed trace rows shown on stderr; the rest are counted."""

SCALE_MIN, SCALE_MAX = 1e-3, 1e3
"""Range of --scale-arrivals: beyond it submission times collapse to 0 or overflow."""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to the root app."""
    app.command("simulate")(simulate)


def parse_duration(text: str, what: str) -> float:
    """Seconds in ``text`` ('90', '90s', '15m', '2h', '3d', '1w'); raises ValueError naming ``what``."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"{what}: found '{text}'; expected a duration such as 3600, 90s, 15m, 2h, 3d or 1w")
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not math.isfinite(seconds):
        raise ValueError(f"{what}: found '{text}'; expected a finite duration")
    return seconds


def parse_failure(text: str, clusters: set[str]) -> Failure:
    """A ``cluster=NAME,at=T,for=D`` option value as a :class:`Failure`; raises ValueError when malformed."""
    parts = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    if set(parts) != {"cluster", "at", "for"} or len(text.split(",")) != 3:
        raise ValueError(f"--failure: found '{text}'; expected cluster=NAME,at=DURATION,for=DURATION")
    if parts["cluster"] not in clusters:
        shown = ", ".join(sorted(clusters)[:8])
        raise ValueError(f"--failure: found cluster '{parts['cluster']}'; expected a cluster of the fleet ({shown})")
    return Failure(
        parts["cluster"], parse_duration(parts["at"], "--failure at"), parse_duration(parts["for"], "--failure for")
    )


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(EXIT_INPUT)


def simulate(
    fleet_path: Path = typer.Option(..., "--fleet", help="Fleet YAML file or directory.", show_default=False),
    trace_path: Path | None = typer.Option(
        None, "--trace", help="Training trace file (optional with --services).", show_default=False
    ),
    trace_format: str | None = typer.Option(
        None, "--trace-format", help=f"One of: {', '.join(FORMATS)}.", show_default=False
    ),
    services_path: Path | None = typer.Option(
        None, "--services", help="Services YAML file: one service spec or several under services:.", show_default=False
    ),
    requests_path: Path | None = typer.Option(
        None, "--requests", help="Request trace the services serve.", show_default=False
    ),
    requests_format: str | None = typer.Option(
        None, "--requests-format", help=f"One of: {', '.join(REQUEST_FORMATS)}.", show_default=False
    ),
    requests_at: str = typer.Option(
        "0", "--requests-at", help="Trace time of the first request (e.g. 30d); default 0, the run's start."
    ),
    tick: str = typer.Option(
        "auto",
        "--tick",
        help="Autoscaler interval: traffic measured and a decision made; auto: each service's own, as the server "
        "(a tenth of its window_s, 1 to 10 s).",
    ),
    policy: str | None = typer.Option(
        None,
        "--policy",
        help=f"One of: {', '.join(sorted(POLICIES))} (default: the fleet's scheduling.policy, else "
        f"{Scheduling.model_fields['policy'].default}).",
        show_default=False,
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the run's random generator."),
    until: str | None = typer.Option(None, "--until", help="Stop at this trace time (e.g. 36h); default: the end."),
    scale_arrivals: float = typer.Option(1.0, "--scale-arrivals", help="Arrival-rate multiplier (2 = twice as fast)."),
    failures: list[str] = typer.Option([], "--failure", help="cluster=NAME,at=T,for=D (repeatable)."),
    burst_after: str | None = typer.Option(None, "--burst-after", help="Wait before bursting to pay-per-use capacity."),
    burst_wait_per_gpu_hour: str | None = typer.Option(
        None,
        "--burst-wait-per-gpu-hour",
        metavar="SECONDS",
        help="Extra wait before bursting per GPU-hour of the job's work, s; alone it also bursts after 0 s when the "
        "policy has no burst_after_s.",
        show_default=False,
    ),
    burst_wait_max: str | None = typer.Option(
        None,
        "--burst-wait-max",
        help="The longest per-GPU-hour wait before bursting, whatever the job's size (--burst-after is added).",
        show_default=False,
    ),
    mtbf: str | None = typer.Option(None, "--mtbf", help="Random failures: mean time between failures per cluster."),
    mttr: str = typer.Option("1h", "--mttr", help="Mean time to repair of random failures."),
    checkpoint_interval: str | None = typer.Option(
        None, "--checkpoint-interval", help="Checkpoint interval for jobs that state none (default 1h)."
    ),
    estimates: str = typer.Option(
        "learned",
        "--estimates",
        help="Run-time estimates the engine is told: learned (the trace's, else learned from completed jobs), "
        "trace (the trace's, else the policy's default) or actual (an oracle: each job's actual run time).",
    ),
    sets: list[str] = typer.Option(
        [], "--set", help="A policy setting KEY=VALUE, e.g. restart_cost_s=120 (repeatable)."
    ),
    trim_jobs: int = typer.Option(0, "--trim-jobs", min=0, help="Also report the middle jobs, dropping N each end."),
    start: str | None = typer.Option(
        None,
        "--start",
        help="ISO date of trace time 0 (default: the trace's first submission when it states dates, else the "
        "fleet's as_of).",
    ),
    no_procurement: bool = typer.Option(
        False, "--no-procurement", help="Buy no capacity: ignore the fleet's procurement section."
    ),
    no_rofr: bool = typer.Option(
        False, "--no-rofr", help="Ignore rights of first refusal: every capacity request goes to the market."
    ),
    holder_match_probability: str | None = typer.Option(
        None,
        "--holder-match-probability",
        metavar="P",
        help="Chance the first-refusal holder matches an offer, 0 to 1 (default: the fleet's holder_response).",
        show_default=False,
    ),
    holder_response_days: str | None = typer.Option(
        None,
        "--holder-response-days",
        metavar="DAYS",
        help="Days after an offer the holder answers, 0 to 365 (default: the fleet's holder_response).",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Replay a trace on a fleet with a scheduling policy and report JCT, waits, utilisation, cost and what
    procurement bought; with --services, also serve a request trace with autoscaled replicas on the same fleet."""
    check_service_options(services_path, requests_path, requests_format, trace_path, trace_format)
    config, start_dt, flags = _config(
        policy, seed, until, scale_arrivals, checkpoint_interval, estimates, start, trace_format
    )
    config.procurement, config.rofr = not no_procurement, not no_rofr
    config.holder_match_probability = _number(holder_match_probability, "--holder-match-probability", 1.0, "")
    config.holder_response_days = _number(holder_response_days, "--holder-response-days", 365.0, " days")
    given = _settings(sets, flags, burst_after, burst_wait_per_gpu_hour, burst_wait_max)
    try:
        fleet = load_fleet(fleet_path)
    except FleetFileError as exc:
        for p in exc.problems:
            sys.stderr.write(f"error: {p}\n")
        _fail(f"{fleet_path}: {exc}")
    bad = policy_options.problems(fleet.scheduling, config.policy, given)  # the options on top of the fleet's section
    if bad:
        for line in bad[:-1]:
            sys.stderr.write(f"error: {line}\n")
        _fail(bad[-1])
    config.settings = _with_burst_default(fleet, config.policy, given)
    try:
        config.failures = [parse_failure(f, {c.id for c in fleet.clusters}) for f in failures]
    except ValueError as exc:
        _fail(str(exc))
    services = load_services(services_path, fleet) if services_path is not None else None
    trace = None
    if trace_path is not None and trace_format is not None:
        try:
            trace = read_trace(trace_path, trace_format)
        except TraceError as exc:
            _fail(str(exc))
    try:
        config.mtbf_s = parse_duration(mtbf, "--mtbf") if mtbf is not None else None
        config.mttr_s = parse_duration(mttr, "--mttr")
    except ValueError as exc:
        _fail(str(exc))
    if trace is not None:
        _warn_bad_rows(trace.bad_rows)
    if config.mtbf_s is not None and not config.mtbf_s > 0:
        _fail(f"--mtbf: found '{mtbf}'; expected a duration > 0")
    if not config.mttr_s > 0:
        _fail(f"--mttr: found '{mttr}'; expected a duration > 0")
    if services is not None and requests_path is not None and requests_format is not None:
        at_s, tick_s = _service_times(requests_at, tick)
        requests = read_request_trace(requests_path, requests_format)
        out = run_services(fleet, services, requests, requests_format, trace, config, start_dt, at_s, tick_s)
        emit(out, as_json)
        return
    assert trace is not None  # check_service_options: a run without services has a trace
    out = _run(fleet, trace.jobs, config, start_dt if start_dt is not None else trace.start, trim_jobs)
    out["trace"] = {
        "source": trace.source,
        "jobs": len(trace.jobs),
        "skipped": dict(sorted(trace.skipped.items())),
        "bad_rows": len(trace.bad_rows),
        "notes": dict(sorted(trace.notes.items())),
    }
    if as_json:
        sys.stdout.write(json.dumps(out, sort_keys=False, allow_nan=False) + "\n")  # strict JSON
    else:
        _render(out)


def _service_times(requests_at: str, tick: str) -> tuple[float, float | None]:
    """``--requests-at`` and ``--tick`` in seconds (the tick None for ``auto``); exit 2 when malformed (a tick from
    0.1 s to 1 h)."""
    try:
        at_s = parse_duration(requests_at, "--requests-at")
        tick_s = None if tick.strip().lower() == "auto" else parse_duration(tick, "--tick")
    except ValueError as exc:
        _fail(str(exc))
    if tick_s is not None and not 0.1 <= tick_s <= 3600:
        _fail(f"--tick: found '{visible(echo(tick))}'; expected a duration from 0.1 s to 1 h")
    return at_s, tick_s


def _number(text: str | None, flag: str, most: float, unit: str) -> float | None:
    """A number from 0 to ``most`` given as ``flag``'s value (None when not given); exit 2 when it is not one."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= most:  # also refuses nan and inf
        _fail(f"{flag}: found '{visible(echo(text))}'; expected a number from 0 to {most:g}{unit}")
    return value


def _warn_bad_rows(bad_rows: list[BadRow]) -> None:
    """Show the first few malformed trace rows (skipped by the reader), located, on stderr."""
    for bad in bad_rows[:SHOWN_BAD_ROWS]:
        sys.stderr.write(f"warning: bad row skipped: {bad}\n")
    if len(bad_rows) > SHOWN_BAD_ROWS:
        sys.stderr.write(f"warning: ... and {len(bad_rows) - SHOWN_BAD_ROWS:,} more bad rows skipped\n")


def _config(
    policy: str | None,
    seed: int,
    until: str | None,
    scale: float,
    checkpoint: str | None,
    estimates: str,
    start: str | None,
    trace_format: str | None,
) -> tuple[SimConfig, datetime | None, dict[str, Given]]:
    """Check the options (exit 2 on the first bad one) and build the run's configuration, with the settings that
    flags give (``--checkpoint-interval``)."""
    if policy is not None and policy not in POLICIES:
        _fail(f"--policy: found '{visible(policy)}'; expected one of {', '.join(sorted(POLICIES))}")
    if trace_format is not None and trace_format not in FORMATS:
        _fail(f"--trace-format: found '{visible(trace_format)}'; expected one of {', '.join(FORMATS)}")
    if estimates not in ESTIMATE_MODES:
        _fail(f"--estimates: found '{visible(estimates)}'; expected {', '.join(ESTIMATE_MODES)}")
    if seed < 0:
        _fail(f"--seed: found {seed}; expected a whole number >= 0")
    if not SCALE_MIN <= scale <= SCALE_MAX:  # also refuses nan
        _fail(f"--scale-arrivals: found {scale}; expected a number from {SCALE_MIN:g} to {SCALE_MAX:g}")
    flags: dict[str, Given] = {}
    try:
        until_s = parse_duration(until, "--until") if until is not None else None
        if checkpoint is not None:
            interval = parse_duration(checkpoint, "--checkpoint-interval")
            if interval <= 0:
                raise ValueError(f"--checkpoint-interval: found '{checkpoint}'; expected a positive duration")
            text = echo(checkpoint)
            flags["default_checkpoint_interval_s"] = Given(interval, f"--checkpoint-interval {text}", text)
        start_dt = datetime.fromisoformat(start) if start is not None else None
    except ValueError as exc:
        _fail(str(exc) if "expected" in str(exc) else f"--start: found '{start}'; expected an ISO 8601 date")
    config = SimConfig(policy=policy, seed=seed, until_s=until_s, scale_arrivals=scale, estimates=estimates)
    return config, start_dt, flags


def _settings(
    sets: list[str],
    flags: dict[str, Given],
    burst_after: str | None,
    per_gpu_hour: str | None,
    wait_max: str | None = None,
) -> dict[str, Given]:
    """Every setting the options give: each flag sets its own setting only, and a setting given twice (by a flag
    and ``--set``, or by two ``--set``) is exit 2 naming both."""
    try:
        for name, flag, value in (
            ("burst_after_s", "--burst-after", burst_after),
            ("burst_wait_max_s", "--burst-wait-max", wait_max),
        ):
            if value is not None:
                text = echo(value)
                add(flags, name, Given(parse_duration(value, flag), f"{flag} {text}", text))
        if per_gpu_hour is not None:
            text = echo(per_gpu_hour)
            try:
                seconds = float(per_gpu_hour)
            except ValueError:
                raise ValueError(f"--burst-wait-per-gpu-hour: found '{text}'; expected a number of seconds") from None
            add(flags, "burst_wait_per_gpu_hour_s", Given(seconds, f"--burst-wait-per-gpu-hour {text}", text))
        given = dict(flags)
        for key, setting in parse_settings(sets).items():
            add(given, key, setting)
    except ValueError as exc:
        _fail(str(exc))
    return given


def _with_burst_default(fleet: Fleet, policy: str | None, given: dict[str, Given]) -> dict[str, Setting]:
    """The settings to run with: those given, plus ``burst_after_s`` 0 when the ``--burst-wait-per-gpu-hour`` flag
    is given and neither the options nor the fleet's section (under ``--policy``) set a wait before bursting (the
    flag means bursting). ``--set burst_wait_per_gpu_hour_s=...`` sets that setting alone, as ``stargate up --set``
    does."""
    settings: dict[str, Setting] = {key: g.value for key, g in given.items()}
    wait = given.get("burst_wait_per_gpu_hour_s")
    flag = wait is not None and wait.option.startswith("--burst-wait-per-gpu-hour")  # --set means what it says
    if flag and "burst_after_s" not in settings:
        _, effective = engine_scheduling.effective(fleet.scheduling, Override(policy, settings))
        if effective.get("burst_after_s") is None:
            settings["burst_after_s"] = 0.0
    return settings


def _run(
    fleet: Fleet, jobs: Sequence[TraceJob], config: SimConfig, start: datetime | None, trim: int
) -> dict[str, Any]:
    """Run, with a progress bar on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return run_simulation(fleet, jobs, config, start=start, trim_jobs=trim)[0]
    columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("jobs"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("simulate", total=len(jobs))
        config.progress = lambda done, total: bar.update(task, completed=done)
        return run_simulation(fleet, jobs, config, start=start, trim_jobs=trim)[0]


def _s(seconds: float | None) -> str:
    """A duration in seconds for the table; 'n/a' when there is none (no finished or started job)."""
    return "n/a" if seconds is None else f"{seconds:,.0f} s"


def _count(n: int, noun: str) -> str:
    """'1 job', '2 jobs'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _estimates(out: dict[str, Any]) -> str:
    """The estimates mode and how far off the estimates were."""
    e = out["estimate_error"]
    mode = out["estimates"] + (" (oracle: actual run times)" if out["estimates"] == "actual" else "")
    if e["median"] is None:
        err = "no job estimated but by the policy's default"
    else:
        err = f"|estimate - actual| / actual median {e['median']:.2f}, p90 {e['p90']:.2f} over {e['jobs']:,} jobs"
    return f"{mode}; {err}; {e['jobs_default']:,} on the policy's default"


def _render(out: dict[str, Any]) -> None:
    """A human-readable table of the summary."""
    table = Table(title=f"simulation: policy {out['policy']}", show_header=False)
    rows = [
        (
            "jobs",
            f"{out['jobs_total']:,} total, {out['jobs_finished']:,} finished, "
            f"{out['jobs_rejected']:,} rejected, {out['jobs_pending_at_end']:,} pending at end",
        ),
        ("rejected by reason", ", ".join(f"{k}: {v:,}" for k, v in out["rejected_by_reason"].items()) or "none"),
        (
            "JCT",
            f"avg {_s(out['avg_jct_s'])}, p50 {_s(out['p50_jct_s'])}, p95 {_s(out['p95_jct_s'])}, "
            f"p99 {_s(out['p99_jct_s'])}",
        ),
        ("wait", f"avg {_s(out['avg_wait_s'])}, p99 {_s(out['p99_wait_s'])}, max {_s(out['max_wait_s'])}"),
        ("estimates", _estimates(out)),
        ("makespan", f"{out['makespan_s']:,.0f} s"),
        ("GPU utilisation", f"{out['gpu_utilization']:.1%} (owned capacity {out['owned_gpu_utilization']:.1%})"),
        ("GPU-hours", f"{out['gpu_hours']:,.0f} GPU-hours ({out['cloud_gpu_hours']:,.0f} on cloud providers)"),
        ("cost", f"{out['cost_usd']:,.2f} USD"),
        ("preemptions", f"{out['preemptions']:,}"),
        (
            "speed",
            f"{out['wall_s']:.2f} s wall, {out['events_per_s']:,.0f} events/s, peak RSS {out['peak_rss_mb']:,.0f} MB",
        ),
        (
            "trace",
            f"{_count(out['trace']['jobs'], 'job')} read, skipped {sum(out['trace']['skipped'].values()):,}, "
            f"bad rows {out['trace']['bad_rows']:,}",
        ),
    ]
    if "middle_window" in out:
        mw = out["middle_window"]
        rows.append(
            (
                "middle window",
                f"{_count(mw['jobs'], 'job')}: avg JCT "
                f"{'n/a' if mw['avg_jct_h'] is None else format(mw['avg_jct_h'], '.3f') + ' h'}, "
                f"{mw['cloud_gpu_hours']:,.0f} cloud GPU-hours",
            )
        )
    rows += _procurement_rows(out["procurement"])
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


def _usd(value: float) -> str:
    return f"{value:,.2f} USD"


def _procurement_rows(p: dict[str, Any]) -> list[tuple[str, str]]:
    """The procurement and money rows of the table (units: GPUs, USD, days)."""
    rows: list[tuple[str, str]] = []
    if p["enabled"]:
        holder_first = sum(1 for r in p["requests_detail"] if r["first_step"] == "holder")
        ttc = p["time_to_capacity_days"]
        rows += [
            (
                "procurement",
                f"{_count(p['requests'], 'request')} ({holder_first:,} to the holder first, "
                f"{p['requests'] - holder_first:,} straight to the market); offers: {p['matches']:,} matched, "
                f"{p['declines']:,} declined, {p['expiries']:,} expired, {p['not_matched']:,} not matched"
                f"{'' if p['rofr'] else ' (first refusal ignored)'}",
            ),
            (
                "awards",
                f"{_count(p['awards'], 'award')} ({p['awards_by_via']['holder']:,} holder, "
                f"{p['awards_by_via']['market']:,} market): {p['awarded_gpus']:,} GPUs for "
                f"{_usd(p['awarded_cost_usd'])}; over budget {p['over_budget']:,}, unfilled {p['unfilled']:,}; "
                f"median time to capacity {'n/a' if ttc is None else f'{ttc:g} days'}",
            ),
        ]
    else:
        rows.append(("procurement", p["status"]))
    spend = ", ".join(f"{k} {_usd(v)}" for k, v in p["spend_by_provider"].items()) or "none"
    rows.append(("spend by provider", spend))
    short = [
        f"{k} {_usd(v['shortfall_usd'])} by {v['term_end']}{' (projected)' if v['projected'] else ''}"
        for k, v in p["commitment_shortfall"].items()
    ]
    rows.append(("commitment shortfall", "; ".join(short) or "no commitments"))
    if p["budget_headroom_usd"] is not None:
        over = "; ".join(f"over the ceiling from {c['day']} by {_usd(c['over_usd'])}" for c in p["budget_conflicts"])
        rows.append(("budget headroom", _usd(p["budget_headroom_usd"]) + (f" ({over})" if over else "")))
    return rows
