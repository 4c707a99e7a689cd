"""The API's bodies for simulations: a what-if to run (a trace and a fleet, picked or uploaded, a policy and a few
options of ``stargate simulate``), the stored simulation, its summary in a listing, and what may be picked."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt

from stargate.server.schemas import Body

MAX_SEED = 2**63 - 1
SCALE_MIN, SCALE_MAX = 1e-3, 1e3
"""Range of ``scale_arrivals`` (as ``stargate simulate --scale-arrivals``)."""
MAX_UNTIL_S = 100 * 365 * 86400.0
"""The latest ``until_s``, s (100 years of trace time)."""

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class SimulationIn(Body):
    """A what-if to run: one trace (``trace`` picked by name, or ``trace_text`` uploaded) on one fleet (``fleet``
    picked by name, or ``fleet_yaml`` uploaded)."""

    name: str | None = Field(
        default=None, max_length=200, description="A label of your own for the run (shown in listings)."
    )
    trace: str | None = Field(
        default=None,
        max_length=300,
        description="A trace listed by GET /api/v1/simulations/traces, by its `name`; or give `trace_text`.",
    )
    trace_text: str | None = Field(
        default=None,
        min_length=1,
        description="An uploaded trace: the file's text in `trace_format` (native: CSV with a header, or JSONL: "
        "one JSON object a line); bounded by the body limit (STARGATE_MAX_BODY_BYTES, 1 MiB by default). A bad row "
        "is refused (422, naming its line).",
    )
    trace_format: str | None = Field(
        default=None,
        max_length=40,
        description="philly, alibaba-openb or native; required with `trace_text`, optional with `trace` (the "
        "listing's format; when given it must be that one).",
    )
    fleet: str | None = Field(
        default=None,
        max_length=300,
        description="'current' (the fleet in force, the default) or a fleet listed by GET "
        "/api/v1/simulations/traces under `fleets`; or give `fleet_yaml`.",
    )
    fleet_yaml: str | None = Field(
        default=None, min_length=1, description="An uploaded fleet file (YAML, as `stargate simulate --fleet` reads)."
    )
    policy: str | None = Field(
        default=None, max_length=40, description="gittins, las, stargate, srtf or fifo; default: the fleet's."
    )
    seed: StrictInt = Field(default=0, ge=0, le=MAX_SEED, description="Seed of the run's random generator.")
    scale_arrivals: float = Field(
        default=1.0,
        ge=SCALE_MIN,
        le=SCALE_MAX,
        description="Arrival-rate multiplier: submission times are divided by it (2 = twice the load).",
    )
    until_s: float | None = Field(
        default=None, ge=0, le=MAX_UNTIL_S, description="Stop at this trace time, s; default: run to the end."
    )
    max_jobs: StrictInt | None = Field(
        default=None, ge=1, description="Replay only the first N jobs of the trace (by submission); default: all."
    )
    estimates: str = Field(
        default="learned", max_length=20, description="Run-time estimates the engine is told: learned, trace, actual."
    )
    procurement: StrictBool = Field(
        default=True, description="Run the fleet's procurement (false: as `--no-procurement`)."
    )
    rofr: StrictBool = Field(default=True, description="Honour rights of first refusal (false: as `--no-rofr`).")


class SimulationSummary(BaseModel):
    """A simulation in a listing: what was asked, where it stands, and a few figures once it succeeded."""

    id: str
    name: str | None
    created_at: datetime
    created_by: str = Field(description="Who asked: `token:<name>`.")
    status: Status
    progress: float = Field(description="Share of the trace's jobs settled (finished or rejected), 0 to 1.")
    request: dict[str, Any] = Field(description="What was asked, as accepted (uploads by size and SHA-256).")
    error: str | None = Field(description="Why it failed, one line; null unless failed.")
    started_at: datetime | None
    finished_at: datetime | None
    figures: dict[str, Any] | None = Field(
        description="Once succeeded: jobs_total, jobs_finished, jobs_rejected, jobs_pending_at_end, avg_jct_s, "
        "p99_jct_s, avg_wait_s, gpu_utilization, gpu_hours, cost_usd, policy, wall_s; else null."
    )


class SimulationOut(SimulationSummary):
    """A simulation with its whole result."""

    result: dict[str, Any] | None = Field(
        description="Once succeeded: the summary `stargate simulate --json` prints (see cli-simulate.md, 'JSON "
        "fields'); else null."
    )


class KnownTrace(BaseModel):
    """A trace the server offers."""

    name: str = Field(description="What to give as `trace`.")
    format: str = Field(description="Its format: philly, alibaba-openb or native.")
    bytes: int = Field(description="The file's size, bytes.")
    source: Literal["traces_dir", "examples"] = Field(
        description="Where it is: the server's traces directory (STARGATE_TRACES_DIR) or the bundled examples."
    )


class Pickable(BaseModel):
    """What a simulation may be asked to replay and on which fleet, and the server's limits."""

    traces: list[KnownTrace]
    fleets: list[str] = Field(description="What to give as `fleet`: 'current' and the bundled example fleets.")
    formats: list[str] = Field(description="The trace formats an uploaded trace may be in.")
    policies: list[str]
    limits: dict[str, int | float] = Field(
        description="max_jobs (jobs one simulation may replay), max_wall_s (s one simulation may run), max_waiting "
        "(simulations waiting behind the running one on this server)."
    )
