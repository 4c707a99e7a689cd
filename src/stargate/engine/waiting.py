"""Why a pending job waits, when it is not for free GPUs: every cluster it could run on now is down.

A pending job *waits for down clusters* when the clusters it may ever use (its GPU models after its queue's quotas,
its providers and regions, what it needs of an executor: its placement class, see :mod:`stargate.engine.classes`)
that are inside their online window and have at least as many GPUs as it asks for are all down, and there is at
least one. Those clusters are what it waits for. A job with one such cluster up waits for capacity, not for a
repair, and is not named here; neither is one whose clusters are all offline (it waits for capacity to come online).

The rule behind the ``clusters_down`` wait reason (:mod:`stargate.engine.waits`), which both clocks read through the
driver (:meth:`Driver.wait_reasons`). Pure: no I/O, no clock.
"""

from __future__ import annotations

import numpy as np

from stargate.engine.index import BoolArray, FleetIndex

__all__ = ["DownRule"]


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
