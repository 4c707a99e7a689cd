"""The fleet in force: content hash, plan (preview a change) and apply (refused when the plan is stale).

A fleet is recorded only if the scheduler can load it: :func:`engine_problem` runs the code every scheduler cycle
runs (the engine's fleet index and an empty engine cycle) on it, so a fleet that passes validation but would stop
every cycle (e.g. a date the index cannot turn into seconds) is refused at plan time, not after apply.
"""

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.orm import Session

from stargate.domain import Fleet, fleet_problems
from stargate.domain.problems import Problem
from stargate.engine import Driver, Override, PriorityRule, get_policy, policy_for
from stargate.engine import scheduling as engine_scheduling
from stargate.engine.procurement_award import award_contract
from stargate.fleetfile.describe import error_words, found_text
from stargate.server.errors import ConflictError, InvalidError, NotFoundError
from stargate.server.schemas import Change, FleetOut, FleetPlan, SchedulingOut
from stargate.server.terms import ENGINE_EPOCH, SpecTerms, engine_seconds, job_terms
from stargate.store import JobStatus
from stargate.store.models import FleetPlanRow, FleetVersionRow
from stargate.store.repositories import fleet_versions
from stargate.store.repositories import jobs as job_repo
from stargate.store.repositories import procurement as procurement_repo
from stargate.store.repositories import teams as team_repo

SECTIONS = (
    "gpu_models",
    "providers",
    "sites",
    "buildings",
    "clusters",
    "contracts",
    "priority_classes",
    "teams",
    "queues",
)
"""Fleet sections compared entity by entity (by ``id``, or ``name`` for GPU models and priority classes)."""


def canonical(fleet: Fleet) -> dict[str, Any]:
    """The fleet as plain JSON data."""
    return fleet.model_dump(mode="json")


def version_of(document: dict[str, Any]) -> str:
    """SHA-256 of a fleet document's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def parse(document: dict[str, Any], where: str = "body.fleet") -> Fleet:
    """Validate a fleet document; 422 listing every located problem, worded as the fleet file's loader words them
    (``body.fleet.clusters[0].nodes: found -1, expected an integer greater than 0 ...``)."""
    try:
        fleet = Fleet.model_validate(document)
    except ValidationError as exc:
        lines = [_field_line(where, e) for e in exc.errors()]
        raise InvalidError("invalid fleet: " + "; ".join(lines)) from None
    problems = fleet_problems(fleet) + engine_scheduling.problems(fleet.scheduling)
    if problems:
        lines = [f"{where}.{p.dotted()}: found {p.found}, expected {p.expected}" for p in problems]
        raise InvalidError("invalid fleet: " + "; ".join(lines))
    return fleet


def _field_line(where: str, err: ErrorDetails) -> str:
    """One pydantic error of a fleet document as ``WHERE.PATH: found X, expected Y``."""
    found, expected = error_words(Fleet, err)
    return f"{where}.{Problem(tuple(err['loc']), found, expected).dotted()}: found {found}, expected {expected}"


def current(session: Session, override: Override | None = None) -> FleetOut:
    """The fleet in force and the policy the scheduler decides with (under ``override``); 404 before any fleet was
    applied."""
    row = fleet_versions.current(session)
    if row is None:
        raise NotFoundError("no fleet has been applied yet")
    out = FleetOut(version=row.version, applied_at=row.applied_at, applied_by=row.applied_by, fleet=row.document)
    return out.model_copy(update={"scheduling": scheduling_out(Fleet.model_validate(row.document), override)})


STANDBY_NOTE = (
    "this server is a standby: the policy shown is the fleet's scheduling section under this server's stargate up "
    "--policy/--set, not necessarily the leader's (the leader decides with its own options)"
)
"""What ``GET /api/v1/fleet/scheduling`` says on a standby."""


def scheduling_out(fleet: Fleet, override: Override | None = None) -> SchedulingOut:
    """The policy ``fleet`` is scheduled with under ``override`` (the fleet's alone, with the problem, when they do
    not fit)."""
    policy, problem = engine_scheduling.policy_in_force(fleet.scheduling, override or Override())
    described = override.describe() if override else None
    settings = engine_scheduling.settings_of(policy)
    defaults = engine_scheduling.settings_of(get_policy(policy.name))
    changed = {k: v for k, v in settings.items() if defaults.get(k) != v}
    return SchedulingOut(policy=policy.name, settings=settings, changed=changed, override=described, problem=problem)


ENTITY_SECTIONS = ("clusters", "contracts", "buildings", "queues")
"""Sections whose entries the engine indexes one by one (each may be left out without breaking a reference the
index follows), so a fleet it cannot load is narrowed down to the first entry it cannot load alone."""


def engine_problem(fleet: Fleet, now: datetime | None = None, override: Override | None = None) -> str | None:
    """Why the scheduler could not load ``fleet`` under ``stargate up --policy/--set`` ``override`` (one located
    line), or None when it can."""
    now = now or datetime.now(UTC)
    bad = engine_scheduling.problems(fleet.scheduling, override)
    if bad:
        told = f" (with stargate up {override.describe()})" if override else ""
        return "; ".join(f"fleet.{p.dotted()}: found {p.found}, expected {p.expected}{told}" for p in bad)
    try:
        _load(fleet, now, override)
        return None
    except Exception as exc:  # anything the engine raises would stop every scheduler cycle
        error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    where = _culprit(fleet, now) or "fleet"
    return f"{where}: found a value the scheduler cannot load ({error}), expected a fleet the engine can index"


def check_schedulable(fleet: Fleet, now: datetime | None = None, override: Override | None = None) -> None:
    """422 with :func:`engine_problem`'s line when the scheduler could not load ``fleet``."""
    problem = engine_problem(fleet, now, override)
    if problem is not None:
        raise InvalidError(f"invalid fleet: {problem}")


def _load(fleet: Fleet, now: datetime, override: Override | None = None) -> None:
    """Build the engine's index of ``fleet`` and decide once without jobs, as the scheduler loop does."""
    epoch = datetime(2020, 1, 1, tzinfo=UTC)  # the scheduler's engine epoch (stargate.server.scheduling.snapshot)
    Driver(fleet, policy_for(fleet.scheduling, override), epoch).decide((now - epoch).total_seconds())


def _culprit(fleet: Fleet, now: datetime) -> str | None:
    """``fleet.clusters[3] (id 'x')``: the first entry the engine cannot load alone; None when none is."""
    bare = fleet.model_copy(update={key: [] for key in ENTITY_SECTIONS})
    try:
        _load(bare, now)
    except Exception:
        return None  # it fails without any of them: the entry sections are not where the problem is
    for section in ENTITY_SECTIONS:
        for i, entry in enumerate(getattr(fleet, section)):
            try:
                _load(bare.model_copy(update={section: [entry]}), now)
            except Exception:
                return f"fleet.{section}[{i}] (id '{getattr(entry, 'id', '?')}')"
    return None


def check_live_jobs(session: Session, fleet: Fleet, now: datetime) -> None:
    """422 when ``fleet`` would strand jobs that are not final: it removes their queue, or their priority class is no
    longer one their queue may use (as Kueue keeps a queue with admitted work), or the engine would reject them as
    never runnable (no cluster fits them any more, a quota too small, ...). Cancel them or let them finish first;
    clusters may go while others can take their jobs (those are requeued)."""
    rule = PriorityRule(fleet)
    queues = {q.id for q in fleet.queues}
    live = job_repo.live_by_queue_and_class(session)
    removed: dict[str, int] = {}
    for (queue, _), n in live.items():
        if queue not in queues:
            removed[queue] = removed.get(queue, 0) + n
    lines = [
        f"fleet.queues: found queue '{queue}' removed while it has {_jobs(n)}, expected it kept"
        for queue, n in sorted(removed.items())
    ]
    for (queue, cls), n in sorted(live.items()):
        jobs = _jobs(n)
        if queue not in queues:
            continue
        if rule.resolve(queue, cls) is None:
            lines.append(
                f"fleet.queues: found priority class '{cls}' no longer usable in queue '{queue}' while it has {jobs}"
                ", expected it kept"
            )
    if not lines:
        lines = _never_runnable(session, fleet, now)
    if lines:
        raise InvalidError("invalid fleet: " + "; ".join(lines) + " (cancel those jobs or let them finish first)")


NAMED_JOBS = 5
"""Job ids named per reason when a fleet would leave jobs that could never run."""


def _never_runnable(session: Session, fleet: Fleet, now: datetime) -> list[str]:
    """Why jobs not finished could never run on ``fleet``, by the engine's own rule (no cluster fits them any more, a
    quota too small, a GPU model gone, ...): the scheduler would reject them, failing running work on a fleet edit."""
    states = job_repo.states(session, [JobStatus.PENDING, JobStatus.PLACED, JobStatus.RUNNING])
    if not states:
        return []
    specs = job_repo.specs(session, [j.id for j in states])
    driver = Driver(fleet, policy_for(fleet.scheduling), ENGINE_EPOCH)
    for job in states:  # all as pending, so the engine classifies each one as it would after a requeue
        driver.submit(job_terms(job, SpecTerms.of(specs.get(job.id, {}))))
    refused: dict[str, list[str]] = {}
    for r in driver.decide(engine_seconds(now)).rejections:
        refused.setdefault(str(r.reason), []).append(r.job_id)
    out = []
    for reason, ids in sorted(refused.items()):
        shown = ", ".join(sorted(ids)[:NAMED_JOBS]) + (
            f" and {len(ids) - NAMED_JOBS:,} more" if len(ids) > NAMED_JOBS else ""
        )
        out.append(f"fleet: found {_jobs(len(ids))} that could never run on it ({reason}: {shown}), expected none")
    return out


def _jobs(n: int) -> str:
    return f"{n:,} job{'s' if n != 1 else ''} not finished (pending, placed or running)"


def with_awards(session: Session, fleet: Fleet) -> Fleet:
    """``fleet`` with the contract and cluster of every award already in force that it does not list: capacity bought
    through procurement stays bought when a fleet file that predates the award is applied (409 when the file no
    longer has the provider or site an award needs)."""
    stored = procurement_repo.load(session)
    contracts, clusters = list(fleet.contracts), list(fleet.clusters)
    have_contracts, have_clusters = {c.id for c in contracts}, {c.id for c in clusters}
    added = False
    for award_id, award in stored.awards.items():
        if stored.fleet_versions.get(award_id) is None:
            continue
        contract, cluster = award_contract(award)
        if contract.id not in have_contracts:
            contracts.append(contract)
            added = True
        if cluster.id not in have_clusters:
            clusters.append(cluster)
            added = True
    if not added:
        return fleet
    kept = fleet.model_copy(update={"contracts": contracts, "clusters": clusters})
    problems = fleet_problems(kept)
    if problems:
        raise ConflictError(
            "the fleet would drop capacity bought through procurement: keeping its awarded contracts and clusters "
            f"fails: {problems[0].dotted()}: found {problems[0].found}, expected {problems[0].expected}"
        )
    return kept


def record(
    session: Session, fleet: Fleet, actor: str, now: datetime, override: Override | None = None
) -> FleetVersionRow:
    """Make ``fleet`` the fleet in force (a new version row, teams and queues synced), with every award in force
    kept (see :func:`with_awards`); 422 when the scheduler could not load it (under ``stargate up --policy/--set``
    ``override``)."""
    fleet = with_awards(session, fleet)
    check_schedulable(fleet, now, override)
    check_live_jobs(session, fleet, now)
    document = canonical(fleet)
    row = fleet_versions.add(
        session, FleetVersionRow(version=version_of(document), document=document, applied_at=now, applied_by=actor)
    )
    team_repo.sync(session, fleet)
    return row


def ensure(
    session: Session, fleet: Fleet, actor: str, now: datetime, override: Override | None = None
) -> tuple[FleetVersionRow, bool]:
    """Apply ``fleet`` unless it already is the fleet in force; returns the version row and whether it changed."""
    fleet_versions.lock(session)
    row = fleet_versions.current(session)
    fleet = with_awards(session, fleet)
    if row is not None and row.version == version_of(canonical(fleet)):
        return row, False
    return record(session, fleet, actor, now, override), True


def plan(
    session: Session, document: dict[str, Any], actor: str, now: datetime, override: Override | None = None
) -> FleetPlan:
    """Validate a proposed fleet (also: the scheduler can load it, under ``override``), list its differences from
    the fleet in force and store the plan."""
    fleet = with_awards(session, parse(document))
    check_schedulable(fleet, now, override)
    check_live_jobs(session, fleet, now)
    proposed = canonical(fleet)
    base = fleet_versions.current(session)
    changes = diff(base.document if base is not None else {}, proposed)
    row = fleet_versions.add_plan(
        session,
        FleetPlanRow(
            id=f"p-{uuid.uuid4().hex[:16]}",
            base_version=base.version if base is not None else None,
            new_version=version_of(proposed),
            document=proposed,
            changes=[c.model_dump() for c in changes],
            created_at=now,
            created_by=actor,
        ),
    )
    return FleetPlan(plan_id=row.id, base_version=row.base_version, new_version=row.new_version, changes=changes)


def apply(session: Session, plan_id: str, actor: str, now: datetime, override: Override | None = None) -> FleetOut:
    """Apply a stored plan; 404 for an unknown plan, 409 when the fleet changed since it was made."""
    fleet_versions.lock(session)
    row = fleet_versions.get_plan(session, plan_id)
    if row is None:
        raise NotFoundError(f"no fleet plan {found_text(plan_id)}")
    base = fleet_versions.current(session)
    base_version = base.version if base is not None else None
    if row.applied_at is not None:
        raise ConflictError(f"plan '{plan_id}' was already applied at {_iso_utc(row.applied_at)}")
    if base_version != row.base_version:
        raise ConflictError(
            f"plan '{plan_id}' is stale: it was made against fleet version {row.base_version}, "
            f"but version {base_version} is in force now; make a new plan"
        )
    fleet = Fleet.model_validate(row.document)
    version = record(session, fleet, actor, now, override)
    row.applied_at = now
    out = FleetOut(version=version.version, applied_at=now, applied_by=actor, fleet=version.document)
    return out.model_copy(update={"scheduling": scheduling_out(fleet, override)})


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Entity-level differences between two fleet documents: added, removed and changed entries."""
    changes = [Change(kind="change", entity="fleet", id="fleet", fields=_changed_top(old, new))] if old else []
    changes = [c for c in changes if c.fields]
    for section in SECTIONS:
        before = _by_key(old.get(section) or [])
        after = _by_key(new.get(section) or [])
        changes += [Change(kind="add", entity=section, id=k, fields=[]) for k in after if k not in before]
        changes += [Change(kind="remove", entity=section, id=k, fields=[]) for k in before if k not in after]
        for key in (k for k in after if k in before):
            fields = sorted(f for f in set(before[key]) | set(after[key]) if before[key].get(f) != after[key].get(f))
            if fields:
                changes.append(Change(kind="change", entity=section, id=key, fields=fields))
    return changes


def _by_key(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(e.get("id", e.get("name"))): e for e in entries}


def _changed_top(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = (set(old) | set(new)) - set(SECTIONS)
    return sorted(k for k in keys if old.get(k) != new.get(k))


def _iso_utc(at: datetime) -> str:
    """``at`` as ISO 8601 in UTC with a ``Z``, as the API writes every other time (a naive time is UTC)."""
    aware = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")
