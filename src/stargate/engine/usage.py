"""The fleet's use over time, sampled at evenly spaced instants: GPUs held per cluster, IT power energised per site.

Pure: no I/O, no clock (the caller passes "now" as ``known_until``). Instants are aware datetimes; a run's times
are whole microseconds since 1970-01-01T00:00Z (:func:`micros`: exact, and no datetime per run to make); its GPUs
count at an instant ``t`` when ``start <= t < end`` (``end`` None: still held). A building's power counts from 00:00 UTC
of the day it is energised (:meth:`stargate.domain.Building.energized_on`), as the engine's power caps do.

Cost: two binary searches per run into the sorted instants (``numpy.searchsorted``) and one cumulative sum per
cluster, never a pass over the runs per sample.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np

from stargate.domain import Fleet

Held = tuple[str, int, int, int | None]
"""A run holding GPUs: (cluster id, GPUs, from, until; None while it still holds them), in microseconds since 1970
(see :func:`micros`)."""


def sample_instants(since: datetime, until: datetime, points: int) -> list[datetime]:
    """``points`` instants evenly spaced from ``since`` to ``until``, both included, each to the microsecond
    (``points`` at least 2, ``until`` after ``since``)."""
    if points < 2 or until <= since:
        raise ValueError(f"found {points} points from {since} to {until}, expected at least 2 over a window")
    span = until - since
    return [since + span * i / (points - 1) for i in range(points - 1)] + [until]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NEVER = np.iinfo(np.int64).max
"""The end of a run still holding its GPUs, µs: after every instant a datetime can hold."""


def micros(t: datetime) -> int:
    """``t`` (aware) as whole microseconds since 1970-01-01T00:00Z (exact, unlike a float timestamp near 9999)."""
    return (t - _EPOCH) // _US


def gpus_held(
    runs: Iterable[Held],
    at: Sequence[datetime],
    clusters: Sequence[str],
    known_until: datetime,
) -> dict[str, list[int | None]]:
    """GPUs held on each cluster at each instant of ``at`` (sorted): the sum over ``runs`` with ``start <= t < end``.

    Every cluster of ``clusters`` is in the answer (zeros where idle), in that order, then any other cluster a run
    held GPUs on, by id. Instants after ``known_until`` (now) are None: what will be held then is not known.
    """
    times = np.array([micros(t) for t in at], dtype=np.int64)
    on: list[str] = []
    gpus: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    for cluster, count, start, end in runs:
        on.append(cluster)
        gpus.append(count)
        starts.append(start)
        ends.append(_NEVER if end is None else end)
    names = list(clusters) + sorted(set(on).difference(clusters))
    index = {c: i for i, c in enumerate(names)}
    diff = np.zeros((len(names), len(times) + 1), dtype=np.int64)
    if on:
        row = np.array([index[c] for c in on], dtype=np.int64)
        weight = np.array(gpus, dtype=np.int64)
        # each run counts from the first instant at or after its start to the last one before its end
        first = np.searchsorted(times, np.array(starts, dtype=np.int64), side="left")
        past = np.searchsorted(times, np.array(ends, dtype=np.int64), side="left")
        live = first < past
        np.add.at(diff, (row[live], first[live]), weight[live])
        np.add.at(diff, (row[live], past[live]), -weight[live])
    held = np.cumsum(diff[:, :-1], axis=1)
    known = int(np.searchsorted(times, micros(known_until), side="right"))
    unknown: list[int | None] = [None] * (len(times) - known)
    return {name: [*held[i, :known].tolist(), *unknown] for i, name in enumerate(names)}


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def energised_mw(fleet: Fleet, at: Sequence[datetime]) -> dict[str, list[float]]:
    """IT power energised at each site at each instant of ``at``, MW (:meth:`stargate.domain.Fleet.energized_it_mw`
    on the instant's UTC day): a site with buildings has those energised by then (capped by its envelope ÷ PUE), a
    site without buildings its envelope ÷ PUE; a site with neither is left out. In the fleet's site order."""
    out: dict[str, list[float]] = {}
    for site in fleet.sites:
        days = sorted({b.energized_on() for b in fleet.buildings if b.site == site.id})
        base = fleet.energized_it_mw(site.id, date.min)
        if base is None and not days:
            continue
        steps = [_day_start(d) for d in days]
        levels = [base or 0.0] + [fleet.energized_it_mw(site.id, d) or 0.0 for d in days]
        out[site.id] = [round(levels[bisect_right(steps, t)], 6) for t in at]
    return out


def step_seconds(since: datetime, until: datetime, points: int) -> float:
    """Seconds between two samples of :func:`sample_instants`."""
    return (until - since) / timedelta(seconds=1) / (points - 1)
