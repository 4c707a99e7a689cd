"""Why a pending job waits, when it is not for free GPUs: every cluster it could run on now is down.

A pending job *waits for down clusters* when the clusters it may ever use (its GPU models after its queue's quotas,
its providers and regions, what it needs of an executor: its placement class, see :mod:`stargate.engine.classes`)
that are inside their online window and have at least as many GPUs as it asks for are all down, and there is at
least one. Those clusters are what it waits for. A job with one such cluster up waits for capacity, not for a
repair, and is not named here; neither is one whose clusters are all offline (it waits for capacity to come online).

One rule for both clocks: the simulator's driver asks it over its own state (:meth:`Driver.waiting_for_down`), the
server over the fleet in force with its observed statuses (:func:`waiting_for_down`). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

import numpy as np

from stargate.engine.admission import Admission
from stargate.engine.classes import Classes
from stargate.engine.index import BoolArray, FleetIndex
from stargate.engine.types import JobRequest

if TYPE_CHECKING:
    from stargate.engine.driver import JobTerms

__all__ = ["DownRule", "waiting_for_down"]


class DownRule:
    """The rule over one fleet index and the clusters' status and online windows at one instant (memoised per
    placement class and size)."""

    def __init__(self, index: FleetIndex, up: BoolArray, online: BoolArray) -> None:
        """``up``: cluster → its status accepts work (up or degraded); ``online``: cluster → inside its window."""
        self.index = index
        self.online_up = online & up
        self.online_down = online & ~up
        self.none = bool(not self.online_down.any())
        """True when no online cluster is down: no job waits for one (every answer is empty)."""
        self._memo: dict[tuple[int, int], tuple[str, ...]] = {}

    def clusters(self, cls: int, mask: BoolArray, gpus: int) -> tuple[str, ...]:
        """The down clusters a job of placement class ``cls`` (clusters ``mask``) and ``gpus`` GPUs waits for, in
        fleet order; empty when it waits for something else."""
        if self.none:
            return ()
        key = (cls, gpus)
        found = self._memo.get(key)
        if found is None:
            big = mask & (self.index.total >= gpus)
            if (big & self.online_up).any():
                found = ()
            else:
                ids = self.index.cluster_ids
                found = tuple(ids[c] for c in np.flatnonzero(big & self.online_down).tolist())
            self._memo[key] = found
        return found


def waiting_for_down(
    index: FleetIndex, down: Collection[str], now: float, jobs: Iterable[JobTerms]
) -> dict[str, tuple[str, ...]]:
    """Job id → the down clusters it waits for (see the module docstring), for those of ``jobs`` (pending) that wait
    only for down clusters at engine time ``now``. ``down``: the ids of the clusters whose status is down (declared or
    observed). A job that can never run as asked (the engine rejects it) is not named."""
    up = np.array([c not in down for c in index.cluster_ids], dtype=bool)
    rule = DownRule(index, up, index.online(now))
    if rule.none:
        return {}
    classes = Classes(index, Admission(index))
    out: dict[str, tuple[str, ...]] = {}
    for job in jobs:
        cls, reason = classes.classify(_shape(job), index.queue_ix.get(job.queue, -1))
        if reason is None and (found := rule.clusters(cls, classes.mask[cls], job.gpus)):
            out[job.id] = found
    return out


def _shape(job: JobTerms) -> JobRequest:
    """What placement classes read of a job (its priority, times and estimates do not matter here)."""
    return JobRequest(
        id=job.id,
        queue=job.queue,
        gpus=job.gpus,
        gpu_models=job.gpu_models,
        allowed_providers=job.allowed_providers,
        allowed_regions=job.allowed_regions,
        spread=job.spread,
        nodes=job.nodes,
        needs=job.needs,
    )
