"""Capacity windows: what each cluster and site offers at the scheduler's current instant.

A cluster takes work while it is *up* (its status is up or degraded, set by the driver) and *online* (inside its
online window: from its ``online_from`` or its building's energisation until the end of its ``online_until``). A
site runs GPUs within its energised power cap. A cluster's price, the contract it burns and its placement rank
follow the contracts active now; ``payg`` marks pay-per-use clusters (tier 1: neither owned nor prepaid).

Everything but the status changes only at the index's ``change_times``: :meth:`CapacityWindows.advance` re-reads it
there, and :meth:`CapacityWindows.next_change` says when that is.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

from stargate.engine.index import TIER_WEIGHT, BoolArray, FleetIndex, FloatArray, IntArray


class CapacityWindows:
    """Cluster status, online windows, site power caps, prices and placement ranks as of the last change."""

    def __init__(self, index: FleetIndex) -> None:
        """The capacity before any change time; every cluster up unless the fleet marks it down."""
        self._index = index
        self._times = index.change_times
        self.up: BoolArray = ~index.initially_down
        """Cluster → its status accepts work (up or degraded)."""
        self.online: BoolArray = np.ones(index.n, dtype=bool)
        """Cluster → inside its online window."""
        self.fresh = True
        """True until a cycle has applied the capacity at its own instant."""
        self._set(-math.inf)

    def _set(self, now: float) -> None:
        idx = self._index
        self.online = idx.online(now)
        self.cap_w: FloatArray = idx.power_cap_w(now)
        """Site → facility power cap, W (inf when not limited)."""
        self.limited = bool(np.isfinite(self.cap_w).any())
        """True when some site's power cap binds (availability then follows power draw)."""
        self.charged, self.burnt, self.rank = idx.prices(now)
        """Cluster → price per GPU-hour charged, contract burnt, placement rank."""
        self.payg: BoolArray = self.rank >= TIER_WEIGHT
        """Cluster → pay-per-use."""
        self.nb: BoolArray = ~self.payg
        """Cluster → not pay-per-use (a job still waiting to burst may use it)."""
        self._ptr = bisect_right(self._times, now)

    def due(self, now: float) -> bool:
        """True when a change time has come by ``now`` that no cycle has applied yet (or none ever applied any)."""
        ptr, times = self._ptr, self._times
        return self.fresh or (ptr < len(times) and times[ptr] <= now)

    def advance(self, now: float) -> IntArray:
        """Re-read capacity at ``now``; returns the clusters that went offline."""
        was_online = self.online
        self.fresh = False
        self._set(now)
        gone: IntArray = np.flatnonzero(was_online & ~self.online)
        return gone

    def changes_left(self) -> bool:
        """True while some change time lies ahead of the last one applied."""
        return self._ptr < len(self._times)

    def next_change(self, now: float) -> float:
        """The next change time after ``now`` (inf when none is left)."""
        ptr, times = self._ptr, self._times
        return times[ptr] if ptr < len(times) and now < times[ptr] else math.inf
