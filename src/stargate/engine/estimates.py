"""Learned run-time estimates: a bounded history of completed jobs' run times, queried by what a job states.

No scheduler knows run times in advance. :class:`RunHistory` learns them online from the jobs that completed
(the engine reports each completed run time: checkpointed progress plus the current run, so the simulator and the
server feed it identically) and estimates a new job's run time as a **quantile** of the recent run times of the
most specific group of similar jobs that has enough samples::

    (queue, user, name, GPUs) → (queue, user, name) → (queue, user, GPUs) → (queue, GPUs) → (queue) → (all jobs)

Levels that need a user or name the job does not state are skipped; with no group of ``min_samples`` the caller
falls back to the policy's default estimate. A quantile rather than a mean because run times are heavy-tailed
and an underestimate costs more than an overestimate: a backfilled job that overruns its estimate delays the
reserved job it was let in ahead of.

Memory is bounded: each group keeps its last ``window`` run times, and at most ``max_groups`` groups are kept
(the least recently fed is dropped first). Completions reported at one instant are applied in job id order when
the history is next read (or a later instant is reported), so the order in which a clock reports same-instant
completions changes nothing.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DEFAULT_QUANTILE = 0.9
"""Quantile of a group's run times used as a new job's estimate (see the module docstring for why high-ish).
Measured on the Philly trace (examples/philly-burst, no bursting, ``stargate`` policy): average JCT 22.3 h at the
median, 19.1 h at 0.65, 15.8 h at 0.8, 12.4 h at 0.9, 12.5 h at 0.95 and 14.1 h at 1.0 (the window's maximum)."""
DEFAULT_WINDOW = 64
"""Recent run times kept per group."""
DEFAULT_MIN_SAMPLES = 3
"""Run times a group needs before it estimates (a coarser group answers until then)."""
DEFAULT_MAX_GROUPS = 50_000
"""Groups kept at most (the least recently fed is dropped first)."""
SERVICE_WINDOW = 1_000
"""Completed jobs per queue kept for :meth:`RunHistory.service_samples`."""


@dataclass(frozen=True, slots=True)
class Completion:
    """A job that completed: when, which, what it stated, and how long it ran (s)."""

    at_s: float
    job_id: str
    queue: str
    gpus: int
    run_s: float
    user: str | None = None
    name: str | None = None


class _Window:
    """The last ``size`` values fed, in arrival order and sorted."""

    __slots__ = ("order", "size", "sorted")

    def __init__(self, size: int) -> None:
        self.size = size
        self.order: deque[float] = deque()
        self.sorted: list[float] = []

    def add(self, value: float) -> None:
        if len(self.order) >= self.size:
            old = self.order.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
        self.order.append(value)
        bisect.insort(self.sorted, value)

    def quantile(self, q: float) -> float:
        """The nearest-rank ``q`` quantile (the smallest value with at least ``q`` of the values at or below it)."""
        s = self.sorted
        return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def group_keys(queue: str, user: str | None, name: str | None, gpus: int) -> list[tuple[object, ...]]:
    """The groups a job belongs to, most specific first (levels needing a user or name it lacks are left out)."""
    keys: list[tuple[object, ...]] = []
    if user is not None or name is not None:
        keys.append(("qung", queue, user, name, gpus))
        keys.append(("qun", queue, user, name))
    if user is not None:
        keys.append(("qug", queue, user, gpus))
    keys.append(("qg", queue, gpus))
    keys.append(("q", queue))
    keys.append(("all",))
    return keys


class RunHistory:
    """Recent run times of completed jobs by group, and the estimate they give a new job (module docstring)."""

    def __init__(
        self,
        quantile: float = DEFAULT_QUANTILE,
        window: int = DEFAULT_WINDOW,
        min_samples: int = DEFAULT_MIN_SAMPLES,
        max_groups: int = DEFAULT_MAX_GROUPS,
        service_window: int = SERVICE_WINDOW,
    ) -> None:
        """An empty history; raises ValueError on a setting out of range."""
        for name, value, ok in (
            ("quantile", quantile, 0.0 < quantile <= 1.0),
            ("window", window, window >= 1),
            ("min_samples", min_samples, 1 <= min_samples <= window),
            ("max_groups", max_groups, max_groups >= 1),
            ("service_window", service_window, service_window >= 1),
        ):
            if not ok:
                raise ValueError(f"run history setting {name}: found {value!r}; expected {_EXPECTED[name]}")
        self.quantile, self.window, self.min_samples = quantile, window, min_samples
        self.max_groups, self.service_window = max_groups, service_window
        self._groups: OrderedDict[tuple[object, ...], _Window] = OrderedDict()
        self._service: dict[str, _Window] = {}
        self._batch: list[Completion] = []
        self._keys: dict[tuple[str, str | None, str | None, int], list[tuple[object, ...]]] = {}
        """Memo of :func:`group_keys` (cleared when it holds ``max_groups`` entries)."""
        self.recorded = 0
        """Completions applied so far."""

    # -- feeding ----------------------------------------------------------------------------------------------
    def record(self, done: Completion) -> None:
        """Note a completed job (applied with the other completions of its instant, in job id order)."""
        if not (math.isfinite(done.run_s) and done.run_s >= 0.0):
            return
        if self._batch and self._batch[0].at_s != done.at_s:
            self._flush()
        self._batch.append(done)

    def seed(self, done: Iterable[Completion]) -> None:
        """Note many completed jobs at once (e.g. from a database at start), applied in (time, job id) order."""
        self._flush()
        for c in sorted(done, key=lambda c: (c.at_s, c.job_id)):
            if math.isfinite(c.run_s) and c.run_s >= 0.0:
                self._apply(c)

    def _flush(self) -> None:
        batch = self._batch
        if not batch:
            return
        self._batch = []
        batch.sort(key=lambda c: c.job_id)
        for c in batch:
            self._apply(c)

    def _group_keys(self, queue: str, user: str | None, name: str | None, gpus: int) -> list[tuple[object, ...]]:
        memo = self._keys
        found = memo.get((queue, user, name, gpus))
        if found is None:
            if len(memo) >= self.max_groups:
                memo.clear()
            found = memo[(queue, user, name, gpus)] = group_keys(queue, user, name, gpus)
        return found

    def _apply(self, c: Completion) -> None:
        groups = self._groups
        for key in self._group_keys(c.queue, c.user, c.name, c.gpus):
            w = groups.get(key)
            if w is None:
                w = groups[key] = _Window(self.window)
                if len(groups) > self.max_groups:
                    groups.popitem(last=False)
            else:
                groups.move_to_end(key)
            w.add(c.run_s)
        s = self._service.get(c.queue)
        if s is None:
            s = self._service[c.queue] = _Window(self.service_window)
        s.add(c.run_s * c.gpus)
        self.recorded += 1

    # -- reading ----------------------------------------------------------------------------------------------
    def estimate(self, queue: str, gpus: int, user: str | None = None, name: str | None = None) -> float | None:
        """The learned run time of a new job, s (at least 1 s); None when no group it belongs to has enough
        samples (the caller uses the policy's default estimate)."""
        if self._batch:
            self._flush()
        groups, need = self._groups, self.min_samples
        for key in self._group_keys(queue, user, name, gpus):
            w = groups.get(key)
            if w is not None and len(w.sorted) >= need:
                return max(w.quantile(self.quantile), 1.0)
        return None

    def service_samples(self, queue: str) -> Sequence[float]:
        """GPU-seconds of the queue's last completed jobs (up to ``service_window``), sorted ascending; empty when
        none completed. Read-only: the sequence is the history's own."""
        if self._batch:
            self._flush()
        s = self._service.get(queue)
        return s.sorted if s is not None else ()

    @property
    def groups(self) -> int:
        """Groups held now."""
        return len(self._groups)


_EXPECTED = {
    "quantile": "a number > 0 and <= 1",
    "window": "a whole number >= 1",
    "min_samples": "a whole number >= 1 and <= window",
    "max_groups": "a whole number >= 1",
    "service_window": "a whole number >= 1",
}
