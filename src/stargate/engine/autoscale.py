"""Autoscaling a service's replicas (pure: traffic and times are given; both clocks feed the same object).

A clock measures the service's traffic over short intervals (:class:`Traffic`: the proxy in the server, the
queueing model in the simulator) and hands each to :meth:`Autoscaler.observe`; :meth:`Autoscaler.decide` then says
how many replicas the service should have. Over the last ``window_s`` of traffic, with ``λ`` the arrival rate
(requests/s), ``L`` the time-average of ongoing requests, ``P`` and ``D`` the mean prompt and output tokens per
request, each policy *wants*:

- ``request-rate`` (as SkyServe): ``ceil(λ / target_requests_per_s)``.
- ``in-flight`` (as Ray Serve): ``ceil(L / target_in_flight)``.
- ``stargate`` (ours): replicas for the token load at the objective. A replica decodes at most ``b*`` sequences at
  once, the largest batch whose decode step ``step(b)`` (the profile's line) keeps the objective: ``step(b) ≤
  tpot_s``, and ``P / prefill + D · step(b) ≤ e2e_s`` and ``P / prefill + step(b) ≤ ttft_s`` for the bounds given.
  A request holds a sequence slot for ``T = P / prefill_tokens_per_s + D · step(b*)`` s (prefill, then ``D``
  steps), so by Little's law the load needs ``λ · T`` slots; with each replica's ``b*`` slots used at most
  ``target_utilization``: ``ceil(λ · T / (b* · target_utilization))``. ``P`` is the mean prompt of the window's
  arrivals and ``D`` the mean output of its completions (a request's output is known once it completed; 256 tokens
  before any did), so the count follows the token mix: the same requests/s with longer answers need more replicas.
  The forecast over the cold start (a replica asked for now serves only ``cold_start_s`` later) is the window's
  level, ``λ`` itself: a rise is not extrapolated. Extrapolating the rise of the recent half-window over the cold
  start multiplies that half's noise and any jump by ``cold_start_s / (window_s / 2)`` (6 for 180 s and 60 s), and
  the scale-down hysteresis below then holds each overshoot for ``downscale_delay_s``: on the Azure conversation
  trace at 1 to 30 times its rate that rule needed 1.4 to 3.1 times the GPU-hours of the best other policy at
  ≥ 99 % attainment, and adding only the part of the rise beyond its Poisson noise saved at most 0.1 % on any run
  and cost up to 46 % on others (bench/README.md, "Service autoscaling decision quality"). Headroom for what changes
  within a cold start is ``target_utilization``'s.

Every policy wants at least 1 replica while requests are in flight (``L > 0``): a service scaled to zero whose
traffic stopped would otherwise never serve the requests still waiting. Every policy's count is bounded by
``min_replicas``..``max_replicas``, and changed with hysteresis: a larger count is
taken once it has been wanted for ``upscale_delay_s``; a smaller one once every count wanted for
``downscale_delay_s`` was smaller, and then only down to the largest of them (traffic that dips for a moment does
not cost a cold start when it returns); a further step down waits its own delay. Both clocks decide every
:func:`tick_s` seconds; the delays hold whatever the tick (a delay shorter than a tick waits one tick).
"""

import math
from collections import deque
from dataclasses import dataclass

from stargate.domain.services import AutoscalePolicy, ReplicaProfile, ServiceSpec


@dataclass(frozen=True, slots=True)
class Traffic:
    """A service's traffic over one interval ending at ``at_s`` (of ``interval_s`` seconds)."""

    at_s: float
    interval_s: float
    arrived: int
    """Requests that arrived in the interval."""
    prompt_tokens: int
    """Their prompt (context) tokens."""
    completed: int
    """Requests that completed in the interval."""
    output_tokens: int
    """Their output tokens."""
    in_flight_s: float
    """Ongoing requests integrated over the interval (request-seconds): divided by ``interval_s``, the mean
    number of ongoing requests."""


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    """How many replicas a service should have at ``at_s``, what its policy wanted, and why (one line)."""

    at_s: float
    replicas: int
    wanted: int
    reason: str


@dataclass(frozen=True, slots=True)
class Load:
    """The traffic of the window, summed up (rates per s, means per request)."""

    rate: float
    in_flight: float
    prompt_tokens: float
    output_tokens: float


DEFAULT_OUTPUT_TOKENS = 256.0
"""Output tokens per request assumed before any request completed (the ``stargate`` policy)."""


class Autoscaler:
    """The replica count of one service, from its spec and the profile of the GPU model its replicas run on."""

    def __init__(self, spec: ServiceSpec, profile: ReplicaProfile) -> None:
        self.spec, self.profile = spec, profile
        self.settings = spec.autoscaling
        self.window: deque[Traffic] = deque()
        self.wanted_log: deque[tuple[float, int]] = deque()
        """(time, count wanted) of the decisions within ``downscale_delay_s``."""
        self.up_since: float | None = None
        self.below_since: float | None = None
        """When the current streak of decisions wanting fewer replicas than the service has began."""
        self.mean_output = DEFAULT_OUTPUT_TOKENS

    def observe(self, traffic: Traffic) -> None:
        """Add an interval of traffic; intervals older than the window are dropped."""
        self.window.append(traffic)
        while self.window and self.window[0].at_s <= traffic.at_s - self.settings.window_s:
            self.window.popleft()

    def load(self, now_s: float) -> Load:
        """The window's traffic summed up at ``now_s``."""
        span = self.settings.window_s
        intervals = [t for t in self.window if t.at_s > now_s - span]
        seen = sum(t.interval_s for t in intervals)
        if seen <= 0:
            return Load(0.0, 0.0, 0.0, self.mean_output)
        arrived = sum(t.arrived for t in intervals)
        completed = sum(t.completed for t in intervals)
        if completed:
            self.mean_output = sum(t.output_tokens for t in intervals) / completed
        return Load(
            rate=arrived / seen,
            in_flight=sum(t.in_flight_s for t in intervals) / seen,
            prompt_tokens=sum(t.prompt_tokens for t in intervals) / arrived if arrived else 0.0,
            output_tokens=self.mean_output,
        )

    def wanted(self, now_s: float) -> tuple[int, str]:
        """The count the policy wants at ``now_s`` before bounds and hysteresis, and why; at least 1 while requests
        are in flight (a service scaled to zero with requests waiting would never serve them)."""
        load = self.load(now_s)
        count, why = self._policy_count(load)
        if count == 0 and load.in_flight > 0:
            return 1, f"{why}; {load.in_flight:.1f} requests in flight need a replica"
        return count, why

    def _policy_count(self, load: Load) -> tuple[int, str]:
        s = self.settings
        if s.policy is AutoscalePolicy.REQUEST_RATE:
            target = s.target_requests_per_s or 1.0
            return _ceil(load.rate / target), f"{load.rate:.2f} requests/s at {target:g} per replica"
        if s.policy is AutoscalePolicy.IN_FLIGHT:
            target = s.target_in_flight or 1.0
            return _ceil(load.in_flight / target), f"{load.in_flight:.1f} requests in flight at {target:g} per replica"
        rate, profile = load.rate, self.profile
        batch = best_batch(self.spec, profile, load.prompt_tokens, load.output_tokens)
        hold_s = load.prompt_tokens / profile.prefill_tokens_per_s + load.output_tokens * profile.step_s(batch)
        slots = rate * hold_s
        count = _ceil(slots / (batch * s.target_utilization))
        return count, (
            f"{rate:.2f} requests/s forecast × {hold_s:.2f} s each = {slots:.1f} sequences at {batch} per "
            f"replica and {s.target_utilization:.0%} utilization"
        )

    def decide(self, now_s: float, current: int) -> ScaleDecision:
        """The replica count at ``now_s`` for a service that has ``current`` replicas (running or starting)."""
        want, why = self.wanted(now_s)
        spec, s = self.spec, self.settings
        want = min(max(want, spec.min_replicas), spec.max_replicas)
        self.wanted_log.append((now_s, want))
        while self.wanted_log and self.wanted_log[0][0] < now_s - s.downscale_delay_s:
            self.wanted_log.popleft()
        if want > current:
            self.up_since = now_s if self.up_since is None else self.up_since
            if now_s - self.up_since >= s.upscale_delay_s:
                self.up_since = None
                return ScaleDecision(now_s, want, want, f"up: {why}")
            return ScaleDecision(now_s, current, want, f"up after {s.upscale_delay_s:g} s: {why}")
        self.up_since = None
        if want < current:
            since = self.below_since = now_s if self.below_since is None else self.below_since
            if now_s - since >= s.downscale_delay_s - 1e-9:
                self.below_since = None  # a further step down waits its own delay
                peak = max(w for t, w in self.wanted_log if t >= since)
                return ScaleDecision(now_s, peak, want, f"down: {why}")
            return ScaleDecision(now_s, current, want, f"down after {s.downscale_delay_s:g} s: {why}")
        self.below_since = None
        return ScaleDecision(now_s, current, want, why)


def tick_s(spec: ServiceSpec) -> float:
    """How often a service's autoscaler gets a traffic interval and decides, s: a tenth of its window, 1 to 10 s (the
    same in the server and the simulator)."""
    return min(10.0, max(1.0, spec.autoscaling.window_s / 10))


def best_batch(spec: ServiceSpec, profile: ReplicaProfile, prompt_tokens: float, output_tokens: float) -> int:
    """``b*``: the largest batch (at least 1) whose decode step keeps the objective's bounds for a request of
    ``prompt_tokens`` and ``output_tokens``: ``step(b) ≤ tpot_s``, ``P / prefill + step(b) ≤ ttft_s`` and
    ``P / prefill + D · step(b) ≤ e2e_s`` (``step`` grows with ``b``: a binary search)."""
    goal, prefill_s = spec.objective, prompt_tokens / profile.prefill_tokens_per_s

    def keeps(b: int) -> bool:
        step = profile.step_s(b)
        return (
            (goal.tpot_s is None or step <= goal.tpot_s)
            and (goal.ttft_s is None or prefill_s + step <= goal.ttft_s)
            and (goal.e2e_s is None or prefill_s + output_tokens * step <= goal.e2e_s)
        )

    low, high = 1, profile.max_concurrent_sequences
    while low < high:
        mid = (low + high + 1) // 2
        if keeps(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _ceil(value: float) -> int:
    """``ceil`` of a count that may be tiny above an integer from rounding (1e-9 is forgiven)."""
    if not math.isfinite(value) or value <= 0:
        return 0
    return math.ceil(value - 1e-9)
