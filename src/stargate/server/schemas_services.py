"""The API's bodies for inference services (``/api/v1/services``); the domain's ``ServiceSpec`` is used as it is."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from stargate.domain.services import ServiceSpec
from stargate.engine.replicas import ReplicaState
from stargate.store import JobStatus


class ReplicaView(BaseModel):
    """One replica of a service and the job that runs it."""

    number: int = Field(description="The replica's number in its service (never reused).")
    job: str = Field(description="The id of the job that runs it, e.g. 'j-000123'.")
    state: ReplicaState = Field(
        description="pending (waiting for GPUs), starting (running, not yet answering its health check), ready "
        "(serving), draining (scaled down: takes no new request, stopped once its requests end)."
    )
    since: datetime = Field(description="When it entered its state.")
    port: int = Field(description="The loopback port it listens on ($PORT).")
    job_status: JobStatus
    cluster: str | None = Field(description="Where its job was placed; null while it waits.")


class ScaleDecisionView(BaseModel):
    """A change of the replica count a service keeps."""

    at: datetime
    from_replicas: int = Field(alias="from", description="The count before.")
    to_replicas: int = Field(alias="to", description="The count after.")
    wanted: int = Field(description="What the policy wanted before its bounds and hysteresis.")
    reason: str = Field(description="The autoscaler's reason, e.g. '12.00 requests/s at 4 per replica'.")

    model_config = {"populate_by_name": True}


class TrafficView(BaseModel):
    """The service's traffic through every server's proxy over the autoscaler's window (latencies to within 10 %:
    each is the upper bound of its histogram bucket)."""

    window_s: float = Field(description="Seconds of traffic measured.")
    requests_per_s: float
    in_flight: float = Field(description="Mean requests in flight (waiting ones included), requests.")
    completed: int
    failed: int = Field(description="Requests the proxy answered with 502/503 or that were cut off.")
    ttft_p50_s: float | None = Field(description="Median time to the first byte of an answer, s.")
    ttft_p99_s: float | None
    e2e_p50_s: float | None = Field(description="Median end-to-end latency, s.")
    e2e_p99_s: float | None
    decision: dict[str, object] | None = Field(
        default=None, description="The autoscaler's latest decision: at, replicas, wanted, reason."
    )


class Service(BaseModel):
    """A service as the API shows it."""

    name: str
    team: str
    queue: str
    state: Literal["active", "deleting"] = Field(description="deleting: its replicas drain; it goes once none is left.")
    url: str = Field(description="Its path on every server: requests to /services/NAME/... reach its replicas.")
    desired_replicas: int = Field(description="The count the autoscaler asks for now.")
    ready_replicas: int = Field(description="Replicas serving now.")
    replicas: list[ReplicaView]
    decisions: list[ScaleDecisionView] = Field(description="The most recent changes of the count, oldest first.")
    traffic: TrafficView | None = Field(description="Null until the scheduler measured a first interval.")
    problem: str = Field(description="The last replica failure and when the next replica starts; empty when none.")
    created_at: datetime
    created_by: str
    updated_at: datetime
    spec: ServiceSpec
