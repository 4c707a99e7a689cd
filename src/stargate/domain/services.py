"""An inference service as a user declares it: replicas of one program, autoscaled to a latency objective.

A service is a long-running job of kind ``serve``: each replica is a run of its command (or image) on
``gpus_per_replica`` GPUs of one cluster, at the service's priority class; the control plane keeps between
``min_replicas`` and ``max_replicas`` of them running, as many as the autoscaler asks for (see
:mod:`stargate.engine.autoscale`). A **profile** per GPU model says how fast a replica is on it — what the
``stargate`` policy sizes replicas from and what the simulator's queueing model serves requests with — and must say
where its figures come from.
"""

from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict, field_validator, model_validator

from stargate.domain.base import GpuCount, Model, Name, OptionalText, Real, Seconds
from stargate.domain.ids import Id
from stargate.domain.jobs import Command, EnvName, EnvValue, Image
from stargate.domain.limits import MAX_ENV_ENTRIES, MAX_SMALL_LIST

MAX_REPLICAS = 10_000
"""The most replicas one service may ask for."""
MAX_GPUS_PER_REPLICA = 1_024
"""The most GPUs one replica may hold (a replica is a gang inside one cluster)."""
MAX_RATE = 1e9
"""The largest rate (tokens/s, requests/s) a profile or a target may state."""
MAX_SERVICE_SECONDS = 86_400.0
"""The longest latency objective, cold start or delay a service may state, s (one day)."""

Rate = Annotated[float, Strict(), Field(gt=0, le=MAX_RATE)]
"""A positive rate (tokens/s, requests/s), at most 10^9."""
ServiceSeconds = Annotated[Seconds, Field(ge=0, le=MAX_SERVICE_SECONDS)]
"""A duration from 0 to 86,400 s."""
Latency = Annotated[Seconds, Field(gt=0, le=MAX_SERVICE_SECONDS)]
"""A latency bound greater than 0 and at most 86,400 s."""


class AutoscalePolicy(StrEnum):
    """How a service's replica count follows its traffic (see :mod:`stargate.engine.autoscale` for the formulas)."""

    REQUEST_RATE = "request-rate"
    """Replicas = requests/s ÷ a target requests/s per replica (as SkyServe)."""
    IN_FLIGHT = "in-flight"
    """Replicas = ongoing requests ÷ a target ongoing requests per replica (as Ray Serve)."""
    STARGATE = "stargate"
    """Replicas sized from token load (prefill + decode work) against the latency objective, at the window's level
    (a rise is not extrapolated over the cold start), with scale-down hysteresis."""


class LatencyObjective(Model):
    """The latency each request should meet: a request *attains* the objective when every bound given holds for it;
    the service aims at ``attainment`` of its requests attaining it (0.99: the p99 is within the bounds)."""

    ttft_s: Latency | None = Field(default=None, description="Time to first token, s (greater than 0, at most 86,400).")
    tpot_s: Latency | None = Field(
        default=None, description="Time per output token after the first, s (greater than 0, at most 86,400)."
    )
    e2e_s: Latency | None = Field(default=None, description="End-to-end latency, s (greater than 0, at most 86,400).")
    attainment: Real = Field(
        default=0.99, gt=0, lt=1, description="Share of requests that must attain the bounds, between 0 and 1."
    )

    @model_validator(mode="after")
    def _some_bound(self) -> "LatencyObjective":
        if self.ttft_s is None and self.tpot_s is None and self.e2e_s is None:
            raise ValueError("found no bound, expected at least one of ttft_s, tpot_s and e2e_s")
        return self


class ReplicaProfile(Model):
    """How fast one replica is on one GPU model (continuous batching): the figures the ``stargate`` policy sizes
    replicas from and the simulator serves requests with.

    A decode step of a batch of ``b`` sequences takes ``step(b) = a + c·b`` seconds, a line through
    ``decode_step_s`` at ``b = 1`` and ``max_concurrent_sequences / decode_tokens_per_s`` at the full batch; every
    sequence of the batch gains one token per step. A prompt of ``n`` tokens is prefilled in
    ``n / prefill_tokens_per_s`` s."""

    gpu_model: Name = Field(description="The GPU model (catalogue name) these figures are for.")
    prefill_tokens_per_s: Rate = Field(description="Prompt tokens one replica prefills per second, tokens/s.")
    decode_tokens_per_s: Rate = Field(
        description="Output tokens one replica generates per second with a full batch, tokens/s."
    )
    max_concurrent_sequences: Annotated[int, Strict()] = Field(
        ge=1, le=100_000, description="Sequences one replica decodes at once (its batch), 1 to 100,000."
    )
    decode_step_s: Latency | None = Field(
        default=None,
        description="Time of one decode step of a single sequence, s; null: half the full batch's step.",
    )
    source: OptionalText = Field(
        min_length=1, description="Where the figures come from (a paper, a benchmark run, a vendor's table)."
    )

    @property
    def full_step_s(self) -> float:
        """The time of one decode step of a full batch, s."""
        return self.max_concurrent_sequences / self.decode_tokens_per_s

    @property
    def single_step_s(self) -> float:
        """The time of one decode step of a single sequence, s."""
        return self.decode_step_s if self.decode_step_s is not None else self.full_step_s / 2

    def step_s(self, batch: int) -> float:
        """The time of one decode step of ``batch`` sequences, s (the line through the two figures)."""
        b_max = self.max_concurrent_sequences
        if b_max == 1:
            return self.single_step_s
        slope = (self.full_step_s - self.single_step_s) / (b_max - 1)
        return self.single_step_s + slope * (max(batch, 1) - 1)

    @model_validator(mode="after")
    def _step_fits(self) -> "ReplicaProfile":
        if self.decode_step_s is not None and self.decode_step_s > self.full_step_s:
            raise ValueError(
                f"found decode_step_s {self.decode_step_s:g} s, longer than a full batch's step "
                f"({self.full_step_s:g} s = max_concurrent_sequences / decode_tokens_per_s), expected at most that"
            )
        return self


class Autoscaling(Model):
    """The autoscaling policy and its settings (each policy reads only its own)."""

    policy: AutoscalePolicy = Field(
        default=AutoscalePolicy.STARGATE, description="'request-rate', 'in-flight' or 'stargate'."
    )
    target_requests_per_s: Rate | None = Field(
        default=None, description="request-rate: requests/s one replica should take; required by that policy."
    )
    target_in_flight: Rate | None = Field(
        default=None, description="in-flight: ongoing requests per replica; required by that policy."
    )
    window_s: Annotated[Seconds, Field(gt=0, le=MAX_SERVICE_SECONDS)] = Field(
        default=60.0, description="Seconds of traffic each decision averages over (greater than 0, at most 86,400)."
    )
    upscale_delay_s: ServiceSeconds = Field(
        default=0.0, description="A larger count must be asked for this long before replicas are added, s."
    )
    downscale_delay_s: ServiceSeconds = Field(
        default=300.0, description="A smaller count must be asked for this long before replicas are removed, s."
    )
    target_utilization: Real = Field(
        default=0.8,
        gt=0,
        le=1,
        description="stargate: the share of a replica's capacity at the objective that load may use, (0, 1].",
    )

    @model_validator(mode="after")
    def _targets(self) -> "Autoscaling":
        if self.policy is AutoscalePolicy.REQUEST_RATE and self.target_requests_per_s is None:
            raise ValueError("found policy 'request-rate' without target_requests_per_s, expected both")
        if self.policy is AutoscalePolicy.IN_FLIGHT and self.target_in_flight is None:
            raise ValueError("found policy 'in-flight' without target_in_flight, expected both")
        return self


class ServiceSpec(Model):
    """A service: what each replica runs and on what, how many replicas, and the latency it must hold."""

    name: Id = Field(description="The service's id (its URL is /services/<name>/...).")
    queue: Id = Field(description="Id of the queue its replicas are submitted to (its quotas apply).")
    priority_class: Id | None = Field(default=None, description="Priority class of its replicas; null: the queue's.")
    gpus_per_replica: GpuCount = Field(
        ge=1, le=MAX_GPUS_PER_REPLICA, description="GPUs each replica holds, GPUs; 1 to 1,024."
    )
    gpu_models: list[Name] = Field(
        default_factory=list,
        max_length=MAX_SMALL_LIST,
        description="Acceptable GPU models; empty: those the profiles are for.",
    )
    min_replicas: Annotated[int, Strict()] = Field(default=1, ge=0, le=MAX_REPLICAS, description="0 to 10,000.")
    max_replicas: Annotated[int, Strict()] = Field(default=1, ge=1, le=MAX_REPLICAS, description="1 to 10,000.")
    objective: LatencyObjective
    profiles: list[ReplicaProfile] = Field(min_length=1, max_length=64, description="One per GPU model, 1 to 64.")
    cold_start_s: ServiceSeconds = Field(
        default=60.0, description="From a replica's start to its first answered request, s (0 to 86,400)."
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    command: Command | None = Field(default=None, description="The replica's shell command (it listens on $PORT).")
    image: Image | None = Field(default=None, description="The replica's container image.")
    health_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_.-]{0,200}$")] = Field(
        default="/health", description="Path a replica answers 200 on once it is ready (no '.' or '..' segment)."
    )
    environment: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=MAX_ENV_ENTRIES)

    @field_validator("health_path")
    @classmethod
    def _inside_root(cls, path: str) -> str:
        if any(part in (".", "..") for part in path.split("/")):
            raise ValueError(f"found {path!r}, expected a path without '.' or '..' segments (e.g. '/health')")
        return path

    @model_validator(mode="after")
    def _consistent(self) -> "ServiceSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"found min_replicas {self.min_replicas} above max_replicas {self.max_replicas}, expected at most it"
            )
        models = [p.gpu_model for p in self.profiles]
        if len(set(models)) != len(models):
            raise ValueError("found two profiles for one GPU model, expected one profile per GPU model")
        missing = [m for m in self.gpu_models if m not in models]
        if missing:
            raise ValueError(f"found gpu_models without a profile ({', '.join(missing)}), expected a profile for each")
        return self

    def profile(self, gpu_model: str) -> ReplicaProfile | None:
        """The profile for ``gpu_model``, or None."""
        return next((p for p in self.profiles if p.gpu_model == gpu_model), None)

    def accepted_models(self) -> list[str]:
        """The GPU models its replicas may run on: ``gpu_models``, else every profile's."""
        return list(self.gpu_models) or [p.gpu_model for p in self.profiles]
