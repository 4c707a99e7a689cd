"""The API's request and response bodies (pydantic); the domain's ``JobSpec`` and ``Fleet`` are used as they are."""

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from stargate.domain import JobKind, JobReason, JobSpec
from stargate.domain.base import Name, text_problem
from stargate.domain.ids import Id
from stargate.domain.limits import MAX_NAME_CHARS
from stargate.server.auth import Role
from stargate.store import JobStatus


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a token name the API accepts (as ``TokenIn.name`` checks it), or None."""
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        return f"found {len(name):,} characters, expected 1 to {MAX_NAME_CHARS} characters"
    if (problem := text_problem(name)) is not None:
        return f"found {problem}, expected printable text on one line (no control or bidirectional-override characters)"
    return None


class Body(BaseModel):
    """Base of request bodies: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error answer: one located, human-readable message."""

    detail: str = Field(description="What is wrong and where, e.g. \"body.queue: found 'x', expected ...\".")


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "Malformed cursor or parameter."),
        (401, "Missing, unknown, revoked or expired token."),
        (403, "The token's role or team does not allow this."),
        (404, "No such thing, or another team's job."),
        (409, "Conflicts with the current state (final job, stale plan)."),
        (422, "Invalid body or parameters; names every problem."),
    )
}
"""The error answers every ``/api/v1`` route may give, for the OpenAPI document."""


class Health(BaseModel):
    """Health answer: ``ok``, or ``degraded`` with the reason (e.g. the scheduler's cycles keep failing)."""

    status: Literal["ok", "degraded"] = "ok"
    reason: str | None = Field(default=None, description="Why the server is degraded; absent when ok.")
    scheduler: Literal["leader", "standby"] | None = Field(
        default=None,
        description="leader: this server runs the scheduler of its database; standby: another server on the same "
        "database does, this one takes over if it stops; absent when this server runs no scheduler.",
    )


class WhoAmI(BaseModel):
    """The token the request was made with."""

    token_id: str
    name: str
    team: str | None = Field(description="Team of the token; null for an admin token without a team.")
    role: Role
    provider: str | None = Field(default=None, description="The provider a 'provider' token speaks for; else null.")


REASON_TEXT = (
    "Why the job is in its status: the code of its last status change (stable; the table of codes is in "
    "docs/reference/api.md, 'Reason codes'), e.g. 'placed', 'priority' (preempted), 'exceeds_quota' (rejected), "
    "'failed' (nonzero exit). 'other': a reason this server has no code for (see detail)."
)
DETAIL_TEXT = (
    "Free text that goes with the reason, e.g. 'on lab-a (8 GPUs)', 'exited with code 3', 'by token:alice', the "
    "executor's error; empty when the code says it all."
)


class Waiting(BaseModel):
    """Why a pending job is not running yet, as the scheduler's last cycle judged it."""

    reason: str = Field(
        description="quota, capacity, power, clusters_down, offline or order (stable codes; see "
        "docs/reference/scheduling.md, 'Why a job waits')."
    )
    detail: str = Field(
        description="The numbers behind it, e.g. 'largest free block on its 3 clusters: 4 GPUs (lab-a); asks 8 GPUs'."
    )


class Job(BaseModel):
    """A job as the API shows it; times are ISO 8601 UTC, null when unset."""

    id: str = Field(description="Job id, e.g. 'j-000123'.")
    name: str
    queue: str
    team: str
    kind: JobKind
    gpus: int = Field(description="GPUs the job needs at once, GPUs.")
    gpu_models: list[str]
    priority_class: str
    status: JobStatus = Field(description="pending, placed, running, succeeded, failed or cancelled.")
    reason: JobReason = Field(description=REASON_TEXT)
    detail: str = Field(description=DETAIL_TEXT)
    attempt: int = Field(description="0 for the first try; increased by each preemption or cluster failure.")
    progress_s: float = Field(
        default=0.0,
        description="Run time done and kept across stops (up to the last checkpoint, less the policy's restart "
        "cost), s; negative when the job was stopped before its first checkpoint: it owes that much run time first.",
    )
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cluster: str | None
    gpu_ids: list[int]
    exit_code: int | None
    spec: JobSpec
    waiting: Waiting | None = Field(
        default=None,
        description="Why it waits: null unless it is pending and a scheduling cycle has judged it since it became "
        "pending.",
    )


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    items: list[Job]
    next_cursor: str | None = Field(description="Pass as 'cursor' for the next page; null on the last page.")


class Logs(BaseModel):
    """Log text of a job's latest attempt from a byte offset."""

    text: str
    next_offset: int = Field(description="Byte offset to ask for next.")
    complete: bool = Field(description="True once the job is final and all its text was returned.")


class Event(BaseModel):
    """One status change of a job."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    job_id: str
    at: datetime
    actor: str
    from_: JobStatus | None = Field(alias="from", serialization_alias="from", description="Null for the submission.")
    to: JobStatus
    reason: JobReason = Field(description=REASON_TEXT)
    detail: str = Field(description=DETAIL_TEXT)


class EventPage(BaseModel):
    """A page of events, oldest first."""

    items: list[Event]
    next_cursor: str | None = Field(description="Pass as 'after' for the next page; null on the last page.")


class Queue(BaseModel):
    """A queue with its quotas and what is in it now."""

    id: str
    team: str
    cohort: str | None
    quotas: list[dict[str, Any]]
    pending_jobs: int
    pending_gpus: int = Field(default=0, description="GPUs the pending jobs ask for, GPUs.")
    pending_reasons: dict[str, int] = Field(
        default_factory=dict,
        description="Pending jobs by wait reason (quota, capacity, power, clusters_down, offline, order, as the "
        "scheduler's last cycle judged them; 'submitted': not judged yet), most first.",
    )
    running_jobs: int = Field(description="Jobs placed or running.")
    running_gpus: int = Field(description="GPUs held by placed or running jobs, GPUs.")
    held_by_model: dict[str, int] = Field(
        default_factory=dict,
        description="GPUs held by placed or running jobs by the GPU model of their cluster, GPUs ('unknown': a "
        "cluster no longer in the fleet).",
    )


class Team(BaseModel):
    """A team and its queues."""

    id: str
    name: str
    queues: list[str]


class SchedulingOut(BaseModel):
    """The policy the scheduler decides with: the fleet's ``scheduling:`` section under ``stargate up
    --policy/--set``."""

    policy: str = Field(description="Policy name.")
    settings: dict[str, bool | int | float | str | None] = Field(
        description="Every setting of the policy as the scheduler uses it; 'inf' for no limit."
    )
    changed: dict[str, bool | int | float | str | None] = Field(
        default_factory=dict, description="The settings that differ from the policy's defaults."
    )
    override: str | None = Field(
        description="The `stargate up` options of the server answering over the fleet's section; null: none."
    )
    problem: str | None = Field(
        default=None,
        description="Set when those options do not fit the fleet in force: the policy shown is the fleet's alone.",
    )
    answered_by: str | None = Field(
        default=None,
        description="'leader' or 'standby': whether the server answering leads the scheduler now (null: it runs "
        "none). On a standby the policy shown is the fleet's section under THIS server's `stargate up` options, not "
        "necessarily the leader's: the leader decides with its own (ask it, or start every server with the same "
        "options).",
    )
    note: str | None = Field(default=None, description="Said on a standby: the policy shown may not be the leader's.")


class FleetOut(BaseModel):
    """The fleet in force and its content hash."""

    version: str = Field(description="SHA-256 of the fleet's canonical JSON.")
    applied_at: datetime
    applied_by: str
    fleet: dict[str, Any]
    scheduling: SchedulingOut | None = Field(
        default=None, description="The policy in force: the fleet's section under the server's options."
    )


class FleetPlanIn(Body):
    """A proposed fleet document."""

    fleet: dict[str, Any] = Field(description="A whole fleet document (the fleet file as JSON).")


class Change(BaseModel):
    """One difference between the fleet in force and a proposed one."""

    kind: Literal["add", "remove", "change"]
    entity: str = Field(description="Section of the fleet, e.g. 'clusters'; 'fleet' for top-level fields.")
    id: str
    fields: list[str] = Field(description="Changed fields (for 'change').")


class FleetPlan(BaseModel):
    """A previewed fleet change."""

    plan_id: str
    base_version: str | None
    new_version: str
    changes: list[Change]


class FleetApplyIn(Body):
    """Which plan to apply."""

    plan_id: str = Field(min_length=1, max_length=40)


class TokenIn(Body):
    """A token to create."""

    name: Name = Field(description="A name to recognise the token by: printable text on one line, 1 to 200 characters.")
    team: Id | None = Field(default=None, description="Team of the token; required for member and viewer.")
    role: Role
    provider: Id | None = Field(
        default=None, description="The provider a 'provider' token speaks for (a provider of the fleet); only then."
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the token stops working: an ISO 8601 time with a zone, in the future; null: never.",
    )


class TokenOut(BaseModel):
    """A new token; ``token`` is shown this once and stored only hashed."""

    id: str
    token: str
    expires_at: datetime | None = None


class TokenInfo(BaseModel):
    """A token as ``GET /api/v1/tokens`` lists it: never its secret, salt or hash."""

    id: str
    name: str
    team: str | None
    role: Role
    provider: str | None = Field(default=None, description="The provider a 'provider' token speaks for; else null.")
    state: Literal["live", "expired", "revoked"] = Field(description="Whether the token is accepted now.")
    created_at: datetime
    created_by: str = Field(description="Who created it: 'token <id> (<name>)', 'stargate up' or 'stargate admin'.")
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class HealthFailing(BaseModel):
    """The failing streak of a cluster's executor: its engine failed its last health check."""

    since: datetime = Field(description="When the first failed check of the streak was made.")
    checks: int = Field(
        description="Checks failed in a row since then (a call to the engine that got no answer counts as one)."
    )
    last_error: str = Field(
        description="What the last failed check found, on one line, e.g. 'ray at http://ray-head:8265: ConnectError: "
        "[Errno 111] Connection refused'."
    )
    last_check_at: datetime = Field(description="When the last failed check was made.")
    down_at: datetime = Field(
        description="When its clusters are taken down if its checks go on failing: since + the executor's "
        "health.down_after_s (the first failed check from then on takes them down; in the past once they are down)."
    )


class ClusterHealth(BaseModel):
    """One cluster's health: its status in the fleet, the one its executor's health checks observe, and the one the
    scheduler uses (the worse of the two); while its executor's checks fail, since when and until when."""

    cluster: str
    executor: str = Field(description="The id of the executor that runs its jobs.")
    declared: str = Field(description="Its status in the fleet in force: up, degraded or down.")
    observed: str = Field(description="What its executor's health checks observe: up, degraded or down.")
    status: str = Field(description="The status the scheduler uses: the worse of declared and observed.")
    reason: str = Field(description="Why it is observed so (empty when up and never observed otherwise).")
    since: datetime | None = Field(description="When the observed status began; null: never observed otherwise.")
    failing: HealthFailing | None = Field(
        default=None, description="Its executor's failing streak while its last health check failed; else null."
    )


class FleetHealth(BaseModel):
    """Every cluster of the fleet in force with its declared and observed status."""

    version: str = Field(description="The fleet version in force.")
    clusters: list[ClusterHealth]


class ClusterEvent(BaseModel):
    """One change of a cluster's observed status."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    at: datetime
    cluster: str
    executor: str
    from_: str = Field(alias="from", serialization_alias="from", description="The observed status before.")
    to: str = Field(description="The observed status after: up, degraded or down.")
    reason: str = Field(description="Why, e.g. 'executor slurm-east unreachable for 60 s: connection refused'.")


class ClusterEventPage(BaseModel):
    """Cluster events, newest first."""

    items: list[ClusterEvent]
    next_before: int | None = Field(description="Pass as 'before' for the next (older) page; null on the last page.")
