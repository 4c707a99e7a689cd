"""Capacity plans on the server: compute a scenario against the fleet in force, store it, list and show it, and
apply it (its 'sign' actions become capacity requests of the procurement workflow).

Who may do what: admins and members compute plans and read them (viewers read them too); only admins apply one;
provider tokens do neither (403).

Computing runs in the request's worker thread, never on the event loop: the scenario is read with
:func:`stargate.planning.scenario_file.loads_scenario` against the server's fleet (a ``fit`` series with no trace
is fitted to the server's ledger: the monthly GPU averages of the runs it recorded for the series' GPU model; the
loader refuses a ``fit`` naming a trace file, as the server reads no file a request names), solved with HiGHS and its
Monte Carlo risk run in-process (``workers=0``: Ray is never started inside the API). At most
:data:`MAX_COMPUTING` plans are computed at once (503 beyond). A refused scenario (located problems, 422) or an
infeasible one (the diagnosis in words, 422) stores nothing.

Applying raises one capacity request per selected 'sign' action through
:func:`stargate.server.services.procurement.raise_request` (the step ``POST /api/v1/procurement/requests`` takes,
so a first-refusal holder is offered it first), all in the caller's one transaction: every request is raised or
none. A plan is applied once (409 the second time); 'build' actions are listed as not applicable, and so is a 'sign'
whose signing month is before the server's current month (``now``): procurement would award it from today + lead
time, not when the plan said, stacking past signings into one window. When the selection's 'sign' actions are all
past, nothing is raised (409: plan again from today). A plan computed on an older fleet version than the one in force
is applied as computed, with a warning in the answer.
"""

import calendar
import threading
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from stargate.domain import Fleet
from stargate.domain.planning import PlanScenario
from stargate.fleetfile.describe import found_text, plain_error_words
from stargate.server.auth import Principal, Role
from stargate.server.context import ServerContext
from stargate.server.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError, UnavailableError
from stargate.server.schemas_money import CapacityRequestIn, ProcEventOut
from stargate.server.schemas_plans import (
    AppliedAction,
    ApplyOut,
    PlanDetail,
    PlanIn,
    PlanOut,
    PlanSummary,
    SkippedAction,
)
from stargate.server.services import procurement as procurement_service
from stargate.store.models import PlanRow
from stargate.store.repositories import fleet_versions
from stargate.store.repositories import plans as repo

MAX_COMPUTING = 2
"""Plans computed at once by one server process; one more is answered 503 (each holds a worker thread)."""
SOLVER_TIME_LIMIT_S = 60.0
"""HiGHS's time limit for one plan's LP, s."""
MAX_PROBLEMS_SHOWN = 20
"""The most located problems one 422 lists."""
SCENARIO_FILE = "scenario"
"""The file name problems of a submitted scenario are located in."""
PASSED = " has passed; plan again from today"
"""How the reason of a signing whose month is before the server's month ends."""

_computing = threading.BoundedSemaphore(MAX_COMPUTING)


def require_planner(who: Principal) -> None:
    """403 unless ``who`` may compute a plan (admin or member)."""
    who.require_not_provider()
    if who.role not in (Role.ADMIN, Role.MEMBER):
        raise ForbiddenError(
            f"computing a plan needs the 'admin' or 'member' role; token '{who.name}' has role '{who.role.value}'"
        )


def compute(ctx: ServerContext, who: Principal, body: PlanIn, now: datetime) -> PlanOut:
    """Compute ``body``'s scenario against the fleet in force and store the plan (see the module docstring)."""
    require_planner(who)
    if not _computing.acquire(blocking=False):
        raise UnavailableError(f"{MAX_COMPUTING} plans are being computed already; try again when one has finished")
    try:
        with ctx.db.read() as session:
            version, fleet = ctx.fleet.get(session)
            loaded = _load(body.scenario_yaml, fleet)
            history = _history(session, loaded.scenario, loaded.history, now)
        result = _solve(loaded.scenario, fleet, history, body.scenarios, body.seed)
    finally:
        _computing.release()
    plan = result.get("plan") or {}
    row = PlanRow(
        id=f"p-{uuid.uuid4().hex[:10]}",
        created_at=now,
        created_by=who.actor,
        fleet_version=version,
        scenario=loaded.scenario.name,
        scenario_yaml=body.scenario_yaml,
        scenarios=body.scenarios,
        seed=body.seed,
        status="computed",
        result=result,
        first_shortfall_month=plan.get("first_shortfall_month"),
        unmet_gpu_hours=float(plan.get("unmet_gpu_hours") or 0.0),
    )
    with ctx.db.write() as session:
        repo.add(session, row)
        return plan_out(row)


def _load(text: str, fleet: Fleet) -> Any:
    """The scenario read from ``text`` against ``fleet``; 422 with its located problems."""
    from stargate.planning.scenario_file import ScenarioFileError, loads_scenario

    try:
        return loads_scenario(text, file=SCENARIO_FILE, fleet=fleet)
    except ScenarioFileError as exc:
        raise InvalidError("invalid scenario: " + _problem_lines(exc.problems)) from None


def _problem_lines(problems: Sequence[object]) -> str:
    lines = [str(p) for p in problems[:MAX_PROBLEMS_SHOWN]]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        lines.append(f"and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    return "; ".join(lines) or "the scenario could not be read"


def _history(
    session: Session, scenario: PlanScenario, loaded: Mapping[str, Sequence[tuple[date, float]]], now: datetime
) -> dict[str, list[tuple[date, float]]]:
    """The history of every ``fit`` series: a series with no trace gets the ledger's monthly GPU averages of its
    GPU model (see :func:`ledger_history`)."""
    history = {key: list(values) for key, values in loaded.items()}
    by_model: dict[str, list[tuple[date, float]]] = {}
    for i, series in enumerate(scenario.demand):
        if series.fit is not None and series.fit.trace is None:
            if series.gpu_model not in by_model:
                by_model[series.gpu_model] = ledger_history(repo.run_spans(session, series.gpu_model), now)
            months = by_model[series.gpu_model]
            if len(months) < 2:
                raise InvalidError(
                    f"invalid scenario: {SCENARIO_FILE}: demand[{i}].fit: found {len(months)} month"
                    f"{'s' if len(months) != 1 else ''} with {series.gpu_model} runs in the server's ledger, expected "
                    "at least 2 to fit a growth curve (or a growth curve or points instead)"
                )
            history[series.id] = months
    return history


def ledger_history(spans: Any, now: datetime) -> list[tuple[date, float]]:
    """Monthly GPU averages of runs ``(GPUs, started, ended or None)``: GPU-hours held in each month ÷ the month's
    hours (the current month: ÷ the hours up to ``now``), oldest month first; months with no use are left out."""
    held: dict[date, float] = defaultdict(float)
    for gpus, start, end in spans:
        stop = min(end or now, now)
        at = start
        while at < stop:
            first = date(at.year, at.month, 1)
            nxt = _next_month(first)
            boundary = datetime(nxt.year, nxt.month, 1, tzinfo=UTC)
            until = min(stop, boundary)
            held[first] += gpus * (until - at).total_seconds() / 3600.0
            at = until
    current = date(now.year, now.month, 1)
    out = []
    for month in sorted(held):
        if month == current:
            hours = (now - datetime(month.year, month.month, 1, tzinfo=UTC)).total_seconds() / 3600.0
        else:
            hours = calendar.monthrange(month.year, month.month)[1] * 24.0
        if hours > 0 and held[month] > 0:
            out.append((month, held[month] / hours))
    return out


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def _solve(
    scenario: PlanScenario, fleet: Fleet, history: Mapping[str, Sequence[tuple[date, float]]], n: int, seed: int
) -> dict[str, Any]:
    """The plan and its risk as JSON data; 422 with the diagnosis when the scenario is infeasible or its demand
    cannot be built."""
    from stargate.engine.plan_solve import PlanInfeasible
    from stargate.planning.highs import highs_solver
    from stargate.planning.run import compute as compute_run
    from stargate.planning.run import run_to_dict

    try:
        run = compute_run(
            scenario,
            fleet,
            history,
            scenarios=n,
            seed=seed,
            workers=0,
            ray_address=None,
            progress=None,
            solver=highs_solver(time_limit_s=SOLVER_TIME_LIMIT_S),
        )
    except PlanInfeasible as exc:
        raise InvalidError(f"infeasible plan: {exc}") from None
    except ValueError as exc:  # demand that cannot be built (e.g. a fit with too little history in the ledger)
        raise InvalidError(f"invalid scenario: {exc}") from None
    result: dict[str, Any] = run_to_dict(run)
    return result


def list_plans(session: Session, who: Principal, limit: int) -> list[PlanSummary]:
    """Stored plans, newest first (not for provider tokens)."""
    who.require_not_provider()
    return [summary(row) for row in repo.newest(session, limit)]


def get_plan(session: Session, who: Principal, plan_id: str) -> PlanDetail:
    """One stored plan with its scenario YAML (404 when unknown)."""
    who.require_not_provider()
    row = repo.get(session, plan_id)
    if row is None:
        raise NotFoundError(f"no plan {found_text(plan_id)}")
    return PlanDetail(**plan_out(row).model_dump(), scenario_yaml=row.scenario_yaml)


def apply(session: Session, who: Principal, plan_id: str, selected: list[int] | None, now: datetime) -> ApplyOut:
    """Raise one capacity request per selected 'sign' action of plan ``plan_id`` (admin), in this transaction."""
    who.require_admin()
    row = repo.get(session, plan_id, for_update=True)
    if row is None:
        raise NotFoundError(f"no plan {found_text(plan_id)}")
    if row.status == "applied":
        at = (
            ""
            if row.applied_at is None
            else f" at {row.applied_at.isoformat(timespec='seconds').replace('+00:00', 'Z')}"
        )
        raise ConflictError(
            f"plan {row.id}: found it applied{at} by {row.applied_by}, expected a plan not applied yet (a plan is "
            "applied once)"
        )
    actions: list[dict[str, Any]] = list((row.result.get("plan") or {}).get("actions") or [])
    indices = _selection(selected, len(actions))
    current = _month_text(now)
    skipped = [
        SkippedAction(action=n, kind=str(actions[n].get("kind")), reason=why)
        for n in indices
        if (why := _not_applicable(actions[n], current)) is not None
    ]
    left = {s.action for s in skipped}
    passed = [s for s in skipped if s.reason.endswith(PASSED)]
    if passed and all(n in left for n in indices):
        raise ConflictError(
            f"plan {row.id}: found no action left to apply ({_reasons(passed)}), expected a 'sign' action from "
            f"{current} on: nothing was raised; plan again from today"
        )
    warnings = _fleet_warnings(session, row)
    applied: list[AppliedAction] = []
    events: list[ProcEventOut] = []
    for n in indices:
        action = actions[n]
        if n in left:
            continue
        body = request_for(row.id, n, action)
        try:
            step = procurement_service.raise_request(session, who, body, now)
        except (ConflictError, InvalidError) as exc:  # the caller's transaction rolls back what was raised before
            raise type(exc)(f"plan {row.id} action {n}: {exc.detail} (nothing was raised)") from None
        applied.append(AppliedAction(action=n, request=step.request))
        events += step.events
    if not applied:
        raise InvalidError(
            f"plan {row.id}: found no 'sign' action to apply among actions {_span(indices)}, expected at least one "
            "(buildings are not purchases)"
        )
    repo.mark_applied(session, row, who.actor, now, {str(a.action): a.request.id for a in applied})
    return ApplyOut(
        plan_id=row.id,
        applied_at=now,
        applied_by=who.actor,
        requests=applied,
        not_applicable=skipped,
        events=events,
        warnings=warnings,
    )


def _selection(selected: list[int] | None, count: int) -> list[int]:
    """The action indices to apply: every one by default; 422 for an index out of range or given twice."""
    if selected is None:
        return list(range(count))
    expected = f"an index from 0 to {count - 1}" if count else "no index (the plan has no actions)"
    for i, n in enumerate(selected):
        if not 0 <= n < count:
            raise InvalidError(f"body.actions[{i}]: found {n}, expected {expected}")
        if n in selected[:i]:
            raise InvalidError(f"body.actions[{i}]: found {n} a second time, expected each index once")
    return list(selected)


def _span(indices: Sequence[int]) -> str:
    return ", ".join(str(n) for n in indices) if indices else "(none)"


def _not_applicable(action: Mapping[str, Any], current: str) -> str | None:
    """Why ``action`` raises no request (None: it does); ``current`` is the server's month (YYYY-MM)."""
    if action.get("kind") != "sign":
        return "a building is not a purchase: it is started outside procurement"
    for key in ("month", "online_month"):  # YYYY-MM texts compare as the months they name
        month = action.get(key)
        if isinstance(month, str) and month < current:
            return f"its month {month}{PASSED}"
    if action.get("online_month") is None:
        return "its capacity starts after the plan's horizon"
    return None


def _month_text(now: datetime) -> str:
    return f"{now.year:04d}-{now.month:02d}"


def _reasons(skipped: Sequence[SkippedAction]) -> str:
    shown = [f"action {s.action}: {s.reason}" for s in skipped[:5]]
    if len(skipped) > 5:
        shown.append(f"and {len(skipped) - 5} more")
    return "; ".join(shown)


def _fleet_warnings(session: Session, row: PlanRow) -> list[str]:
    """A warning when the plan was computed on another fleet version than the one in force."""
    version = fleet_versions.current_version(session)
    if version is None or version == row.fleet_version:
        return []
    return [
        f"plan {row.id} was computed on fleet version {row.fleet_version[:12]}, the fleet in force is version "
        f"{version[:12]}: its actions are applied as computed; plan again to see them against the fleet in force"
    ]


def request_for(plan_id: str, n: int, action: Mapping[str, Any]) -> CapacityRequestIn:
    """The capacity request of 'sign' action ``n``: its GPUs of its model from the first day of its online month for
    its term (days from there to the same day ``term_months`` later); 422 naming the action when the request would
    be invalid (e.g. more GPUs than one request may ask for)."""
    online = action["online_month"]
    start = date.fromisoformat(f"{online}-01")
    term = int(action.get("term_months") or 0)
    end = _add_months(start, term)
    reason = (
        f"plan {plan_id} action {n}: sign {action['gpus']:,} GPUs of {action['gpu_model']} from {online} for {term} "
        f"months ({action['provider']} option {action['option']})"
    )
    fields = {
        "gpu_model": action["gpu_model"],
        "gpus": action["gpus"],
        "start": start,
        "term_days": (end - start).days,
        "reason": reason,
        "raised_by": "plan",
    }
    try:
        return CapacityRequestIn.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        found, expected = plain_error_words(err)
        raise InvalidError(
            f"plan {plan_id} action {n}: {where}: found {found}, expected {expected} (nothing was raised)"
        ) from None


def _add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day when it has fewer days)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def summary(row: PlanRow) -> PlanSummary:
    """A stored plan in a listing."""
    return PlanSummary(
        id=row.id,
        created_at=row.created_at,
        created_by=row.created_by,
        fleet_version=row.fleet_version,
        scenario=row.scenario,
        scenarios=row.scenarios,
        seed=row.seed,
        status="applied" if row.status == "applied" else "computed",
        first_shortfall_month=row.first_shortfall_month,
        unmet_gpu_hours=row.unmet_gpu_hours,
        applied=row.status == "applied",
        applied_at=row.applied_at,
        applied_by=row.applied_by,
    )


def plan_out(row: PlanRow) -> PlanOut:
    """A stored plan with its result."""
    return PlanOut(**summary(row).model_dump(), applied_requests=row.applied_requests, result=row.result)
