"""Jobs: submit (validated against the fleet in force), look up, list, cancel; team isolation applied here."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from stargate.domain import Fleet, JobKind, JobReason, JobSpec, Queue, job_needs, read_reason
from stargate.engine.priorities import PriorityRule
from stargate.executors import ArgumentLimits, Capabilities, capabilities_of
from stargate.fleetfile.describe import found_text
from stargate.server.auth import Principal
from stargate.server.errors import BadRequestError, ConflictError, ForbiddenError, InvalidError, NotFoundError
from stargate.server.schemas import Job, JobPage, Waiting
from stargate.store import JobRow, JobStatus, format_job_id, parse_job_id, record_submission, transition
from stargate.store.repositories import jobs as job_repo

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Placeable:
    """Clusters alike for a submit check: their provider, region, GPU model and executor id."""

    provider: str
    region: str
    gpu_model: str
    executor: str


@dataclass(frozen=True)
class SubmitRules:
    """What checking a submission needs from one fleet version, indexed once per version: queues by id, priority
    class values, the GPU model catalogue, where jobs may run and what each executor there can do."""

    queues: dict[str, Queue]
    priorities: PriorityRule
    catalogue: frozenset[str]
    executors: dict[str, tuple[frozenset[str], Capabilities]] = field(default_factory=dict)
    """The features and capabilities of each executor the fleet's providers and clusters use, by executor id."""
    providers: dict[str, str] = field(default_factory=dict)
    """Each provider's executor id, by provider id."""
    clusters: tuple[Placeable, ...] = ()
    """The fleet's clusters, one entry per distinct (provider, region, GPU model, executor)."""
    regions: frozenset[str] = frozenset()
    """The regions of the fleet's sites."""
    single_team: str | None = None
    """``stargate up --single-team``: the one team whose jobs may run on the server's machine (no isolation)."""
    _usable: dict[tuple[object, ...], tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    """Executor ids a job may run on, by its (providers, regions, GPU models): filled as submissions come."""

    @classmethod
    def of(cls, fleet: Fleet) -> "SubmitRules":
        """The rules of ``fleet``."""
        configs = fleet.executor_configs()
        region_of = {s.id: s.region for s in fleet.sites}
        provider_of = {s.id: s.provider for s in fleet.sites}
        by_cluster = fleet.cluster_executor_ids()
        providers = {p.id: p.executor for p in fleet.providers}
        clusters = {
            Placeable(provider_of.get(c.site, ""), region_of.get(c.site, ""), c.gpu_model, by_cluster[c.id])
            for c in fleet.clusters
        }
        used = {e for e in (*providers.values(), *(c.executor for c in clusters)) if e in configs}
        return cls(
            queues={q.id: q for q in fleet.queues},
            priorities=PriorityRule(fleet),
            catalogue=frozenset(fleet.catalogue()),
            executors={e: (configs[e].features(), capabilities_of(configs[e])) for e in sorted(used)},
            providers=providers,
            clusters=tuple(sorted(clusters, key=lambda c: (c.provider, c.region, c.gpu_model, c.executor))),
            regions=frozenset(site.region for site in fleet.sites),
        )

    def usable(self, spec: JobSpec) -> tuple[str, ...]:
        """The ids of the executors of the clusters ``spec`` may use (its providers, regions and GPU models); when
        no cluster matches (the engine rejects the job then), those of the providers it may use."""
        key = (tuple(spec.allowed_providers), tuple(spec.allowed_regions), tuple(spec.gpu_models))
        found = self._usable.get(key)
        if found is None:
            providers, regions, models = (set(v) for v in key)
            ids = {
                c.executor
                for c in self.clusters
                if (not providers or c.provider in providers)
                and (not regions or c.region in regions)
                and (not models or c.gpu_model in models)
            }
            if not ids:
                ids = {e for p, e in self.providers.items() if not providers or p in providers}
            found = tuple(sorted(e for e in ids if e in self.executors))
            if len(self._usable) < MAX_CACHED_SHAPES:
                self._usable[key] = found
        return found


MAX_CACHED_SHAPES = 10_000
"""The most distinct (providers, regions, GPU models) a fleet version's rules remember executors for."""


def check(who: Principal, spec: JobSpec, rules: SubmitRules, now: datetime) -> dict[str, Any]:
    """Check ``spec`` against the fleet's rules and the caller's rights (no I/O); the new job row's column values.

    Raises 422 for an unknown queue, priority class, GPU model, provider or region and a spec with nothing to run,
    403 when the caller may not submit to the queue's team.
    """
    queue = rules.queues.get(spec.queue)
    if queue is None:
        known = ", ".join(sorted(rules.queues)[:10]) or "none defined"
        raise InvalidError(f"body.queue: found '{spec.queue}', expected the id of a queue ({known})")
    who.require_write(queue.team)
    _check_single_team(spec, queue.team, rules)
    priority_class, priority = _priority(spec, queue.id, rules)
    _check_models(spec, rules)
    if not spec.command and not spec.image:
        raise InvalidError("body.command: found nothing, expected a shell command (or body.image for containers)")
    _check_needs(spec, rules)
    _check_executor_limits(spec, rules)
    return {
        "name": spec.name,
        "queue_id": queue.id,
        "team_id": queue.team,
        "kind": spec.kind.value,
        "gpus": spec.gpus,
        "gpu_models": list(spec.gpu_models),
        "priority_class": priority_class,
        "priority": priority,
        "preemptible": spec.preemptible,
        "spec": spec.model_dump(mode="json"),
        "status": JobStatus.PENDING,
        "reason": JobReason.SUBMITTED,
        "detail": "",
        "attempt": 0,
        "progress_s": 0.0,
        "submitted_by": who.actor,
        "submitted_at": now,
        "gpu_ids": [],
    }


def submit(session: Session, who: Principal, spec: JobSpec, fleet: Fleet, now: datetime) -> JobRow:
    """Check ``spec`` against the fleet and the caller's rights, then store it as a pending job (ORM, one job;
    the API's submissions go through :class:`stargate.server.writer.SubmissionWriter`, which batches)."""
    job = JobRow(**check(who, spec, SubmitRules.of(fleet), now))
    job_repo.add(session, job)
    record_submission(session, job, who.actor, now)
    return job


def _priority(spec: JobSpec, queue: str, rules: SubmitRules) -> tuple[str, int]:
    """The job's priority class and value by the rule the engine applies too (:mod:`stargate.engine.priorities`)."""
    found = rules.priorities.resolve(queue, spec.priority_class)
    if found is None:
        usable = rules.priorities.allowed(queue)
        shown = ", ".join(usable) or "none defined"
        named = "no priority class" if spec.priority_class is None else found_text(spec.priority_class)
        raise InvalidError(f"body.priority_class: found {named}, expected a priority class the queue allows ({shown})")
    return found.name, found.value


def _executors(spec: JobSpec, rules: SubmitRules) -> list[tuple[str, Capabilities]]:
    """The id and capabilities of every executor the job may run on."""
    return [(e, rules.executors[e][1]) for e in rules.usable(spec)]


def _kinds(executors: list[tuple[str, Capabilities]]) -> str:
    """The executor ids of ``executors`` for a message, e.g. ``local`` or ``local or ray``."""
    return " or ".join(sorted({kind for kind, _ in executors}))


def _check_needs(spec: JobSpec, rules: SubmitRules) -> None:
    """422 for a job no executor it may run on can run: an image alone where every one runs commands only, or a
    command alone where every one runs images only (a Kubernetes executor without a default image)."""
    needs = job_needs(spec.command, spec.image)
    usable = rules.usable(spec)
    if not needs or not usable or any(needs <= rules.executors[e][0] for e in usable):
        return
    ids = " or ".join(usable)
    if "images" in needs:
        raise InvalidError(
            f"body.command: found only an image, expected a shell command: every cluster this job may use runs on "
            f"the {ids} executor, which runs commands, not images"
        )
    raise InvalidError(
        f"body.image: found nothing, expected a container image: every cluster this job may use runs on the {ids} "
        "executor, which runs images, not commands (its `image` setting is not set)"
    )


def _check_single_team(spec: JobSpec, team: str, rules: SubmitRules) -> None:
    """422 for another team's job that may run on the server's machine (the local executor) of a ``--single-team``
    server."""
    if rules.single_team is None or team == rules.single_team:
        return
    on_host = [e for e in _executors(spec, rules) if e[1].on_server_host]
    if on_host:
        raise InvalidError(
            f"body.queue: found '{spec.queue}' of team '{team}'; this server runs jobs without isolation and only for "
            f"team '{rules.single_team}' on the {_kinds(on_host)} executor (stargate up --single-team)"
        )


def _check_models(spec: JobSpec, rules: SubmitRules) -> None:
    """422 for a GPU model, provider or region the fleet in force does not have (the job could never run)."""
    for field_name, values, known, what in (
        ("gpu_models", spec.gpu_models, rules.catalogue, "a GPU model"),
        ("allowed_providers", spec.allowed_providers, frozenset(rules.providers), "the id of a provider"),
        ("allowed_regions", spec.allowed_regions, rules.regions, "the region of a site"),
    ):
        for i, value in enumerate(values):
            if value not in known:
                shown = ", ".join(sorted(known)[:20]) or "none in the fleet"
                more = f", … {len(known) - 20} more" if len(known) > 20 else ""
                raise InvalidError(
                    f"body.{field_name}[{i}]: found {found_text(value)}, expected {what} ({shown}{more})"
                )


def _check_executor_limits(spec: JobSpec, rules: SubmitRules) -> None:
    """422 for a command or environment the executors this job may use could never start: on an executor with
    :class:`ArgumentLimits` (the local one), a string over MAX_ARG_STRLEN or more than half of this host's ARG_MAX in
    all (the local runner and then ``/bin/sh -c`` get the command as one argument, the environment as ``KEY=value``
    strings)."""
    limited: dict[ArgumentLimits, list[tuple[str, Capabilities]]] = {}
    for kind, capabilities in _executors(spec, rules):
        if capabilities.argument_limits is not None:
            limited.setdefault(capabilities.argument_limits, []).append((kind, capabilities))
    for limits, executors in limited.items():
        _check_argument_limits(spec, limits, _kinds(executors))


def _check_argument_limits(spec: JobSpec, limits: ArgumentLimits, kinds: str) -> None:
    """422 for a command or environment over ``limits``, the limits of the ``kinds`` executor."""
    limit = limits.string_bytes
    command = len((spec.command or "").encode("utf-8", "surrogatepass"))
    if command > limit:
        raise InvalidError(
            f"body.command: found {command:,} bytes, expected at most {limit:,} bytes (the {kinds} executor passes "
            "the command as one argument; Linux's MAX_ARG_STRLEN)"
        )
    total = limits.cost(command)
    for key, value in spec.environment.items():
        size = len(f"{key}={value}".encode("utf-8", "surrogatepass"))
        if size > limit:
            raise InvalidError(
                f"body.environment.{key[:40]}: found {size:,} bytes as KEY=value, expected at most {limit:,} bytes "
                "(Linux's MAX_ARG_STRLEN for one environment string)"
            )
        total += limits.cost(size)
    if total > limits.total_bytes:
        raise InvalidError(
            f"body: found a command and environment of {total:,} bytes, expected at most {limits.total_bytes:,} "
            f"bytes in all (half of this host's ARG_MAX: the {kinds} executor's limit on a command's arguments and "
            "environment)"
        )


def new_job(values: dict[str, Any], row_id: int, spec: JobSpec) -> Job:
    """The API view of a job just stored from ``values`` (see :func:`check`) as row ``row_id``."""
    return Job(
        id=format_job_id(row_id),
        name=values["name"],
        queue=values["queue_id"],
        team=values["team_id"],
        kind=spec.kind,
        gpus=values["gpus"],
        gpu_models=values["gpu_models"],
        priority_class=values["priority_class"],
        status=JobStatus.PENDING,
        reason=JobReason(values["reason"]),
        detail=values.get("detail", ""),
        attempt=0,
        submitted_at=values["submitted_at"],
        started_at=None,
        finished_at=None,
        cluster=None,
        gpu_ids=[],
        exit_code=None,
        spec=spec,
    )


def get_visible(session: Session, who: Principal, public_id: str, *, for_update: bool = False) -> JobRow:
    """The job ``public_id`` if the caller may see it; 404 otherwise (other teams' jobs are not revealed)."""
    row_id = parse_job_id(public_id)
    job = job_repo.get(session, row_id, for_update=for_update) if row_id is not None else None
    if job is None or not (who.is_admin or job.team_id == who.team):
        raise NotFoundError(f"no job {found_text(public_id)}")
    return job


def list_page(
    session: Session,
    who: Principal,
    where: job_repo.JobFilter,
    limit: int,
    cursor: str | None,
    oldest_first: bool = False,
) -> JobPage:
    """A page of jobs newest first (or oldest first), limited to the caller's team unless it is an admin."""
    if not who.is_admin:
        if where.team is not None and where.team != who.team:
            raise ForbiddenError(f"token '{who.name}' may list only team '{who.team}' jobs, not team '{where.team}'")
        where = job_repo.JobFilter(status=where.status, queue=where.queue, team=who.team or "")
    before = _cursor(cursor, oldest_first)
    rows, next_id = job_repo.page(session, where, min(limit, MAX_PAGE), before, oldest_first)
    mark = OLDEST_MARK if oldest_first else ""
    return JobPage(items=[to_api(j) for j in rows], next_cursor=f"{mark}{next_id}" if next_id is not None else None)


OLDEST_MARK = "o"
"""How a cursor of an oldest-first listing begins (so it is never taken by a newest-first one, or the reverse)."""


def _cursor(cursor: str | None, oldest_first: bool = False) -> int | None:
    if cursor is None or cursor == "":
        return None
    order = "oldest" if oldest_first else "newest"
    digits = cursor.removeprefix(OLDEST_MARK) if oldest_first else cursor
    if cursor.startswith(OLDEST_MARK) != oldest_first:
        raise BadRequestError(
            f"cursor: found {found_text(cursor)}, expected a next_cursor of a page listed with order={order}"
        )
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise BadRequestError(
            f"cursor: found {found_text(cursor)}, expected a value from a previous page's next_cursor"
        )
    return int(digits)


def cancel(session: Session, who: Principal, public_id: str, now: datetime) -> JobRow:
    """Cancel a job that is not final yet; its run, if any, is stopped by the scheduler loop."""
    job = get_visible(session, who, public_id, for_update=True)
    who.require_write(job.team_id)
    if JobStatus(job.status).is_final():
        raise ConflictError(f"job {public_id} is already {job.status}; only pending, placed or running jobs cancel")
    transition(session, job, JobStatus.CANCELLED, JobReason.CANCELLED, who.actor, now, detail=f"by {who.actor}")
    return job


def to_api(job: JobRow) -> Job:
    """The API view of a job row (a reason code this version does not know reads as ``other``)."""
    reason, detail = read_reason(job.reason, job.detail)
    return Job(
        id=job.public_id,
        name=job.name,
        queue=job.queue_id,
        team=job.team_id,
        kind=JobKind(job.kind),
        gpus=job.gpus,
        gpu_models=list(job.gpu_models),
        priority_class=job.priority_class,
        status=JobStatus(job.status),
        reason=reason,
        detail=detail,
        attempt=job.attempt,
        progress_s=job.progress_s,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        cluster=job.cluster,
        gpu_ids=list(job.gpu_ids),
        exit_code=job.exit_code,
        spec=JobSpec.model_validate(job.spec),
        waiting=_waiting(job),
    )


def _waiting(job: JobRow) -> Waiting | None:
    """Why a pending job waits (its wait reason and detail); None when it is not pending or not judged yet."""
    if job.wait_reason is None or JobStatus(job.status) is not JobStatus.PENDING:
        return None
    return Waiting(reason=job.wait_reason, detail=job.wait_detail or "")
