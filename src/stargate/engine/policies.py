"""Scheduling policies: how pending jobs are ordered and which mechanisms a cycle uses.

A policy is a small value (see :class:`Policy`): an ordering key over pending jobs plus switches for
backfill, preemption and placement. Three ship:

- ``fifo``: per queue strict first-in first-out by submission time; a queue's head that cannot start blocks
  the queue (no backfill, no preemption); placement is first fit (lowest cluster index that fits).
- ``stargate`` (default): order by priority (higher first) then a virtual deadline (submission time plus the
  remaining estimate); EASY backfill with a reservation for each queue's blocked head; priority preemption;
  contract- and cost-aware best fit
  (see :mod:`stargate.engine.placement`); optional bursting to pay-per-use capacity after a wait.
- ``srtf``: shortest remaining (estimated) time first, the classic reference from the literature (used as a
  baseline by Tiresias, NSDI 2019, and Gavel, OSDI 2020); non-preemptive here, with the same backfill and
  placement as ``stargate``, so only the order differs.
- ``las``: discretised two-dimensional least attained service (Tiresias, NSDI 2019): within a priority, jobs that
  received fewer GPU-seconds go first (levels by thresholds, FIFO within a level); a running job demoted at its
  first checkpoint past a threshold may be preempted for a waiting job of a higher level; a job waiting below the top
  level is promoted back after a bounded wait; every stop costs ``restart_cost_s`` of run time. Needs no run times.
- ``gittins``: ``las``'s levels, demotion, promotion and preemption, ordered within a level by the Gittins index of
  the job's attained service over the service of its queue's completed jobs. See :mod:`stargate.engine.service`.

Defaults of ``las``/``gittins`` (three levels, thresholds 1 and 10 GPU-hours, promotion after 10 × the last run or
7 days, restart cost 60 s) were measured on Philly (docs/reference/scheduling.md): an hour of GPU time lets most jobs
finish in the top level, as Tiresias's first threshold near the median service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from stargate.domain.base import visible


@dataclass(frozen=True, slots=True)
class Policy:
    """Settings every policy has; subclasses define :meth:`key`."""

    name: str = "base"
    backfill: bool = True
    preemption: bool = True
    best_fit: bool = True
    strict_fifo: bool = False
    scan_depth: int = 64
    """Pending jobs looked at per queue and cycle (like Slurm's bf_max_job_test)."""
    scan_budget: int = 32
    """A cycle stops looking deeper into queues after this many failures in a row (each queue's first job is
    always looked at)."""
    max_reservations: int = 8
    """Blocked queue heads that get a start-time reservation per cycle."""
    backfill_window_s: float = math.inf
    """A blocked queue head gets a reservation when its earliest start is at most this far ahead, s (like Slurm's
    bf_window): GPUs are not held idle for days for a start far in the future ..."""
    reserve_after_s: float = 0.0
    """... or once it has waited this long, s, whatever its start: after that nothing may delay it (a bounded
    wait)."""
    default_estimate_s: float = 86_400.0
    """Run time assumed for a job with no estimate, s (for reservations only)."""
    default_checkpoint_interval_s: float = 3_600.0
    """Checkpoint interval assumed for a job that states none, s (progress kept when preempted)."""
    burst_after_s: float | None = None
    """A job may use pay-per-use capacity (cloud, not prepaid) only after waiting this long, s; None: at once."""
    burst_wait_per_gpu_hour_s: float = 0.0
    """Extra wait before bursting per GPU-hour of estimated work, s (compute-proportional wait)."""
    burst_wait_max_s: float = 172_800.0
    """The longest compute-proportional wait before bursting, s, whatever a job's size (``burst_after_s`` is added
    to it, uncapped: ``inf`` there still means never), so the largest jobs do not wait for weeks (inf: no cap).
    Default 2 days, measured on Philly bursting to a cloud (512 owned GPUs, 300 s per GPU-hour, actual run times):
    the longest wait falls from 12.1 days to 2, average JCT by 3 % and p99 wait by 38 % for 11 % more cloud
    GPU-hours; a 4-day cap did worse on both counts, 1 day cost 26 %."""
    max_interruptions: int = 3
    """Runs of one job the infrastructure may end (a node failure: see :mod:`stargate.engine.interruptions`) before
    the job fails as lost instead of waiting again: a job that takes its nodes down is not retried for ever."""
    max_outage_stops: int = 5
    """Runs of one job in a row that an outage of their whole cluster may stop without getting it past its last
    checkpoint (its restart cost counted), before the job fails (``outage_limit``) instead of waiting again: a job
    that takes its engine down each time it starts is not requeued for ever, while any run that gets it further on
    sets the count back to 0 (see :mod:`stargate.engine.interruptions`)."""
    restart_cost_s: float = 0.0
    """Run time a stopped job spends again when it restarts (reloading its checkpoint), s: its remaining work grows
    by this much at every stop (the progress it keeps is its last checkpoint minus this)."""

    def key(self, priority: int, submit_s: float, remaining_s: float, gpus: int) -> tuple[float, float]:
        """Sort key of a pending job: lower runs first."""
        return (-priority, submit_s)

    def validate(self) -> None:
        """Check every setting's type and range (see ``SETTING_RULES``); raises ValueError naming the first bad one."""
        for name in self.__dataclass_fields__:
            rule = SETTING_RULES.get(name)
            if rule is not None:
                problem = rule.check(getattr(self, name))
                if problem is not None:
                    raise ValueError(f"policy setting {name}: {problem}")

    @property
    def bursting(self) -> bool:
        """True when pay-per-use capacity is held back for a wait."""
        return self.burst_after_s is not None

    def burst_wait_s(self, gpus: int, estimate_s: float) -> float:
        """How long a job waits on other capacity before it may burst, s::

        wait = burst_after_s + min(burst_wait_per_gpu_hour_s * gpus * estimate_s / 3600, burst_wait_max_s)
        """
        base = self.burst_after_s or 0.0
        return base + min(self.burst_wait_per_gpu_hour_s * gpus * estimate_s / 3600.0, self.burst_wait_max_s)


@dataclass(frozen=True, slots=True)
class FifoPolicy(Policy):
    """Strict FIFO per queue, first fit, no backfill, no preemption."""

    name: str = "fifo"
    backfill: bool = False
    preemption: bool = False
    best_fit: bool = False
    strict_fifo: bool = True

    def key(self, priority: int, submit_s: float, remaining_s: float, gpus: int) -> tuple[float, float]:
        """Submission time only."""
        return (submit_s, 0.0)


@dataclass(frozen=True, slots=True)
class StargatePolicy(Policy):
    """Priorities, EASY backfill, preemption, contract-aware best fit.

    Within a priority, jobs are ordered by a virtual deadline ``submit_s + runtime_weight * remaining_s``: with
    weight 0 this is FIFO; with weight > 0 short jobs go first (lower average JCT, as SRTF) while a long job is
    passed only by jobs whose deadline is earlier than its own, so its wait stays bounded (unlike SRTF).
    """

    name: str = "stargate"
    runtime_weight: float = 1.0

    def key(self, priority: int, submit_s: float, remaining_s: float, gpus: int) -> tuple[float, float]:
        """Priority, then the virtual deadline."""
        return (-priority, submit_s + self.runtime_weight * remaining_s)


@dataclass(frozen=True, slots=True)
class SrtfPolicy(Policy):
    """Shortest remaining estimated time first (non-preemptive), with backfill."""

    name: str = "srtf"
    preemption: bool = False

    def key(self, priority: int, submit_s: float, remaining_s: float, gpus: int) -> tuple[float, float]:
        """Priority, then remaining estimated run time."""
        return (-priority, remaining_s)


@dataclass(frozen=True, slots=True)
class LasPolicy(Policy):
    """Discretised two-dimensional least attained service (2D-LAS, as Tiresias, NSDI 2019): no run time needed.

    Within a priority class, a job's level is how many thresholds its attained service (GPUs × seconds received
    since its last promotion) reached; lower levels run first, FIFO by submission within a level. The thresholds
    are ``las_base_gpu_s × las_factor^k`` for ``k < las_levels - 1``. A running job is demoted at its first
    checkpoint past a threshold; a job of a higher level that cannot start may then preempt it (through the
    priority preemption path, with the level as a tie-break within the class). A job waiting below the top level
    is promoted back to it after ``min(starvation_factor × its last run, promote_after_s)``: a bounded wait. See
    :mod:`stargate.engine.service`.
    """

    name: str = "las"
    las_levels: int = 3
    las_base_gpu_s: float = 3_600.0
    las_factor: float = 10.0
    starvation_factor: float = 10.0
    promote_after_s: float = 7 * 86_400.0
    restart_cost_s: float = 60.0

    def thresholds(self) -> tuple[float, ...]:
        """The service thresholds between levels, GPU-seconds (ascending; ``las_levels - 1`` of them)."""
        return tuple(self.las_base_gpu_s * self.las_factor**k for k in range(self.las_levels - 1))


@dataclass(frozen=True, slots=True)
class GittinsPolicy(LasPolicy):
    """The levels, demotion, promotion and preemption of ``las``, but within a level jobs are ordered by their
    Gittins index over the service (GPU-seconds) of the queue's recently completed jobs, quantum Δ = the distance to
    the next threshold; least attained service first until ``gittins_min_samples`` jobs of the queue completed."""

    name: str = "gittins"
    gittins_min_samples: int = 50


MAX_SETTING_SECONDS = 10**12
"""The largest finite duration a setting may hold, s (about 31,700 years: every sum and product the engine forms
with it stays a finite float; ``inf`` is written where a setting allows no limit)."""

MAX_SETTING_COUNT = 10**9
"""The largest count (``scan_depth``, ``scan_budget``, ``max_reservations``) or weight (``runtime_weight``) a setting
may hold."""

MAX_LEVELS = 16
"""The most levels ``las_levels`` may ask for."""

_SHOWN_DIGITS = 24
"""An integer with more digits is shown shortened in messages: its first 4 digits and how many there are."""


@dataclass(frozen=True, slots=True)
class SettingRule:
    """What a policy setting may hold: a kind ('bool', 'int' or 'float'), a range, inf and None allowed."""

    kind: str
    low: float = 0.0
    low_included: bool = True
    high: float = MAX_SETTING_SECONDS
    inf: bool = False
    none: bool = False

    def expected(self) -> str:
        """The rule in words, for error messages, e.g. 'a whole number from 1 to 1,000,000,000'."""
        if self.kind == "bool":
            return "true or false"
        what = "a whole number" if self.kind == "int" else "a number"
        if self.low_included:
            text = f"{what} from {_number(self.low)} to {_number(self.high)}"
        else:
            text = f"{what} greater than {_number(self.low)} and at most {_number(self.high)}"
        others = ["inf"] * self.inf + ["null"] * self.none
        if not others:
            return text
        return f"{text}, {', '.join(others[:-1])} or {others[-1]}" if len(others) > 1 else f"{text} or {others[0]}"

    def check(self, value: object) -> str | None:
        """None when ``value`` fits the rule, else 'found …; expected …'. Never raises, whatever ``value`` is (an
        integer of any size is compared exactly, never converted to a float)."""
        found = f"found {shown(value)}; expected {self.expected()}"
        if value is None:
            return None if self.none else found
        if self.kind == "bool":
            return None if isinstance(value, bool) else found
        if isinstance(value, bool) or not isinstance(value, int | float):
            return found
        if self.kind == "int" and not isinstance(value, int):
            return found
        if isinstance(value, float) and not math.isfinite(value):
            return None if self.inf and value == math.inf else found
        if value < self.low or (value == self.low and not self.low_included) or value > self.high:
            return found
        return None


def shown(value: object) -> str:
    """A setting's value as messages show it: an integer of more than 24 digits shortened (``1234…(400 digits)``),
    text quoted, every non-printable character escaped."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        try:
            digits = str(abs(value))
        except ValueError:  # more digits than Python converts to text
            return f"{'-' if value < 0 else ''}an integer of more than 4,300 digits"
        if len(digits) <= _SHOWN_DIGITS:
            return str(value)
        return f"{'-' if value < 0 else ''}{digits[:4]}…({len(digits):,} digits)"
    text = visible(repr(value) if isinstance(value, str) else str(value) if isinstance(value, float) else repr(value))
    return text if len(text) <= 60 else text[:59] + "…"


def _number(value: float) -> str:
    """A bound in words: 1,000,000,000 for 1e9, 0.5 for 0.5."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


_SECONDS = SettingRule("float")
_COUNT = SettingRule("int", high=MAX_SETTING_COUNT)

SETTING_RULES: dict[str, SettingRule] = {
    "backfill": SettingRule("bool"),
    "preemption": SettingRule("bool"),
    "best_fit": SettingRule("bool"),
    "strict_fifo": SettingRule("bool"),
    "scan_depth": SettingRule("int", low=1, high=MAX_SETTING_COUNT),
    "scan_budget": _COUNT,
    "max_reservations": _COUNT,
    "max_interruptions": _COUNT,
    "max_outage_stops": _COUNT,
    "backfill_window_s": SettingRule("float", inf=True),
    "reserve_after_s": SettingRule("float", inf=True),
    "default_estimate_s": SettingRule("float", low_included=False),
    "default_checkpoint_interval_s": SettingRule("float", low_included=False),
    "burst_after_s": SettingRule("float", inf=True, none=True),
    "burst_wait_per_gpu_hour_s": _SECONDS,
    "burst_wait_max_s": SettingRule("float", inf=True),
    "runtime_weight": SettingRule("float", high=MAX_SETTING_COUNT),
    "restart_cost_s": SettingRule("float", high=10**7),
    "las_levels": SettingRule("int", low=1, high=MAX_LEVELS),
    "las_base_gpu_s": SettingRule("float", low_included=False),
    "las_factor": SettingRule("float", low=1.0, low_included=False, high=10**6),
    "starvation_factor": SettingRule("float", high=10**6, inf=True),
    "promote_after_s": SettingRule("float", inf=True),
    "gittins_min_samples": SettingRule("int", low=1, high=10**6),
}
"""Type and range of every policy setting, checked by :meth:`Policy.validate`."""


POLICIES: dict[str, type[Policy]] = {
    "fifo": FifoPolicy,
    "stargate": StargatePolicy,
    "srtf": SrtfPolicy,
    "las": LasPolicy,
    "gittins": GittinsPolicy,
}
"""Policy name → class."""


def get_policy(name: str, **settings: Any) -> Policy:
    """The policy ``name`` with ``settings`` (field names of :class:`Policy`) applied.

    Raises ValueError on an unknown name or setting, or a setting of the wrong type or range (see
    :meth:`Policy.validate`).
    """
    if name not in POLICIES:
        raise ValueError(f"unknown policy '{name}'; expected one of {', '.join(sorted(POLICIES))}")
    policy = POLICIES[name]()
    fields = set(POLICIES[name].__dataclass_fields__) - {"name"}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(
            f"unknown policy setting(s) {', '.join(unknown)}; expected some of {', '.join(sorted(fields))}"
        )
    policy = replace(policy, **settings)
    policy.validate()
    return policy
