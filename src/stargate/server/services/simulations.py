"""Simulations on the server: check a what-if (trace, fleet, policy, options), queue it on this process's runner
(:mod:`stargate.server.services.sim_runner`), list and show runs, cancel one.

Who may do what: admins and members run and cancel simulations; viewers read them; provider tokens none of it. A
simulation reads only the fleet (the one in force, a bundled example or an uploaded one) and the trace (a listed one
or an uploaded one), never the server's jobs.

Every check runs before anything is stored: a refused request (422, located: ``body.trace_text:4: duration_s: found
'-5', expected a number > 0``) stores nothing. An uploaded trace is read strictly (its first bad row refuses it); a
listed trace is read as ``stargate simulate`` reads it (bad rows skipped and counted in ``trace.bad_rows``). The run
gets the configuration ``stargate simulate`` builds from the same options, so its figures are the CLI's.
"""

import hashlib
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from stargate.domain import Fleet
from stargate.engine import POLICIES
from stargate.engine.scheduling import policy_in_force
from stargate.fleetfile import FleetFileError, load_fleet
from stargate.fleetfile.describe import found_text
from stargate.fleetfile.loader import loads_fleet
from stargate.server.auth import Principal, Role
from stargate.server.context import ServerContext
from stargate.server.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from stargate.server.schemas_simulations import KnownTrace, Pickable, SimulationIn, SimulationOut, SimulationSummary
from stargate.server.services import sim_catalog as catalog
from stargate.server.services.sim_runner import Runner, Work
from stargate.sim import SimConfig
from stargate.sim.simulator import ESTIMATE_MODES
from stargate.store.models import SimulationRow
from stargate.store.repositories import simulations as repo
from stargate.traces import FORMATS, Trace, TraceError, read_trace

TRACE_TEXT, FLEET_YAML = "body.trace_text", "body.fleet_yaml"
"""Where problems of an uploaded trace or fleet are located."""
MAX_PROBLEMS_SHOWN = 20
FIGURES = (
    "jobs_total", "jobs_finished", "jobs_rejected", "jobs_pending_at_end", "avg_jct_s", "p99_jct_s", "avg_wait_s",
    "gpu_utilization", "gpu_hours", "cost_usd", "policy", "wall_s",
)  # fmt: skip
"""The figures of a succeeded run a listing shows."""


def require_runner(who: Principal) -> None:
    """403 unless ``who`` may run a simulation (admin or member)."""
    who.require_not_provider()
    if who.role not in (Role.ADMIN, Role.MEMBER):
        raise ForbiddenError(
            f"running a simulation needs the 'admin' or 'member' role; token '{who.name}' has role '{who.role.value}'"
        )


def pickable(runner: Runner) -> Pickable:
    """What may be picked: the traces and fleets offered, the formats of uploads, the policies, the limits."""
    known = catalog.traces(catalog.traces_dir())
    limits = runner.limits
    return Pickable(
        traces=[KnownTrace(name=k.name, format=k.format, bytes=k.bytes, source=k.source) for k in known.values()],
        fleets=["current", *catalog.fleets()],
        formats=list(FORMATS),
        policies=sorted(POLICIES),
        limits={"max_jobs": limits.max_jobs, "max_wall_s": limits.max_wall_s, "max_waiting": limits.max_waiting},
    )


def create(ctx: ServerContext, runner: Runner, who: Principal, body: SimulationIn, now: datetime) -> SimulationOut:
    """Check ``body``, record the simulation (queued) and queue it; 422 (nothing stored) for a bad request, 429
    when this server's queue is full."""
    require_runner(who)
    _check_options(body)
    fleet, fleet_asked, config = _fleet(ctx, body)
    trace, trace_asked = _trace(body)
    jobs = trace.jobs if body.max_jobs is None else trace.jobs[: body.max_jobs]
    if not jobs:
        raise InvalidError(f"{trace_asked['where']}: found no jobs, expected at least one job to replay")
    if len(jobs) > runner.limits.max_jobs:
        raise InvalidError(
            f"body.max_jobs: the trace has {len(jobs):,} jobs, over this server's limit of {runner.limits.max_jobs:,} "
            "jobs for one simulation (STARGATE_SIM_MAX_JOBS); give max_jobs"
        )
    config.seed, config.scale_arrivals, config.until_s = body.seed, body.scale_arrivals, body.until_s
    config.estimates, config.procurement, config.rofr = body.estimates, body.procurement, body.rofr
    trace_block = {
        "source": trace_asked["name"],
        "jobs": len(trace.jobs),
        "skipped": dict(sorted(trace.skipped.items())),
        "bad_rows": len(trace.bad_rows),
        "notes": dict(sorted(trace.notes.items())),
    }
    request = {
        "name": body.name,
        "trace": {k: v for k, v in trace_asked.items() if k != "where"},
        "fleet": fleet_asked,
        "policy": config.policy,
        "settings": config.settings,
        "seed": body.seed,
        "scale_arrivals": body.scale_arrivals,
        "until_s": body.until_s,
        "max_jobs": body.max_jobs,
        "jobs": len(jobs),
        "estimates": body.estimates,
        "procurement": body.procurement,
        "rofr": body.rofr,
    }
    row = SimulationRow(
        id=f"sim-{uuid.uuid4().hex[:10]}",
        created_at=now,
        created_by=who.actor,
        status="queued",
        progress=0.0,
        request=request,
        result=None,
        error=None,
    )
    runner.submit(row, Work(row.id, fleet, jobs, config, trace.start, trace_block))
    return simulation_out(row)


def _check_options(body: SimulationIn) -> None:
    """The options that name something: the policy, the estimates mode, the trace format."""
    if body.policy is not None and body.policy not in POLICIES:
        names = ", ".join(sorted(POLICIES))
        raise InvalidError(f"body.policy: found {found_text(body.policy)}, expected one of {names}")
    if body.estimates not in ESTIMATE_MODES:
        raise InvalidError(f"body.estimates: found {found_text(body.estimates)}, expected {', '.join(ESTIMATE_MODES)}")
    if body.trace_format is not None and body.trace_format not in FORMATS:
        raise InvalidError(
            f"body.trace_format: found {found_text(body.trace_format)}, expected one of {', '.join(FORMATS)}"
        )


def _fleet(ctx: ServerContext, body: SimulationIn) -> tuple[Fleet, dict[str, Any], SimConfig]:
    """The fleet to simulate on, how it was asked for, and the run's configuration (policy and settings)."""
    if body.fleet is not None and body.fleet_yaml is not None:
        raise InvalidError("body: found both fleet and fleet_yaml, expected one of them")
    if body.fleet_yaml is not None:
        try:
            fleet = loads_fleet(body.fleet_yaml, file=FLEET_YAML)
        except FleetFileError as exc:
            raise InvalidError("invalid fleet: " + _lines([str(p) for p in exc.problems])) from None
        return fleet, {"uploaded": _digest(body.fleet_yaml), "name": fleet.name}, SimConfig(policy=body.policy)
    name = body.fleet or "current"
    if name == "current":
        with ctx.db.read() as session:
            version, fleet = ctx.fleet.get(session)
        override = ctx.settings.scheduling  # the server's --policy/--set, when they fit, as the scheduler decides
        if body.policy is None and override and policy_in_force(fleet.scheduling, override)[1] is None:
            config = SimConfig(policy=override.policy, settings=dict(override.settings))
        else:
            config = SimConfig(policy=body.policy)
        return fleet, {"current": version, "name": fleet.name}, config
    examples = catalog.fleets()
    if name not in examples:
        raise InvalidError(
            f"body.fleet: found {found_text(name)}, expected 'current' or one of {', '.join(examples) or '(none)'}"
        )
    try:
        fleet = load_fleet(examples[name])
    except FleetFileError as exc:
        raise InvalidError(f"body.fleet: {name}: " + _lines([str(p) for p in exc.problems])) from None
    return fleet, {"example": name, "name": fleet.name}, SimConfig(policy=body.policy)


def _trace(body: SimulationIn) -> tuple[Trace, dict[str, Any]]:
    """The trace to replay, and how it was asked for (with ``where`` to locate its problems)."""
    if body.trace is not None and body.trace_text is not None:
        raise InvalidError("body: found both trace and trace_text, expected one of them")
    if body.trace_text is not None:
        if body.trace_format is None:
            names = ", ".join(FORMATS)
            raise InvalidError(f"body.trace_format: found nothing, expected one of {names} with trace_text")
        return _uploaded(body.trace_text, body.trace_format), {
            "uploaded": _digest(body.trace_text),
            "format": body.trace_format,
            "name": "(uploaded)",
            "where": TRACE_TEXT,
        }
    if body.trace is None:
        raise InvalidError(
            "body.trace: found nothing, expected a trace name listed by GET /api/v1/simulations/traces, or trace_text"
        )
    known = catalog.traces(catalog.traces_dir())
    picked = known.get(body.trace)
    if picked is None:
        shown = ", ".join(list(known)[:10]) or "none offered"
        raise InvalidError(
            f"body.trace: found {found_text(body.trace)}, expected a trace listed by GET /api/v1/simulations/traces "
            f"({shown})"
        )
    if body.trace_format is not None and body.trace_format != picked.format:
        raise InvalidError(
            f"body.trace_format: found {found_text(body.trace_format)}, expected '{picked.format}' (the format of "
            f"{picked.name}) or nothing"
        )
    try:
        trace = read_trace(picked.path, picked.format)
    except TraceError as exc:
        raise InvalidError(f"body.trace: {picked.name}: {exc.bad_row.message}") from None
    return trace, {"name": picked.name, "format": picked.format, "where": "body.trace"}


def _uploaded(text: str, fmt: str) -> Trace:
    """An uploaded trace, read strictly from a private temporary file; problems located in ``body.trace_text``."""
    suffix = ".csv"
    if fmt == "native" and text.lstrip("\ufeff \t\r\n").startswith("{"):
        suffix = ".jsonl"
    with tempfile.TemporaryDirectory(prefix="stargate-sim-") as tmp:
        path = Path(tmp) / f"trace{suffix}"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))  # a lone surrogate: the reader says where
        try:
            return read_trace(path, fmt, strict=True)
        except TraceError as exc:
            bad = exc.bad_row
            where = f"{TRACE_TEXT}:{bad.line}" if bad.line > 0 else TRACE_TEXT
            raise InvalidError(f"{where}: {bad.message.replace(str(path), TRACE_TEXT)}") from None


def _digest(text: str) -> dict[str, Any]:
    """An upload as stored in ``request``: its size and SHA-256, not its text."""
    data = text.encode("utf-8", "surrogatepass")
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _lines(problems: list[str]) -> str:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def list_simulations(session: Session, limit: int) -> list[SimulationSummary]:
    """Simulations, newest first."""
    return [SimulationSummary(**_summary(row)) for row in repo.newest(session, limit)]


def get(session: Session, simulation_id: str) -> SimulationOut:
    """One simulation with its result; 404 when there is none of that id."""
    row = repo.get(session, simulation_id)
    if row is None:
        raise NotFoundError(f"simulation {found_text(simulation_id)} not found")
    return simulation_out(row)


def cancel(ctx: ServerContext, who: Principal, simulation_id: str, now: datetime) -> SimulationOut:
    """Cancel a queued or running simulation (a running one stops at its next progress report, within about a
    second); 409 when it is over already."""
    require_runner(who)
    with ctx.db.write() as session:
        row = repo.get(session, simulation_id)
        if row is None:
            raise NotFoundError(f"simulation {found_text(simulation_id)} not found")
        if not repo.cancel(session, simulation_id, now):
            raise ConflictError(
                f"simulation {simulation_id} has ended ({row.status}); only a queued or running one can be cancelled"
            )
        session.refresh(row)
        return simulation_out(row)


def _summary(row: SimulationRow) -> dict[str, Any]:
    result = row.result
    return {
        "id": row.id,
        "name": row.request.get("name"),
        "created_at": row.created_at,
        "created_by": row.created_by,
        "status": row.status,
        "progress": row.progress,
        "request": row.request,
        "error": row.error,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "figures": None if result is None else {k: result.get(k) for k in FIGURES},
    }


def simulation_out(row: SimulationRow) -> SimulationOut:
    """The API's view of a simulation."""
    return SimulationOut(**_summary(row), result=row.result)
