"""``stargate simulate --services``: services replayed against a request trace, with a training trace or alone.

Called by :mod:`stargate.cli.simulate` once the fleet and the common options are checked. Bad input (a services file
with problems, a service the fleet cannot place, an unreadable request trace, a service name the services file
lacks) prints located errors on stderr and exits with code 2. Fields of the JSON output: docs/reference/
cli-simulate.md ("Services").
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stargate.cli.servicefile import ServiceFileError, load_services_file
from stargate.domain import Fleet
from stargate.domain.services import ServiceSpec
from stargate.engine.priorities import PriorityRule
from stargate.sim import SimConfig, epoch_for, summarize
from stargate.sim.service_report import simulate_services
from stargate.sim.service_run import ServiceRequests
from stargate.traces import Trace
from stargate.traces.model import BadRow, TraceError
from stargate.traces.requests import REQUEST_FORMATS, RequestTrace, read_requests

EXIT_INPUT = 2
SHOWN_BAD_ROWS = 5


def fail(message: str) -> NoReturn:
    """``error: message`` on stderr, exit code 2."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(EXIT_INPUT)


def warn_bad_rows(bad_rows: list[BadRow], what: str) -> None:
    """Show the first few malformed rows (skipped by the reader), located, on stderr."""
    for bad in bad_rows[:SHOWN_BAD_ROWS]:
        sys.stderr.write(f"warning: bad {what} row skipped: {bad}\n")
    if len(bad_rows) > SHOWN_BAD_ROWS:
        sys.stderr.write(f"warning: ... and {len(bad_rows) - SHOWN_BAD_ROWS:,} more bad {what} rows skipped\n")


def load_services(path: Path, fleet: Fleet) -> list[ServiceSpec]:
    """The services of ``path``, each placeable on ``fleet`` (its queue, its class, a cluster of its GPU models);
    exit 2 with every problem located otherwise."""
    try:
        services = load_services_file(path)
    except ServiceFileError as exc:
        for p in exc.problems:
            sys.stderr.write(f"error: {p}\n")
        fail(f"{path}: {exc}")
    problems = [p for k, spec in enumerate(services) for p in placeable(spec, fleet, f"{path}: {_where(k, spec)}")]
    if problems:
        for line in problems[:-1]:
            sys.stderr.write(f"error: {line}\n")
        fail(problems[-1])
    return services


def _where(k: int, spec: ServiceSpec) -> str:
    return f"service '{spec.name}' (number {k + 1} in the file)"


def placeable(spec: ServiceSpec, fleet: Fleet, where: str) -> list[str]:
    """Why the fleet can never place a replica of ``spec`` (empty: it can, capacity permitting)."""
    queues = {q.id for q in fleet.queues}
    if spec.queue not in queues:
        shown = ", ".join(sorted(queues)[:8]) or "none"
        return [f"{where}: queue: found '{spec.queue}'; expected a queue of the fleet ({shown})"]
    out = []
    rule = PriorityRule(fleet)
    if rule.resolve(spec.queue, spec.priority_class) is None:
        allowed = ", ".join(rule.allowed(spec.queue)) or "none"
        found = spec.priority_class or "no class (the queue's default)"
        out.append(f"{where}: priority_class: found {found}; expected a class queue '{spec.queue}' allows ({allowed})")
    fits = [c for c in fleet.clusters if c.gpu_model in spec.accepted_models()]
    if not fits:
        models = ", ".join(sorted({c.gpu_model for c in fleet.clusters})) or "none"
        found = ", ".join(spec.accepted_models())
        out.append(f"{where}: gpu_models: found {found}; expected a GPU model of a cluster of the fleet ({models})")
    elif not any(c.gpus_per_node * c.nodes >= spec.gpus_per_replica for c in fits):
        out.append(
            f"{where}: gpus_per_replica: found {spec.gpus_per_replica}; expected at most the GPUs of one cluster of "
            f"{', '.join(spec.accepted_models())}"
        )
    return out


def read_request_trace(path: Path, fmt: str) -> RequestTrace:
    """The request trace, or exit 2 with its located error."""
    if fmt not in REQUEST_FORMATS:
        fail(f"--requests-format: found '{fmt}'; expected one of {', '.join(REQUEST_FORMATS)}")
    try:
        trace = read_requests(path, fmt)
    except TraceError as exc:
        fail(str(exc))
    warn_bad_rows(trace.bad_rows, "request")
    return trace


def split_requests(trace: RequestTrace, services: list[ServiceSpec]) -> list[ServiceRequests]:
    """Each service with the indices of its requests: those naming it, and for the first service those naming
    none; exit 2 when the trace names a service the services file lacks."""
    names = {s.name: k for k, s in enumerate(services)}
    code = np.full(len(trace.services) + 1, 0, dtype=np.int64)  # code[-1]: requests naming no service
    for j, name in enumerate(trace.services):
        if name not in names:
            shown = ", ".join(names)
            fail(
                f"{trace.source}:{trace.service_lines[j]}: service: found '{name}'; expected a service of the services "
                f"file ({shown})"
            )
        code[j] = names[name]
    owner = code[trace.service]
    out = []
    for k, spec in enumerate(services):
        rows = np.flatnonzero(owner == k)
        out.append(ServiceRequests(spec, trace.arrival_s[rows], trace.prompt_tokens[rows], trace.output_tokens[rows]))
    return out


def run(
    fleet: Fleet,
    services: list[ServiceSpec],
    requests: RequestTrace,
    fmt: str,
    trace: Trace | None,
    config: SimConfig,
    start: datetime | None,
    requests_at_s: float,
    tick_s: float | None,
) -> dict[str, Any]:
    """Run and build the whole JSON summary, with a progress bar on stderr when it is a terminal."""
    split = split_requests(requests, services)
    jobs = trace.jobs if trace is not None else []
    epoch = epoch_for(fleet, start if start is not None else (trace.start if trace is not None else None))
    total = len(requests) + len(jobs)
    if not sys.stderr.isatty():
        out, sim = simulate_services(fleet, jobs, config, epoch, split, requests_at_s=requests_at_s, tick_s=tick_s)
    else:
        columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("requests and jobs"))
        with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("simulate", total=total)
            out, sim = simulate_services(
                fleet,
                jobs,
                config,
                epoch,
                split,
                requests_at_s=requests_at_s,
                tick_s=tick_s,
                progress=lambda done, _: bar.update(task, completed=done),
            )
    out["policy"], out["seed"], out["epoch"] = sim.policy.name, config.seed, epoch.isoformat()
    out["requests"] = {
        "source": requests.source,
        "format": fmt,
        "requests": len(requests),
        "bad_rows": len(requests.bad_rows),
        "start": requests.start.isoformat() if requests.start is not None else None,
    }
    if trace is not None:
        out["training_summary"] = summarize(sim.state, sim.index)
        out["trace"] = {"source": trace.source, "jobs": len(trace.jobs), "bad_rows": len(trace.bad_rows)}
    return out


def emit(out: dict[str, Any], as_json: bool) -> None:
    """One JSON object on stdout, or a table per service."""
    if as_json:
        sys.stdout.write(json.dumps(out, allow_nan=False) + "\n")
        return
    console = Console()
    for s in out["services"]:
        console.print(_table(s))
    t = out["training"]
    if t["measured"]:
        w, a = t["with_services"], t["without_services"]
        console.print(
            f"training: mean JCT {_s(w['mean_jct_s'])} with the services, {_s(a['mean_jct_s'])} without "
            f"({_pct(t['mean_jct_change_pct'])}); median {_s(w['median_jct_s'])} and {_s(a['median_jct_s'])} "
            f"({_pct(t['median_jct_change_pct'])}); {t['jobs']:,} jobs"
        )
    else:
        console.print(f"training: not measured ({t['why']})")
    console.print(
        f"speed: {out['wall_s']:.2f} s wall, {out['requests_per_s']:,.0f} requests/s, peak RSS "
        f"{out['peak_rss_mb']:,.0f} MB"
    )


def _table(s: dict[str, Any]) -> Table:
    table = Table(title=f"service {s['name']}: policy {s['policy']}", show_header=False)
    names = {"ttft_s": "TTFT", "tpot_s": "TPOT", "e2e_s": "end to end"}
    bounds = ", ".join(f"{names[k]} ≤ {v:g} s" for k, v in s["objective"].items() if k in names)
    goal = f"{bounds} for {100 * s['objective']['attainment']:g} % of the requests"
    rows = [
        ("requests", f"{s['requests']:,}: {s['requests_served']:,} served, {s['requests_unserved']:,} unserved"),
        ("objective", f"{goal}; attained by {_pct(s['attainment_pct'], signed=False)}"),
        ("TTFT", _spread(s["ttft_s"])),
        ("TPOT", _spread(s["tpot_s"])),
        ("end to end", _spread(s["e2e_s"])),
        ("replicas", f"{s['replicas_max']:,} at most; {s['replica_hours']:,.2f} replica-hours"),
        ("GPU-hours", f"{s['gpu_hours']:,.2f} GPU-hours"),
        ("cost", f"{s['cost_usd']:,.2f} USD"),
        ("scale events", f"{s['scale_events']:,}"),
    ]
    if s["rejected"]:
        rows.append(("rejected", f"the engine cannot place a replica: {s['rejected']}"))
    for k, v in rows:
        table.add_row(k, v)
    return table


def _spread(p: dict[str, float | None]) -> str:
    return "n/a" if p["p50"] is None else f"p50 {p['p50']:.3f} s, p99 {p['p99']:.3f} s"


def _s(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds:,.0f} s"


def _pct(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.2f} %" if signed else f"{value:.2f} %"


def check_service_options(
    services: Path | None, requests: Path | None, fmt: str | None, trace: Path | None, trace_format: str | None
) -> None:
    """Exit 2 when the options do not name one complete run: a trace, services with their requests, or both."""
    if services is None:
        if requests is not None or fmt is not None:
            fail("--requests: given without --services; expected --services with --requests and --requests-format")
        if trace is None or trace_format is None:
            fail("--trace and --trace-format: missing; expected a training trace, or --services with --requests")
        return
    if requests is None or fmt is None:
        fail("--services: given without --requests and --requests-format; expected all three")
    if (trace is None) != (trace_format is None):
        fail("--trace and --trace-format: one given without the other; expected both or neither")


__all__: Sequence[str] = ("check_service_options", "emit", "load_services", "read_request_trace", "run")
